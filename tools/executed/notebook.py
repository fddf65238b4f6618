"""A chapter as a notebook, generated from its page: prose as Markdown cells, each
included code section as a code cell, each figure, table or value as a cell that calls
its demo (`snippets.notebook.show`), and each code exercise with a cell to fill and a
cell that runs the checker. Solutions stay folded on the site; the notebook links them.
"""

from __future__ import annotations

import ast
import posixpath
import re
import textwrap
from pathlib import Path
from typing import Any

from .editions import FRONT_MATTER_RE, heading_anchor
from .exercises import SECTION_END_RE, declared
from .plan import EXERCISE_RE, FIGURE_RE, VALUE_RE, Item
from .words import words

FENCE_RE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
INCLUDE_RE = re.compile(r'^--8<-- "(?P<path>[^":]+)(?::(?P<section>[\w-]+))?"$')
MARKER_RE = re.compile(r"^\s*# --8<-- \[(?:start|end):[\w-]+\]\s*$")
BLOCK_RE = re.compile(
    r'^(?P<kind>!!!|\?\?\?\+?|===) ?(?P<type>\w*)(?: *"(?P<title>[^"]*)")?'
)
CAPTION_RE = re.compile(r"^/// (?:caption|table-caption)")
ATTRS_RE = re.compile(r"\s*\{\s*[#.:][^}]*\}|\{\s*loading=lazy\s*\}")
# A link to a page of the site (a .md or .ipynb file, or an anchor of this page).
LINK_RE = re.compile(
    r"\]\((?P<target>(?!https?:|mailto:)(?:[^)\s#]*\.(?:md|ipynb))?(?:#[^)\s]*)?)\)"
)
CHECK_RE = re.compile(r"python -m snippets\.exercises check (?P<id>\d+\.\d+)")
LABEL_RE = re.compile(r"[ \t]*\\label\{[^}]*\}")
# A command shown in a `shell` fence: pytest-codeblocks runs `bash` and `sh` ones.
SHELLS = ("shell", "bash", "sh")
INSTALL = """\
# In Colab, or wherever the course's code is not installed, install it first (Colab already
# has PyTorch, NumPy, matplotlib and scikit-learn, so nothing else is fetched).
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("snippets") is None:
    REPO = "{repo}"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run([*pip, f"git+{{REPO}}"], check=True)
"""


def page_url(page: str) -> str:
    """A page's URL in the site, relative to its root: chapters/03-x.md -> chapters/03-x/."""
    stem = re.sub(r"\.(md|ipynb|py)$", "", page)
    return "" if stem in ("index", "") else stem.removesuffix("/index") + "/"


def section(path: Path, name: str | None) -> str:
    """The code pymdownx.snippets includes: a file, or one of its sections, dedented,
    without the section markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if name is not None:
        marks = [x.strip() for x in lines]
        start = marks.index(f"# --8<-- [start:{name}]")
        lines = lines[start + 1 : marks.index(f"# --8<-- [end:{name}]")]
    kept = [x for x in lines if not MARKER_RE.match(x)]
    return textwrap.dedent("\n".join(kept)).strip("\n")


def module_imports(path: Path) -> list[str]:
    """The top-level imports of a module of the course (not `from __future__`)."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    return [
        ast.get_source_segment(source, node)
        for node in tree.body
        if isinstance(node, ast.Import)
        or (isinstance(node, ast.ImportFrom) and node.module != "__future__")
    ]


def private_names(path: Path) -> set[str]:
    """The module's top-level names that start with an underscore (its helpers)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def compiles(code: str) -> bool:
    try:
        compile(code, "<cell>", "exec")
    except SyntaxError:
        return False
    return True


class Builder:
    """Turns one chapter's Markdown into cells, top to bottom."""

    def __init__(
        self,
        page: str,
        demos: dict[str, Item],
        root: Path,
        site_url: str,
        exercises: dict[str, dict[str, str]],
        language: str = "en",
    ) -> None:
        self.page, self.demos, self.root = page, demos, root
        self.say, self.language = words(language), language
        self.site_url = site_url.rstrip("/") + "/"
        self.exercises = exercises
        self.cells: list[dict[str, Any]] = []
        self.prose: list[str] = []  # Markdown lines not yet in a cell
        self.values: dict[str, list[str]] = {}  # demo -> keys shown in that prose
        self.imported: set[str] = set()  # modules whose imports a cell has made
        self.exercise: str | None = None  # the id of the exercise being read
        self.source = ""  # the page's Markdown (`build`)

    # -- cells --------------------------------------------------------------------------
    def flush(self) -> None:
        text = "\n".join(self.prose).strip("\n")
        self.prose = []
        if text.strip():
            self.cells.append({"cell_type": "markdown", "source": text})
        if self.values:
            calls = [
                f"show({ref!r}" + "".join(f", {k!r}" for k in keys) + ")"
                for ref, keys in self.values.items()
            ]
            self.values = {}
            self.code(self.say["notebook_values"] + "\n" + "\n".join(calls))

    def code(self, source: str) -> None:
        self.flush()
        self.cells.append({"cell_type": "code", "source": source})

    # -- Markdown -----------------------------------------------------------------------
    def link(self, m: re.Match[str]) -> str:
        target = m["target"]
        path, _, fragment = target.partition("#")
        here = posixpath.dirname(self.page)
        page = posixpath.normpath(posixpath.join(here, path)) if path else self.page
        url = self.site_url + page_url(page)
        return f"]({url}{'#' + fragment if fragment else ''})"

    def value(self, m: re.Match[str]) -> str:
        ref, key = m["ref"], m["key"]
        result = self.demos[ref].shown(self.language)
        keys = self.values.setdefault(ref, [])
        if key is not None and key not in keys:
            keys.append(key)
        return str(result[key] if key is not None else result)

    def line(self, text: str) -> None:
        if text.strip() and not LABEL_RE.sub("", text).strip():
            return  # a line that only labels an equation: a blank line would end the math
        text = ATTRS_RE.sub("", text)
        text = LABEL_RE.sub("", LINK_RE.sub(self.link, text))
        self.prose.append(VALUE_RE.sub(self.value, text))

    # -- blocks -------------------------------------------------------------------------
    def fence(self, info: str, body: list[str], raw: list[str]) -> None:
        """A fenced block: an include becomes code cells, a plain Python example a code
        cell, the checker's command a cell to fill and a cell that checks; others stay."""
        language = info.split()[0] if info.split() else ""
        include = INCLUDE_RE.match(body[0].strip()) if len(body) == 1 else None
        command = CHECK_RE.search("\n".join(body)) if language in SHELLS else None
        if include and language == "python":
            path = self.root / include["path"]
            code = section(path, include["section"])
            if not compiles(code):  # a fragment: shown, not run
                self.prose += ["```python", code, "```"]
                return
            if include["path"] not in self.imported:
                self.imported.add(include["path"])
                module = include["path"].removesuffix(".py").replace("/", ".")
                helpers = sorted(n for n in private_names(path) if n in code)
                heading = self.say["notebook_imports"].format(path=include["path"])
                lines = [heading, *module_imports(path)]
                lines.append(f"from {module} import *  # noqa: F403")
                if helpers:
                    lines.append(f"from {module} import {', '.join(helpers)}")
                self.code("\n".join(lines))
            self.code(f"# {include['path']}\n{code}")
        elif (
            language == "python" and "title=" not in info and compiles("\n".join(body))
        ):
            self.code("\n".join(body))
        elif (
            command
            and command["id"] == self.exercise
            and self.exercise in self.exercises
        ):
            entry = self.exercises[self.exercise]
            stub = self.say["notebook_stub"].format(
                id=self.exercise, function=entry["function"]
            )
            yours = self.say["notebook_yours"]
            self.code(f"{stub}\ndef {entry['call']}:\n    {yours}\n")
            self.code(f"check({self.exercise!r}, {entry['function']})")
        else:
            self.prose += raw

    def block(self, kind: str, title: str | None, body: list[str]) -> None:
        """An admonition, a folded block or a content tab: its title in bold and its
        body; a solution becomes a link to the page, where it is folded."""
        if title == self.say["solution"] and self.exercise:
            heading = next(
                m for m in EXERCISE_RE.finditer(self.source) if m["id"] == self.exercise
            )
            anchor = heading_anchor(heading[0].removeprefix("### "))
            url = self.site_url + page_url(self.page) + "#" + anchor
            self.prose += [self.say["notebook_solution"].format(url=url), ""]
            return
        if title:
            self.prose += [f"**{title}**", ""]
        self.lines(textwrap.dedent("\n".join(body)).splitlines())

    def lines(self, lines: list[str]) -> None:
        i = 0
        while i < len(lines):
            text = lines[i]
            fence = FENCE_RE.match(text)
            block = BLOCK_RE.match(text)
            shown = FIGURE_RE.fullmatch(text.strip()) or VALUE_RE.fullmatch(
                text.strip()
            )
            if fence:
                end = next(
                    (
                        j
                        for j in range(i + 1, len(lines))
                        if lines[j].strip() == fence["fence"]
                    ),
                    len(lines),
                )
                self.fence(
                    fence["info"].strip(), lines[i + 1 : end], lines[i : end + 1]
                )
                i = end + 1
            elif block:
                end = i + 1
                while end < len(lines) and (
                    not lines[end].strip() or lines[end].startswith("    ")
                ):
                    end += 1
                self.block(block["kind"], block["title"], lines[i + 1 : end])
                i = end
            elif CAPTION_RE.match(text):
                end = next(
                    j for j in range(i + 1, len(lines)) if lines[j].strip() == "///"
                )
                caption = [
                    x for x in lines[i + 1 : end] if not x.strip().startswith("attrs:")
                ]
                for x in caption:
                    self.line(x)
                self.prose.append("")
                i = end + 1
            elif shown and not shown.groupdict().get("key"):
                # a figure, or a demo's Markdown (a table), on a line of its own
                self.code(f"show({shown['ref']!r})")
                i += 1
            else:
                # h1-h3 end an exercise, as the build reads it (exercises.SECTION_END_RE)
                if SECTION_END_RE.match(text):
                    heading = EXERCISE_RE.match(text)
                    self.exercise = heading["id"] if heading else None
                self.line(text)
                i += 1

    def build(self, markdown: str, repo: str) -> list[dict[str, Any]]:
        self.source = markdown
        body = FRONT_MATTER_RE.sub("", markdown)
        body = re.sub(r"<!--.*?-->", "", body, flags=re.S)
        lines = body.strip("\n").splitlines()
        title = lines.pop(0) if lines and lines[0].startswith("# ") else ""
        url = self.site_url + page_url(self.page)
        self.prose = [title, "", self.say["notebook_intro"].format(url=url)]
        self.code(INSTALL.format(repo=repo))
        self.code(
            "from snippets.exercises import check\n"
            "from snippets.notebook import show, use_language\n"
            "from snippets.runtime import seed_everything\n\n"
            f"use_language({self.language!r})\n"
            "seed_everything(0)"
        )
        self.lines(lines)
        self.flush()
        return self.cells


def chapter_notebook(
    markdown: str,
    page: str,
    demos: dict[str, Item],
    root: Path,
    site_url: str,
    repo: str,
    registry: dict[str, str] | None,
    language: str = "en",
) -> str:
    """The notebook of a chapter page, as nbformat JSON. `markdown` is the page after
    numbering (`render.number`), so captions and references carry their numbers."""
    import nbformat

    exercises = declared(registry or {})
    builder = Builder(page, demos, root, site_url, exercises, language)
    cells = builder.build(markdown, repo)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for k, cell in enumerate(cells):
        make = nbformat.v4.new_code_cell if cell["cell_type"] == "code" else None
        make = make or nbformat.v4.new_markdown_cell
        notebook.cells.append(make(cell["source"].rstrip("\n"), id=f"cell-{k}"))
    nbformat.validate(notebook)
    return nbformat.writes(notebook)
