"""The build machinery: run what each page declares, cache it, and embed the results.

This MkDocs hook is the only place where the site executes code. A page declares what it
needs with three forms, written directly in its Markdown:

    ![Alt text for the figure](exec:attention.variance_figure)
    /// caption
    What the figure shows.
    ///

    {{ attention.saturation_table }}          <- Markdown (a table, text) returned by a demo
    {{ attention.headline_numbers.var_64 }}   <- one value of a dict returned by a demo

`attention.variance_figure` names the function `variance_figure` in `snippets/demos/attention.py`.
A demo takes no arguments and returns a matplotlib Figure, a Markdown string or a dict of values.
Labs are jupytext percent scripts in `docs/<lang>/labs/`; they are executed into notebooks
that mkdocs-jupyter renders.

Every result is cached in `.cache/executed/` under a key made of the code that produced it
(the demo module or the lab, every `snippets` module it imports, transitively), the versions
of Python, torch, NumPy and matplotlib, and the device. A build executes only what is stale,
in one fresh worker process, so a rebuild after a prose edit executes nothing.

Run `python docs/hooks/executed.py check docs/en/chapters/<page>.md` to execute one page's
demos without building the site.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import posixpath
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("AE_CACHE_DIR", ROOT / ".cache" / "executed"))
FIGURE_DIR = "assets/figures"
REPORT_URI = "appendix/build-report.md"
LAB_DIR = "labs/"

FIGURE_RE = re.compile(r"!\[(?P<alt>[^\]]*)\]\(exec:(?P<ref>[a-z_][\w]*\.[a-z_]\w*)\)")
VALUE_RE = re.compile(r"\{\{\s*(?P<ref>[a-z_]\w*\.[a-z_]\w*)(?:\.(?P<key>\w+))?\s*\}\}")
PROFILER_NOISE = re.compile(r"^USDT:.*profiler_(?:start|stop)\n", re.M)
SNIPPET_IMPORT_RE = re.compile(r"^\s*(?:from|import)\s+snippets(?:\.(\w+))?", re.M)


try:  # MkDocs prints a PluginError as a one-line "Error: ..." and stops the build
    from mkdocs.exceptions import PluginError as _BuildStop
except ImportError:  # the worker process does not need MkDocs
    _BuildStop = Exception  # type: ignore[misc,assignment]


class ExecutionError(_BuildStop):
    """A page's demo or lab failed; the message names the page, the module and the function."""


# ---------------------------------------------------------------------------------------------
# Planning: what each page needs and the cache key of each item
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Item:
    """One thing to execute: a demo function (`attention.variance_figure`) or a lab."""

    name: str  # "attention.variance_figure" or "labs/mini_transformer.py"
    source: Path  # the demo module or the lab script
    pages: list[str]
    key: str = ""
    result: dict[str, Any] | None = (
        None  # {"kind", "value", "seconds", "produced", "measured"}
    )
    status: str = ""  # "executed" or "cached"

    @property
    def is_lab(self) -> bool:
        return self.source.suffix == ".py" and "/labs/" in self.source.as_posix()

    @property
    def cache_path(self) -> Path:
        return CACHE_DIR / f"{self.key}.json"


def snippet_deps(source: Path, root: Path = ROOT) -> list[Path]:
    """`source` and every module of `snippets/` it imports, directly or not, in a stable order."""
    seen: dict[Path, None] = {}
    todo = [source]
    while todo:
        path = todo.pop()
        if path in seen or not path.exists():
            continue
        seen[path] = None
        text = path.read_text(encoding="utf-8")
        names = _imported_snippet_modules(text, path, root)
        todo.extend(root / "snippets" / f"{n.replace('.', '/')}.py" for n in names)
        todo.append(root / "snippets" / "__init__.py")
    return sorted(seen, key=lambda p: p.as_posix())


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
                if rel and (root / "snippets" / f"{rel.replace('.', '/')}.py").exists():
                    found.add(rel)
    return found


def environment_fingerprint() -> dict[str, str]:
    """What besides our own code changes a result: versions and the device."""
    sys.path.insert(0, str(ROOT))
    from snippets.runtime import device

    fingerprint = {"python": platform.python_version(), "device": str(device())}
    for dist in ("torch", "numpy", "matplotlib", "scikit-learn"):
        try:
            fingerprint[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            fingerprint[dist] = "absent"
    return fingerprint


def item_key(item: Item, fingerprint: dict[str, str], root: Path = ROOT) -> str:
    h = hashlib.sha256()
    h.update(item.name.encode())
    h.update(json.dumps(fingerprint, sort_keys=True).encode())
    for dep in snippet_deps(item.source, root):
        h.update(dep.relative_to(root).as_posix().encode())
        h.update(hashlib.sha256(dep.read_bytes()).digest())
    return h.hexdigest()[:24]


def demo_source(ref: str, root: Path = ROOT) -> Path:
    module, _ = ref.split(".")
    return root / "snippets" / "demos" / f"{module}.py"


def scan_page(markdown: str) -> set[str]:
    """The demo references (`module.function`) that a page's Markdown declares."""
    refs = {m["ref"] for m in FIGURE_RE.finditer(markdown)}
    refs |= {m["ref"] for m in VALUE_RE.finditer(markdown)}
    return refs


# ---------------------------------------------------------------------------------------------
# Execution: stale items run in one fresh worker process; labs run through nbclient
# ---------------------------------------------------------------------------------------------


def execute_demos(items: list[Item], root: Path = ROOT) -> None:
    """Run stale demos in a fresh interpreter (so edited modules are re-imported) and cache them."""
    if not items:
        return
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    jobs = CACHE_DIR / f"jobs-{os.getpid()}.json"
    jobs.write_text(
        json.dumps([{"ref": i.name, "out": str(i.cache_path)} for i in items])
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "PYTHONHASHSEED": "0",
        "MPLBACKEND": "Agg",
    }
    proc = subprocess.run(
        [sys.executable, __file__, "worker", str(jobs)],
        cwd=root,
        env=env,
        check=False,
        stderr=subprocess.PIPE,
        text=True,
    )
    jobs.unlink(missing_ok=True)
    # Pass the worker's messages on, without the two lines that PyTorch's profiler prints
    # each time snippets.measure records CPU memory.
    sys.stderr.write(PROFILER_NOISE.sub("", proc.stderr))
    for item in items:
        if not item.cache_path.exists():
            where = ", ".join(item.pages)
            raise ExecutionError(
                f"demo {item.name} (snippets/demos/{item.name.split('.')[0]}.py, function "
                f"{item.name.split('.')[1]}) produced no result for page {where}; "
                f"the worker exited with {proc.returncode}"
            )
        result = json.loads(item.cache_path.read_text())
        if "error" in result:
            item.cache_path.unlink()
            raise ExecutionError(
                f"page {', '.join(item.pages)}: demo {item.name} "
                f"(snippets/demos/{item.name.split('.')[0]}.py, function "
                f"{item.name.split('.')[1]}) failed:\n{result['error']}"
            )
        item.result, item.status = result, "executed"


def _run_notebook(notebook: Any) -> None:
    """Execute every cell in a fresh kernel, reached over local sockets in a temporary
    folder (over TCP, the kernel warns that its traffic is unencrypted)."""
    import nbclient
    from jupyter_client.manager import KernelManager

    with tempfile.TemporaryDirectory() as sockets:
        kernel = KernelManager(
            kernel_name="python3", transport="ipc", ip=f"{sockets}/kernel"
        )
        try:
            nbclient.NotebookClient(
                notebook,
                km=kernel,
                timeout=600,
                resources={"metadata": {"path": str(ROOT)}},
            ).execute()
        finally:
            if kernel.has_kernel:  # the kernel is ours to stop
                kernel.shutdown_kernel()


def execute_lab(item: Item) -> None:
    """Execute a jupytext percent script into a notebook; a cell that raises fails the build."""
    import jupytext
    import nbclient
    import nbformat

    notebook = jupytext.read(item.source)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    env_before = {
        k: os.environ.get(k) for k in ("PYTHONPATH", "PYTHONHASHSEED", "MPLBACKEND")
    }
    os.environ.update(PYTHONPATH=str(ROOT), PYTHONHASHSEED="0", MPLBACKEND="Agg")
    start = time.perf_counter()
    try:
        _run_notebook(notebook)
    except nbclient.exceptions.CellExecutionError as err:
        raise ExecutionError(f"lab {item.name} failed in a cell:\n{err}") from None
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    for cell in notebook.cells:  # no run-dependent metadata in the published notebook
        cell.get("metadata", {}).pop("execution", None)
    # CACHE_DIR/labs/<key>/ plays the docs folder for this notebook, whose name stays the lab's.
    notebook_path = (
        CACHE_DIR / "labs" / item.key / Path(item.name).with_suffix(".ipynb")
    )
    notebook_path.parent.mkdir(parents=True, exist_ok=True)
    notebook_path.write_text(nbformat.writes(notebook), encoding="utf-8")
    item.result = {
        "kind": "lab",
        "value": str(notebook_path),
        "seconds": seconds,
        "produced": _now(),
        "measured": True,
    }
    _write_json(item.cache_path, item.result)
    item.status = "executed"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def worker(jobs_file: str) -> int:
    """Runs in a fresh process: import each demo, seed, call, check, serialise."""
    sys.path.insert(0, os.getcwd())  # the project root the parent started us in
    import importlib

    from snippets.plotting import Figure, dark_variant
    from snippets.runtime import seed_everything

    failed = 0
    for job in json.loads(Path(jobs_file).read_text()):
        module_name, func_name = job["ref"].split(".")
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"snippets.demos.{module_name}")
            func = getattr(module, func_name, None)
            if func is None:
                raise LookupError(
                    f"snippets/demos/{module_name}.py has no function {func_name}"
                )
            seed_everything(0)
            value = func()
            seconds = time.perf_counter() - start
            result = {
                "seconds": seconds,
                "produced": _now(),
                "measured": bool(getattr(func, "measured", False)),
            }
            if isinstance(value, Figure):
                _check_figure_finite(value)
                light = _svg(value)
                result.update(
                    kind="figure", value={"light": light, "dark": dark_variant(light)}
                )
            elif isinstance(value, str):
                _check_text_finite(value)
                result.update(kind="text", value=value)
            elif isinstance(value, dict):
                bad = [
                    k for k, v in value.items() if not isinstance(v, str | int | float)
                ]
                if bad:
                    raise TypeError(
                        f"values must be str, int or float; not for keys {bad}"
                    )
                for k, v in value.items():
                    _check_text_finite(str(v), f"key {k!r}")
                result.update(
                    kind="values", value={k: _fmt(v) for k, v in value.items()}
                )
            else:
                raise TypeError(
                    f"a demo must return a matplotlib Figure, a str or a dict; got {type(value)}"
                )
        except Exception:  # reported to the parent, which stops the build
            failed += 1
            result = {"error": traceback.format_exc(limit=-6)}
        _write_json(Path(job["out"]), result)
    return 1 if failed else 0


def _fmt(v: str | int | float) -> str:
    return v if isinstance(v, str) else f"{v:,}" if isinstance(v, int) else f"{v:.4g}"


def _svg(fig: Any) -> str:
    import io

    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _check_figure_finite(fig: Any) -> None:
    import numpy as np

    for ax in fig.axes:
        arrays = [np.asarray(line.get_xydata(), dtype=float) for line in ax.get_lines()]
        arrays += [
            np.ma.compressed(np.ma.asarray(im.get_array(), dtype=float))
            for im in ax.images
        ]
        for coll in ax.collections:
            arrays.append(np.asarray(coll.get_offsets(), dtype=float))
            if coll.get_array() is not None:
                arrays.append(
                    np.ma.compressed(np.ma.asarray(coll.get_array(), dtype=float))
                )
        arrays += [
            np.asarray([p.get_height(), p.get_width()])
            for p in ax.patches
            if hasattr(p, "get_height")
        ]
        for arr in arrays:
            if arr.size and not np.isfinite(arr).all():
                raise ValueError(
                    f"the figure's axes {ax.get_title()!r} plot NaN or infinite data"
                )


def _check_text_finite(text: str, where: str = "the returned text") -> None:
    if re.search(r"(?<![\w.])(nan|inf)(?![\w])", text, re.I):
        raise ValueError(f"{where} contains NaN or inf: {text[:200]!r}")


# ---------------------------------------------------------------------------------------------
# MkDocs events
# ---------------------------------------------------------------------------------------------

_state: dict[str, Any] = {}


def _docs_root(config: Any) -> Path:
    """The project a config belongs to: its folder if that holds `snippets/`, else ours."""
    folder = Path(config["config_file_path"]).resolve().parent
    return folder if (folder / "snippets").is_dir() else ROOT


def on_files(files: Any, config: Any) -> Any:
    """Plan, execute what is stale, and add figures, labs, vendored assets and the report."""
    from mkdocs.structure.files import File

    root = _docs_root(config)
    if root != ROOT:  # a project that uses this hook from elsewhere (the tests do)
        _set_root(root)
    started = time.perf_counter()
    demos: dict[str, Item] = {}
    labs: list[tuple[Any, Item]] = []
    for file in list(files):
        if file.src_uri.endswith(".md") and file.abs_src_path:
            text = Path(file.abs_src_path).read_text(encoding="utf-8")
            for ref in sorted(scan_page(text)):
                demos.setdefault(
                    ref, Item(ref, demo_source(ref, ROOT), [])
                ).pages.append(file.src_uri)
        elif file.src_uri.startswith(LAB_DIR) and file.src_uri.endswith(".py"):
            page = file.src_uri.removesuffix(".py") + ".ipynb"  # what the site shows
            labs.append((file, Item(file.src_uri, Path(file.abs_src_path), [page])))
    fingerprint = environment_fingerprint()
    stale = []
    for item in [*demos.values(), *(i for _, i in labs)]:
        if not item.is_lab and not item.source.exists():
            raise ExecutionError(
                f"page {', '.join(item.pages)} declares demo {item.name}, but "
                f"{item.source.relative_to(ROOT)} does not exist"
            )
        item.key = item_key(item, fingerprint, ROOT)
        if item.cache_path.exists():
            item.result, item.status = json.loads(item.cache_path.read_text()), "cached"
            if item.is_lab and not Path(item.result["value"]).exists():
                item.result = None
        if item.result is None:
            stale.append(item)
    execute_demos([i for i in stale if not i.is_lab], ROOT)
    for item in stale:
        if item.is_lab:
            execute_lab(item)

    for item in demos.values():
        if item.result["kind"] == "figure":
            for palette in ("light", "dark"):
                uri = f"{FIGURE_DIR}/{item.name}.{palette}.svg"
                files.append(
                    File.generated(config, uri, content=item.result["value"][palette])
                )
    # mkdocs-jupyter renders each executed notebook in place of its lab script.
    for file, item in labs:
        files.remove(file)
        uri = file.src_uri.removesuffix(".py") + ".ipynb"
        files.append(
            File(
                uri,
                src_dir=str(CACHE_DIR / "labs" / item.key),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    _add_vendored_assets(files, config, root)

    _state.update(
        demos=demos,
        labs=[i for _, i in labs],
        fingerprint=fingerprint,
        seconds=time.perf_counter() - started,
    )
    if files.get_file_from_path(REPORT_URI) is None:
        files.append(File.generated(config, REPORT_URI, content=build_report()))
    _write_json(
        CACHE_DIR / "last-build.json",
        {i.name: i.status for i in [*demos.values(), *_state["labs"]]},
    )
    return files


on_files.mkdocs_priority = 100  # before mkdocs-jupyter wraps the notebooks


def _set_root(root: Path) -> None:
    global ROOT, CACHE_DIR
    ROOT = root
    CACHE_DIR = Path(os.environ.get("AE_CACHE_DIR", root / ".cache" / "executed"))


VENDORED = {  # what the pages load, copied from docs/node_modules (npm ci, pinned in the lock)
    "katex/dist/katex.min.js": "assets/vendor/katex/katex.min.js",
    "katex/dist/katex.min.css": "assets/vendor/katex/katex.min.css",
    "katex/dist/contrib/auto-render.min.js": "assets/vendor/katex/contrib/auto-render.min.js",
    "katex/dist/fonts": "assets/vendor/katex/fonts",
    "mermaid/dist/mermaid.min.js": "assets/vendor/mermaid/mermaid.min.js",
}


def _add_vendored_assets(files: Any, config: Any, root: Path) -> None:
    from mkdocs.structure.files import File

    scripts = [str(getattr(js, "path", js)) for js in config["extra_javascript"]]
    if not any(s.startswith("assets/vendor/") for s in scripts):
        return  # a site that loads no vendored asset (the tests' fixture)
    modules = root / "docs" / "node_modules"
    if not (modules / "katex").is_dir():
        raise ExecutionError(
            "docs/node_modules is missing: run `npm ci --prefix docs` (nox does it for you)"
        )
    for src, dest in VENDORED.items():
        path = modules / src
        targets = (
            [(path, dest)]
            if path.is_file()
            else [
                (p, f"{dest}/{p.name}")
                for p in sorted(path.iterdir())
                if p.suffix == ".woff2"
            ]
        )
        for source, uri in targets:
            files.append(File.generated(config, uri, abs_src_path=str(source)))


def on_page_context(context: Any, page: Any, config: Any, nav: Any) -> Any:
    """A lab page's "edit" link opens its jupytext script, not the generated notebook."""
    if page.edit_url and page.file.src_uri.startswith(LAB_DIR):
        page.edit_url = page.edit_url.removesuffix(".ipynb") + ".py"
    return context


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each declaration with its result: figures (light and dark) and values."""
    demos: dict[str, Item] = _state.get("demos", {})
    here = posixpath.dirname(page.file.src_uri)

    def planned(ref: str) -> Item:
        if ref not in demos:  # the page changed between on_files and now
            raise ExecutionError(
                f"page {page.file.src_uri}: {ref} was not executed; was the page edited "
                "while the site was being built? Build again."
            )
        return demos[ref]

    def figure(m: re.Match[str]) -> str:
        item, alt = planned(m["ref"]), m["alt"].strip()
        if item.result["kind"] != "figure":
            raise ExecutionError(
                f"page {page.file.src_uri}: {item.name} returned "
                f"{item.result['kind']}, but the page shows it as a figure"
            )
        if not alt:
            raise ExecutionError(
                f"page {page.file.src_uri}: figure {item.name} has no alt text"
            )
        after = markdown[m.end() :].lstrip(" \t").split("\n", 2)
        if len(after) < 2 or after[1].strip() != "/// caption":
            raise ExecutionError(
                f"page {page.file.src_uri}: figure {item.name} must be followed "
                "by a `/// caption` block on the next line"
            )
        url = posixpath.relpath(f"{FIGURE_DIR}/{item.name}", here)
        return (
            f"![{alt}]({url}.light.svg#only-light){{ loading=lazy }}"
            f"![{alt}]({url}.dark.svg#only-dark){{ loading=lazy }}"
        )

    def value(m: re.Match[str]) -> str:
        item, key = planned(m["ref"]), m["key"]
        result = item.result
        if key is None:
            if result["kind"] != "text":
                raise ExecutionError(
                    f"page {page.file.src_uri}: {{{{ {item.name} }}}} needs a "
                    f"demo that returns a str, not {result['kind']}"
                )
            return result["value"]
        if result["kind"] != "values" or key not in result["value"]:
            raise ExecutionError(
                f"page {page.file.src_uri}: {item.name} returned no value "
                f"named {key!r} (it has: {sorted(result.get('value') or [])})"
            )
        return result["value"][key]

    return VALUE_RE.sub(value, FIGURE_RE.sub(figure, markdown))


# ---------------------------------------------------------------------------------------------
# The build report: where every number on the site was produced
# ---------------------------------------------------------------------------------------------


def build_report() -> str:
    from snippets.runtime import device_description

    fp = _state["fingerprint"]
    rows = []
    for item in sorted(
        [*_state["demos"].values(), *_state["labs"]], key=lambda i: i.name
    ):
        r = item.result
        kind = "notebook" if item.is_lab else r["kind"]
        status = (
            "executed in this build"
            if item.status == "executed"
            else f"cached (executed {r['produced']})"
        )
        pages = ", ".join(
            f"[{p}]({posixpath.relpath(p, 'appendix')})" for p in item.pages
        )
        rows.append(
            f"| `{item.name}` | {kind} | {r['seconds']:.2f} | {status} | {pages} |"
        )
    total = sum(
        i.result["seconds"] for i in [*_state["demos"].values(), *_state["labs"]]
    )
    versions = " · ".join(f"{k} {v}" for k, v in fp.items() if k != "device")
    return "\n".join(
        [
            "# Build report",
            "",
            "This page is written by the build itself (`docs/hooks/executed.py`). It says where every",
            "figure and number on the site was produced and how long each took.",
            "",
            f"- **Built:** {_now()}",
            f"- **Device:** {device_description()}",
            f"- **Versions:** {versions} · MkDocs {importlib.metadata.version('mkdocs')}",
            f"- **Platform:** {platform.platform()}",
            f"- **Executed items:** {len(rows)}; their run time adds up to {total:.1f} s; "
            f"planning and executing took {_state['seconds']:.1f} s of this build.",
            "",
            "A *cached* item was not run again because neither its code, nor any `snippets` module "
            "it imports, nor the versions above, nor the device changed since it was executed.",
            "",
            "| item | output | seconds | status | used on |",
            "| --- | --- | ---: | --- | --- |",
            *rows,
            "",
        ]
    )


# ---------------------------------------------------------------------------------------------
# Command line: `worker` (used by the build) and `check PAGE...` (for authors)
# ---------------------------------------------------------------------------------------------


def check(pages: list[str]) -> int:
    """Execute the demos of the given pages, ignoring the cache, and print what they returned."""
    fingerprint = environment_fingerprint()
    items = []
    for page in pages:
        for ref in sorted(scan_page(Path(page).read_text(encoding="utf-8"))):
            item = Item(ref, demo_source(ref), [page])
            item.key = "check-" + item_key(item, fingerprint)
            items.append(item)
    try:
        execute_demos(items)
    except ExecutionError as err:
        print(err, file=sys.stderr)
        return 1
    for item in items:
        r = item.result
        print(f"{item.name}: {r['kind']} in {r['seconds']:.2f} s")
        item.cache_path.unlink()
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "worker":
        sys.exit(worker(sys.argv[2]))
    if len(sys.argv) >= 3 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2:]))
    print(__doc__)
    sys.exit(2)
