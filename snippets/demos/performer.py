"""Chapter 11, Performer: the kernel estimate, its error against m, and time against N."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from snippets.attention import scaled_dot_product_attention
from snippets.bilingual import Say, join, say, zh
from snippets.measure import (
    Timings,
    check_scaling,
    compare,
    fault_evidence,
    timing_device,
)
from snippets.performer import (
    favor_attention,
    gaussian_random_features,
    kernel_estimates,
    kernel_relative_mse,
    orthogonal_random_features,
    relative_error,
)
from snippets.plotting import COLORS, Figure, figure, markdown_table
from snippets.runtime import device, measured

_D = 64  # head width in every demo of this chapter
_N_ERR = 128  # sequence length of the accuracy demos
_FEATURES = [16, 32, 64, 128, 256, 512]
_SIGMA = 0.25  # input scale of the error-vs-m panel
_SWEEP_SIGMAS = [0.125, 0.25, 0.375, 0.5, 0.625, 0.75]
_SWEEP_M = 256
# Independent projections per point: enough that two standard errors of a root mean square
# error are a few per cent of it, well below the gap between i.i.d. and orthogonal features
# at sigma = 0.25 (see `error_numbers`, which reports them).
_DRAWS = 32
_MSE_DIMS = [16, 64, 256]  # head widths of the exact kernel-level comparison, m = d
_Z_SQ = np.linspace(0.0, 12.0, 121)[1:]  # |x + y|^2 on the x-axis of that comparison
_KIND = {  # legend entries of the error figure: orthogonal or i.i.d. features
    True: say("orthogonal", "正交特征"),
    False: say("i.i.d.", "独立同分布特征"),
}
_RELATIVE_ERROR = say("relative error of the output", "输出的相对误差")


def _inputs(sigma: float, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """q, k with i.i.d. N(0, sigma^2) components, v with N(0, 1): each (_N_ERR, _D), float32.

    float32 keeps the many draws cheap; its rounding (~1e-7) is far below the errors measured.
    """
    g = torch.Generator().manual_seed(seed)
    q, k = (sigma * torch.randn(_N_ERR, _D, generator=g) for _ in range(2))
    v = torch.randn(_N_ERR, _D, generator=g)
    return q, k, v


class _Estimate(NamedTuple):
    """A root mean square error over _DRAWS projections, and its standard error."""

    rms: float
    se: float


def _rms_error(sigma: float, m: int, orthogonal: bool) -> _Estimate:
    """Root mean square over _DRAWS projections of the relative error of the output, and its
    standard error (delta method: s.e. of the mean square / (2 rms)).

    The _DRAWS independent projections go through `favor_attention` as one batch (_DRAWS, m, d).
    """
    q, k, v = _inputs(sigma)
    exact, _ = scaled_dot_product_attention(q, k, v)
    g = torch.Generator().manual_seed(1)
    draw = orthogonal_random_features if orthogonal else gaussian_random_features
    w = torch.stack([draw(m, _D, g) for _ in range(_DRAWS)])  # (_DRAWS, m, _D)
    out = favor_attention(q, k, v, m, projection=w)  # (_DRAWS, N, _D)
    sq = np.square([relative_error(o, exact) for o in out])
    rms = float(np.sqrt(sq.mean()))
    return _Estimate(rms, float(sq.std(ddof=1) / math.sqrt(_DRAWS) / (2 * rms)))


@functools.lru_cache
def _error_curves() -> dict[bool, dict[int, _Estimate]]:
    """orthogonal -> m -> the error at sigma = _SIGMA."""
    return {o: {m: _rms_error(_SIGMA, m, o) for m in _FEATURES} for o in (False, True)}


@functools.lru_cache
def _error_sweep() -> dict[bool, dict[float, _Estimate]]:
    """orthogonal -> sigma -> the error with m = _SWEEP_M."""
    return {
        o: {s: _rms_error(s, _SWEEP_M, o) for s in _SWEEP_SIGMAS} for o in (False, True)
    }


def _slope(x: list[float], y: list[float]) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _typical_z_sq(sigma: float) -> float:
    """E|x + y|^2 for x, y = q, k / d^(1/4) with N(0, sigma^2) components: 2 sigma^2 sqrt(d)."""
    return 2 * sigma**2 * math.sqrt(_D)


@functools.lru_cache
def _mse_ratios() -> dict[int, np.ndarray]:
    """Exact MSE of orthogonal over i.i.d. features, m = d (one block), against |x + y|^2."""
    return {
        d: np.array(
            [
                kernel_relative_mse(z, d, d, True) / kernel_relative_mse(z, d, d, False)
                for z in _Z_SQ
            ]
        )
        for d in _MSE_DIMS
    }


def _theorem2_ratio(z_sq: float | np.ndarray, m: int, d: int) -> float | np.ndarray:
    """Theorem 2's guarantee as a ratio: 1 - gap / MSE_iid, both relative to K^2."""
    gap = 2 * (m - 1) / (m * (d + 2)) * (-np.expm1(-np.asarray(z_sq) / 2)) ** 2
    return 1 - gap / (np.expm1(z_sq) / m)


def orthogonal_figure() -> Figure:
    """Exact MSE of the kernel estimate, orthogonal over i.i.d., with Theorem 2's bound."""
    ratios = _mse_ratios()
    fig, ax = figure(width=6.0, height=3.6)
    for d, color in zip(_MSE_DIMS, (COLORS[2], COLORS[0], COLORS[4]), strict=True):
        label = say(f"exact, m = d = {d}", f"精确值，m = d = {d}")
        ax.plot(_Z_SQ, ratios[d], color=color, label=label)
    ax.plot(
        _Z_SQ,
        _theorem2_ratio(_Z_SQ, _D, _D),
        color=COLORS[0],
        linestyle="--",
        label=say(f"Theorem 2's bound, m = d = {_D}", f"定理 2 的界，m = d = {_D}"),
    )
    for sigma in (_SIGMA, max(_SWEEP_SIGMAS)):
        ax.axvline(_typical_z_sq(sigma), color=COLORS[1], linestyle=":")
        ax.annotate(
            say(rf"typical at $\sigma$ = {sigma}", rf"$\sigma = {sigma}$ 时的典型值"),
            (_typical_z_sq(sigma), 0.97),
            xycoords=("data", "axes fraction"),
            xytext=(4, 0),
            textcoords="offset points",
            fontsize=8,
            va="top",
        )
    ax.set(
        xlabel=r"$\|x + y\|^2$",
        ylabel=say("MSE orthogonal / MSE i.i.d.", "均方误差：正交 / 独立同分布"),
        ylim=(0.5, 1.05),
    )
    ax.legend(fontsize=8, loc="lower center")  # clear of the dotted line at the right
    return fig


def orthogonal_numbers() -> dict[str, str]:
    ratios = _mse_ratios()[_D]
    i_min = int(np.argmin(ratios))
    small, big = _typical_z_sq(_SIGMA), _typical_z_sq(max(_SWEEP_SIGMAS))

    def ratio(z: float) -> float:
        return kernel_relative_mse(z, _D, _D, True) / kernel_relative_mse(
            z, _D, _D, False
        )

    def bound(z: float) -> float:
        return float(_theorem2_ratio(z, _D, _D))

    return {
        "d": str(_D),
        "min_ratio": f"{ratios[i_min]:.2f}",
        "z_at_min": f"{_Z_SQ[i_min]:.1f}",
        "small_sigma": str(_SIGMA),
        "big_sigma": str(max(_SWEEP_SIGMAS)),
        "z_small": f"{small:g}",
        "z_big": f"{big:g}",
        "ratio_small": f"{ratio(small):.2f}",
        "rmse_ratio_small": f"{math.sqrt(ratio(small)):.2f}",
        "bound_small": f"{bound(small):.2f}",
        "ratio_big": f"{ratio(big):.3f}",
        "rmse_iid_big": f"{math.sqrt(kernel_relative_mse(big, _D, _D, False)):.1f}",
        "rmse_orth_big": f"{math.sqrt(kernel_relative_mse(big, _D, _D, True)):.1f}",
    }


def error_figure() -> Figure:
    """Left: error vs m, i.i.d. and orthogonal. Right: error vs the scale of q and k.

    Error bars: two standard errors of each root mean square error.
    """
    curves, sweep = _error_curves(), _error_sweep()
    fig, axes = figure(ncols=2, width=9.2, height=3.6)
    ax = axes[0]
    for o, color in ((False, COLORS[3]), (True, COLORS[0])):
        rms = np.array([e.rms for e in curves[o].values()])
        se = np.array([e.se for e in curves[o].values()])
        ax.errorbar(
            _FEATURES,
            rms,
            yerr=2 * se,
            fmt="o-",
            ms=4,
            capsize=2,
            color=color,
            label=_KIND[o],
        )
    m_min = min(_FEATURES)
    ref = curves[False][m_min].rms * (np.array(_FEATURES) / m_min) ** -0.5
    ax.plot(
        _FEATURES, ref, color=COLORS[1], linestyle="--", label=r"$\propto m^{-1/2}$"
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=say("number of random features m", "随机特征数 m"),
        ylabel=_RELATIVE_ERROR,
        title=rf"$\sigma$ = {_SIGMA}",
    )
    ax.set_xticks(_FEATURES, [str(m) for m in _FEATURES])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    ax = axes[1]
    for o, color in ((False, COLORS[3]), (True, COLORS[0])):
        rms = np.array([e.rms for e in sweep[o].values()])
        se = np.array([e.se for e in sweep[o].values()])
        ax.errorbar(
            _SWEEP_SIGMAS,
            rms,
            yerr=2 * se,
            fmt="o-",
            ms=4,
            capsize=2,
            color=color,
            label=_KIND[o],
        )
    ax.set(
        yscale="log",
        xlabel=say(
            r"scale $\sigma$ of the query and key components",
            r"查询和键各分量的尺度 $\sigma$",
        ),
        ylabel=_RELATIVE_ERROR,
        title=f"m = {_SWEEP_M}",
    )
    ax.legend()
    return fig


def _ratio_with_se(a: _Estimate, b: _Estimate) -> tuple[float, float]:
    """a / b for two independent estimates, with the delta-method s.e."""
    r = a.rms / b.rms
    return r, r * math.hypot(a.se / a.rms, b.se / b.rms)


_SWEEP_PHRASES = {  # English before the scales; Chinese with {} for them
    "lower": (
        "the orthogonal error is lower by more than two standard errors at",
        "正交特征的误差在 {} 时比独立同分布特征低两个标准误差以上",
    ),
    "level": (
        "the two agree within two standard errors at",
        "两者在 {} 时相差在两个标准误差之内",
    ),
    "higher": (
        "the orthogonal error is higher by more than two standard errors at",
        "正交特征的误差在 {} 时比独立同分布特征高两个标准误差以上",
    ),
}


def _sweep_verdict(sweep: dict[bool, dict[float, _Estimate]]) -> Say:
    """Which scales show orthogonal features better, worse or equal within 2 s.e."""
    groups: dict[str, list[str]] = {"lower": [], "level": [], "higher": []}
    for s in _SWEEP_SIGMAS:
        r, se = _ratio_with_se(sweep[True][s], sweep[False][s])
        key = "lower" if r + 2 * se < 1 else "higher" if r - 2 * se > 1 else "level"
        groups[key].append(f"{s}")
    parts = [
        say(
            f"{en} $\\sigma$ = {', '.join(scales)}",
            cn.format(f"$\\sigma$ = {'、'.join(scales)}"),
        )
        for key, (en, cn) in _SWEEP_PHRASES.items()
        if (scales := groups[key])
    ]
    return join(say("; ", "；"), parts)


def error_numbers() -> dict[str, str]:
    curves, sweep = _error_curves(), _error_sweep()
    iid = np.array([e.rms for e in curves[False].values()])
    orth = np.array([e.rms for e in curves[True].values()])
    r256, se256 = _ratio_with_se(curves[True][256], curves[False][256])
    rel_se = max(
        e.se / e.rms for c in (*curves.values(), *sweep.values()) for e in c.values()
    )
    big_sigma = max(_SWEEP_SIGMAS)
    return {
        "n": str(_N_ERR),
        "d": str(_D),
        "draws": str(_DRAWS),
        "slope_iid": f"{_slope(_FEATURES, iid):.2f}",
        "slope_orth": f"{_slope(_FEATURES, orth):.2f}",
        "ratio_mean": f"{np.mean(orth / iid):.2f}",
        "ratio_256": f"{r256:.2f} ± {2 * se256:.2f}",
        "max_rel_se": f"{100 * rel_se:.0f}%",
        "err_iid_256": f"{curves[False][256].rms:.3f}",
        "err_orth_256": f"{curves[True][256].rms:.3f}",
        "err_big_sigma": f"{sweep[False][big_sigma].rms:.2f}",
        "big_sigma": str(big_sigma),
        "small_sigma": str(_SIGMA),
        "sweep_verdict": _sweep_verdict(sweep),
    }


def unbiased_table() -> str:
    """Mean of many FAVOR+ kernel estimates against exp(q.k/sqrt(d_k)), with standard errors."""
    m, draws = 16, 4000
    g = torch.Generator().manual_seed(2)
    rows = []
    for sigma in _SIGMAS_TABLE:
        q, k = (
            sigma * torch.randn(_D, generator=g, dtype=torch.float64) for _ in range(2)
        )
        score = (q @ k).item() / math.sqrt(_D)
        exact = math.exp(score)
        est = kernel_estimates(q, k, m, draws, orthogonal=False, generator=g)
        x, y = q / _D**0.25, k / _D**0.25
        # Var of one feature's product = exact^2 (exp(|x + y|^2) - 1); m features, `draws` draws.
        se = exact * math.sqrt(
            (math.exp(((x + y) ** 2).sum().item()) - 1) / (m * draws)
        )
        sample_se = est.std().item() / math.sqrt(draws)
        mean = est.mean().item()
        rows.append(
            [
                sigma,
                f"{score:+.3f}",
                f"{exact:.4f}",
                f"{mean:.4f}",
                f"{se:.4f}",
                f"{(mean - exact) / se:+.2f}",
                f"{sample_se:.4f}",
            ]
        )
    table = markdown_table(
        [
            "$\\sigma$",
            "$q\\cdot k/\\sqrt{d_k}$",
            say(
                "exact $e^{q\\cdot k/\\sqrt{d_k}}$",
                "精确值 $e^{q\\cdot k/\\sqrt{d_k}}$",
            ),
            say(f"mean of {draws:,} estimates", f"{draws:,} 个估计的均值"),
            say("s.e. (theory)", "标准误差（理论）"),
            say("(mean − exact) / s.e.", "（均值 − 精确值）/ 标准误差"),
            say("s.e. (from the sample)", "标准误差（由样本得出）"),
        ],
        rows,
        "rrrrrrr",
    )
    intro = say(
        "One random pair $q, k$ per row, with i.i.d. $\\mathcal{N}(0, \\sigma^2)$ components; "
        f"$d_k = {_D}$, $m = {m}$ i.i.d. features per estimate, {draws:,} independent "
        "estimates:\n\n",
        "每行一对随机的 $q, k$，各分量独立同分布，服从 $\\mathcal{N}(0, \\sigma^2)$；"
        f"$d_k = {_D}$，每个估计用 $m = {m}$ 个独立同分布的特征，共 {draws:,} 个"
        "相互独立的估计：\n\n",
    )
    return intro + table


_SIGMAS_TABLE = [0.25, 0.5, 0.75]


_TIME_N = [64, 128, 256, 512, 1024, 2048]
# where chapter 14 explains the cost of fresh memory
_MECHANISM = "14-benchmarks.md#reading-the-results"
_TIME_M = 256
_TIME_ROUNDS = 8
_TIME_LABELS = {  # in sentences
    "exact": say("our exact attention", "我们的精确注意力"),
    "fused": say("PyTorch's fused exact attention", "PyTorch 融合的精确注意力"),
    "favor": say("FAVOR+", "FAVOR+"),
    "favor_causal": say("causal FAVOR+", "因果 FAVOR+"),
}
_TIME_NAMES = {  # in the figure's legend
    "exact": say(
        "exact attention (ours, N × N weights)", "精确注意力（我们的实现，N × N 权重）"
    ),
    "fused": say("exact attention, PyTorch fused", "精确注意力，PyTorch 融合"),
    "favor": say(f"FAVOR+, m = {_TIME_M}", f"FAVOR+，m = {_TIME_M}"),
    "favor_causal": say(f"FAVOR+ causal, m = {_TIME_M}", f"因果 FAVOR+，m = {_TIME_M}"),
}


def _multiply_adds(key: str, n: int) -> float:
    """The count each timing is checked against: exact 2 N^2 d; FAVOR+ 4 N m d (features
    of q and k, then K'^T V and Q' (K'^T V)); the causal form does the same work as prefix
    sums."""
    return 2 * n * n * _D if key in ("exact", "fused") else 4 * n * _TIME_M * _D


@functools.cache
def _timings() -> dict[int, Timings]:
    """N -> the four calls timed together in interleaved rounds (one thread on a CPU)."""
    g = torch.Generator().manual_seed(3)
    out = {}
    for n in _TIME_N:
        q, k, v = (torch.randn(1, n, _D, generator=g).to(device()) for _ in range(3))
        # drawn once, as between redraws
        w = orthogonal_random_features(_TIME_M, _D, g).to(q)
        calls = {
            "exact": lambda q=q, k=k, v=v: scaled_dot_product_attention(q, k, v),
            "fused": lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v),
            "favor": lambda q=q, k=k, v=v, w=w: favor_attention(
                q, k, v, _TIME_M, projection=w
            ),
            "favor_causal": lambda q=q, k=k, v=v, w=w: favor_attention(
                q, k, v, _TIME_M, causal=True, projection=w
            ),
        }
        with torch.no_grad():
            out[n] = compare(calls, rounds=_TIME_ROUNDS, warmup=1)
    return out


def _first_faster(slow: str, fast: str) -> int | None:
    """The first N from which `fast` is faster than `slow` at every longer N measured
    (the 95% interval of the ratio above 1), or None."""
    first = None
    for n in reversed(_TIME_N):
        if _timings()[n].ratio(slow, fast).low <= 1:
            break
        first = n
    return first


@measured
def time_figure() -> Figure:
    """Wall-clock time of exact attention and FAVOR+ against N, on the build's device."""
    t = _timings()
    fig, ax = figure(width=6.0, height=3.8)
    for (key, label), color in zip(
        _TIME_NAMES.items(), [COLORS[3], COLORS[4], COLORS[0], COLORS[2]], strict=True
    ):
        ax.plot(
            _TIME_N,
            [t[n].median(key) * 1e3 for n in _TIME_N],
            "o-",
            color=color,
            label=label,
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=say("sequence length $N$", "序列长度 $N$"),
        ylabel=say("median time (ms)", "中位时间（ms）"),
    )
    ax.set_xticks(_TIME_N, [str(n) for n in _TIME_N])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return fig


def _than(label: Say) -> str:
    """Chinese "than" before a label, spaced from Latin letters as Chinese pages are."""
    text = zh(label)
    return ("比 " if text[:1].isascii() else "比") + text


def _describe(name: Say, slow: str, fast: str) -> Say:
    first, other = _first_faster(slow, fast), _TIME_LABELS[slow]
    if first is None:
        return say(
            f"{name} is not faster than {other} at the longest lengths "
            f"measured, up to $N$ = {max(_TIME_N):,}",
            f"{zh(name)} 在所测的最长几个长度上（直到 $N$ = {max(_TIME_N):,}）"
            f"都不{_than(other)}快",
        )
    if first == min(_TIME_N):
        return say(
            f"{name} is already faster than {other} at $N$ = {first}",
            f"{zh(name)} 在 $N$ = {first} 时就已经{_than(other)}快",
        )
    return say(
        f"{name} is faster than {other} from $N$ = {first:,} on",
        f"{zh(name)} 从 $N$ = {first:,} 起{_than(other)}快",
    )


@measured
def time_numbers() -> dict[str, str]:
    t = _timings()
    n = max(_TIME_N)
    faults = t[n].page_faults("exact")
    fits = {}
    for key in _TIME_NAMES:
        why = (
            fault_evidence(_TIME_LABELS["exact"], faults, n, t[n].median("exact"))
            if key == "exact"
            else ""
        )
        fits[key] = str(
            check_scaling(
                f"chapter 11, {key}",
                _TIME_N,
                [t[m].seconds[key] for m in _TIME_N],
                [_multiply_adds(key, m) for m in _TIME_N],
                why=why,
            )
        )
        fits[key + "_why"] = why
    return {
        "crossover": _describe(_TIME_LABELS["favor"], "exact", "favor"),
        "crossover_causal": _describe(
            _TIME_LABELS["favor_causal"], "exact", "favor_causal"
        ),
        "crossover_fused": _describe(_TIME_LABELS["favor"], "fused", "favor"),
        "n_max": f"{n:,}",
        "speed_max": t[n].verdict("favor", "exact", _TIME_LABELS),
        "speed_max_fused": t[n].verdict("favor", "fused", _TIME_LABELS),
        "m": str(_TIME_M),
        "d": str(_D),
        "rounds": str(_TIME_ROUNDS),
        "device": timing_device(),
        "fit_exact": fits["exact"],
        "fit_fused": fits["fused"],
        "fit_favor": fits["favor"],
        "exact_gap": (
            say(
                "Where our exact function grows faster than its count, the reason is "
                f"memory, not arithmetic ({fits['exact_why']}; "
                f"[chapter 14]({_MECHANISM}) explains the mechanism).",
                "我们的精确函数的耗时若比其运算次数增长得更快，原因在于内存而非算术"
                f"（{zh(fits['exact_why'])}；其机制见[第 14 章]({_MECHANISM})）。",
            )
            if fits["exact_why"] and fits["exact_why"] not in fits["exact"]
            else ""
        ),
    }
