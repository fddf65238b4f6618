"""The worker: `python -m executed.worker JOBS [PROGRESS]`, run by the build in a fresh process.

It imports each demo, seeds, calls it, checks what it returned and writes one record per
demo. Before each demo the process state a demo could change is reset, and after it that
state is compared: a demo that leaves it changed fails (`Isolation`).
"""

from __future__ import annotations

import datetime as dt
import importlib
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, ClassVar

from .checks import (
    check_chinese,
    check_figure_finite,
    check_text_finite,
    format_value,
    install_data_guards,
)
from .plan import write_record


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


class Isolation:
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
        current = self._files()
        written = sorted(k for k in current if self.files.get(k) != current[k])
        if written:
            found.append(f"it wrote inside the repository: {', '.join(written[:5])}")
            self.files = current
        plt.close("all")
        self.reset()
        return found


def _differs(a: Any, b: Any) -> bool:
    try:
        return bool(a != b)
    except Exception:  # arrays compare element-wise
        return repr(a) != repr(b)


def svg(fig: Any, chinese: bool = False) -> str:
    """The figure as SVG text, with no date in it (two builds give the same bytes), its
    text legible at the page's column width."""
    from snippets.plotting import chinese_svg, legible

    buf = io.StringIO()
    legible(fig).savefig(
        buf, format="svg", metadata={"Date": None}, bbox_inches="tight"
    )
    return chinese_svg(buf.getvalue()) if chinese else buf.getvalue()


def serialise(value: Any) -> dict[str, Any]:
    """A demo's return value as the `kind`, `value` (English), `translations` and `kept`
    (the data shown verbatim in every language) of its record, checked: one run gives
    every edition's result (snippets/bilingual.py)."""
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from snippets.bilingual import in_language, kept
    from snippets.plotting import Figure, dark_variant, to_chinese

    if isinstance(value, Figure):
        check_figure_finite(value)
        light = svg(value)
        verbatim = to_chinese(value)
        light_zh = svg(value, chinese=True)  # drawn: the tick labels are final now
        for text in value.findobj(Text):
            if text.get_visible() and text.get_text():
                check_chinese(text.get_text(), verbatim, "a text of the figure")
        plt.close(value)
        return {
            "kind": "figure",
            "value": {"light": light, "dark": dark_variant(light)},
            "translations": {"zh": {"light": light_zh, "dark": dark_variant(light_zh)}},
            "kept": sorted(verbatim),
        }
    if isinstance(value, str):
        check_text_finite(value)
        chinese = in_language(value, "zh")
        check_chinese(chinese, kept(value), "the returned text")
        return {
            "kind": "text",
            "value": in_language(value, "en"),
            "translations": {"zh": chinese},
            "kept": sorted(kept(value)),
        }
    if isinstance(value, dict):
        bad = [k for k, v in value.items() if not isinstance(v, str | int | float)]
        if bad:
            raise TypeError(f"values must be str, int or float; not for keys {bad}")
        shown = {}
        for language in ("en", "zh"):
            shown[language] = {
                k: in_language(v, language) if isinstance(v, str) else format_value(v)
                for k, v in value.items()
            }
        for k, v in value.items():
            check_text_finite(str(v), f"key {k!r}")
            check_chinese(shown["zh"][k], kept(v), f"key {k!r}")
        return {
            "kind": "values",
            "value": shown["en"],
            "translations": {"zh": shown["zh"]},
            "kept": sorted(set().union(*(kept(v) for v in value.values()))),
        }
    raise TypeError(
        f"a demo must return a matplotlib Figure, a str or a dict; got {type(value)}"
    )


def run_demo(ref: str, isolation: Isolation) -> dict[str, Any]:
    """Import, reset, seed, call and check one demo; its record."""
    from snippets.measure import recording
    from snippets.runtime import seed_everything

    module_name, func_name = ref.split(".")
    start = time.perf_counter()
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
    return {
        "name": ref,
        "seconds": time.perf_counter() - start,
        "produced": now(),
        "measured": bool(getattr(func, "measured", False)),
        "timings": [t.summary() for t in timings],
        **serialise(value),
    }


def main(jobs_file: str, progress_file: str = "", threads: int = 0) -> int:
    """Run every job of `jobs_file`, writing each record; 1 if any failed."""
    sys.path.insert(0, os.getcwd())  # the project root the parent started us in
    if threads:  # one, for the untimed demos: see run.execute
        import torch

        torch.set_num_threads(threads)
    install_data_guards()
    # The house style is set when snippets.plotting is imported: before the state that
    # every demo starts from is taken.
    importlib.import_module("snippets.plotting").add_cjk_font()
    isolation = Isolation(Path(os.getcwd()))
    failed = 0
    for job in json.loads(Path(jobs_file).read_text()):
        if progress_file:
            Path(progress_file).write_text(f"{job['ref']}\t{time.time()}")
        try:
            record = run_demo(job["ref"], isolation)
        except Exception:  # reported to the parent, which stops the build
            failed += 1
            record = {"error": traceback.format_exc(limit=-6)}
        write_record(Path(job["out"]), record)
    return 1 if failed else 0


if __name__ == "__main__":
    jobs, progress, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.exit(main(jobs, progress, threads))
