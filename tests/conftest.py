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


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """The site, built strictly once per test session in a fresh process, as `nox -s build`.

    It uses the project's cache: after an earlier build it executes nothing; on a clean
    clone it executes every demo and lab.
    """
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site
