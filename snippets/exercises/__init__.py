"""The exercises that ask for code, and the checker that runs their tests.

Each chapter's code exercises are declared in `snippets/exercises/chNN.py` as a list
`EXERCISES` of `Exercise`: the id shown on the page ("3.2"), the name of the function the
reader writes, the title, and the test cases. A case holds the inputs and the answer of an
*independent* reference (PyTorch's own function, a closed form, a brute-force loop, or a
property), never the output of the reference solution in `snippets/solutions/chNN.py`.

    python -m snippets.exercises list              # id, function, title; tab-separated
    python -m snippets.exercises check 3.2 my.py   # the tests, on my.py's function
    python -m snippets.exercises check 3.2         # the tests, on the reference solution

In a notebook, `check("3.2", my_function)` does the same for a function defined there.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import importlib.util
import numbers
import pkgutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch


@dataclasses.dataclass
class Case:
    """One test: call the function with `args` and compare with `expected`.

    `inputs` says in words what the arguments are. `expected` is the reference's answer;
    it is compared with `close` (shapes, then values within `atol` and `rtol`), unless
    `judge` is given: then `judge(got)` returns None when `got` is right, else what is wrong
    with it, in words (for answers that a property decides, such as "any permutation").
    """

    inputs: str
    args: tuple[Any, ...]
    expected: Any = None
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    atol: float = 1e-6
    rtol: float = 1e-5
    judge: Callable[[Any], str | None] | None = None


@dataclasses.dataclass(frozen=True)
class Exercise:
    """A code exercise: its id on the page, the function the reader writes, its title,
    and `cases()`, which builds the test cases (seeded, so every run checks the same)."""

    id: str
    function: str
    title: str
    cases: Callable[[], list[Case]]

    @property
    def chapter(self) -> int:
        return int(self.id.split(".")[0])


@dataclasses.dataclass
class Failure:
    """The first failing case of a check, in plain words."""

    exercise: str
    inputs: str
    expected: str
    got: str

    def __str__(self) -> str:
        return (
            f"Exercise {self.exercise} fails on this case:\n"
            f"  inputs:   {self.inputs}\n"
            f"  expected: {self.expected}\n"
            f"  got:      {self.got}"
        )


def registry() -> dict[str, Exercise]:
    """Every code exercise of the course, by id, in chapter order."""
    found: dict[str, Exercise] = {}
    package = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(package)]), key=lambda i: i.name):
        if not info.name.startswith("ch"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for exercise in module.EXERCISES:
            if exercise.id in found:
                raise ValueError(f"exercise {exercise.id} is declared twice")
            found[exercise.id] = exercise
    return dict(sorted(found.items(), key=lambda kv: _order(kv[0])))


def _order(exercise_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in exercise_id.split("."))


def describe(value: Any) -> str:
    """A value in plain words: a tensor's shape and dtype, then its entries (shortened)."""
    if isinstance(value, torch.Tensor):
        with _short_printing():
            body = " ".join(str(value.detach().cpu()).removeprefix("tensor(").split())
            body = (
                body.split(", dtype=")[0].split(", requires_grad=")[0].removesuffix(")")
            )
        shape = "×".join(str(s) for s in value.shape) or "scalar"
        return f"a {shape} {str(value.dtype).removeprefix('torch.')} tensor {body}"
    if isinstance(value, tuple | list):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return f"a {kind} of {len(value)}: (" + "; ".join(map(describe, value)) + ")"
    text = " ".join(repr(value).split())
    return text if len(text) <= 200 else text[:200] + " ..."


@contextlib.contextmanager
def _short_printing() -> Iterator[None]:
    """Short tensor printing for messages; the previous options come back after."""
    saved = copy.copy(torch._tensor_str.PRINT_OPTS)
    torch.set_printoptions(precision=4, threshold=12, edgeitems=2, sci_mode=False)
    try:
        yield
    finally:
        torch._tensor_str.PRINT_OPTS = saved


def close(got: Any, expected: Any, atol: float, rtol: float) -> str | None:
    """None when `got` matches `expected`, else what differs, in words."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"expected a tensor, got {type(got).__name__}"
        if tuple(got.shape) != tuple(expected.shape):
            return f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        if expected.dtype == torch.bool or got.dtype == torch.bool:
            if got.dtype != expected.dtype:
                return f"dtype {got.dtype}, expected {expected.dtype}"
            wrong = (got != expected).sum().item()
            return f"{wrong} entries differ" if wrong else None
        got_f, exp_f = got.detach().double().cpu(), expected.detach().double().cpu()
        # infinities must match exactly, and NaN only where the reference has one
        bad = ~torch.isclose(got_f, exp_f, rtol=rtol, atol=atol, equal_nan=True)
        error = (got_f - exp_f).abs().nan_to_num(nan=float("inf"))
        if bad.any():
            return (
                f"{int(bad.sum())} of {bad.numel()} entries differ; the largest "
                f"difference is {error.max().item():.3g}"
            )
        return None
    if isinstance(expected, tuple | list):
        if not isinstance(got, tuple | list) or len(got) != len(expected):
            return f"expected {len(expected)} results, got {describe(got)}"
        for k, (g, e) in enumerate(zip(got, expected, strict=True)):
            problem = close(g, e, atol, rtol)
            if problem:
                return f"result {k}: {problem}"
        return None
    if isinstance(expected, bool) or not isinstance(expected, numbers.Real):
        return None if got == expected else "not equal"
    if not isinstance(got, numbers.Real | torch.Tensor) or isinstance(got, bool):
        return f"expected a number, got {type(got).__name__}"
    got = float(got)
    if got != got or abs(got - expected) > atol + rtol * abs(expected):
        return f"differs by {abs(got - expected):.3g}"
    return None


def run(exercise: Exercise, fn: Callable[..., Any]) -> Failure | int:
    """Run every case of `exercise` on `fn`; the first failure, or the number of cases
    when all pass.

    Each call gets its own copy of the arguments, so a function that changes its inputs
    in place cannot spoil the reference or a later case."""
    cases = exercise.cases()
    for case in cases:
        args, kwargs = copy.deepcopy(case.args), copy.deepcopy(case.kwargs)
        expected = describe(case.expected) if case.judge is None else "see below"
        try:
            got = fn(*args, **kwargs)
        except Exception as err:  # the reader's code: any error is a failed case
            return Failure(exercise.id, case.inputs, expected, f"an error: {err!r}")
        try:
            if case.judge is not None:
                problem = case.judge(got)
                expected = "a result with the property the exercise asks for"
            else:
                problem = close(got, case.expected, case.atol, case.rtol)
        except Exception as err:
            problem = f"a result the test could not read ({err!r})"
        if problem:
            return Failure(
                exercise.id, case.inputs, expected, f"{describe(got)}: {problem}"
            )
    return len(cases)


def reference(exercise: Exercise) -> Callable[..., Any]:
    """The reference solution, from `snippets/solutions/chNN.py`."""
    module = importlib.import_module(f"snippets.solutions.ch{exercise.chapter:02d}")
    return getattr(module, exercise.function)


def load(path: str | Path, name: str) -> Callable[..., Any]:
    """The function `name` defined in the reader's file `path`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FILE: no such file: {path}")
    spec = importlib.util.spec_from_file_location("reader_solution", path)
    if spec is None or path.suffix != ".py":
        raise LookupError(f"FILE: {path} is not a Python file (.py)")
    module = importlib.util.module_from_spec(spec)
    # registered while it runs, as an import would: dataclasses and typing look it up
    sys.modules["reader_solution"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("reader_solution", None)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise LookupError(f"FILE: {path} defines no function named {name!r}")
    return fn


def check(exercise_id: str, fn: Callable[..., Any] | None = None) -> None:
    """Check `fn` (the reference solution when None) against exercise `exercise_id`'s
    tests and print the verdict: the notebook's form of `check ID FILE`."""
    exercise = registry().get(exercise_id)
    if exercise is None:
        raise ValueError(f"exercise_id: no code exercise {exercise_id!r}")
    print(verdict(exercise, run(exercise, fn or reference(exercise))))


def verdict(exercise: Exercise, result: Failure | int) -> str:
    """What a check prints: the first failing case, or how many tests passed."""
    if isinstance(result, Failure):
        return str(result)
    return f"Exercise {exercise.id} ({exercise.function}): all {result} tests pass."


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: `list`, or `check ID [FILE]`. Exit 0 when the tests pass, 1 when
    one fails, 2 for a wrong command."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m snippets.exercises",
        description="List the course's code exercises, or check a solution.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="one line per code exercise: id, function, title")
    checking = sub.add_parser("check", help="run an exercise's tests on a solution")
    checking.add_argument("ID", help='the exercise id, as "3.2"')
    checking.add_argument(
        "FILE", nargs="?", help="your solution (default: the reference solution)"
    )
    args = parser.parse_args(argv)
    exercises = registry()
    if args.command == "list":
        for exercise in exercises.values():
            print(f"{exercise.id}\t{exercise.function}\t{exercise.title}")
        return 0
    exercise = exercises.get(args.ID)
    if exercise is None:
        known = ", ".join(exercises)
        parser.error(
            f"ID: no code exercise {args.ID!r}; the code exercises are {known}"
        )
    try:
        fn = (
            reference(exercise)
            if args.FILE is None
            else load(args.FILE, exercise.function)
        )
    except (OSError, LookupError) as err:
        print(err, file=sys.stderr)
        return 1
    except Exception as err:  # the reader's file does not even import
        print(f"FILE: {args.FILE} could not be imported: {err!r}", file=sys.stderr)
        return 1
    result = run(exercise, fn)
    print(verdict(exercise, result))
    return 1 if isinstance(result, Failure) else 0
