"""Planning: the items a site declares, what each depends on, and its cache key."""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ExecutionError, warn

FIGURE_RE = re.compile(r"!\[(?P<alt>[^\]]*)\]\(exec:(?P<ref>[a-z_][\w]*\.[a-z_]\w*)\)")
VALUE_RE = re.compile(r"\{\{\s*(?P<ref>[a-z_]\w*\.[a-z_]\w*)(?:\.(?P<key>\w+))?\s*\}\}")
# An exercise's heading (see `exercises`); a page with exercises depends on REGISTRY,
# the demo that lists the code exercises declared in snippets/exercises/.
# ("### Exercise 3.2: Title"; in the Chinese edition "### 练习 3.2：标题")
EXERCISE_RE = re.compile(
    r"^### (?:Exercise|练习) (?P<id>[^:：\s]+)(?:: |：)(?P<title>.+?)"
    r"(?:[ \t]*\{[ \t]*#[\w.-]+[ \t]*\})?[ \t]*$",
    re.M,
)
REGISTRY = "solutions.code_exercises"  # id -> "function\ttitle\tcases\tcall"
SNIPPET_IMPORT_RE = re.compile(r"^\s*(?:from|import)\s+snippets(?:\.(\w+))?", re.M)
MACHINERY = Path(__file__).resolve().parent
# The machinery's modules that make, check or format a stored result (`run` also decides
# which demos are timed): their source is part of every key. Planning, rendering,
# typesetting and the report run on every build anyway.
RESULT_MODULES = ("checks.py", "lab.py", "run.py", "worker.py")


@dataclasses.dataclass(frozen=True)
class Project:
    """Where a site's code, pages and cache are: the folder holding `snippets/`."""

    root: Path
    cache_dir: Path

    @classmethod
    def at(cls, root: Path) -> Project:
        cache = os.environ.get("AE_CACHE_DIR") or root / ".cache" / "executed"
        return cls(root.resolve(), Path(cache).resolve())


@dataclasses.dataclass
class Item:
    """One thing to execute: a demo function (`attention.variance_figure`) or a lab."""

    name: str  # "attention.variance_figure" or "labs/mini_transformer.py"
    source: Path  # the demo module or the lab script
    pages: list[str]
    key: str = ""
    # {"name", "kind", "value", "seconds", "produced", "measured", "timings"}
    result: dict[str, Any] | None = None
    status: str = ""  # "executed", "cached" or "failed or not run"

    @property
    def is_lab(self) -> bool:
        return self.source.suffix == ".py" and "/labs/" in self.source.as_posix()

    def record(self, project: Project) -> Path:
        """Where this item's result is cached."""
        return project.cache_dir / f"{self.key}.json"

    def shown(self, language: str = "en") -> Any:
        """The result as the edition in `language` shows it: the English `value`, or its
        twin under `translations` that the same run made (see snippets/bilingual.py)."""
        if language == "en" or self.is_lab:
            return self.result["value"]
        translations = self.result.get("translations") or {}
        if language not in translations:
            raise ExecutionError(
                f"{self.describe()} made no result in {language!r}; build again"
            )
        return translations[language]

    def describe(self) -> str:
        """The item in an error message: page, module and function (or lab)."""
        if self.is_lab:
            return f"lab {self.name}"
        module, func = self.name.split(".")
        return (
            f"page {', '.join(self.pages)}: demo {self.name} "
            f"(snippets/demos/{module}.py, function {func})"
        )


def scan_page(markdown: str) -> set[str]:
    """The demo references (`module.function`) that a page's Markdown declares."""
    refs = {m["ref"] for m in FIGURE_RE.finditer(markdown)}
    refs |= {m["ref"] for m in VALUE_RE.finditer(markdown)}
    if EXERCISE_RE.search(markdown):
        refs.add(REGISTRY)
    return refs


# A chapter's page: its number prefixes its figures' numbers ("Figure 3.2").
CHAPTER_RE = re.compile(r"(?:^|/)(?P<number>\d+)-[^/]*\.md$")


# What a chapter numbers, each kind in its own sequence ("Figure 3.2", "Table 3.1",
# "(3.4)"): figures (the demo is the label), tables (a `/// table-caption | label` block
# after the table; the label is optional) and display equations (`$$` blocks;
# `\label{eq:label}` inside one names it; `\notag` leaves one unnumbered).
NUMBERED = {
    "fig": FIGURE_RE,
    "tab": re.compile(
        r"^(?P<indent>[ \t]*)/// table-caption(?:[ \t]*\|[ \t]*(?P<ref>\S*))?[ \t]*$",
        re.M,
    ),
    "eq": re.compile(
        r"^(?P<indent>[ \t]*)\$\$[ \t]*\n(?P<tex>.*?)\n[ \t]*\$\$[ \t]*$", re.M | re.S
    ),
}
LABEL_RE = re.compile(r"[a-z][\w-]*")  # a table's or an equation's label
EQUATION_LABEL_RE = re.compile(r"\\label\{(?P<ref>[^}]*)\}")
UNNUMBERED_RE = re.compile(r"\\(?:tag|notag|nonumber)\b")
# Code (fenced or inline) and HTML comments: nothing in them is numbered or referenced.
CODE_RE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[^\n]*\n.*?^[ \t]*(?P=fence)[ \t]*$|<!--.*?-->|`[^`\n]+`",
    re.M | re.S,
)


def in_code(markdown: str) -> Callable[[int], bool]:
    """Whether a position of `markdown` lies in code or in an HTML comment."""
    spans = [m.span() for m in CODE_RE.finditer(markdown)]
    return lambda position: any(start <= position < end for start, end in spans)


def numbered(
    kind: str, markdown: str, page: str
) -> list[tuple[re.Match[str], str | None]]:
    """The figures ("fig"), tables ("tab") or equations ("eq") of a page that get a
    number, in order, each with its label (None without one). A malformed label, or a
    label on an equation left unnumbered, stops the build."""
    code = in_code(markdown)
    found = []
    for m in NUMBERED[kind].finditer(markdown):
        if code(m.start()):
            continue
        if kind == "fig":
            found.append((m, m["ref"]))
            continue
        if kind == "tab":
            name = m["ref"] or None
        else:
            labels = EQUATION_LABEL_RE.findall(m["tex"])
            if UNNUMBERED_RE.search(m["tex"]):
                if labels:
                    raise ExecutionError(
                        f"page {page}: an equation with \\notag or its own \\tag cannot "
                        f"be referenced, but it has \\label{{{labels[0]}}}"
                    )
                continue
            if len(labels) > 1 or (labels and not labels[0].startswith("eq:")):
                raise ExecutionError(
                    f"page {page}: an equation takes one label, \\label{{eq:name}}; "
                    f"got {', '.join(labels)}"
                )
            name = labels[0].removeprefix("eq:") if labels else None
        if name is not None and not LABEL_RE.fullmatch(name):
            raise ExecutionError(
                f"page {page}: the label {name!r} must be lower-case letters, digits, "
                "'_' and '-', starting with a letter"
            )
        found.append((m, name))
    return found


def anchor(key: str) -> str:
    """The id of a numbered thing on its page: "fig:attention.variance" -> "fig-attention-variance"."""
    return key.replace(":", "-").replace(".", "-")


def numbering(pages: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Each labelled figure, table and equation of a chapter, keyed "fig:module.function",
    "tab:label" or "eq:label": its page and its number, "chapter.k" in the order the page
    shows its kind. `pages` maps a page's path to its Markdown."""
    numbers: dict[str, tuple[str, str]] = {}
    for page, markdown in pages.items():
        chapter = CHAPTER_RE.search(page)
        if chapter is None:
            continue
        for kind in NUMBERED:
            for k, (_, name) in enumerate(numbered(kind, markdown, page), start=1):
                if name is None:
                    continue
                key = f"{kind}:{name}"
                if key in numbers and kind != "fig":
                    raise ExecutionError(
                        f"page {page}: the label {key} is also used on {numbers[key][0]}"
                    )
                numbers[key] = (page, f"{int(chapter['number'])}.{k}")
    return numbers


def demo_source(ref: str, root: Path) -> Path:
    module, _ = ref.split(".")
    return root / "snippets" / "demos" / f"{module}.py"


def snippet_deps(source: Path, root: Path) -> list[Path]:
    """`source` and every module of `snippets/` it imports, directly or not, in a stable order."""
    seen: dict[Path, None] = {}
    todo = [source]
    while todo:
        path = todo.pop()
        if path in seen or not path.exists():
            continue
        seen[path] = None
        names = _imports_of(path, root, *_stamp(path))
        todo.extend(_module_file(root, n) for n in names)
        todo.append(root / "snippets" / "__init__.py")
        # a subpackage (snippets.exercises) counts with all its modules
        if path.name == "__init__.py" and path.parent != root / "snippets":
            todo.extend(path.parent.glob("*.py"))
    return sorted(seen, key=lambda p: p.as_posix())


def _module_file(root: Path, name: str) -> Path:
    """The file of the module `snippets.<name>`: `<name>.py`, or a package's `__init__.py`."""
    path = root / "snippets" / name.replace(".", "/")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _stamp(path: Path) -> tuple[int, int]:
    """What identifies a file's version for the memos below: mtime and size."""
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=4096)
def _imports_of(path: Path, root: Path, mtime_ns: int, size: int) -> frozenset[str]:
    """`_imported_snippet_modules` of a file, parsed once per version of it."""
    text = path.read_text(encoding="utf-8")
    return frozenset(_imported_snippet_modules(text, path, root))


@functools.lru_cache(maxsize=4096)
def _digest(path: Path, mtime_ns: int, size: int) -> bytes:
    """The SHA-256 of a file, read once per version of it."""
    return hashlib.sha256(path.read_bytes()).digest()


def _imported_snippet_modules(text: str, path: Path, root: Path) -> set[str]:
    """Names (relative to `snippets`) of the modules that `text` imports from the package."""
    try:
        tree = ast.parse(text)
    except SyntaxError:  # a lab cell with magics: fall back to a regex
        return {m or "__init__" for m in SNIPPET_IMPORT_RE.findall(text)}
    found: set[str] = set()
    package = None
    if (root / "snippets") in path.parents:
        package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name == "snippets" or name.startswith("snippets."):
                rel = name.removeprefix("snippets").lstrip(".")
                if rel and _module_file(root, rel).exists():
                    found.add(rel)
    return found


# Device nodes without which no GPU is visible to torch on Linux: NVIDIA's driver, ROCm,
# WSL2's GPU paravirtualisation, NVIDIA Jetson.
GPU_NODES = tuple(
    Path(p) for p in ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg", "/dev/nvhost-ctrl")
)


def device_name(root: Path) -> str:
    """`snippets.runtime.device()` as text, without importing torch where that is sure.

    Importing torch takes seconds, and a build whose results are all cached needs nothing
    else from it. On Linux with no GPU device node torch can only use the CPU.
    """
    wanted = os.environ.get("AE_DEVICE")
    if wanted:
        return wanted
    if sys.platform == "linux" and not any(node.exists() for node in GPU_NODES):
        return "cpu"
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from snippets.runtime import device

    return str(device())


def environment_fingerprint(root: Path) -> dict[str, str]:
    """What besides our own code changes a result: versions and the device."""
    fingerprint = {"python": platform.python_version(), "device": device_name(root)}
    for dist in ("torch", "numpy", "matplotlib", "scikit-learn"):
        try:
            fingerprint[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            fingerprint[dist] = "absent"
    return fingerprint


def machinery_digest() -> bytes:
    """The source of the modules that make, check and format results: a change of how
    results are made, checked or formatted makes every result stale."""
    h = hashlib.sha256()
    for name in RESULT_MODULES:
        path = MACHINERY / name
        h.update(name.encode())
        h.update(_digest(path, *_stamp(path)))
    return h.digest()


def item_key(item: Item, fingerprint: dict[str, str], root: Path) -> str:
    """The cache key: the item, the versions and device, the source of the machinery
    that makes results, and every `snippets` module the item depends on."""
    h = hashlib.sha256()
    h.update(item.name.encode())
    h.update(machinery_digest())
    h.update(json.dumps(fingerprint, sort_keys=True).encode())
    # The item's modules, and those the worker itself uses on every result (plotting's
    # legible and dark_variant, runtime's seeding, measure's recording).
    snippets = root / "snippets"  # worker.py itself is in machinery_digest
    worker = [
        d
        for d in snippet_deps(MACHINERY / "worker.py", root)
        if d.is_relative_to(snippets)
    ]
    deps = {*snippet_deps(item.source, root), *worker}
    for dep in sorted(deps):
        h.update(dep.relative_to(root).as_posix().encode())
        h.update(_digest(dep, *_stamp(dep)))
    return h.hexdigest()[:24]


def read_record(path: Path) -> dict[str, Any] | None:
    """A cached record, or None (with a warning naming it) when it is empty or corrupt."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        warn(f"discarding the corrupt cache entry {path.name}: {err}")
        return None
    if not isinstance(data, dict):
        warn(f"discarding the cache entry {path.name}: not a JSON object")
        return None
    return data


def write_record(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a build stopped half-way leaves no half-written entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
