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
import contextlib
import dataclasses
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import posixpath
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar


def info(message: str) -> None:
    print(f"INFO    -  [executed] {message}", file=sys.stderr)


def warn(message: str) -> None:
    """A warning that does not fail a strict build: the build repairs what it reports."""
    print(f"WARNING -  [executed] {message}", file=sys.stderr)


ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("AE_CACHE_DIR", ROOT / ".cache" / "executed"))
FIGURE_DIR = "assets/figures"
REPORT_URI = "appendix/build-report.md"
LAB_DIR = "labs/"

FIGURE_RE = re.compile(r"!\[(?P<alt>[^\]]*)\]\(exec:(?P<ref>[a-z_][\w]*\.[a-z_]\w*)\)")
VALUE_RE = re.compile(r"\{\{\s*(?P<ref>[a-z_]\w*\.[a-z_]\w*)(?:\.(?P<key>\w+))?\s*\}\}")
PROFILER_NOISE = re.compile(r"^USDT:.*profiler_(?:start|stop)\n", re.M)
SVG_DATE_RE = re.compile(r"\s*<dc:date>.*?</dc:date>", re.S)
LEFTOVER_RE = re.compile(r"\{\{.{0,60}?\}\}|\{\{|exec:[\w.-]*")
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
    """The cache key: the item, the versions and device, the machinery's own source
    (a change of how results are checked or formatted makes them stale), and every
    `snippets` module the item depends on."""
    h = hashlib.sha256()
    h.update(item.name.encode())
    h.update(hashlib.sha256(Path(__file__).read_bytes()).digest())
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


TIMEOUT_ENV = "AE_ITEM_TIMEOUT"  # seconds one demo or one lab cell may take


def item_timeout() -> float:
    """The time limit of one demo or lab cell: AE_ITEM_TIMEOUT seconds, 600 by default."""
    raw = os.environ.get(TIMEOUT_ENV, "600")
    try:
        value = float(raw)
    except ValueError:
        raise ExecutionError(
            f"{TIMEOUT_ENV} must be a number of seconds, not {raw!r}"
        ) from None
    if value <= 0:
        raise ExecutionError(f"{TIMEOUT_ENV} must be positive, not {raw!r}")
    return value


def _describe(item: Item) -> str:
    module, func = item.name.split(".")
    return (
        f"page {', '.join(item.pages)}: demo {item.name} "
        f"(snippets/demos/{module}.py, function {func})"
    )


@contextlib.contextmanager
def _terminated_cleanly() -> Iterator[None]:
    """Turn SIGTERM into an exception while the block runs, so that `finally` clauses
    stop the worker and remove its files; restore the previous handler after."""

    def stop(signum: int, frame: Any) -> None:
        raise ExecutionError("the build was stopped by SIGTERM")

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def is_timed(item: Item) -> bool:
    """A lab (it prints training times) or a demo decorated @measured, read from its source."""
    if item.is_lab:
        return True
    func = item.name.split(".")[1]
    try:
        tree = ast.parse(item.source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == func:
            return any(
                (isinstance(d, ast.Name) and d.id == "measured")
                or (isinstance(d, ast.Attribute) and d.attr == "measured")
                for d in node.decorator_list
            )
    return False


class _Run:
    """One child process of the build: a demo worker or a lab runner."""

    def __init__(self, argv: list[str], root: Path, files: list[Path]) -> None:
        self.files = files  # removed when the run ends, however it ends
        self.errors = tempfile.TemporaryFile("w+")  # noqa: SIM115, closed by stop()
        env = {**os.environ, "PYTHONPATH": str(root), "PYTHONHASHSEED": "0"}
        env["MPLBACKEND"] = "Agg"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *argv],
            cwd=root,
            env=env,
            stderr=self.errors,
            text=True,
            start_new_session=True,  # its own process group, stopped as a whole
        )

    def overdue(self, limit: float) -> str:
        """Why the run must be stopped now, or ''."""
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for path in self.files:
            path.unlink(missing_ok=True)
        self.errors.seek(0)
        # Pass the child's messages on, without the two lines that PyTorch's profiler
        # prints each time snippets.measure records CPU memory.
        sys.stderr.write(PROFILER_NOISE.sub("", self.errors.read()))
        self.errors.close()


class _DemoRun(_Run):
    """A worker that runs demos one after the other; it names the one it is running in a
    progress file, so that a demo past AE_ITEM_TIMEOUT can be named and stopped."""

    def __init__(self, items: list[Item], root: Path, tag: str) -> None:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        jobs = CACHE_DIR / f"jobs-{os.getpid()}-{tag}.json"
        self.progress = jobs.with_suffix(".running")
        jobs.write_text(
            json.dumps([{"ref": i.name, "out": str(i.cache_path)} for i in items])
        )
        self.items = {i.name: i for i in items}
        super().__init__(
            ["worker", str(jobs), str(self.progress)], root, [jobs, self.progress]
        )

    def overdue(self, limit: float) -> str:
        try:
            ref, started = self.progress.read_text().split("\t")
        except (OSError, ValueError):
            return ""
        if time.time() - float(started) <= limit:
            return ""
        return f"{_describe(self.items[ref])} ran for more than {limit:g} s ({TIMEOUT_ENV}) and was stopped"

    def collect(self) -> None:
        """Take every result; raise one error that names every demo that failed."""
        failures = []
        for item in self.items.values():
            if not item.cache_path.exists():
                failures.append(
                    f"{_describe(item)} produced no result; the worker exited with "
                    f"{self.proc.returncode}"
                )
                continue
            result = _read_json(item.cache_path)
            if result is None or "error" in result:
                item.cache_path.unlink(missing_ok=True)
                detail = result["error"] if result else "an unreadable result"
                failures.append(f"{_describe(item)} failed:\n{detail}")
                continue
            item.result, item.status = result, "executed"
        if failures:
            raise ExecutionError("\n\n".join(failures))


class _LabRun(_Run):
    """A child that executes one lab into a notebook (`executed.py lab`)."""

    def __init__(self, item: Item, root: Path) -> None:
        self.item = item
        self.relative = Path("labs") / item.key / Path(item.name).with_suffix(".ipynb")
        self.started = time.perf_counter()
        super().__init__(
            ["lab", str(item.source), str(CACHE_DIR / self.relative), item.name],
            root,
            [],
        )

    def collect(self) -> None:
        if self.proc.returncode:
            self.errors.seek(0)
            message = self.errors.read().strip().splitlines()
            raise ExecutionError(
                "\n".join(m for m in message if not PROFILER_NOISE.match(m + "\n"))[
                    -4000:
                ]
                or f"lab {self.item.name} failed"
            )
        self.item.result = {
            "name": self.item.name,
            "kind": "lab",
            "value": self.relative.as_posix(),  # relative to the cache: nothing absolute
            "seconds": time.perf_counter() - self.started,
            "produced": _now(),
            "measured": True,
        }
        _write_json(self.item.cache_path, self.item.result)
        self.item.status = "executed"


def run_together(runs: list[Any]) -> None:
    """Wait for child runs that execute at the same time; on a timeout, a failure or
    SIGTERM, stop them all and raise, naming what failed."""
    limit = item_timeout()
    try:
        with _terminated_cleanly():
            pending = list(runs)
            while pending:
                time.sleep(0.2)
                for run in list(pending):
                    why = run.overdue(limit)
                    if why:
                        raise ExecutionError(why)
                    if run.proc.poll() is not None:
                        pending.remove(run)
                        run.stop()
                        run.collect()
    finally:
        for run in runs:
            if not run.errors.closed:
                run.stop()


def execute(stale: list[Item], root: Path = ROOT) -> None:
    """Execute stale items in two phases.

    First, the untimed demos in one worker and, at the same time, each lab in its own
    process (labs report CPU time per training step, which other processes on other
    cores do not inflate). Then the timed demos, alone, so that nothing else the build
    executes runs while they measure.
    """
    demos = [i for i in stale if not i.is_lab]
    untimed = [i for i in demos if not is_timed(i)]
    timed = [i for i in demos if is_timed(i)]
    first: list[Any] = [_LabRun(i, root) for i in stale if i.is_lab]
    if untimed:
        first.insert(0, _DemoRun(untimed, root, "untimed"))
    started = time.perf_counter()
    if first:
        run_together(first)
        info(
            f"{len(untimed)} untimed demos and {len(first) - bool(untimed)} labs in {time.perf_counter() - started:.1f} s"
        )
    started = time.perf_counter()
    if timed:
        run_together([_DemoRun(timed, root, "timed")])
        info(
            f"{len(timed)} timed demos, alone, in {time.perf_counter() - started:.1f} s"
        )


def execute_demos(items: list[Item], root: Path = ROOT) -> None:
    """Run demos (for `check`): untimed ones first, then timed ones, alone."""
    execute(items, root)


def _read_json(path: Path) -> dict[str, Any] | None:
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


def _run_notebook(notebook: Any, name: str) -> None:
    """Execute every cell in a fresh kernel, reached over local sockets in a temporary
    folder (over TCP, the kernel warns that its traffic is unencrypted).

    The kernel manager is asynchronous, so that nbclient's per-cell timeout fires (with a
    blocking client it never does); a cell past AE_ITEM_TIMEOUT stops the build.
    """
    import nbclient
    from jupyter_client.manager import AsyncKernelManager
    from nbclient.util import run_sync

    limit = item_timeout()
    current = [0]  # index of the cell being executed

    def starting(cell: Any, cell_index: int) -> None:
        current[0] = cell_index

    with tempfile.TemporaryDirectory() as sockets:
        kernel = AsyncKernelManager(
            kernel_name="python3", transport="ipc", ip=f"{sockets}/kernel"
        )
        client = nbclient.NotebookClient(
            notebook,
            km=kernel,
            timeout=limit,
            on_cell_start=starting,
            resources={"metadata": {"path": os.getcwd()}},  # the project root
        )
        try:
            client.execute()
        except nbclient.exceptions.CellTimeoutError:
            raise ExecutionError(
                f"lab {name}: cell {current[0]} ran for more than {limit:g} s "
                f"({TIMEOUT_ENV}) and was stopped"
            ) from None
        finally:
            if kernel.has_kernel:  # the kernel is ours to stop
                run_sync(kernel.shutdown_kernel)(now=True)


def lab_main(source: str, out: str, name: str) -> int:
    """Runs in a child process: execute a jupytext percent script into a notebook.

    A cell that raises or runs past AE_ITEM_TIMEOUT fails the build, naming lab and cell.
    """
    import jupytext
    import nbclient
    import nbformat

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for index, cell in enumerate(
        notebook.cells
    ):  # stable ids: jupytext draws random ones
        cell["id"] = f"cell-{index}"
    try:
        with tempfile.TemporaryDirectory() as rc:
            # Stable SVG ids in every figure the kernel draws, whatever the lab sets.
            Path(rc, "matplotlibrc").write_text("svg.hashsalt: attention-executed\n")
            os.environ["MATPLOTLIBRC"] = rc
            _run_notebook(notebook, name)
    except nbclient.exceptions.CellExecutionError as err:
        print(f"lab {name} failed in a cell:\n{err}", file=sys.stderr)
        return 1
    except ExecutionError as err:
        print(err, file=sys.stderr)
        return 1
    for cell in notebook.cells:  # no run-dependent metadata in the published notebook
        cell.get("metadata", {}).pop("execution", None)
        for output in cell.get("outputs", []):
            svg = output.get("data", {}).get("image/svg+xml")
            if isinstance(svg, str):
                output["data"]["image/svg+xml"] = SVG_DATE_RE.sub("", svg)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(notebook), encoding="utf-8")
    return 0


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def worker(jobs_file: str, progress_file: str = "") -> int:
    """Runs in a fresh process: import each demo, seed, call, check, serialise.

    Demos marked @measured run last, after every other demo, so that nothing else the
    build executes runs while they time; each one's `compare` records come back with it.
    Before each demo the process state a demo could change is reset, and after it that
    state is compared: a demo that leaves it changed fails (`_Isolation`).
    """
    sys.path.insert(0, os.getcwd())  # the project root the parent started us in
    import importlib

    from snippets.measure import recording
    from snippets.plotting import Figure, dark_variant
    from snippets.runtime import seed_everything

    def resolve(ref: str) -> Any:
        module_name, func_name = ref.split(".")
        try:
            module = importlib.import_module(f"snippets.demos.{module_name}")
        except Exception:
            return None  # reported when the job runs
        return getattr(module, func_name, None)

    install_data_guards()
    jobs = json.loads(Path(jobs_file).read_text())
    jobs.sort(key=lambda job: bool(getattr(resolve(job["ref"]), "measured", False)))
    if "untimed" in Path(jobs_file).name:
        # Beside the labs, one thread: more threads than cores only wait for each other.
        import torch

        torch.set_num_threads(1)
    isolation = _Isolation(Path(os.getcwd()))
    failed = 0
    for job in jobs:
        module_name, func_name = job["ref"].split(".")
        if progress_file:
            Path(progress_file).write_text(f"{job['ref']}\t{time.time()}")
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"snippets.demos.{module_name}")
            func = getattr(module, func_name, None)
            if func is None:
                raise LookupError(
                    f"snippets/demos/{module_name}.py has no function {func_name}"
                )
            isolation.reset()
            seed_everything(0)
            try:
                with recording() as timings:
                    value = func()
            finally:
                leaks = isolation.leaks()
            if leaks:
                raise RuntimeError(
                    "the demo changed the state of the build: " + "; ".join(leaks)
                )
            seconds = time.perf_counter() - start
            result = {
                "name": job["ref"],
                "seconds": seconds,
                "produced": _now(),
                "measured": bool(getattr(func, "measured", False)),
                "timings": [t.summary() for t in timings],
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


class _Isolation:
    """What a demo may not change: torch's default dtype, the working directory,
    matplotlib's rcParams, the thread count, and the files of the repository."""

    SKIP: ClassVar[set[str]] = {
        ".git",
        ".nox",
        ".cache",
        "node_modules",
        "site",
        "__pycache__",
    }

    def __init__(self, root: Path) -> None:
        import matplotlib
        import torch

        self.root = root
        self.dtype = torch.get_default_dtype()
        self.threads = torch.get_num_threads()
        self.rc = dict(matplotlib.rcParams)
        self.files = self._files()

    def _files(self) -> dict[str, tuple[int, int]]:
        out = {}
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in self.SKIP and not d.startswith(".")]
            for name in names:
                path = Path(folder, name)
                try:
                    st = path.stat()
                except OSError:
                    continue
                out[path.relative_to(self.root).as_posix()] = (
                    st.st_mtime_ns,
                    st.st_size,
                )
        return out

    def reset(self) -> None:
        import matplotlib
        import torch

        torch.set_default_dtype(self.dtype)
        torch.set_num_threads(self.threads)
        os.chdir(self.root)
        matplotlib.rcParams.update(self.rc)

    def leaks(self) -> list[str]:
        """What the last demo left changed, in words; the state is restored after."""
        import matplotlib
        import matplotlib.pyplot as plt
        import torch

        found = []
        if torch.get_default_dtype() != self.dtype:
            found.append(f"torch's default dtype is {torch.get_default_dtype()}")
        if torch.get_num_threads() != self.threads:
            found.append(
                f"torch uses {torch.get_num_threads()} threads, not {self.threads}"
            )
        if Path.cwd() != self.root:
            found.append(f"the working directory is {Path.cwd()}")
        changed = sorted(
            k for k, v in self.rc.items() if _differs(matplotlib.rcParams.get(k), v)
        )
        if changed:
            found.append(f"matplotlib rcParams changed: {', '.join(changed[:5])}")
        now = self._files()
        written = sorted(k for k in now if self.files.get(k) != now[k])
        if written:
            found.append(f"it wrote inside the repository: {', '.join(written[:5])}")
            self.files = now
        plt.close("all")
        self.reset()
        return found


def _differs(a: Any, b: Any) -> bool:
    try:
        return bool(a != b)
    except Exception:  # arrays compare element-wise
        return repr(a) != repr(b)


def _check_figure_finite(fig: Any) -> None:
    """NaN or inf anywhere a figure draws data stops the build: lines, images, meshes,
    collections (scatter, fill_between, error bars), patches and text."""
    import numpy as np
    from matplotlib.collections import Collection
    from matplotlib.image import AxesImage
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.text import Text

    def finite(values: Any) -> bool:
        # matplotlib masks NaN itself (imshow, pcolormesh, scatter): read under the mask.
        # A demo that wants blank cells masks them explicitly, over finite data.
        arr = np.asarray(np.ma.getdata(values), dtype=float)
        return bool(np.isfinite(arr).all())

    from matplotlib.axes import Axes

    for artist in fig.findobj():
        ax = artist.axes if isinstance(getattr(artist, "axes", None), Axes) else None
        where = (
            f"the figure's axes {ax.get_title()!r}" if ax is not None else "the figure"
        )
        data: list[Any] = []
        if isinstance(artist, Line2D):
            data.append(artist.get_xydata())
        elif isinstance(artist, AxesImage):
            data.append(artist.get_array())
        elif isinstance(artist, Collection):
            data.append(artist.get_offsets())
            if artist.get_array() is not None:
                data.append(artist.get_array())
            data += [p.vertices for p in artist.get_paths()]
        elif isinstance(artist, Patch) and ax is not None:
            data.append(artist.get_path().vertices)
            if hasattr(artist, "get_height"):
                data.append([artist.get_height(), artist.get_width()])
        elif isinstance(artist, Text) and artist.get_text():
            _check_text_finite(artist.get_text(), f"a text of {where}")
        for values in data:
            if np.size(values) and not finite(values):
                raise ValueError(
                    f"{where} draws NaN or infinite data ({type(artist).__name__})"
                )


def install_data_guards() -> None:
    """fill_between drops NaN from its polygons before any check could see it: make it
    refuse non-finite input instead (idempotent; the worker calls it once)."""
    import numpy as np
    from matplotlib.axes import Axes

    for name in ("fill_between", "fill_betweenx"):
        original = getattr(Axes, name)
        if getattr(original, "guarded", False):
            continue

        def guarded(self: Any, *args: Any, _original: Any = original, **kw: Any) -> Any:
            for value in [*args[:3], *(kw.get(k) for k in ("x", "y", "y1", "y2"))]:
                if value is None or isinstance(value, str):
                    continue
                arr = np.asarray(np.ma.getdata(value), dtype=float)
                if not np.isfinite(arr).all():
                    raise ValueError(
                        f"the figure's axes {self.get_title()!r} fill between "
                        "NaN or infinite data"
                    )
            return _original(self, *args, **kw)

        guarded.guarded = True  # type: ignore[attr-defined]
        setattr(Axes, name, guarded)


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
            item.result, item.status = _read_json(item.cache_path), "cached"
            if item.result is None:
                item.cache_path.unlink(missing_ok=True)  # corrupt: executed again
            elif item.is_lab and not (CACHE_DIR / item.result["value"]).exists():
                item.result = None
            elif item.result.get("measured") and fresh_timings():
                item.result = None  # the publishing build measures again
        if item.result is None:
            stale.append(item)
    everything = [*demos.values(), *(i for _, i in labs)]
    try:
        execute(stale, ROOT)
    except BaseException:
        for item in stale:
            if item.result is None:
                item.status = "failed or not run"
        raise
    finally:
        _write_json(
            CACHE_DIR / "last-build.json", {i.name: i.status for i in everything}
        )

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
    return files


def on_post_build(config: Any) -> None:
    """After a successful build, remove the cache entries this build made stale: older
    results of the items it used. Entries of items it did not plan (another edition's,
    say) are kept, and so are the labs' notebooks that a kept entry points to."""
    items = [*_state.get("demos", {}).values(), *_state.get("labs", [])]
    keys = {i.name: i.key for i in items}
    if not keys or not CACHE_DIR.is_dir():
        return
    kept_labs = set()
    for path in CACHE_DIR.glob("*.json"):
        if path.name == "last-build.json":
            continue
        record = _read_json(path) or {}
        name = record.get("name")
        if name in keys and keys[name] != path.stem:
            path.unlink(missing_ok=True)
        elif record.get("kind") == "lab":
            kept_labs.add(Path(record["value"]).parts[1])
    for folder in (CACHE_DIR / "labs").glob("*"):
        if folder.name not in kept_labs:
            shutil.rmtree(folder, ignore_errors=True)


on_files.mkdocs_priority = 100  # before mkdocs-jupyter wraps the notebooks


TIMINGS_ENV = "AE_TIMINGS"  # "fresh": re-measure every timed item (the Pages workflow)


def fresh_timings() -> bool:
    """Whether this build measures every timed item again instead of reusing the cache.

    Preview builds reuse cached timings and say so on the page; the publishing build
    (`AE_TIMINGS=fresh nox -s build` in the Pages workflow) measures them all again, in
    the worker's last phase, after everything else has run.
    """
    return os.environ.get(TIMINGS_ENV, "") == "fresh"


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
    declared = scan_page(markdown)

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

    markdown = VALUE_RE.sub(value, FIGURE_RE.sub(figure, markdown))
    check_leftovers(markdown, page.file.src_uri)
    timed = [
        demos[ref]
        for ref in sorted(declared)
        if ref in demos and demos[ref].result.get("timings")
    ]
    return markdown + timing_note(timed, here) if timed else markdown


def check_leftovers(markdown: str, page: str) -> None:
    """A `{{` or `exec:` that survived substitution is a typo in a declaration: stop."""
    found = LEFTOVER_RE.search(markdown)
    if found:
        line = markdown.count("\n", 0, found.start()) + 1
        raise ExecutionError(
            f"page {page}, line {line} of the substituted page: {found.group(0)!r} is not "
            "a declaration the build understands (a typo? declarations look like "
            "{{ module.function }}, {{ module.function.key }} and "
            "![alt](exec:module.function), in lower case)"
        )


def timing_note(items: list[Item], here: str) -> str:
    """A box at the end of a page with timings: where, how and when they were measured."""
    records = [t for item in items for t in item.result["timings"]]
    machines = " and ".join(sorted({t["machine"] for t in records}))
    threads = "/".join(str(n) for n in sorted({t["threads"] for t in records}))
    rounds = sorted({t["rounds"] for t in records})
    loads = [x for t in records for x in t["load"]]
    spread = max(c["spread"] for t in records for c in t["calls"].values())
    when = " and ".join(
        sorted(
            {
                "in this build"
                if i.status == "executed"
                else f"on {i.result['produced']} (reused from the build cache; "
                "the published site measures again)"
                for i in items
            }
        )
    )
    report = posixpath.relpath(REPORT_URI, here or ".")
    n_rounds = f"{rounds[0]}" if len(rounds) == 1 else f"{rounds[0]} to {rounds[-1]}"
    on_cpu = not any(w in machines for w in ("CUDA", "GPU"))
    cpu = (
        f", with {threads} CPU thread{'s' if threads != '1' else ''}" if on_cpu else ""
    )
    return "\n".join(
        [
            "",
            "",
            '!!! info "How the timings on this page were measured"',
            f"    Measured {when}, on {machines}{cpu}. Each comparison calls its "
            f"functions in {n_rounds} interleaved rounds after warm-up, rotating their "
            "order, and keeps every time; a ratio is the median of same-round ratios, "
            "with the exact 95% interval of a median (`snippets/measure.py`). The "
            "1-minute load average, taken before and after each comparison and counting "
            f"the measuring process itself, was {min(loads):.2f} to {max(loads):.2f}, "
            "and the middle half of any call's times spanned at most "
            f"{spread * 100:.0f}% of its median. The "
            f"[build report]({report}) lists every timed item.",
            "",
        ]
    )


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
            *timed_rows(),
        ]
    )


def timed_rows() -> list[str]:
    """The conditions of every timing on the site: one row per `compare` of a timed item."""
    rows = []
    for item in sorted(_state["demos"].values(), key=lambda i: i.name):
        for t in item.result.get("timings", []):
            spread = max(c["spread"] for c in t["calls"].values())
            rows.append(
                f"| `{item.name}` | {t['machine']} | {t['threads']} | {t['rounds']} "
                f"| {t['load'][0]:.2f} → {t['load'][1]:.2f} | {spread * 100:.1f}% "
                f"| {', '.join(t['calls'])} |"
            )
    if not rows:
        return []
    return [
        "## Timed items",
        "",
        "Every timing on the site comes from `snippets.measure.compare`: interleaved rounds "
        "with rotating order, every time kept. Timed items run last, after every other "
        "item of the build, one at a time. *Load* is the 1-minute load average before and "
        "after; *spread* is the largest interquartile range over median among the calls.",
        "",
        "| item | machine | threads | rounds | load | spread | calls |",
        "| --- | --- | ---: | ---: | --- | ---: | --- |",
        *rows,
        "",
    ]


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
        sys.exit(worker(*sys.argv[2:4]))
    if len(sys.argv) == 5 and sys.argv[1] == "lab":
        sys.exit(lab_main(*sys.argv[2:5]))
    if len(sys.argv) >= 3 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2:]))
    print(__doc__)
    sys.exit(2)
