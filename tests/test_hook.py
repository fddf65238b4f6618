"""The build machinery (docs/hooks/executed.py) on a small fixture project.

Each test builds a tiny site with the real hook, in a fresh process as `mkdocs build` would,
and reads what the hook executed from `.cache/executed/last-build.json`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HOOK = REPO / "docs" / "hooks" / "executed.py"

PAGE = """\
# Fixture

![A line that goes up](exec:alpha.line)
/// caption
A caption.
///

The answer is {{ beta.numbers.answer }}.

{{ beta.table }}
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A site with two demo modules, each depending on its own concept module."""
    root = tmp_path / "site-src"
    write(
        root / "mkdocs.yml",
        f"""\
        site_name: fixture
        docs_dir: docs/en
        hooks: [{HOOK}]
        markdown_extensions: [attr_list, pymdownx.blocks.caption]
        """,
    )
    write(root / "docs/en/index.md", PAGE)
    write(root / "snippets/demos/__init__.py", "")
    for name in ("__init__.py", "runtime.py", "plotting.py"):
        shutil.copy(REPO / "snippets" / name, root / "snippets" / name)
    write(root / "snippets/alpha.py", "SLOPE = 2.0\n")
    write(root / "snippets/beta.py", "ANSWER = 42\n")
    write(
        root / "snippets/demos/alpha.py",
        """\
        from snippets.alpha import SLOPE
        from snippets.plotting import figure

        def line():
            fig, ax = figure()
            ax.plot([0, 1, 2], [0, SLOPE, 2 * SLOPE])
            return fig
        """,
    )
    write(
        root / "snippets/demos/beta.py",
        """\
        from snippets import beta

        def numbers():
            return {"answer": beta.ANSWER}

        def table():
            return "| a | b |\\n| - | - |\\n| 1 | 2 |"
        """,
    )
    return root


def build(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AE_CACHE_DIR"}
    env["NO_MKDOCS_2_WARNING"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def statuses(root: Path) -> dict[str, str]:
    return json.loads((root / ".cache/executed/last-build.json").read_text())


def test_first_build_executes_and_embeds_everything(project):
    result = build(project)
    assert result.returncode == 0, result.stderr
    assert set(statuses(project).values()) == {"executed"}
    html = (project / "site/index.html").read_text()
    assert "The answer is 42." in html
    assert "<td>1</td>" in html
    assert "assets/figures/alpha.line.light.svg#only-light" in html
    assert "assets/figures/alpha.line.dark.svg#only-dark" in html
    light = (project / "site/assets/figures/alpha.line.light.svg").read_text()
    dark = (project / "site/assets/figures/alpha.line.dark.svg").read_text()
    assert "<svg" in light and light != dark
    assert "<dc:date>" not in light  # no timestamp in the SVG metadata


def test_second_build_executes_nothing(project):
    assert build(project).returncode == 0
    assert build(project).returncode == 0
    assert set(statuses(project).values()) == {"cached"}


def test_prose_edit_executes_nothing(project):
    assert build(project).returncode == 0
    page = project / "docs/en/index.md"
    page.write_text(page.read_text() + "\nA new sentence of prose.\n")
    result = build(project)
    assert result.returncode == 0
    assert set(statuses(project).values()) == {"cached"}
    assert "A new sentence of prose." in (project / "site/index.html").read_text()


def test_changing_one_module_reexecutes_only_its_dependants(project):
    assert build(project).returncode == 0
    (project / "snippets/alpha.py").write_text("SLOPE = 3.0\n")
    assert build(project).returncode == 0
    assert statuses(project) == {
        "alpha.line": "executed",
        "beta.numbers": "cached",
        "beta.table": "cached",
    }


@pytest.mark.parametrize(
    "body, message",
    [
        ("raise RuntimeError('boom')", "RuntimeError: boom"),
        ("return {'answer': float('nan')}", "NaN"),
        ("return [42]", "must return a matplotlib Figure, a str or a dict"),
    ],
    ids=["raises", "nan", "wrong-type"],
)
def test_a_failing_demo_stops_the_build_and_names_itself(project, body, message):
    write(
        project / "snippets/demos/beta.py",
        f"def numbers():\n    {body}\n\ndef table():\n    return 'x'\n",
    )
    result = build(project)
    assert result.returncode != 0
    assert "index.md" in result.stderr  # the page
    assert "snippets/demos/beta.py" in result.stderr  # the module
    assert "numbers" in result.stderr  # the function
    assert message in result.stderr


def test_a_figure_with_nan_stops_the_build(project):
    write(
        project / "snippets/demos/alpha.py",
        """\
        from snippets.plotting import figure

        def line():
            fig, ax = figure()
            ax.plot([0, 1], [0, float("nan")])
            return fig
        """,
    )
    result = build(project)
    assert result.returncode != 0
    assert "alpha.line" in result.stderr and "NaN" in result.stderr


def test_a_figure_without_caption_or_alt_stops_the_build(project):
    page = project / "docs/en/index.md"
    page.write_text(PAGE.replace("/// caption\nA caption.\n///\n", ""))
    result = build(project)
    assert result.returncode != 0
    assert "alpha.line must be followed by a `/// caption` block" in result.stderr
    page.write_text(PAGE.replace("A line that goes up", ""))
    result = build(project)
    assert result.returncode != 0 and "has no alt text" in result.stderr


def test_an_unknown_demo_stops_the_build(project):
    page = project / "docs/en/index.md"
    page.write_text(PAGE + "\n{{ gamma.nothing }}\n")
    result = build(project)
    assert result.returncode != 0
    assert "gamma.nothing" in result.stderr and "does not exist" in result.stderr


def test_a_missing_value_key_stops_the_build(project):
    page = project / "docs/en/index.md"
    page.write_text(PAGE + "\n{{ beta.numbers.question }}\n")
    result = build(project)
    assert result.returncode != 0
    assert "no value named 'question'" in result.stderr


def test_a_lab_cell_that_raises_stops_the_build(project):
    write(
        project / "docs/en/labs/broken.py",
        """\
        # %%
        x = 1

        # %%
        raise ValueError("lab cell failed on purpose")
        """,
    )
    result = build(project)
    assert result.returncode != 0
    assert "labs/broken.py" in result.stderr
    assert "lab cell failed on purpose" in result.stderr


def test_snippet_dependencies_are_followed_transitively(tmp_path):
    sys.path.insert(0, str(HOOK.parent))
    try:
        import executed
    finally:
        sys.path.remove(str(HOOK.parent))
    write(tmp_path / "snippets/__init__.py", "")
    write(tmp_path / "snippets/a.py", "from snippets.b import x\n")
    write(tmp_path / "snippets/b.py", "from .c import y\nx = y\n")
    write(tmp_path / "snippets/c.py", "y = 1\n")
    write(tmp_path / "snippets/unrelated.py", "z = 2\n")
    deps = {p.name for p in executed.snippet_deps(tmp_path / "snippets/a.py", tmp_path)}
    assert deps == {"__init__.py", "a.py", "b.py", "c.py"}
