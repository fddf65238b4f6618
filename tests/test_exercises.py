"""The exercises: every reference solution passes its tests through the checker, wrong
solutions fail them, the checker's command line, and the rules a chapter's exercises keep.
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from executed.exercises import exercises
from snippets import solutions
from snippets.exercises import main, reference, registry

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "docs" / "en" / "chapters").glob("[0-9][0-9]-*.md"))
EXERCISES = registry()
IDS = list(EXERCISES)

# Wrong solutions that any exercise's tests must reject: they take any arguments.
WRONG = {
    "zeros": (
        "import torch\n\n"
        "def {name}(*args, **kwargs):\n"
        "    first = args[0] if args else next(iter(kwargs.values()))\n"
        "    if isinstance(first, torch.Tensor):\n"
        "        return torch.zeros_like(first)\n"
        "    return 0\n"
    ),
    "input unchanged": (
        "def {name}(*args, **kwargs):\n"
        "    return args[0] if args else next(iter(kwargs.values()))\n"
    ),
    "raises": (
        "def {name}(*args, **kwargs):\n"
        "    raise NotImplementedError('not written yet')\n"
    ),
}


def test_there_are_code_exercises_in_every_chapter():
    chapters = {e.chapter for e in EXERCISES.values()}
    assert chapters == {int(p.name[:2]) for p in CHAPTERS}


@pytest.mark.parametrize("exercise_id", IDS)
def test_the_reference_solution_passes_its_tests_through_the_checker(
    exercise_id, capsys
):
    assert main(["check", exercise_id]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(
        rf"Exercise {re.escape(exercise_id)} \(\w+\): all \d+ tests pass\.\n", out
    )


@pytest.mark.parametrize("wrong", WRONG)
@pytest.mark.parametrize("exercise_id", IDS)
def test_a_wrong_solution_fails_with_exit_code_1_and_the_case_in_words(
    exercise_id, wrong, tmp_path, capsys
):
    name = EXERCISES[exercise_id].function
    path = tmp_path / "mine.py"
    path.write_text(WRONG[wrong].format(name=name))
    assert main(["check", exercise_id, str(path)]) == 1
    out = capsys.readouterr().out
    assert f"Exercise {exercise_id} fails on this case:" in out
    for field in ("inputs:", "expected:", "got:"):
        assert field in out
    if wrong == "raises":
        assert "NotImplementedError('not written yet')" in out


@pytest.mark.parametrize("exercise_id", IDS)
def test_the_checker_never_prints_the_reference_solution(exercise_id, tmp_path, capsys):
    exercise = EXERCISES[exercise_id]
    source = inspect.getsource(reference(exercise))
    body = [ln.strip() for ln in source.splitlines()[1:] if len(ln.strip()) > 24]
    path = tmp_path / "mine.py"
    path.write_text(WRONG["zeros"].format(name=exercise.function))
    main(["check", exercise_id, str(path)])
    main(["check", exercise_id])
    out = capsys.readouterr().out
    assert not [ln for ln in body if ln in out]


def test_list_prints_id_function_and_title_separated_by_tabs(capsys):
    assert main(["list"]) == 0
    rows = [ln.split("\t") for ln in capsys.readouterr().out.splitlines()]
    assert [r[0] for r in rows] == IDS
    for exercise_id, function, title in rows:
        assert (function, title) == (
            EXERCISES[exercise_id].function,
            EXERCISES[exercise_id].title,
        )


def test_python_m_snippets_exercises_exits_0_on_the_reference_and_1_on_a_wrong_file(
    tmp_path,
):
    path = tmp_path / "mine.py"
    path.write_text("def softmax_jacobian(s):\n    return s\n")
    command = [sys.executable, "-m", "snippets.exercises", "check", "3.3"]
    right = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert right.returncode == 0, right.stderr
    assert "tests pass" in right.stdout
    wrong = subprocess.run(
        [*command, str(path)], cwd=REPO, capture_output=True, text=True
    )
    assert wrong.returncode == 1, wrong.stderr
    assert "Exercise 3.3 fails on this case" in wrong.stdout


def test_an_unknown_id_or_a_missing_file_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["check", "99.9"])
    assert stop.value.code == 2
    assert "ID: no code exercise '99.9'" in capsys.readouterr().err
    assert main(["check", "3.3", str(tmp_path / "missing.py")]) == 1
    assert "FILE: no such file" in capsys.readouterr().err


def test_a_file_without_the_function_is_named(tmp_path, capsys):
    path = tmp_path / "mine.py"
    path.write_text("x = 1\n")
    assert main(["check", "3.3", str(path)]) == 1
    assert "defines no function named 'softmax_jacobian'" in capsys.readouterr().err


def test_exercise_tests_never_import_the_reference_solutions():
    """The expected answers come from references independent of the solutions."""
    for path in (REPO / "snippets" / "exercises").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not [n for n in names if "solutions" in n], path.name


def test_every_public_function_of_the_solutions_is_a_code_exercise():
    declared = {(e.chapter, e.function) for e in EXERCISES.values()}
    for path in (REPO / "snippets" / "solutions").glob("ch*.py"):
        module = __import__(f"snippets.solutions.{path.stem}", fromlist=["_"])
        public = {
            name
            for name, obj in vars(module).items()
            if inspect.isfunction(obj)
            and obj.__module__ == module.__name__
            and not name.startswith("_")
        }
        assert {(int(path.stem[2:]), n) for n in public} <= declared, path.name
    assert solutions.__doc__


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_ends_with_three_to_five_exercises(page):
    markdown = page.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", markdown, re.M)
    assert headings[-1] == "Exercises", f"the last section is {headings[-1]!r}"
    found = exercises(markdown)
    assert 3 <= len(found) <= 5
    chapter = int(page.name[:2])
    assert [e.id for e in found] == [f"{chapter}.{k}" for k in range(1, len(found) + 1)]
    kinds = [re.search(r"^\*([^*]+)\*", e.text, re.M) for e in found]
    assert all(kinds), "each exercise says its kind first, in italics"
    code = [e for e in found if e.functions]
    assert len(code) >= 2, "at least two exercises ask for code"
