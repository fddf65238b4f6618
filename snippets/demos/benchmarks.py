"""Chapter 14, benchmarks: one sweep, shared by every figure and table of the page."""

from __future__ import annotations

import functools
import platform

import torch

from snippets.benchmarks import (
    Measurement,
    crossover,
    default_lengths,
    differences,
    implementations,
    log_log_slope,
    markdown_table,
    sweep,
)
from snippets.measure import timing_device
from snippets.plotting import COLORS, figure
from snippets.runtime import device, measured

SETTINGS = dict(batch=1, heads=1, d=64, repeats=5, warmup=1, max_seconds=2.0)
SWEEP_THREADS = 1  # on the CPU: steadier timings when other work shares the cores
MAX_TOTAL_SECONDS = (
    60.0  # the whole sweep, so that a busy machine cannot stall the build
)
ALWAYS_UP_TO = 8192  # ... but the lengths up to this one are measured whatever it costs
N_ERROR = 1024  # sequence length of the accuracy column
MARKERS = "osDv^P"


def _max_bytes() -> int:
    """1 GiB on the CPU; a quarter of the GPU's memory on CUDA."""
    if device().type == "cuda":
        return torch.cuda.get_device_properties(device()).total_memory // 4
    return 2**30


@functools.cache
def results() -> tuple[Measurement, ...]:
    """The benchmark, run once per build process; every demo below reads it."""
    return tuple(
        sweep(
            implementations(),
            default_lengths(),
            max_bytes=_max_bytes(),
            max_total_seconds=MAX_TOTAL_SECONDS,
            always_up_to=ALWAYS_UP_TO,
            threads=SWEEP_THREADS if device().type == "cpu" else None,
            **SETTINGS,
        )
    )


def _by_name() -> dict[str, list[Measurement]]:
    out: dict[str, list[Measurement]] = {}
    for m in results():
        out.setdefault(m.name, []).append(m)
    return out


def _plot(field: str, scale: float, ylabel: str, title: str):
    fig, ax = figure(width=6.4, height=4.0)
    for (name, ms), color, marker in zip(
        _by_name().items(), COLORS, MARKERS, strict=False
    ):
        points = [(m.n, getattr(m, field)) for m in ms if getattr(m, field) is not None]
        ax.plot(
            [n for n, _ in points],
            [v * scale for _, v in points],
            marker=marker,
            markersize=4,
            color=color,
            label=name,
        )
    lengths = default_lengths()
    ax.set(xscale="log", yscale="log", xlabel="sequence length $N$", ylabel=ylabel)
    ax.set_title(title, fontsize=9)
    ax.set_xticks(lengths, [f"{n // 1024}K" if n >= 1024 else str(n) for n in lengths])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return fig


@measured
def time_figure():
    return _plot(
        "seconds", 1e3, "median time per call (ms)", f"time — {timing_device()}"
    )


@measured
def memory_figure():
    return _plot(
        "peak_bytes",
        1 / 2**20,
        "peak memory (MiB)",
        f"peak memory — {timing_device()}",
    )


@measured
def time_table() -> str:
    return markdown_table(list(results()), "seconds", lambda s: f"{s * 1e3:.3g}")


@measured
def memory_table() -> str:
    return markdown_table(list(results()), "peak_bytes", lambda b: f"{b / 2**20:.3g}")


def environment() -> str:
    s = SETTINGS
    return (
        f"**Measured on** {timing_device()} · PyTorch {torch.__version__} · "
        + (
            f"{torch.get_num_threads()} CPU threads · "
            if device().type == "cuda"
            else ""
        )
        + f"Python {platform.python_version()} · "
        f"batch {s['batch']}, {s['heads']} head, $d = {s['d']}$, float32, forward pass "
        f"without gradients · median of {s['repeats']} calls after {s['warmup']} "
        f"warm-up · skipped when predicted over {s['max_seconds']:g} s per call or "
        f"{_max_bytes() / 2**30:.3g} GiB."
    )


def _crossing(name: str, baseline: str) -> str:
    """Table form: '1,024', 'not up to 16,384' or '—' (never measured together)."""
    first, top = crossover(list(results()), name, baseline)
    if top is None:
        return "—"
    if first is None:
        return f"not up to {top:,}"
    return f"{first:,}"


def _crossing_phrase(name: str, baseline: str) -> str:
    """Prose form, true whatever the machine measured."""
    first, top = crossover(list(results()), name, baseline)
    if top is None:
        return "at no length where both were measured"
    if first is None:
        return f"at no measured length up to $N$ = {top:,}"
    if first == top:
        return f"only at the longest length both ran, $N$ = {top:,}"
    return f"from $N$ = {first:,} on (measured up to $N$ = {top:,})"


@measured
def summary_table() -> str:
    errors = {k: rel for k, (_, rel) in differences(implementations(), N_ERROR).items()}
    impls = {i.name: i for i in implementations()}
    names = list(impls)
    dense, fused = names[0], names[1]
    lines = [
        "| implementation | computes | relative error at "
        f"$N$ = {N_ERROR:,} | time grows as $N^p$, $p =$ | memory $p =$ "
        "| longest $N$ measured | faster than dense from $N =$ "
        "| faster than PyTorch fused from $N =$ |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, ms in _by_name().items():
        done = [m for m in ms if m.seconds is not None]
        tail = done[-3:]  # the three longest lengths, where the leading term dominates
        p_time = p_mem = "—"
        if len(tail) == 3:
            p_time = f"{log_log_slope([(m.n, m.seconds) for m in tail]):.2f}"
            p_mem = f"{log_log_slope([(m.n, float(m.peak_bytes)) for m in tail]):.2f}"
        vs_dense = "—" if name == dense else _crossing(name, dense)
        vs_fused = "—" if name == fused else _crossing(name, fused)
        lines.append(
            f"| {name} | {impls[name].computes} | {errors[name]:.1e} | {p_time} "
            f"| {p_mem} | {done[-1].n:,} | {vs_dense} | {vs_fused} |"
        )
    return "\n".join(lines)


def _ratio(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


@measured
def headline() -> dict[str, str]:
    """Numbers and phrases the prose quotes: lengths, crossovers and memory ratios."""
    by_name = _by_name()
    names = list(by_name)
    dense = names[0]
    dense_done = [m for m in by_name[dense] if m.seconds is not None]
    n_dense = dense_done[-1].n
    at = {m.name: m for m in results() if m.n == n_dense}
    skipped = [m for m in by_name[dense] if m.skipped]
    values: dict[str, str] = {
        "n_min": f"{default_lengths()[0]:,}",
        "always_up_to": f"{ALWAYS_UP_TO:,}",
        "n_max": f"{default_lengths()[-1]:,}",
        "n_dense": f"{n_dense:,}",
        "dense_mib": f"{at[dense].peak_bytes / 2**20:.0f}",
        "dense_stop": (
            f"At $N$ = {skipped[0].n:,} the sweep skipped it ({skipped[0].skipped})."
            if skipped
            else "It ran at every length of the sweep."
        ),
    }
    exact = names[:3]  # dense, fused, tiled
    n_exact = max(
        n
        for n in {m.n for m in results()}
        if all(x.seconds is not None for x in results() if x.n == n and x.name in exact)
    )
    at_exact = [m for m in results() if m.n == n_exact and m.name in exact]
    values["n_exact"] = f"{n_exact:,}"
    values["fastest_exact"] = min(at_exact, key=lambda m: m.seconds).name
    values["lightest_exact"] = min(at_exact, key=lambda m: m.peak_bytes).name
    keys = ["fused", "tiled", "window", "performer", "reformer"]
    labels = ["PyTorch's fused function", "the tiled loop", "the sliding window"]
    labels += ["the Performer", "Reformer"]
    measured_at, missing = [], []
    for key, name, label in zip(keys, names[1:], labels, strict=True):
        m = at[name]
        if m.peak_bytes:
            measured_at.append(
                f"{label} {_ratio(at[dense].peak_bytes / m.peak_bytes)}×"
            )
        else:
            missing.append(label)
        values[f"{key}_vs_dense"] = _crossing_phrase(name, dense)
        values[f"{key}_vs_fused"] = _crossing_phrase(name, names[1])
        done = [x for x in by_name[name] if x.seconds is not None]
        values[f"{key}_top"] = f"{done[-1].n:,}"
    sentence = (
        "At that length the others needed less memory than dense attention by these "
        "factors: " + ", ".join(measured_at) + "."
        if measured_at
        else "No other implementation was measured at that length."
    )
    if missing:
        sentence += f" Not measured there: {', '.join(missing)}."
    values["memory_sentence"] = sentence
    return values
