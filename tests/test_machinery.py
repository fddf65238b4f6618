"""The build machinery (tools/executed/) on a small fixture project.

Three tests build the fixture site with `mkdocs build`, as a contributor would; the others
drive one part directly: `execute` with real child processes (time limits, leaks, labs),
`render_page` and the cache functions as pure functions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from executed.errors import ExecutionError
from executed.katex import Typesetter
from executed.plan import (
    Item,
    Project,
    device_name,
    numbering,
    read_record,
    snippet_deps,
    write_record,
)
from executed.plugin import load_cached, prune, shared_notebook_css
from executed.render import number, render_page
from executed.run import execute
from snippets.runtime import device

REPO = Path(__file__).resolve().parents[1]

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
        """\
        site_name: fixture
        docs_dir: docs/en
        plugins: [executed]
        markdown_extensions: [attr_list, pymdownx.blocks.caption]
        """,
    )
    write(root / "docs/en/index.md", PAGE)
    write(root / "snippets/demos/__init__.py", "")
    for name in (
        "__init__.py",
        "runtime.py",
        "plotting.py",
        "measure.py",
        "bilingual.py",
    ):
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


def cache(root: Path) -> Project:
    return Project(root, root / ".cache" / "executed")


def demos(root: Path, *refs: str) -> list[Item]:
    """Items as the plugin plans them, keyed by name (the key's value does not matter)."""
    return [
        Item(ref, root / f"snippets/demos/{ref.split('.')[0]}.py", ["index.md"], ref)
        for ref in refs
    ]


def lab(root: Path, name: str, body: str) -> Item:
    write(root / f"docs/en/labs/{name}.py", body)
    source = root / f"docs/en/labs/{name}.py"
    return Item(f"labs/{name}.py", source, [f"labs/{name}.ipynb"], name)


HANGS = "import time\n\ndef numbers():\n    time.sleep(10000)\n\ndef table():\n    return 'x'\n"


# --- Whole builds ------------------------------------------------------------------------


def test_a_build_embeds_everything_then_reexecutes_only_what_changed(project):
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

    # A prose edit executes nothing; a module edit re-executes its dependants only,
    # and the stale entry of the old result is removed after the build.
    entries = set((project / ".cache/executed").glob("*.json"))
    page = project / "docs/en/index.md"
    page.write_text(page.read_text() + "\nA new sentence of prose.\n")
    (project / "snippets/alpha.py").write_text("SLOPE = 3.0\n")
    result = build(project)
    assert result.returncode == 0, result.stderr
    assert statuses(project) == {
        "alpha.line": "executed",
        "beta.numbers": "cached",
        "beta.table": "cached",
        "gamma.timed": "cached",
    }
    assert "A new sentence of prose." in (project / "site/index.html").read_text()
    assert len(entries - set((project / ".cache/executed").glob("*.json"))) == 1


def test_failing_demos_stop_the_build_naming_page_module_and_function(project):
    write(
        project / "snippets/demos/beta.py",
        "def numbers():\n    raise RuntimeError('boom')\n\n"
        "def table():\n    return [42]\n",
    )
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
    err = result.stderr
    assert (
        "page index.md: demo beta.numbers (snippets/demos/beta.py, function numbers)"
        in err
    )
    assert "RuntimeError: boom" in err
    assert "function table" in err and "must return a matplotlib Figure" in err
    assert "function line" in err and "NaN" in err
    # the record of the build tells the truth after a failure too
    assert statuses(project)["beta.numbers"] == "failed or not run"


def test_sigterm_stops_the_build_and_its_worker(project):
    write(project / "snippets/demos/beta.py", HANGS)
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


# --- Execution: real child processes, no MkDocs ---------------------------------------------


def test_a_demo_that_hangs_is_stopped_within_seconds(project, monkeypatch):
    write(project / "snippets/demos/beta.py", HANGS)
    monkeypatch.setenv("AE_ITEM_TIMEOUT", "2")
    started = time.monotonic()
    with pytest.raises(ExecutionError) as stop:
        execute(demos(project, "beta.numbers"), cache(project))
    assert time.monotonic() - started < 30
    message = str(stop.value)
    assert "page index.md: demo beta.numbers (snippets/demos/beta.py" in message
    assert "function numbers" in message and "AE_ITEM_TIMEOUT" in message
    assert not list((project / ".cache/executed").glob("*"))  # nothing left behind


def test_a_demo_that_leaks_state_is_named(project):
    write(
        project / "snippets/demos/beta.py",
        """\
        import torch

        def numbers():
            torch.set_default_dtype(torch.float64)
            return {"answer": 42}
        """,
    )
    with pytest.raises(
        ExecutionError, match=r"default dtype is torch\.float64"
    ) as stop:
        execute(demos(project, "beta.numbers"), cache(project))
    assert "function numbers" in str(stop.value)


def test_a_measurement_that_contradicts_its_model_stops(project):
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
    with pytest.raises(ExecutionError) as stop:
        execute(demos(project, "gamma.timed"), cache(project))
    message = str(stop.value)
    assert "snippets/demos/gamma.py" in message and "function timed" in message
    assert "ModelMismatchError: big vs small" in message
    assert "the operation count predicts 1" in message


def test_a_lab_cell_that_hangs_is_stopped_naming_the_cell(project, monkeypatch):
    stuck = lab(
        project, "stuck", "# %%\nx = 1\n\n# %%\nimport time\ntime.sleep(10000)\n"
    )
    monkeypatch.setenv("AE_ITEM_TIMEOUT", "3")
    started = time.monotonic()
    with pytest.raises(ExecutionError, match=r"lab labs/stuck.py: cell 1 ran for more"):
        execute([stuck], cache(project))
    assert time.monotonic() - started < 60


def test_a_lab_cell_that_raises_is_named(project):
    broken = lab(
        project, "broken", "# %%\nx = 1\n\n# %%\nraise ValueError('on purpose')\n"
    )
    with pytest.raises(ExecutionError) as stop:
        execute([broken], cache(project))
    assert "labs/broken.py" in str(stop.value) and "on purpose" in str(stop.value)


def test_a_lab_notebook_is_the_same_from_two_empty_caches(project, tmp_path):
    """Fixed cell ids and no dates in SVGs: two executions give the same notebook."""
    body = """\
    # %%
    # %matplotlib inline
    # %config InlineBackend.figure_formats = ["svg"]
    import matplotlib.pyplot as plt

    # %%
    plt.plot([0, 1], [1, 0])
    plt.show()
    """
    notebooks = []
    for run in ("first", "second"):
        item = lab(project, "plot", body)
        execute([item], Project(project, tmp_path / run))
        path = tmp_path / run / item.result["value"]
        notebooks.append(json.loads(path.read_text()))
    first, second = notebooks
    assert first == second
    assert [c["id"] for c in first["cells"]] == ["cell-0", "cell-1"]
    svg = "".join(first["cells"][1]["outputs"][0]["data"]["image/svg+xml"])
    assert "<svg" in svg and "<dc:date>" not in svg


# --- Rendering and the cache: pure functions ------------------------------------------------


def rendered(page: str, **results: dict) -> str:
    items = {}
    for ref, result in results.items():
        name = ref.replace("__", ".")
        items[name] = Item(name, Path("x.py"), ["index.md"], status="executed")
        items[name].result = result
    return render_page(page, "index.md", items)


FIGURE = {"kind": "figure", "value": {"light": "<svg/>", "dark": "<svg/>"}}
NUMBERS = {"kind": "values", "value": {"answer": "42"}}


def test_values_and_figures_take_the_place_of_their_declarations():
    page = "![Up](exec:alpha.line)\n/// caption\nC.\n///\n\nIt is {{ beta.numbers.answer }}."
    html = rendered(page, alpha__line=FIGURE, beta__numbers=NUMBERS)
    assert "It is 42." in html
    assert "![Up](assets/figures/alpha.line.light.svg#only-light)" in html
    assert "How the timings" not in html  # no timed item on this page


@pytest.mark.parametrize(
    "page, message",
    [
        ("![Up](exec:alpha.line)\n\nno caption", "must be followed by a `/// caption`"),
        ("![](exec:alpha.line)\n/// caption\nC.\n///", "has no alt text"),
        ("{{ beta.numbers.question }}", "no value named 'question'"),
        ("{{ beta.numbers }}", "needs a demo that returns a str"),
        ("{{ alpha.line.x }}", "returned no value named 'x'"),
        ("{{ delta.nothing }}", "delta.nothing was not executed"),
    ],
    ids=["caption", "alt", "key", "kind", "figure-as-value", "unplanned"],
)
def test_a_wrong_declaration_stops_the_build_naming_the_page(page, message):
    with pytest.raises(ExecutionError, match=r"page index\.md") as stop:
        rendered(page, alpha__line=FIGURE, beta__numbers=NUMBERS)
    assert message in str(stop.value)


def test_a_corrupt_cache_entry_is_discarded_and_executed_again(tmp_path, capsys):
    item = Item("beta.numbers", tmp_path / "beta.py", ["index.md"], "k1")
    project = Project(tmp_path, tmp_path)
    item.record(project).write_text("")
    load_cached(item, project)
    assert item.result is None and not item.record(project).exists()
    assert "discarding the corrupt cache entry k1.json" in capsys.readouterr().err


def test_pruning_removes_stale_versions_of_used_items_only(tmp_path):
    project = Project(tmp_path, tmp_path)
    used = Item("alpha.line", tmp_path / "alpha.py", ["index.md"], "new")
    for key, name in (("old", "alpha.line"), ("new", "alpha.line"), ("zh", "zh.only")):
        write_record(tmp_path / f"{key}.json", {"name": name, "kind": "text"})
    prune([used], project)
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == ["new", "zh"]
    assert read_record(tmp_path / "new.json") == {"name": "alpha.line", "kind": "text"}


def test_snippet_dependencies_are_followed_transitively(tmp_path):
    write(tmp_path / "snippets/__init__.py", "")
    write(tmp_path / "snippets/a.py", "from snippets.b import x\n")
    write(tmp_path / "snippets/b.py", "from .c import y\nx = y\n")
    write(tmp_path / "snippets/c.py", "y = 1\n")
    write(tmp_path / "snippets/unrelated.py", "z = 2\n")
    deps = {p.name for p in snippet_deps(tmp_path / "snippets/a.py", tmp_path)}
    assert deps == {"__init__.py", "a.py", "b.py", "c.py"}


def test_the_device_is_named_as_snippets_runtime_names_it(monkeypatch):
    assert device_name(REPO) == str(device())
    monkeypatch.setenv("AE_DEVICE", "cpu")
    assert device_name(REPO) == str(device()) == "cpu"


def test_math_is_typeset_at_build_time_and_reused(tmp_path, monkeypatch):
    cache = tmp_path / "katex.json"
    page = (
        '<p>Scores <span class="arithmatex">\\(a &lt; b\\)</span>, then</p>\n'
        '<div class="arithmatex">\\[\\frac{q \\cdot k}{\\sqrt{d_k}}\\]</div>'
    )
    typeset = Typesetter(REPO, cache).typeset(page, "ch.md")
    assert "arithmatex" not in typeset and typeset.count('class="katex"') == 2
    assert 'class="katex-display"' in typeset  # the display formula, and only it
    assert typeset.count("katex-display") == 1
    assert '<annotation encoding="application/x-tex">a &lt; b</annotation>' in typeset
    assert typeset.count("data-search-exclude") == 2  # search indexes no formula
    Typesetter(REPO, cache).save()  # used nothing: forgets everything
    assert json.loads(cache.read_text()) == {}

    first = Typesetter(REPO, cache)
    first.typeset(page, "ch.md")
    first.save()
    monkeypatch.setattr(subprocess, "run", None)  # a second build needs no Node
    assert Typesetter(REPO, cache).typeset(page, "ch.md") == typeset


def test_a_formula_katex_refuses_stops_the_build_naming_page_and_formula(tmp_path):
    bad = '<span class="arithmatex">\\(\\frac{1}\\)</span>'
    with pytest.raises(ExecutionError, match=r"ch\.md.*\\\\frac\{1\}"):
        Typesetter(REPO, tmp_path / "k.json").typeset(bad, "ch.md")


def test_katex_never_sees_an_equations_label_and_the_label_becomes_its_anchor(tmp_path):
    page = '<div class="arithmatex">\\[x = 1 \\label{eq:one}\n\\tag{2.1}\\]</div>'
    typeset = Typesetter(REPO, tmp_path / "k.json").typeset(page, "ch.md")
    assert typeset.startswith('<div class="equation" id="eq-one">')
    assert "label" not in typeset and "katex-error" not in typeset
    assert re.search(r'class="tag">.*2\.1', typeset)  # the number, at the right


def test_a_formula_in_a_heading_is_typeset_for_the_table_of_contents(tmp_path):
    title = Typesetter(REPO, tmp_path / "k.json").typeset_title(
        "Why divide by \\(\\sqrt{d_k}\\): the variance", "ch.md"
    )
    assert title.startswith(
        'Why divide by <ae-math data-search-exclude><span class="katex">'
    )
    assert title.endswith("</ae-math>: the variance") and "\\(" not in title


def test_a_notebook_page_links_one_shared_stylesheet_instead_of_inlining_it():
    page = (
        "<head></head><body><style>a { color: red }</style><p>cell</p>"
        "<style type='text/css'>p { margin: 0 }</style><style>['pre { }']</style></body>"
    )
    html, uri, css = shared_notebook_css(page, "labs/lab/")
    assert "<style" not in html and "<p>cell</p>" in html
    assert html.count(f'<link rel="stylesheet" href="../../{uri}">') == 1
    assert css == "a { color: red }\np { margin: 0 }"  # the Python repr is dropped
    assert uri == shared_notebook_css(page, "labs/other/")[1]  # one file for all labs


CHAPTER = (
    "# 3. A chapter\n\n![A](exec:alpha.line)\n/// caption\nFirst.\n///\n\n"
    "As [](#fig:beta.curve) shows, and [](04-next.md#fig:gamma.bars) too.\n\n"
    "![B](exec:beta.curve)\n/// caption\nSecond.\n///\n"
)


def test_chapter_figures_are_numbered_in_order_and_references_link_to_them():
    pages = {
        "chapters/03-a.md": CHAPTER,
        "chapters/04-next.md": "![C](exec:gamma.bars)\n/// caption\nC.\n///\n",
        "index.md": "![D](exec:delta.map)\n/// caption\nD.\n///\n",  # not a chapter
    }
    numbers = numbering(pages)
    assert numbers == {
        "fig:alpha.line": ("chapters/03-a.md", "3.1"),
        "fig:beta.curve": ("chapters/03-a.md", "3.2"),
        "fig:gamma.bars": ("chapters/04-next.md", "4.1"),
    }
    out = number(CHAPTER, "chapters/03-a.md", numbers)
    assert "/// caption\n    attrs: {id: fig-alpha-line}\n**Figure 3.1.** First." in out
    assert "**Figure 3.2.** Second." in out
    assert "As [Figure 3.2](#fig-beta-curve) shows" in out
    assert "[Figure 4.1](04-next.md#fig-gamma-bars) too" in out


TABLES_AND_EQUATIONS = """# 5. A chapter

$$
a = b
$$

| x |
| --- |
| 1 |

/// table-caption
First.
///

!!! note

    $$
    c = d \\label{eq:cd}
    $$

{{ alpha.table }}

/// table-caption | second
Second.
///

By [](#eq:cd) and [](#tab:second).
"""


def test_tables_and_display_equations_are_numbered_each_in_their_own_sequence():
    numbers = numbering(
        {
            "chapters/05-a.md": TABLES_AND_EQUATIONS,
            "index.md": "$$\nx \\label{eq:x}\n$$",
        }
    )
    # only labelled ones are looked up; every one is numbered
    assert numbers == {
        "eq:cd": ("chapters/05-a.md", "5.2"),
        "tab:second": ("chapters/05-a.md", "5.2"),
    }
    out = number(TABLES_AND_EQUATIONS, "chapters/05-a.md", numbers)
    assert "$$\na = b\n\\tag{5.1}\n$$" in out
    # indented; the typesetter gives it its anchor
    assert "    $$\n    c = d \\label{eq:cd}\n    \\tag{5.2}\n    $$" in out
    assert (
        "/// caption | <\n**Table 5.1.** \nFirst." in out
    )  # a caption above the table
    assert (
        "/// caption | <\n    attrs: {id: tab-second}\n**Table 5.2.** \nSecond." in out
    )
    assert "By [(5.2)](#eq-cd) and [Table 5.2](#tab-second)." in out
    # elsewhere, a caption without a number and an equation without a tag
    page = "| x |\n| --- |\n| 1 |\n\n/// table-caption\nA.\n///\n\n$$\ny\n$$\n"
    assert number(page, "index.md", {}) == page.replace("table-caption", "caption | <")


def test_a_label_used_twice_stops_the_build():
    twice = "$$\na \\label{eq:a}\n$$\n"
    with pytest.raises(ExecutionError, match=r"eq:a is also used on chapters/01-a\.md"):
        numbering({"chapters/01-a.md": twice, "chapters/02-b.md": twice})


def test_code_comments_and_notag_are_not_numbered():
    page = (
        "```md\n$$\nshown\n$$\n/// table-caption\nshown\n///\n[](#eq:x)\n```\n\n"
        "<!-- $$\nhidden\n$$ -->\n\nInline `[](#tab:y)` code.\n\n"
        "$$\nx \\notag\n$$\n\n$$\ny \\label{eq:y}\n$$\n"
    )
    assert numbering({"chapters/02-a.md": page}) == {
        "eq:y": ("chapters/02-a.md", "2.1")
    }
    out = number(page, "chapters/02-a.md", numbering({"chapters/02-a.md": page}))
    assert out.count("\\tag{") == 1 and "y \\label{eq:y}\n\\tag{2.1}" in out
    assert out.startswith(page.split("\n\n")[0])  # the code block as it was


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ("| a |\n| - |\n\n/// table-caption | Library\nA.\n///\n", "'Library' must be"),
        ("$$\na \\label{eq:a.b}\n$$\n", "'a.b' must be"),
        ("$$\na \\label{first}\n$$\n", r"one label, \\label\{eq:name\}"),
        ("$$\na \\label{eq:a} \\notag\n$$\n", "cannot be referenced"),
    ],
)
def test_a_malformed_label_stops_the_build(page, message):
    with pytest.raises(ExecutionError, match=message):
        numbering({"chapters/03-a.md": page})


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (
            "[](#fig:gamma.bars)",
            r"points to chapters/03-a\.md, but fig:gamma\.bars is on",
        ),
        ("[](04-next.md#fig:nope.none)", "not numbered"),
        ("[](#tab:nope)", "not numbered"),
        ("[](#eq:nope)", "not numbered"),
        ("[the figure](#fig:alpha.line)", "with empty text"),
    ],
)
def test_a_wrong_reference_stops_the_build(reference, message):
    numbers = {
        "fig:alpha.line": ("chapters/03-a.md", "3.1"),
        "fig:gamma.bars": ("chapters/04-next.md", "4.1"),
    }
    with pytest.raises(ExecutionError, match=message):
        number(f"See {reference}.", "chapters/03-a.md", numbers)
