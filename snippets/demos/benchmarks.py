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
from snippets.bilingual import join, same, say, zh
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
_IMPLEMENTATION = say("implementation", "实现")  # the tables' first column
_COMMA = say(", ", "、")  # between the items of a list


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
    xlabel = say("sequence length $N$", "序列长度 $N$")
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel)
    ax.set_xticks(lengths, [f"{n // 1024}K" if n >= 1024 else str(n) for n in lengths])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return fig


@measured
def time_figure() -> Figure:
    return _plot(
        "seconds", 1e3, say("median time per call (ms)", "每次调用的中位时间（ms）")
    )


@measured
def memory_figure() -> Figure:
    return _plot("peak_bytes", 1 / 2**20, say("peak memory (MiB)", "峰值内存（MiB）"))


@measured
def time_table() -> str:
    return sweep_table(list(_results()), "seconds", lambda s: significant(s * 1e3))


@measured
def memory_table() -> str:
    return sweep_table(list(_results()), "peak_bytes", lambda b: significant(b / 2**20))


@measured
def environment() -> str:
    s = _SETTINGS
    b, h, d, rounds, warmup = (
        s[k] for k in ("batch", "heads", "d", "rounds", "warmup")
    )
    gib, top = f"{_max_bytes() / 2**30:.3g}", f"{_ALWAYS_UP_TO:,}"
    seconds, total = f"{s['max_seconds']:g}", f"{_MAX_TOTAL_SECONDS:g}"
    return (  # the machine's and PyTorch's version strings are data, shown as they are
        say("**Measured on** ", "**测量环境**：")
        + timing_device(_SWEEP_THREADS)
        + " · PyTorch "
        + same(torch.__version__)
        + f" · Python {platform.python_version()} · "
        + say(
            f"batch {b}, {h} head, $d_k = {d}$, float32, forward pass without gradients"
            f" · at each length the implementations run in {rounds} interleaved rounds"
            f" after {warmup} warm-up round · every length up to $N$ = {top} measured"
            f" unless predicted over {gib} GiB; beyond it, skipped also when predicted"
            f" over {seconds} s per call or once the sweep has spent {total} s.",
            f"批量 {b}，{h} 个头，$d_k = {d}$，float32，不计算梯度的前向传播 · 在每个"
            f"长度上，各实现先预热 {warmup} 轮，再以 {rounds} 个交替轮次运行 · 直到"
            f" $N$ = {top} 的每个长度都会测量，除非预测内存超过 {gib} GiB；超过这个长度后，"
            f"预测每次调用超过 {seconds} s 或扫描已用去 {total} s 时也会跳过。",
        )
    )


def _crossing(name: str, baseline: str) -> str:
    """Table form: '1,024', 'not up to 16,384' or '—' (never measured together)."""
    first, top = crossover(list(_results()), name, baseline)
    if top is None:
        return "—"
    if first is None:
        return say(f"not up to {top:,}", f"直到 {top:,} 都没有")
    return f"{first:,}"


def _crossing_phrase(name: str, baseline: str) -> str:
    """Prose form, true whatever the machine measured."""
    first, top = crossover(list(_results()), name, baseline)
    if top is None:
        return say(
            "at no length where both were measured", "在两者都测过的长度上都没有"
        )
    if first is None:
        return say(
            f"at no measured length up to $N$ = {top:,}",
            f"直到 $N$ = {top:,}，在测过的长度上都没有",
        )
    if first == top:
        return say(
            f"only at the longest length both ran, $N$ = {top:,}",
            f"只在两者都运行过的最长长度 $N$ = {top:,} 上",
        )
    return say(
        f"from $N$ = {first:,} on (measured up to $N$ = {top:,})",
        f"从 $N$ = {first:,} 起（测到 $N$ = {top:,}）",
    )


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
    header = [_IMPLEMENTATION, say("computes", "计算的是")]
    header += [
        say(f"error, $\\sigma = {s:g}$", f"误差，$\\sigma = {s:g}$") for s in _SCALES
    ]
    rows = [
        [name, impl.computes, *(f"{errors[s][name]:.1e}" for s in _SCALES)]
        for name, impl in _impls().items()
    ]
    return markdown_table(header, rows, "ll" + "r" * len(_SCALES))


@measured
def scaling_table() -> str:
    """How time and memory grow with N: measured exponents beside the model's."""
    header = [
        _IMPLEMENTATION,
        say("time: $p$ measured [95%]", "时间：实测 $p$ [95%]"),
        say("time: $p$ of the model", "时间：模型的 $p$"),
        say("over $N$", "拟合的 $N$"),
        say("memory: $p$ measured", "内存：实测 $p$"),
    ]
    rows = [
        [name, fit["time"], fit["model"], fit["over"], fit["memory"]]
        for name, fit in _fits().items()
    ]
    return markdown_table(header, rows, "lrrrr")


@measured
def crossover_table() -> str:
    """From which length each implementation is faster than the two exact baselines."""
    dense, fused = _name("dense"), _name("PyTorch fused")
    header = [
        _IMPLEMENTATION,
        say("longest $N$ run", "运行过的最长 $N$"),
        say("faster than dense from $N =$", "快于稠密注意力的起点 $N$"),
        say("faster than fused from $N =$", "快于融合函数的起点 $N$"),
    ]
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
    fused, tiled = fits[_name("PyTorch fused")], fits[_name("tiled")]
    return say(
        f"Measured, the fused function's exponent was {fused['time']} against "
        f"{fused['model']} for its model, and the tiled loop's "
        f"{tiled['time']} against {tiled['model']}.",
        f"实测指数：融合函数为 {fused['time']}（模型 {fused['model']}），"
        f"分块循环为 {tiled['time']}（模型 {tiled['model']}）。",
    )


def _dense_growth() -> str:
    """What the dense function's exponent says against its count, with the evidence."""
    dense = _name("dense")
    check = _scaling(dense)
    evidence = _fault_evidence(dense)
    phrase = check.phrase
    if check.predicted > check.fit.high:
        return say(
            f"Our dense function grows more slowly than its count ({check}).",
            f"我们的稠密函数的耗时比其计数增长得慢：{zh(phrase)}。",
        )
    if check.fit.low <= check.predicted <= check.fit.high:
        return say(
            "Our dense function's exponent is consistent with its count in this build "
            f"({check}).",
            f"在本次构建中，我们的稠密函数的指数与它的计数相符：{zh(phrase)}。",
        )
    faster = say(
        f"Our dense function grows faster than its count ({check}), ",
        f"我们的稠密函数的耗时比其计数增长得快：{zh(phrase)}。",
    )
    if not evidence or check.evidence:  # the phrase gives the evidence
        return faster + (
            say("as the build explains.", "构建过程解释了原因。")
            if evidence
            else say("within the band it allows.", "这仍在允许的范围之内。")
        )
    return faster + say(
        f"and the build explains why with a second measurement: {evidence}.",
        f"构建过程用第二项测量解释了原因：{zh(evidence)}。",
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
            say(
                f"At $N$ = {first_skipped.n:,} the sweep skipped it "
                f"({first_skipped.skipped}).",
                f"在 $N$ = {first_skipped.n:,} 时，扫描跳过了它"
                f"（{zh(first_skipped.skipped)}）。",
            )
            if first_skipped
            else say(
                "It ran at every length of the sweep.", "它在扫描的每个长度上都运行了。"
            )
        ),
        "fit_points": str(_FIT_POINTS),
        "sigma_small": f"{_SIGMA_SMALL:g}",
        "dense_growth": _dense_growth(),
        "exact_fits": _exact_fits(),
        "fused_faults": (
            f"{faults:,}" if faults is not None else say("not counted", "未统计")
        ),
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
        say(
            f"*{fastest}* had both the lowest median time and the smallest peak memory",
            f"*{zh(fastest)}*的中位时间最短，峰值内存也最小",
        )
        if fastest == lightest
        else say(
            f"the lowest median time was *{fastest}*'s and the smallest peak memory "
            f"*{lightest}*'s",
            f"中位时间最短的是*{zh(fastest)}*，峰值内存最小的是*{zh(lightest)}*",
        )
    )
    keys = {
        "fused": (
            "PyTorch fused",
            say("PyTorch's fused function", "PyTorch 的融合函数"),
        ),
        "tiled": ("tiled", say("the tiled loop", "分块循环")),
        "window": ("sliding window", say("the sliding window", "滑动窗口")),
        "performer": ("Performer", say("the Performer", "Performer")),
        "reformer": ("Reformer", "Reformer"),
    }
    measured_at, missing = [], []
    for key, (start, label) in keys.items():
        name = _name(start)
        m = at.get(name)
        if m is not None and m.peak_bytes:
            ratio = at[dense].peak_bytes / m.peak_bytes
            measured_at.append(label + f" {fmt_ratio(ratio)}×")
        else:
            missing.append(label)
        values[f"{key}_vs_dense"] = _crossing_phrase(name, dense)
        values[f"{key}_vs_fused"] = _crossing_phrase(name, fused)
        values[f"{key}_top"] = f"{_longest(name).n:,}"
    n = f"{_longest(dense).n:,}"
    sentence = (
        say(
            f"At $N$ = {n} the others needed less memory than dense attention by these "
            "factors: ",
            f"在 $N$ = {n} 时，稠密注意力所需的内存是其他实现的若干倍：",
        )
        + join(_COMMA, measured_at)
        + say(".", "。")
        if measured_at
        else say(
            f"No other implementation was measured at $N$ = {n}.",
            f"在 $N$ = {n} 时，没有测量其他实现。",
        )
    )
    if missing:
        sentence += (
            say(" Not measured there: ", "在这个长度上未测量的有：")
            + join(_COMMA, missing)
            + say(".", "。")
        )
    values["memory_sentence"] = sentence
    return values
