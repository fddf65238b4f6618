"""Chapter 14, benchmarks: one sweep, shared by every figure and table of the page."""

from __future__ import annotations

import functools
import platform

import torch

from snippets.benchmarks import (
    Implementation,
    Measurement,
    crossover,
    default_lengths,
    differences,
    implementations,
    markdown_table,
    sweep,
)
from snippets.measure import (
    check_scaling,
    fault_evidence,
    fmt_ratio,
    log_log_slope,
    timing_device,
)
from snippets.plotting import COLORS, Figure, figure
from snippets.runtime import device, measured

SETTINGS = dict(batch=1, heads=1, d=64, rounds=6, warmup=1, max_seconds=0.5)
SWEEP_THREADS = 1  # on the CPU: steadier timings when other work shares the cores
MAX_TOTAL_SECONDS = (
    60.0  # the whole sweep, so that a busy machine cannot stall the build
)
ALWAYS_UP_TO = 8192  # ... but the lengths up to this one are measured whatever it costs
FIT_POINTS = 5  # growth exponents are fitted over each line's longest 5 lengths
N_ERROR = 1024  # sequence length of the accuracy columns
SCALES = (0.25, 1.0)  # standard deviations of q and k for the accuracy columns
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


def _done(name: str) -> list[Measurement]:
    return [m for m in results() if m.name == name and m.seconds is not None]


def _impls() -> dict[str, Implementation]:
    return {i.name: i for i in implementations()}


def _name(key: str) -> str:
    """The implementation's full name from the start of it: 'dense', 'Performer', ..."""
    (name,) = [n for n in _impls() if n.startswith(key)]
    return name


def _plot(field: str, scale: float, ylabel: str) -> Figure:
    fig, ax = figure(width=6.4, height=4.0)
    for name, color, marker in zip(_impls(), COLORS, MARKERS, strict=False):
        points = [(m.n, getattr(m, field)) for m in _done(name)]
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
    ax.set_xticks(lengths, [f"{n // 1024}K" if n >= 1024 else str(n) for n in lengths])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return fig


@measured
def time_figure() -> Figure:
    return _plot("seconds", 1e3, "median time per call (ms)")


@measured
def memory_figure() -> Figure:
    return _plot("peak_bytes", 1 / 2**20, "peak memory (MiB)")


def _number(x: float) -> str:
    """One format for a column of measured numbers: 3 significant digits, no exponent."""
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if x >= 0.001 else f"{x:.1e}"


@measured
def time_table() -> str:
    return markdown_table(list(results()), "seconds", lambda s: _number(s * 1e3))


@measured
def memory_table() -> str:
    return markdown_table(list(results()), "peak_bytes", lambda b: _number(b / 2**20))


@measured
def environment() -> str:
    s = SETTINGS
    return (
        f"**Measured on** {timing_device(SWEEP_THREADS)} · PyTorch {torch.__version__} · "
        f"Python {platform.python_version()} · batch {s['batch']}, {s['heads']} head, "
        f"$d_k = {s['d']}$, float32, forward pass without gradients · at each length the "
        f"implementations run in {s['rounds']} interleaved rounds after {s['warmup']} "
        f"warm-up round · skipped when predicted over {s['max_seconds']:g} s per call or "
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


def _fault_evidence(name: str) -> str:
    last = _done(name)[-1]
    return fault_evidence(name, last.page_faults, last.n, last.seconds)


@functools.cache
def _fits() -> dict[str, tuple[str, str, str]]:
    """name -> (measured time exponent, counted exponent, memory exponent), as text.

    The build stops if a measured exponent is more than 0.5 from the count's, unless the
    page-fault count explains it.
    """
    out = {}
    d = SETTINGS["d"]
    for name, impl in _impls().items():
        done = _done(name)
        sizes = [m.n for m in done]
        check = check_scaling(
            f"chapter 14, {name}",
            sizes,
            [m.times for m in done],
            [impl.multiply_adds(n, d) for n in sizes],
            why=_fault_evidence(name),
        )
        tail = done[-FIT_POINTS:]
        memory = log_log_slope([m.n for m in tail], [float(m.peak_bytes) for m in tail])
        fit = check.fit
        out[name] = (
            f"{fit.exponent:.2f} [{fit.low:.2f}, {fit.high:.2f}] "
            f"({check.sizes[0]:,}–{check.sizes[-1]:,})",
            f"{check.predicted:.2f}",
            f"{memory:.2f}",
        )
    return out


@measured
def summary_table() -> str:
    errors = [
        {
            k: rel
            for k, (_, rel) in differences(implementations(), N_ERROR, scale=s).items()
        }
        for s in SCALES
    ]
    dense, fused = _name("dense"), _name("PyTorch fused")
    lines = [
        "| implementation | computes "
        + "".join(f"| error, $\\sigma = {s:g}$ " for s in SCALES)
        + "| time $\\propto N^p$: $p$ measured [95%] | $p$ of the model | memory $p$ "
        "| longest $N$ | faster than dense from $N =$ | faster than fused from $N =$ |",
        "| --- | --- |" + " ---: |" * (len(SCALES) + 6),
    ]
    for name, impl in _impls().items():
        p_time, p_count, p_mem = _fits()[name]
        vs_dense = "—" if name == dense else _crossing(name, dense)
        vs_fused = "—" if name == fused else _crossing(name, fused)
        errs = "".join(f"| {e[name]:.1e} " for e in errors)
        lines.append(
            f"| {name} | {impl.computes} {errs}| {p_time} | {p_count} | {p_mem} "
            f"| {_done(name)[-1].n:,} | {vs_dense} | {vs_fused} |"
        )
    return "\n".join(lines)


def _exact_fits() -> str:
    """The fused function's and the tiled loop's exponents beside their model's."""
    fits = _fits()
    fused, tiled = _name("PyTorch fused"), _name("tiled")
    return (
        f"Measured, the fused function's exponent was {fits[fused][0]} against "
        f"{fits[fused][1]} for its model, and the tiled loop's {fits[tiled][0]} against "
        f"{fits[tiled][1]}."
    )


def _dense_growth() -> str:
    """What the dense function's exponent says against its count, with the evidence."""
    dense = _name("dense")
    done = _done(dense)
    sizes = [m.n for m in done]
    check = check_scaling(
        "chapter 14, dense",
        sizes,
        [m.times for m in done],
        [_impls()[dense].multiply_adds(n, SETTINGS["d"]) for n in sizes],
        why=_fault_evidence(dense),
    )
    evidence = _fault_evidence(dense)
    if check.fit.low <= check.predicted:
        return (
            "Our dense function's exponent is consistent with its count in this build "
            f"({check})."
        )
    if not evidence:
        return (
            f"Our dense function grows somewhat faster than its count ({check}), within "
            "the band the build allows."
        )
    return (
        f"Our dense function grows faster than its count ({check}), and the build "
        f"explains why with a second measurement: {evidence}."
    )


@measured
def headline() -> dict[str, str]:
    """Numbers and phrases the prose quotes: lengths, crossovers and memory ratios."""
    dense, fused = _name("dense"), _name("PyTorch fused")
    n_dense = _done(dense)[-1].n
    at = {m.name: m for m in results() if m.n == n_dense}
    skipped = [m for m in results() if m.name == dense and m.skipped]
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
        "fit_points": str(FIT_POINTS),
        "sigma_small": f"{SCALES[0]:g}",
        "dense_growth": _dense_growth(),
        "exact_fits": _exact_fits(),
        "fused_faults": f"{_done(fused)[-1].page_faults:,}"
        if _done(fused)[-1].page_faults is not None
        else "not counted",
        "n_faults": f"{_done(fused)[-1].n:,}",
    }
    exact = [dense, fused, _name("tiled")]
    n_exact = max(
        n
        for n in {m.n for m in results()}
        if all(x.seconds is not None for x in results() if x.n == n and x.name in exact)
    )
    at_exact = [m for m in results() if m.n == n_exact and m.name in exact]
    values["n_exact"] = f"{n_exact:,}"
    values["fastest_exact"] = min(at_exact, key=lambda m: m.seconds).name
    values["lightest_exact"] = min(at_exact, key=lambda m: m.peak_bytes).name
    keys = {
        "fused": ("PyTorch fused", "PyTorch's fused function"),
        "tiled": ("tiled", "the tiled loop"),
        "window": ("sliding window", "the sliding window"),
        "performer": ("Performer", "the Performer"),
        "reformer": ("Reformer", "Reformer"),
    }
    measured_at, missing = [], []
    for key, (start, label) in keys.items():
        name = _name(start)
        m = at.get(name)
        if m is not None and m.peak_bytes:
            ratio = at[dense].peak_bytes / m.peak_bytes
            measured_at.append(f"{label} {fmt_ratio(ratio)}×")
        else:
            missing.append(label)
        values[f"{key}_vs_dense"] = _crossing_phrase(name, dense)
        values[f"{key}_vs_fused"] = _crossing_phrase(name, fused)
        values[f"{key}_top"] = f"{_done(name)[-1].n:,}"
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
