"""The build machinery (docs/hooks/executed.py) on a small fixture project.

Each test builds a tiny site with the real hook, in a fresh process as `mkdocs build` would,
and reads what the hook executed from `.cache/executed/last-build.json`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
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

Timed: {{ gamma.timed.sentence }}.
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
    for name in ("__init__.py", "runtime.py", "plotting.py", "measure.py"):
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
    write(
        root / "snippets/demos/gamma.py",
        """\
        from snippets.measure import compare
        from snippets.runtime import measured

        @measured
        def timed():
            t = compare({"a": lambda: sum(range(100)), "b": lambda: sum(range(100))})
            return {"sentence": t.verdict("a", "b")}
        """,
    )
    return root


def build(root: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AE_CACHE_DIR"}
    env["NO_MKDOCS_2_WARNING"] = "1"
    env.update(extra_env)
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
    assert "How the timings on this page were measured" in html
    assert "in this build" in html
    report = (project / "site/appendix/build-report/index.html").read_text()
    assert "gamma.timed" in report and "Timed items" in report


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
    entries = set((project / ".cache/executed").glob("*.json"))
    (project / "snippets/alpha.py").write_text("SLOPE = 3.0\n")
    assert build(project).returncode == 0
    # the entry of the old alpha.line is removed, the others are kept
    assert len(entries - set((project / ".cache/executed").glob("*.json"))) == 1
    assert statuses(project) == {
        "alpha.line": "executed",
        "beta.numbers": "cached",
        "beta.table": "cached",
        "gamma.timed": "cached",
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
    # the record of the build tells the truth after a failure too
    assert statuses(project)["beta.numbers"] == "failed or not run"


def test_a_measurement_that_contradicts_its_model_stops_the_build(project):
    """One call does about a thousand times the work of the other; the model says 1."""
    write(
        project / "snippets/demos/gamma.py",
        """\
        from snippets.measure import check_ratio, compare
        from snippets.runtime import measured

        @measured
        def timed():
            t = compare(
                {"small": lambda: sum(range(100)), "big": lambda: sum(range(100_000))}
            )
            check_ratio("big vs small", t.ratio("big", "small"), predicted=1.0)
            return {"sentence": "unreachable"}
        """,
    )
    result = build(project)
    assert result.returncode != 0
    assert "snippets/demos/gamma.py" in result.stderr and "timed" in result.stderr
    assert "ModelMismatchError: big vs small" in result.stderr
    assert "the operation count predicts 1" in result.stderr


def test_a_demo_that_hangs_stops_the_build_within_seconds(project):
    write(
        project / "snippets/demos/beta.py",
        "import time\n\ndef numbers():\n    time.sleep(10000)\n\ndef table():\n    return 'x'\n",
    )
    started = time.monotonic()
    result = build(project, AE_ITEM_TIMEOUT="2")
    assert time.monotonic() - started < 60
    assert result.returncode != 0
    assert "index.md" in result.stderr and "snippets/demos/beta.py" in result.stderr
    assert "function numbers" in result.stderr and "AE_ITEM_TIMEOUT" in result.stderr
    assert not list((project / ".cache/executed").glob("jobs-*"))


def test_a_lab_cell_that_hangs_stops_the_build_naming_the_cell(project):
    write(
        project / "docs/en/labs/stuck.py",
        """\
        # %%
        x = 1

        # %%
        import time
        time.sleep(10000)
        """,
    )
    started = time.monotonic()
    result = build(project, AE_ITEM_TIMEOUT="3")
    assert time.monotonic() - started < 90
    assert result.returncode != 0
    assert "lab labs/stuck.py: cell 1 ran for more than 3 s" in result.stderr


def test_sigterm_stops_the_build_and_its_worker(project):
    write(
        project / "snippets/demos/beta.py",
        "import time\n\ndef numbers():\n    time.sleep(10000)\n\ndef table():\n    return 'x'\n",
    )
    env = {k: v for k, v in os.environ.items() if k != "AE_CACHE_DIR"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mkdocs", "build", "--strict"],
        cwd=project,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = project / ".cache/executed"
    deadline = time.monotonic() + 60
    while not list(running.glob("jobs-*.running")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert "SIGTERM" in stderr
    assert not list(running.glob("jobs-*"))


def test_a_demo_that_leaks_state_stops_the_build(project):
    write(
        project / "snippets/demos/beta.py",
        """\
        import torch

        def numbers():
            torch.set_default_dtype(torch.float64)
            return {"answer": 42}

        def table():
            return "x"
        """,
    )
    result = build(project)
    assert result.returncode != 0
    assert "function numbers" in result.stderr
    assert "default dtype is torch.float64" in result.stderr


def test_a_corrupt_cache_entry_is_executed_again(project):
    assert build(project).returncode == 0
    entries = [p for p in (project / ".cache/executed").glob("*.json")]
    entries = [p for p in entries if p.name != "last-build.json"]
    entries[0].write_text("")
    result = build(project)
    assert result.returncode == 0, result.stderr
    assert "discarding the corrupt cache entry" in result.stderr
    assert sorted(statuses(project).values()).count("executed") == 1


def test_a_lab_notebook_is_the_same_from_two_empty_caches(project, tmp_path):
    """Fixed cell ids and no dates in SVGs: two executions give the same notebook."""
    write(
        project / "docs/en/labs/plot.py",
        """\
        # %%
        # %matplotlib inline
        # %config InlineBackend.figure_formats = ["svg"]
        import matplotlib.pyplot as plt

        # %%
        plt.plot([0, 1], [1, 0])
        plt.show()
        """,
    )
    notebooks = []
    for _ in range(2):
        shutil.rmtree(project / ".cache", ignore_errors=True)
        result = build(project)
        assert result.returncode == 0, result.stderr
        (path,) = (project / ".cache/executed/labs").glob("*/labs/plot.ipynb")
        notebooks.append(json.loads(path.read_text()))
    first, second = notebooks
    assert first == second
    assert [c["id"] for c in first["cells"]] == ["cell-0", "cell-1"]
    svg = "".join(first["cells"][1]["outputs"][0]["data"]["image/svg+xml"])
    assert "<svg" in svg and "<dc:date>" not in svg


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
    page.write_text(PAGE + "\n{{ delta.nothing }}\n")
    result = build(project)
    assert result.returncode != 0
    assert "delta.nothing" in result.stderr and "does not exist" in result.stderr


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
