"""The build machinery's checks as pure functions: NaN in any artist, leftover typos,
leaks of process state, corrupt cache entries. No build runs here (tests/test_machinery.py
builds fixture sites)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from executed import checks, plan
from executed.errors import ExecutionError
from executed.exercises import check_exercises
from executed.worker import Isolation

REPO = Path(__file__).resolve().parents[1]
NAN = float("nan")
checks.install_data_guards()  # as the build's worker does


def _imshow(ax):
    ax.imshow(np.array([[0.0, NAN], [1.0, 2.0]]))


def _pcolormesh(ax):
    ax.pcolormesh(np.array([[0.0, 1.0], [NAN, 2.0]]))


def _fill_between(ax):
    ax.fill_between([0, 1, 2], [0, 1, 2], [1, NAN, 3])


def _errorbar(ax):
    ax.errorbar([0, 1], [1, 2], yerr=[0.1, NAN])


def _text(ax):
    ax.plot([0, 1], [0, 1])
    ax.text(0.5, 0.5, f"{NAN:.2f}")


def _scatter(ax):
    ax.scatter([0, 1], [NAN, 1])


def _bar(ax):
    ax.bar([0, 1], [1, NAN])


@pytest.mark.parametrize(
    "draw", [_imshow, _pcolormesh, _fill_between, _errorbar, _text, _scatter, _bar]
)
def test_nan_in_any_artist_is_found(draw):
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="NaN"):
        draw(ax)  # fill_between refuses at once; the others are found in the figure
        checks.check_figure_finite(fig)
    plt.close(fig)


def test_a_finite_figure_passes():
    fig, ax = plt.subplots()
    ax.imshow(np.arange(4.0).reshape(2, 2))
    ax.fill_between([0, 1], [0, 1], [1, 2])
    ax.errorbar([0, 1], [1, 2], yerr=[0.1, 0.2])
    ax.set_title("finite, 'nanoGPT' is a word")
    checks.check_figure_finite(fig)
    plt.close(fig)


@pytest.mark.parametrize(
    "typo",
    [
        "{{ Masks.x }}",
        "{{ masks.teacher-forcing }}",
        "![A mask](exec:Masks.mask_figure)",
    ],
)
def test_a_declaration_typo_left_on_the_page_stops_the_build(typo):
    with pytest.raises(ExecutionError, match=r"chapters/04-masks\.md, line 3"):
        checks.check_leftovers(f"# Masks\n\n{typo}\n", "chapters/04-masks.md")


def test_a_page_without_leftovers_passes():
    checks.check_leftovers("# Title\n\nA value: 42. Code: `x = {1: 2}`.\n", "index.md")


@pytest.mark.parametrize(
    "leak, words",
    [
        (lambda: torch.set_default_dtype(torch.float64), "default dtype"),
        (lambda: torch.set_num_threads(max(1, torch.get_num_threads() - 1) or 1), None),
        (lambda: os.chdir(Path.cwd().parent), "working directory"),
        (lambda: matplotlib.rcParams.update({"lines.linewidth": 9.0}), "rcParams"),
    ],
    ids=["dtype", "threads", "cwd", "rcparams"],
)
def test_a_leaked_state_is_found_and_restored(tmp_path, monkeypatch, leak, words):
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    iso = Isolation(tmp_path)
    if (
        words is None
    ):  # threads: only detectable with more than one thread to start from
        torch.set_num_threads(2)
        iso = Isolation(tmp_path)
        words = "threads"
    leak()
    found = iso.leaks()
    assert found and words in found[0]
    assert torch.get_default_dtype() == torch.float32
    assert Path.cwd() == tmp_path
    assert matplotlib.rcParams["lines.linewidth"] != 9.0
    assert iso.leaks() == []  # restored
    torch.set_num_threads(threads)


def test_a_file_written_into_the_repository_is_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snippets").mkdir()
    iso = Isolation(tmp_path)
    (tmp_path / "snippets" / "stray.txt").write_text("oops")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "allowed.json").write_text("{}")  # the cache is not the repo
    found = iso.leaks()
    assert len(found) == 1 and "snippets/stray.txt" in found[0]


@pytest.mark.parametrize(
    "content", ["", "{not json", "[1, 2]"], ids=["empty", "bad", "list"]
)
def test_a_corrupt_cache_entry_is_discarded_with_a_warning(tmp_path, capsys, content):
    entry = tmp_path / "0123abcd.json"
    entry.write_text(content)
    assert plan.read_record(entry) is None
    assert "0123abcd.json" in capsys.readouterr().err


def test_a_valid_cache_entry_is_read(tmp_path):
    entry = tmp_path / "k.json"
    entry.write_text(json.dumps({"kind": "text", "value": "x"}))
    assert plan.read_record(entry) == {"kind": "text", "value": "x"}


@pytest.mark.parametrize("module", plan.RESULT_MODULES)
def test_the_machinery_that_makes_results_is_part_of_every_key(
    tmp_path, monkeypatch, module
):
    item = plan.Item("beta.numbers", REPO / "snippets" / "demos" / "masks.py", ["p.md"])
    before = plan.item_key(item, {"device": "cpu"}, REPO)
    for name in plan.RESULT_MODULES:
        shutil.copy(plan.MACHINERY / name, tmp_path / name)
    monkeypatch.setattr(plan, "MACHINERY", tmp_path)
    assert plan.item_key(item, {"device": "cpu"}, REPO) == before
    with (tmp_path / module).open("a") as f:
        f.write("# a changed build machinery\n")
    assert plan.item_key(item, {"device": "cpu"}, REPO) != before


# A chapter's exercises, as `executed.exercises.check_exercises` reads them: the page and
# the code exercises declared in snippets/exercises/ (the REGISTRY demo's values).
EXERCISE_PAGE = """# 3. A chapter

## Exercises

### Exercise 3.1: Predict

*Predict, then run.* Something.

??? success "Solution"

    Because.

### Exercise 3.2: Write it

*Implement.* Write `f(x)`.

```shell
python -m snippets.exercises check 3.2 my_solution.py
```

??? success "Solution"

    ```python title="snippets/solutions/ch03.py"
    --8<-- "snippets/solutions/ch03.py:f"
    ```
"""
DECLARED = {"3.2": "f\tWrite it\t2\tf(x)"}


def test_consistent_exercises_pass():
    check_exercises(EXERCISE_PAGE, "chapters/03-a.md", DECLARED)


@pytest.mark.parametrize(
    "change, registry, message",
    [
        (("3.2: Write", "3.1: Write"), DECLARED, r"exercise 3\.1 appears twice"),
        (("3.2: Write", "3.3: Write"), DECLARED, r"its id must be 3\.2"),
        (
            ('??? success "Solution"\n\n    Because.', ""),
            DECLARED,
            "no folded solution",
        ),
        (None, {}, r"asks for code \(f\) but has no tests"),
        (None, {"3.2": "f\tWrite it\t0\tf(x)"}, "has no tests"),
        (None, {"3.2": "g\tWrite it\t2\tg(x)"}, "declares 'g'"),
        (("check 3.2 my", "check 3.1 my"), DECLARED, "how to check it"),
        (None, {**DECLARED, "3.3": "h\tMore\t1\th()"}, "3.3, which the page does not"),
        (
            ("ch03.py:f", "ch04.py:f"),
            DECLARED,
            "solutions are in snippets/solutions/ch03",
        ),
        (None, {**DECLARED, "3.1": "x\tPredict\t1\tx()"}, "includes no function"),
    ],
)
def test_inconsistent_exercises_stop_the_build_naming_page_and_exercise(
    change, registry, message
):
    page = EXERCISE_PAGE
    if change:
        assert change[0] in page
        page = page.replace(change[0], change[1], 1)
    with pytest.raises(ExecutionError, match=message) as stop:
        check_exercises(page, "chapters/03-a.md", registry)
    assert "page chapters/03-a.md" in str(stop.value)


def test_an_exercise_heading_in_a_code_block_is_not_an_exercise():
    fenced = "```text\n### Exercise 9.9: Not one\n```\n"
    check_exercises(fenced + EXERCISE_PAGE, "chapters/03-a.md", DECLARED)
