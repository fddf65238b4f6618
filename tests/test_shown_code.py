"""The code the pages show reads as written, not as the formatter had to break it.

The pages include regions of `snippets/` between `# --8<-- [start:name]` and
`# --8<-- [end:name]` (the lab shows whole functions of `snippets/lab.py`, which
lie in such regions too). In those regions no line is longer than 88 characters
(the formatter's limit, after the dedent that the pages apply), no continuation
line starts with a binary operator (`| None = None` under its annotation), and no
line that starts with a closing bracket carries a comment (`)  # ...` after a
wrapped expression or signature): such lines are restructured instead.
"""

from __future__ import annotations

import io
import keyword
import re
import textwrap
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "snippets").rglob("*.py"))
MAX_LINE = 88  # [tool.ruff] line-length

START = re.compile(r"#\s*--8<--\s*\[start:([\w-]+)\]")
END = re.compile(r"#\s*--8<--\s*\[end:([\w-]+)\]")
ARITHMETIC = {"|", "&", "^", "+", "-", "*", "/", "//", "%", "@", "**", "<<", ">>"}
BINARY_OPS = ARITHMETIC | {"==", "!=", "<", ">", "<=", ">="}
BINARY_WORDS = {"and", "or", "not", "in", "is", "if", "else"}
CONSTANTS = {"True", "False", "None"}  # the keywords that are operands
SKIP = {
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.COMMENT,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


def shown_regions(lines: list[str]) -> dict[str, list[int]]:
    """Region name -> the 1-based numbers of the lines it shows (markers excluded)."""
    regions: dict[str, list[int]] = {}
    open_names: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if m := START.search(line):
            open_names.add(m[1])
            regions.setdefault(m[1], [])
        elif m := END.search(line):
            open_names.discard(m[1])
        else:
            for name in open_names:
                regions[name].append(number)
    return regions


def _is_operand(tok: tokenize.TokenInfo) -> bool:
    """Whether `tok` can end an operand, so that an operator after it is binary."""
    if tok.type == tokenize.NAME:
        return tok.string in CONSTANTS or not keyword.iskeyword(tok.string)
    strings = {tokenize.STRING, getattr(tokenize, "FSTRING_END", tokenize.STRING)}
    return tok.type in {tokenize.NUMBER, *strings} or tok.string in ")]}"


def broken_lines(source: str) -> dict[int, str]:
    """Line number -> why, for every line that the formatter broke awkwardly.

    A continuation line (inside brackets or after a backslash) that starts with a
    binary operator, and a line that starts with a closing bracket and ends with a
    comment.
    """
    found: dict[int, str] = {}
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    first_on_line: set[int] = set()
    has_comment = {t.start[0] for t in tokens if t.type == tokenize.COMMENT}
    frames: list[bool] = []  # per open bracket: has a `for` been seen (comprehension)?
    prev: tokenize.TokenInfo | None = None
    new_statement = True
    for tok in tokens:
        if tok.type == tokenize.NEWLINE:
            new_statement = True
        if tok.type in SKIP:
            continue
        row = tok.start[0]
        first = row not in first_on_line and (prev is None or prev.end[0] < row)
        first_on_line.add(row)
        if first and not new_statement and prev is not None and _is_operand(prev):
            word = tok.type == tokenize.NAME and tok.string in BINARY_WORDS
            op = tok.type == tokenize.OP and tok.string in BINARY_OPS
            filter_if = tok.string == "if" and bool(frames) and frames[-1]
            if (word or op) and not filter_if:
                found[row] = f"continuation starts with the operator {tok.string!r}"
        closing = tok.type == tokenize.OP and tok.string in ")]}"
        if first and closing and row in has_comment:
            found[row] = "a closing bracket carries a comment"
        if tok.type == tokenize.OP and tok.string in "([{":
            frames.append(False)
        elif closing and frames:
            frames.pop()
        elif tok.string == "for" and frames:
            frames[-1] = True
        prev, new_statement = tok, False
    return found


def problems(path: Path) -> list[str]:
    """`file:line: why: line` for each awkward or overlong line in a shown region."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    broken = broken_lines(text)
    rel = path.relative_to(ROOT).as_posix()
    out = set()
    for numbers in shown_regions(lines).values():
        shown = textwrap.dedent("\n".join(lines[n - 1] for n in numbers)).split("\n")
        for number, line in zip(numbers, shown, strict=True):
            if len(line) > MAX_LINE:
                out.add((number, f"{len(line)} characters, over {MAX_LINE}"))
            if number in broken:
                out.add((number, broken[number]))
    return [f"{rel}:{n}: {why}: {lines[n - 1].strip()}" for n, why in sorted(out)]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shown_code_is_not_broken_by_the_formatter(path):
    found = problems(path)
    assert not found, "\n".join(found)


def test_the_check_sees_what_the_formatter_does():
    """The patterns the test exists for are found, and ordinary code is not."""
    source = textwrap.dedent("""\
        def decode(
            src_mask: Tensor
            | None = None,  # hides padded source tokens
            x: int = -1,
        ) -> Tensor:  # (B, N) -> (B, N, d)
            total = (
                first_term
                + second_term
            )  # a comment after the bracket
            ok = [a for a in items
                  if a]
            value = (
                a
                if cond
                else b
            )
            call(
                *args,
                -x,
            )
            return total
        """)
    assert broken_lines(source) == {
        3: "continuation starts with the operator '|'",
        5: "a closing bracket carries a comment",
        8: "continuation starts with the operator '+'",
        9: "a closing bracket carries a comment",
        14: "continuation starts with the operator 'if'",
        15: "continuation starts with the operator 'else'",
    }


PAGES = sorted((ROOT / "docs" / "en").rglob("*.md"))
FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.M | re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_written_on_a_page_fits_the_same_width(page):
    """The short examples written directly on a page (no `title=`, run by
    pytest-codeblocks) keep to the same 88 characters as the included code."""
    long = [
        line.strip()
        for m in FENCE.finditer(page.read_text(encoding="utf-8"))
        for line in textwrap.dedent(m[2]).splitlines()
        if len(line) > MAX_LINE
    ]
    assert not long, "\n".join(long)
