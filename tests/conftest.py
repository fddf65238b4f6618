"""Shared fixtures: every test is seeded and runs on the CPU unless it says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snippets.runtime import seed_everything


@pytest.fixture
def gen() -> torch.Generator:
    """A seeded generator; also seeds the global RNGs so that tests are deterministic."""
    return seed_everything(0)


MKDOCS_BUILD = [sys.executable, "-m", "mkdocs", "build", "--strict"]


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """The site, built strictly once per test session in fresh processes, as `nox -s
    build`: the English edition, then the Chinese one into its zh/ folder, which reuses
    every result of the English build (its statuses are kept in `zh_statuses`).

    It uses the project's cache: after an earlier build it executes nothing; on a clean
    clone it executes every demo and lab.
    """
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    root = Path(__file__).resolve().parents[1]
    for config, folder in (("mkdocs.yml", site), ("mkdocs.zh.yml", site / "zh")):
        result = subprocess.run(
            [*MKDOCS_BUILD, "-f", config, "--site-dir", str(folder)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert result.returncode == 0, f"{config}:\n" + result.stdout + result.stderr
    last = root / ".cache" / "executed" / "last-build.json"
    (site.parent / "zh-statuses.json").write_text(last.read_text())
    return site
