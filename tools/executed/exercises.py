"""Exercises: what a chapter's `## Exercises` section holds, and the checks a build makes.

An exercise is a heading `### Exercise 3.2: Title`, its text, and a folded solution
(`??? success "Solution"`). A *code exercise* is one whose solution includes a function
from `snippets/solutions/chNN.py`; it must be declared in `snippets/exercises/chNN.py`
with test cases, under the same id, function and title, and its text must show the
checker's command. The build learns the declared exercises from the demo
`plan.REGISTRY`, which every page with exercises depends on.
"""

from __future__ import annotations

import dataclasses
import re

from .errors import ExecutionError
from .plan import CHAPTER_RE, EXERCISE_RE, in_code
from .words import SOLUTION_TITLES

SECTION_END_RE = re.compile(r"^#{1,3} ", re.M)
SOLUTION_RE = re.compile(
    r'^\?\?\? success "(?:' + "|".join(map(re.escape, SOLUTION_TITLES)) + r')"[ \t]*$',
    re.M,
)
SOLUTION_INCLUDE_RE = re.compile(
    r'--8<-- "snippets/solutions/(?P<module>\w+)\.py:(?P<function>\w+)"'
)


@dataclasses.dataclass
class Exercise:
    """One exercise as its page shows it."""

    id: str
    title: str
    text: str  # from the heading to the next heading, solution included
    functions: list[tuple[str, str]]  # (module, function) its solution includes

    @property
    def statement(self) -> str:
        """The text before the solution."""
        return SOLUTION_RE.split(self.text, maxsplit=1)[0]


def exercises(markdown: str) -> list[Exercise]:
    """The exercises of a page, in order (headings in code are not exercises)."""
    code = in_code(markdown)
    found = []
    for m in EXERCISE_RE.finditer(markdown):
        if code(m.start()):
            continue
        ends = (e.start() for e in SECTION_END_RE.finditer(markdown, m.end()))
        end = next((e for e in ends if not code(e)), len(markdown))
        text = markdown[m.start() : end]
        includes = [
            (i["module"], i["function"]) for i in SOLUTION_INCLUDE_RE.finditer(text)
        ]
        found.append(Exercise(m["id"], m["title"], text, includes))
    return found


def declared(values: dict[str, str]) -> dict[str, dict[str, str]]:
    """The REGISTRY demo's values, by id: function, title, cases (a count) and call."""
    fields = ("function", "title", "cases", "call")
    return {k: dict(zip(fields, v.split("\t"), strict=True)) for k, v in values.items()}


def check_command(exercise_id: str) -> str:
    return f"python -m snippets.exercises check {exercise_id}"


def check_exercises(
    markdown: str, page: str, registry: dict[str, str] | None, language: str = "en"
) -> None:
    """Stop the build when a chapter's exercises are inconsistent: ids out of sequence or
    duplicated, a solution missing, a code exercise without tests or checker command, or
    a declared exercise the page does not show. A translation's titles are its own; the
    English edition's are those that snippets/exercises/ declares."""
    found = exercises(markdown)
    chapter = CHAPTER_RE.search(page)
    if not found:
        return
    if chapter is None:
        raise ExecutionError(f"page {page}: exercises belong on chapter pages")
    number = int(chapter["number"])
    registry = declared(registry or {})
    seen: set[str] = set()
    for k, exercise in enumerate(found, start=1):
        where = f"page {page}: exercise {exercise.id}"
        if exercise.id in seen:
            raise ExecutionError(f"{where} appears twice; ids must be unique")
        seen.add(exercise.id)
        if exercise.id != f"{number}.{k}":
            raise ExecutionError(
                f"{where} is the page's exercise number {k}: its id must be {number}.{k}"
            )
        if not SOLUTION_RE.search(exercise.text):
            raise ExecutionError(
                f'{where} has no folded solution (a `??? success "Solution"` block)'
            )
        if not exercise.functions:
            if exercise.id in registry:
                raise ExecutionError(
                    f"{where} is declared in snippets/exercises/ch{number:02d}.py "
                    f"({registry[exercise.id]['function']}), but its solution includes "
                    "no function from snippets/solutions/"
                )
            continue
        module, function = exercise.functions[0]
        other = [m for m, _ in exercise.functions if m != f"ch{number:02d}"]
        if other:
            module = other[0]
            raise ExecutionError(
                f"{where} includes solutions from {module}.py; a chapter's solutions "
                f"are in snippets/solutions/ch{number:02d}.py"
            )
        entry = registry.get(exercise.id)
        if entry is None or entry["cases"] == "0":
            raise ExecutionError(
                f"{where} asks for code ({function}) but has no tests: declare it, with "
                f"its cases, in snippets/exercises/ch{number:02d}.py"
            )
        title = exercise.title if language == "en" else entry["title"]
        if (entry["function"], entry["title"]) != (function, title):
            raise ExecutionError(
                f"{where} shows {function!r}, titled {exercise.title!r}, but "
                f"snippets/exercises/ch{number:02d}.py declares {entry['function']!r}, "
                f"titled {entry['title']!r}"
            )
        if not re.search(
            re.escape(check_command(exercise.id)) + r"(?!\d)", exercise.statement
        ):
            raise ExecutionError(
                f"{where} does not tell the reader how to check it: "
                f"`{check_command(exercise.id)} my_solution.py`"
            )
    missing = [i for i in registry if i.split(".")[0] == str(number) and i not in seen]
    if missing:
        raise ExecutionError(
            f"page {page}: snippets/exercises/ch{number:02d}.py declares exercise "
            f"{', '.join(missing)}, which the page does not show"
        )
