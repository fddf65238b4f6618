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
    sweep,
    sweep_table,
)
from snippets.measure import (
    ScalingCheck,
    check_scaling,
    fault_evidence,
    fmt_ratio,
    log_log_slope,
    timing_device,
)
from snippets.plotting import COLORS, Figure, figure, markdown_table, significant
from snippets.runtime import device, measured

_SETTINGS = dict(batch=1, heads=1, d=64, rounds=6, warmup=1, max_seconds=0.25)
_SWEEP_THREADS = 1  # on the CPU: steadier timings when other work shares the cores
# The whole sweep's limit, so that a busy machine cannot stall the build ...
_MAX_TOTAL_SECONDS = 60.0
# ... but the lengths up to this one are measured whatever it costs.
_ALWAYS_UP_TO = 4096
_FIT_POINTS = 5  # growth exponents are fitted over each line's longest 5 lengths
_N_ERROR = 1024  # sequence length of the accuracy columns
# standard deviations of q and k for the accuracy columns
_SIGMA_SMALL, _SIGMA_LARGE = 0.25, 1.0
_SCALES = (_SIGMA_SMALL, _SIGMA_LARGE)
_MARKERS = "osDv^P"


def _max_bytes() -> int:
    """1 GiB on the CPU; a quarter of the GPU's memory on CUDA."""
    if device().type == "cuda":
        return torch.cuda.get_device_properties(device()).total_memory // 4
    return 2**30


@functools.cache
def _results() -> tuple[Measurement, ...]:
    """The benchmark, run once per build process; every demo below reads it."""
    return tuple(
        sweep(
            implementations(),
            default_lengths(),
            max_bytes=_max_bytes(),
            max_total_seconds=_MAX_TOTAL_SECONDS,
            always_up_to=_ALWAYS_UP_TO,
            threads=_SWEEP_THREADS if device().type == "cpu" else None,
            **_SETTINGS,
        )
    )


def _done(name: str) -> list[Measurement]:
    return [m for m in _results() if m.name == name and m.seconds is not None]


def _longest(name: str) -> Measurement:
    """`name`'s measurement at the longest length it ran."""
    return max(_done(name), key=lambda m: m.n)


def _impls() -> dict[str, Implementation]:
    return {i.name: i for i in implementations()}


def _name(key: str) -> str:
    """The implementation's full name from the start of it: 'dense', 'Performer', ..."""
    (name,) = [n for n in _impls() if n.startswith(key)]
    return name


def _plot(field: str, scale: float, ylabel: str) -> Figure:
    fig, ax = figure(width=6.4, height=4.0)
    for name, color, marker in zip(_impls(), COLORS, _MARKERS, strict=False):
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


@measured
def time_table() -> str:
    return sweep_table(list(_results()), "seconds", lambda s: significant(s * 1e3))


@measured
def memory_table() -> str:
    return sweep_table(list(_results()), "peak_bytes", lambda b: significant(b / 2**20))


@measured
def environment() -> str:
    s = _SETTINGS
    return (
        f"**Measured on** {timing_device(_SWEEP_THREADS)} · PyTorch {torch.__version__} · "
        f"Python {platform.python_version()} · batch {s['batch']}, {s['heads']} head, "
        f"$d_k = {s['d']}$, float32, forward pass without gradients · at each length the "
        f"implementations run in {s['rounds']} interleaved rounds after {s['warmup']} "
        f"warm-up round · every length up to $N$ = {_ALWAYS_UP_TO:,} measured unless "
        f"predicted over {_max_bytes() / 2**30:.3g} GiB; beyond it, skipped also when "
        f"predicted over {s['max_seconds']:g} s per call or once the sweep has spent "
        f"{_MAX_TOTAL_SECONDS:g} s."
    )


def _crossing(name: str, baseline: str) -> str:
    """Table form: '1,024', 'not up to 16,384' or '—' (never measured together)."""
    first, top = crossover(list(_results()), name, baseline)
    if top is None:
        return "—"
    if first is None:
        return f"not up to {top:,}"
    return f"{first:,}"


def _crossing_phrase(name: str, baseline: str) -> str:
    """Prose form, true whatever the machine measured."""
    first, top = crossover(list(_results()), name, baseline)
    if top is None:
        return "at no length where both were measured"
    if first is None:
        return f"at no measured length up to $N$ = {top:,}"
    if first == top:
        return f"only at the longest length both ran, $N$ = {top:,}"
    return f"from $N$ = {first:,} on (measured up to $N$ = {top:,})"


def _fault_evidence(name: str) -> str:
    last = _longest(name)
    return fault_evidence(name, last.page_faults, last.n, last.seconds)


@functools.cache
def _scaling(name: str) -> ScalingCheck:
    """`name`'s measured time exponent beside its count's. The build stops if they are
    more than 0.5 apart, unless evidence explains it: the page explains one gap, the
    dense function's page faults (`_dense_growth`)."""
    done = _done(name)
    sizes = [m.n for m in done]
    return check_scaling(
        f"chapter 14, {name}",
        sizes,
        [m.times for m in done],
        [_impls()[name].multiply_adds(n, _SETTINGS["d"]) for n in sizes],
        why=_fault_evidence(name) if name == _name("dense") else "",
    )


@functools.cache
def _fits() -> dict[str, dict[str, str]]:
    """name -> its measured time exponent with its interval ("time"), the lengths of the
    fit ("over"), the exponent of its count ("model") and its memory exponent ("memory")."""
    out = {}
    for name in _impls():
        check = _scaling(name)
        tail = _done(name)[-_FIT_POINTS:]
        memory = log_log_slope([m.n for m in tail], [float(m.peak_bytes) for m in tail])
        fit = check.fit
        out[name] = {
            "time": f"{fit.exponent:.2f} [{fit.low:.2f}, {fit.high:.2f}]",
            "over": f"{min(check.sizes):,}–{max(check.sizes):,}",
            "model": f"{check.predicted:.2f}",
            "memory": f"{memory:.2f}",
        }
    return out


@measured
def error_table() -> str:
    """What each implementation computes, and how far it is from exact attention."""
    errors = {  # scale -> implementation -> relative error
        s: {
            k: rel
            for k, (_, rel) in differences(implementations(), _N_ERROR, scale=s).items()
        }
        for s in _SCALES
    }
    header = ["implementation", "computes"]
    header += [f"error, $\\sigma = {s:g}$" for s in _SCALES]
    rows = [
        [name, impl.computes, *(f"{errors[s][name]:.1e}" for s in _SCALES)]
        for name, impl in _impls().items()
    ]
    return markdown_table(header, rows, "ll" + "r" * len(_SCALES))


@measured
def scaling_table() -> str:
    """How time and memory grow with N: measured exponents beside the model's."""
    header = ["implementation", "time: $p$ measured [95%]", "time: $p$ of the model"]
    header += ["over $N$", "memory: $p$ measured"]
    rows = [
        [name, fit["time"], fit["model"], fit["over"], fit["memory"]]
        for name, fit in _fits().items()
    ]
    return markdown_table(header, rows, "lrrrr")


@measured
def crossover_table() -> str:
    """From which length each implementation is faster than the two exact baselines."""
    dense, fused = _name("dense"), _name("PyTorch fused")
    header = ["implementation", "longest $N$ run"]
    header += ["faster than dense from $N =$", "faster than fused from $N =$"]
    rows = [
        [
            name,
            f"{_longest(name).n:,}",
            "—" if name == dense else _crossing(name, dense),
            "—" if name == fused else _crossing(name, fused),
        ]
        for name in _impls()
    ]
    return markdown_table(header, rows, "lrrr")


def _exact_fits() -> str:
    """The fused function's and the tiled loop's exponents beside their model's."""
    fits = _fits()
    fused, tiled = _name("PyTorch fused"), _name("tiled")
    return (
        f"Measured, the fused function's exponent was {fits[fused]['time']} against "
        f"{fits[fused]['model']} for its model, and the tiled loop's "
        f"{fits[tiled]['time']} against {fits[tiled]['model']}."
    )


def _dense_growth() -> str:
    """What the dense function's exponent says against its count, with the evidence."""
    dense = _name("dense")
    check = _scaling(dense)
    evidence = _fault_evidence(dense)
    if check.predicted > check.fit.high:
        return f"Our dense function grows more slowly than its count ({check})."
    if check.fit.low <= check.predicted <= check.fit.high:
        return (
            "Our dense function's exponent is consistent with its count in this build "
            f"({check})."
        )
    if not evidence or check.evidence:  # the phrase gives the evidence
        return f"Our dense function grows faster than its count ({check}), " + (
            "as the build explains." if evidence else "within the band it allows."
        )
    return (
        f"Our dense function grows faster than its count ({check}), and the build "
        f"explains why with a second measurement: {evidence}."
    )


@measured
def headline() -> dict[str, str]:
    """Numbers and phrases the prose quotes: lengths, crossovers and memory ratios."""
    dense, fused = _name("dense"), _name("PyTorch fused")
    n_dense = _longest(dense).n
    at = {m.name: m for m in _results() if m.n == n_dense}
    skipped = [m for m in _results() if m.name == dense and m.skipped]
    first_skipped = min(skipped, key=lambda m: m.n) if skipped else None
    faults = _longest(fused).page_faults
    values: dict[str, str] = {
        "n_min": f"{min(default_lengths()):,}",
        "always_up_to": f"{_ALWAYS_UP_TO:,}",
        "n_max": f"{max(default_lengths()):,}",
        "n_dense": f"{n_dense:,}",
        "dense_mib": f"{at[dense].peak_bytes / 2**20:.0f}",
        "dense_stop": (
            f"At $N$ = {first_skipped.n:,} the sweep skipped it "
            f"({first_skipped.skipped})."
            if first_skipped
            else "It ran at every length of the sweep."
        ),
        "fit_points": str(_FIT_POINTS),
        "sigma_small": f"{_SIGMA_SMALL:g}",
        "dense_growth": _dense_growth(),
        "exact_fits": _exact_fits(),
        "fused_faults": f"{faults:,}" if faults is not None else "not counted",
        "n_faults": f"{_longest(fused).n:,}",
    }
    exact = [dense, fused, _name("tiled")]
    n_exact = max(
        n
        for n in {m.n for m in _results()}
        if all(
            x.seconds is not None for x in _results() if x.n == n and x.name in exact
        )
    )
    at_exact = [m for m in _results() if m.n == n_exact and m.name in exact]
    values["n_exact"] = f"{n_exact:,}"
    fastest = min(at_exact, key=lambda m: m.seconds).name
    lightest = min(at_exact, key=lambda m: m.peak_bytes).name
    values["exact_sentence"] = (
        f"*{fastest}* had both the lowest median time and the smallest peak memory"
        if fastest == lightest
        else f"the lowest median time was *{fastest}*'s and the smallest peak memory "
        f"*{lightest}*'s"
    )
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
        values[f"{key}_top"] = f"{_longest(name).n:,}"
    n = f"{_longest(dense).n:,}"
    sentence = (
        f"At $N$ = {n} the others needed less memory than dense attention by these "
        "factors: " + ", ".join(measured_at) + "."
        if measured_at
        else f"No other implementation was measured at $N$ = {n}."
    )
    if missing:
        sentence += f" Not measured there: {', '.join(missing)}."
    values["memory_sentence"] = sentence
    return values
