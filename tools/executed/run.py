"""Execution: stale items run in child processes, with a time limit, in two phases.

First the untimed demos in one worker and, at the same time, each lab in its own process
(labs report CPU time per training step, which other processes on other cores do not
inflate). Then the timed demos, alone, so that nothing else the build executes runs while
they measure. A demo or lab cell past AE_ITEM_TIMEOUT, a failure, or SIGTERM stops every
child and the build, naming what failed, and leaves nothing half-written in the cache.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ExecutionError, info
from .plan import Item, Project, read_record, write_record
from .worker import now

TIMEOUT_ENV = "AE_ITEM_TIMEOUT"  # seconds one demo or one lab cell may take
PROFILER_NOISE = re.compile(r"^USDT:.*profiler_(?:start|stop)\n", re.M)


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


@contextlib.contextmanager
def terminated_cleanly() -> Iterator[None]:
    """Turn SIGTERM into an exception while the block runs, so that `finally` clauses
    stop the children and remove their files; restore the previous handler after."""

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


class ChildRun:
    """One child process of the build (`python -m executed.<module> ...`)."""

    def __init__(self, argv: list[str], project: Project, files: list[Path]) -> None:
        self.argv, self.root = argv, project.root
        self.files = files  # removed when the run ends, however it ends
        self.errors = tempfile.TemporaryFile("w+")  # noqa: SIM115, closed by stop()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(self.root), "PYTHONHASHSEED": "0"}
        env["MPLBACKEND"] = "Agg"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *self.argv],
            cwd=self.root,
            env=env,
            stderr=self.errors,
            text=True,
            start_new_session=True,  # its own process group, stopped as a whole
        )

    def overdue(self, limit: float) -> str:
        """Why the run must be stopped now, or ''."""
        return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for path in self.files:
            path.unlink(missing_ok=True)
        self.errors.seek(0)
        # Without the two lines that PyTorch's profiler prints each time snippets.measure
        # records CPU memory.
        self.messages = PROFILER_NOISE.sub("", self.errors.read())
        self.errors.close()
        sys.stderr.write(self.messages)  # passed on: warnings, a failing lab's cell

    def collect(self) -> None:
        raise NotImplementedError


class DemoRun(ChildRun):
    """A worker that runs demos one after the other; it names the one it is running in a
    progress file, so that a demo past AE_ITEM_TIMEOUT can be named and stopped."""

    def __init__(
        self,
        items: list[Item],
        project: Project,
        tag: str,
        threads: int = 0,
    ) -> None:
        project.cache_dir.mkdir(parents=True, exist_ok=True)
        jobs = project.cache_dir / f"jobs-{os.getpid()}-{tag}.json"
        self.progress = jobs.with_suffix(".running")
        self.project = project
        jobs.write_text(
            json.dumps([{"ref": i.name, "out": str(i.record(project))} for i in items])
        )
        self.items = {i.name: i for i in items}
        argv = ["executed.worker", str(jobs), str(self.progress), str(threads)]
        super().__init__(argv, project, [jobs, self.progress])

    def overdue(self, limit: float) -> str:
        try:
            ref, started = self.progress.read_text().split("\t")
        except (OSError, ValueError):
            return ""
        if time.time() - float(started) <= limit:
            return ""
        return (
            f"{self.items[ref].describe()} ran for more than {limit:g} s "
            f"({TIMEOUT_ENV}) and was stopped"
        )

    def collect(self) -> None:
        """Take every result; raise one error that names every demo that failed."""
        failures = []
        for item in self.items.values():
            path = item.record(self.project)
            if not path.exists():
                failures.append(
                    f"{item.describe()} produced no result; the worker exited with "
                    f"{self.proc.returncode}"
                )
                continue
            result = read_record(path)
            if result is None or "error" in result:
                path.unlink(missing_ok=True)
                detail = result["error"] if result else "an unreadable result"
                failures.append(f"{item.describe()} failed:\n{detail}")
                continue
            item.result, item.status = result, "executed"
        if failures:
            raise ExecutionError("\n\n".join(failures))


class LabRun(ChildRun):
    """A child that executes one lab into a notebook (`python -m executed.lab`)."""

    def __init__(self, item: Item, project: Project) -> None:
        self.item, self.project = item, project
        self.relative = Path("labs") / item.key / Path(item.name).with_suffix(".ipynb")
        out = project.cache_dir / self.relative
        super().__init__(
            ["executed.lab", str(item.source), str(out), item.name], project, []
        )

    def start(self) -> None:
        self.started = time.perf_counter()
        super().start()

    def collect(self) -> None:
        if self.proc.returncode:
            message = self.messages.strip()
            raise ExecutionError(message[-4000:] or f"lab {self.item.name} failed")
        self.item.result = {
            "name": self.item.name,
            "kind": "lab",
            "value": self.relative.as_posix(),  # relative to the cache: nothing absolute
            "seconds": time.perf_counter() - self.started,
            "produced": now(),
            "measured": True,
        }
        write_record(self.item.record(self.project), self.item.result)
        self.item.status = "executed"


def run_together(runs: list[ChildRun], at_once: int = 0) -> None:
    """Run child processes, at most `at_once` at a time (all, if 0), starting them in
    the order given; on a timeout, a failure or SIGTERM, stop them all and raise,
    naming what failed."""
    limit = item_timeout()
    waiting, running = list(runs), []
    try:
        with terminated_cleanly():
            while waiting or running:
                while waiting and len(running) < (at_once or len(runs)):
                    running.append(waiting.pop(0))
                    running[-1].start()
                time.sleep(0.2)
                for run in list(running):
                    why = run.overdue(limit)
                    if why:
                        raise ExecutionError(why)
                    if run.proc.poll() is not None:
                        running.remove(run)
                        run.stop()
                        run.collect()
    finally:
        for run in runs:
            if not run.errors.closed:
                run.stop()


def execute(stale: list[Item], project: Project) -> None:
    """Execute stale items: untimed demos beside the labs, then timed demos alone."""
    demos = [i for i in stale if not i.is_lab]
    untimed = [i for i in demos if not is_timed(i)]
    timed = [i for i in demos if is_timed(i)]
    # The labs first, as many at once as there are cores (their training is the longest
    # part of a cold build), then the untimed demos as soon as a core is free: a third
    # process on two cores would slow the labs more than it gains. The worker uses one
    # thread, always, so that a result does not depend on what else was stale.
    first: list[ChildRun] = [LabRun(i, project) for i in stale if i.is_lab]
    if untimed:
        first.append(DemoRun(untimed, project, "untimed", threads=1))
    started = time.perf_counter()
    if first:
        run_together(first, at_once=os.cpu_count() or 1)
        labs = len(first) - bool(untimed)
        seconds = time.perf_counter() - started
        info(f"{len(untimed)} untimed demos and {labs} labs in {seconds:.1f} s")
    started = time.perf_counter()
    if timed:
        run_together([DemoRun(timed, project, "timed")])
        seconds = time.perf_counter() - started
        info(f"{len(timed)} timed demos, alone, in {seconds:.1f} s")
