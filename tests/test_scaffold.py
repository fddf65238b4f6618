"""`nox -s new_chapter` writes a chapter that lints, passes its test and runs its demos."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from executed.editions import differences
from executed.plan import scan_page
from executed.scaffold import scaffold

REPO = Path(__file__).resolve().parents[1]


def test_scaffolded_chapter_is_wired_tested_and_runs(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(REPO / "snippets", root / "snippets")
    shutil.copytree(
        REPO / "docs" / "en" / "chapters", root / "docs" / "en" / "chapters"
    )
    for config in ("mkdocs.yml", "mkdocs.zh.yml"):
        shutil.copy(REPO / config, root / config)
    (root / "tests").mkdir()
    shutil.copy(REPO / "tests" / "conftest.py", root / "tests" / "conftest.py")

    written = scaffold(root, "Attention Temperature")

    page, page_zh = (p for p in written if p.suffix == ".md")
    assert page.name.endswith("-attention-temperature.md") and page_zh.name == page.name
    entry = f"chapters/{page.name}"
    for config, appendix in (("mkdocs.yml", "Appendix"), ("mkdocs.zh.yml", "附录")):
        nav = (root / config).read_text()
        assert entry in nav and nav.index(entry) < nav.index(f"  - {appendix}:")
    # The Chinese page is the English page's twin, as the Chinese build checks.
    assert differences(page.read_text(), page_zh.read_text()) == []
    # The page declares a figure and a value that its demo module provides.
    refs = scan_page(page.read_text())
    assert refs == {
        "attention_temperature.temperature_figure",
        "attention_temperature.numbers",
    }
    # Its test passes, and the generated code is formatted and lint-clean.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    generated = [str(p) for p in written if p.suffix == ".py"]
    for args in (["check"], ["format", "--check"]):
        lint = subprocess.run(
            [
                sys.executable,
                "-m",
                "ruff",
                *args,
                "--config",
                str(REPO / "pyproject.toml"),
                *generated,
            ],
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
    # Its demos return what the page uses, in both editions' languages.
    check = "from snippets.demos.attention_temperature import numbers, temperature_figure as f\n"
    check += "from executed.worker import serialise\n"
    check += "assert float(numbers()['largest']) > 0.5\n"
    check += "assert '温度 0.5' in serialise(f())['translations']['zh']['light']"
    demo = subprocess.run(
        [sys.executable, "-c", check], cwd=root, capture_output=True, text=True
    )
    assert demo.returncode == 0, demo.stderr
