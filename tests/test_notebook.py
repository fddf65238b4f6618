"""A chapter as a notebook: what `executed.notebook` makes of each part of a page, and
`snippets.notebook.show`, which the notebook calls to show a demo's result."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from executed.notebook import chapter_notebook
from executed.plan import Item

SITE = "https://example.org/course/"
PAGE = """---
description: A test page.
---

# 3. A chapter

Prose with a value, {{ demo.numbers.alpha }}, and a [link](04-next.md#part) and
[one here](#below).

```python title="snippets/concept.py"
--8<-- "snippets/concept.py:double"
```

![A figure](exec:demo.picture)
/// caption
**Figure 3.1.** What it shows.
///

{{ demo.table }}

$$
x = 1
\\label{eq:one}
\\tag{3.1}
$$

!!! note "A note"
    Inside the note, {{ demo.numbers.beta }}.

```python
print(2 + 2)
```

## Exercises

### Exercise 3.1: Double it

*Implement.* Write `double(x)`.

```shell
python -m snippets.exercises check 3.1 my_solution.py
```

??? success "Solution"

    ```python title="snippets/concept.py"
    --8<-- "snippets/concept.py:double"
    ```
"""
CONCEPT = '''"""A concept."""

import math

_TWO = 2


# --8<-- [start:double]
def double(x: float) -> float:
    """Twice x."""
    return _TWO * x * math.prod([1])


# --8<-- [end:double]
'''


def item(name: str, kind: str, value: object) -> Item:
    result = {"kind": kind, "value": value}
    return Item(name, Path("x.py"), ["chapters/03-a.md"], result=result)


@pytest.fixture
def notebook(tmp_path) -> dict:
    (tmp_path / "snippets").mkdir()
    (tmp_path / "snippets" / "concept.py").write_text(CONCEPT)
    demos = {
        "demo.numbers": item("demo.numbers", "values", {"alpha": "1.5", "beta": "7"}),
        "demo.picture": item("demo.picture", "figure", {}),
        "demo.table": item("demo.table", "text", "| a |\n| - |\n| 1 |"),
    }
    registry = {"3.1": "double\tDouble it\t2\tdouble(x)"}
    text = chapter_notebook(
        PAGE,
        "chapters/03-a.md",
        demos,
        tmp_path,
        SITE,
        "https://git.example/r",
        registry,
    )
    return json.loads(text)


def sources(notebook: dict, kind: str) -> list[str]:
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == kind]


def test_the_notebook_is_valid_and_every_code_cell_compiles(notebook):
    nbformat.validate(nbformat.from_dict(notebook))
    for code in sources(notebook, "code"):
        compile(code, "<cell>", "exec")


def test_prose_is_markdown_with_the_built_values_and_absolute_links(notebook):
    prose = "\n".join(sources(notebook, "markdown"))
    assert prose.startswith("# 3. A chapter")
    assert "Prose with a value, 1.5," in prose and "Inside the note, 7." in prose
    assert f"[link]({SITE}chapters/04-next/#part)" in prose
    assert f"[one here]({SITE}chapters/03-a/#below)" in prose
    assert "**A note**" in prose and "**Figure 3.1.** What it shows." in prose
    assert "\\label" not in prose and "description:" not in prose
    assert "$$\nx = 1\n\\tag{3.1}\n$$" in prose  # no blank line inside the math


def test_each_included_section_becomes_a_code_cell_after_its_modules_imports(notebook):
    code = sources(notebook, "code")
    imports = next(
        c for c in code if c.startswith("# What snippets/concept.py imports")
    )
    assert "import math" in imports
    assert "from snippets.concept import *" in imports
    assert "from snippets.concept import _TWO" in imports
    shown = next(c for c in code if c.startswith("# snippets/concept.py"))
    assert "def double(x: float) -> float:" in shown and "--8<--" not in shown
    assert code.index(imports) < code.index(shown)


def test_each_result_is_a_cell_that_calls_its_demo(notebook):
    code = sources(notebook, "code")
    assert "show('demo.picture')" in code
    assert "show('demo.table')" in code
    values = [c for c in code if "show('demo.numbers'" in c]
    assert any("show('demo.numbers', 'alpha')" in c for c in values)
    assert any("show('demo.numbers', 'beta')" in c for c in values)
    assert "print(2 + 2)" in code  # a runnable example of the page


def test_a_code_exercise_gets_a_cell_to_fill_and_a_cell_that_checks(notebook):
    code = sources(notebook, "code")
    stub = next(c for c in code if c.startswith("# Exercise 3.1"))
    assert "def double(x):\n    ...  # your solution" in stub
    assert code[code.index(stub) + 1] == "check('3.1', double)"
    prose = "\n".join(sources(notebook, "markdown"))
    link = f"({SITE}chapters/03-a/#exercise-31-double-it)"
    assert link in prose  # the solution stays folded on the site
    assert "Twice x." not in "".join(code[code.index(stub) :])  # not in the notebook


def test_show_displays_a_figure_markdown_or_named_values(monkeypatch, capsys):
    import IPython.display
    from matplotlib.figure import Figure

    from snippets import notebook

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    results = {"m.fig": Figure(), "m.text": "| a |", "m.values": {"a": "1", "b": "2"}}
    monkeypatch.setattr(notebook, "result", results.__getitem__)
    notebook.show("m.fig")
    notebook.show("m.text")
    notebook.show("m.values", "b")
    assert isinstance(shown[0], Figure)
    assert shown[1].data == "| a |"
    assert capsys.readouterr().out == "b = 2\n"


def test_a_demo_runs_once():
    from snippets import notebook

    notebook.result.cache_clear()
    first = notebook.result("attention.agreement_with_pytorch")
    assert notebook.result("attention.agreement_with_pytorch") is first
    assert notebook.result.cache_info().hits == 1
