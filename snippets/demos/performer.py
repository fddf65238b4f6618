"""Chapter 11, Performer: the kernel estimate, its error against m, and time against N."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from snippets.attention import scaled_dot_product_attention
from snippets.measure import median_seconds, one_cpu_thread, timing_device
from snippets.performer import (
    favor_attention,
    kernel_estimates,
    orthogonal_random_features,
    relative_error,
)
from snippets.plotting import COLORS, figure
from snippets.runtime import device, measured

D = 64  # head width in every demo of this chapter
N_ERR = 128  # sequence length of the accuracy demos
FEATURES = [16, 32, 64, 128, 256, 512, 1024]
SIGMAS = [0.25, 0.5]  # input scales of the error-vs-m panel
SWEEP_SIGMAS = [0.125, 0.25, 0.375, 0.5, 0.625, 0.75]
SWEEP_M = 256
DRAWS = 8  # independent projections per point


def _inputs(sigma: float, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """q, k with i.i.d. N(0, sigma^2) components, v with N(0, 1): each (N_ERR, D), float64."""
    g = torch.Generator().manual_seed(seed)
    q, k = (
        sigma * torch.randn(N_ERR, D, generator=g, dtype=torch.float64)
        for _ in range(2)
    )
    v = torch.randn(N_ERR, D, generator=g, dtype=torch.float64)
    return q, k, v


def _rms_error(sigma: float, m: int, orthogonal: bool) -> float:
    """Root-mean-square over DRAWS projections of the relative error of the output."""
    q, k, v = _inputs(sigma)
    exact, _ = scaled_dot_product_attention(q, k, v)
    g = torch.Generator().manual_seed(1)
    errors = [
        relative_error(
            favor_attention(q, k, v, m, orthogonal=orthogonal, generator=g), exact
        )
        for _ in range(DRAWS)
    ]
    return float(np.sqrt(np.mean(np.square(errors))))


@functools.lru_cache
def _error_curves() -> dict[tuple[float, bool], list[float]]:
    return {
        (s, o): [_rms_error(s, m, o) for m in FEATURES]
        for s in SIGMAS
        for o in (False, True)
    }


@functools.lru_cache
def _error_sweep() -> dict[bool, list[float]]:
    return {o: [_rms_error(s, SWEEP_M, o) for s in SWEEP_SIGMAS] for o in (False, True)}


def _slope(x: list[float], y: list[float]) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def error_figure():
    """Left: error vs m, i.i.d. and orthogonal, two input scales. Right: error vs scale."""
    curves, sweep = _error_curves(), _error_sweep()
    fig, axes = figure(ncols=2, width=9.2, height=3.6)
    ax = axes[0]
    for s, marker in zip(SIGMAS, ("o", "s"), strict=True):
        for o, color in ((False, COLORS[3]), (True, COLORS[0])):
            kind = "orthogonal" if o else "i.i.d."
            ax.plot(
                FEATURES,
                curves[(s, o)],
                marker=marker,
                ms=4,
                color=color,
                linestyle="-" if s == SIGMAS[0] else ":",
                label=rf"{kind}, $\sigma$ = {s}",
            )
    ref = curves[(SIGMAS[0], False)][0] * (np.array(FEATURES) / FEATURES[0]) ** -0.5
    ax.plot(FEATURES, ref, color=COLORS[1], linestyle="--", label=r"$\propto m^{-1/2}$")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="number of random features m",
        ylabel="relative error of the output",
    )
    ax.set_xticks(FEATURES, [str(m) for m in FEATURES])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    ax = axes[1]
    for o, color in ((False, COLORS[3]), (True, COLORS[0])):
        ax.plot(
            SWEEP_SIGMAS,
            sweep[o],
            "o-",
            color=color,
            label="orthogonal" if o else "i.i.d.",
        )
    ax.set(
        yscale="log",
        xlabel=r"scale $\sigma$ of the query and key components",
        ylabel="relative error of the output",
        title=f"m = {SWEEP_M}",
    )
    ax.legend()
    return fig


def error_numbers() -> dict[str, str]:
    curves, sweep = _error_curves(), _error_sweep()
    s0 = SIGMAS[0]
    iid, orth = np.array(curves[(s0, False)]), np.array(curves[(s0, True)])
    i256 = FEATURES.index(256)
    return {
        "n": str(N_ERR),
        "d": str(D),
        "draws": str(DRAWS),
        "slope_iid": f"{_slope(FEATURES, iid):.2f}",
        "slope_orth": f"{_slope(FEATURES, orth):.2f}",
        "ratio_mean": f"{np.mean(orth / iid):.2f}",
        "err_iid_256": f"{iid[i256]:.3f}",
        "err_orth_256": f"{orth[i256]:.3f}",
        "err_big_sigma": f"{sweep[False][-1]:.2f}",
        "big_sigma": str(SWEEP_SIGMAS[-1]),
        "small_sigma": str(s0),
        "other_sigma": str(SIGMAS[1]),
    }


def unbiased_table() -> str:
    """Mean of many FAVOR+ kernel estimates against exp(q.k/sqrt(d)), with standard errors."""
    m, draws = 16, 4000
    g = torch.Generator().manual_seed(2)
    lines = [
        "One random pair $q, k$ per row, with i.i.d. $\\mathcal{N}(0, \\sigma^2)$ components; "
        f"$d = {D}$, $m = {m}$ i.i.d. features per estimate, {draws:,} independent estimates:",
        "",
        "| $\\sigma$ | $q\\cdot k/\\sqrt{d}$ | exact $e^{q\\cdot k/\\sqrt{d}}$ "
        f"| mean of {draws:,} estimates | s.e. (theory) | (mean − exact) / s.e. "
        "| s.e. (from the sample) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for sigma in SIGMAS_TABLE:
        q, k = (
            sigma * torch.randn(D, generator=g, dtype=torch.float64) for _ in range(2)
        )
        score = (q @ k).item() / math.sqrt(D)
        exact = math.exp(score)
        est = kernel_estimates(q, k, m, draws, orthogonal=False, generator=g)
        x, y = q / D**0.25, k / D**0.25
        # Var of one feature's product = exact^2 (exp(|x + y|^2) - 1); m features, `draws` draws.
        se = exact * math.sqrt(
            (math.exp(((x + y) ** 2).sum().item()) - 1) / (m * draws)
        )
        sample_se = est.std().item() / math.sqrt(draws)
        mean = est.mean().item()
        lines.append(
            f"| {sigma} | {score:+.3f} | {exact:.4f} | {mean:.4f} | {se:.4f} "
            f"| {(mean - exact) / se:+.2f} | {sample_se:.4f} |"
        )
    return "\n".join(lines)


SIGMAS_TABLE = [0.25, 0.5, 0.75]


TIME_N = [128, 256, 512, 1024, 2048, 4096]
TIME_M = 256


def _time_one(n: int, g: torch.Generator) -> dict[str, float]:
    q, k, v = (torch.randn(1, n, D, generator=g).to(device()) for _ in range(3))
    w = orthogonal_random_features(TIME_M, D, g).to(q)  # drawn once, as between redraws
    repeats = 3 if n >= 2048 else 5
    return {
        "exact": median_seconds(lambda: scaled_dot_product_attention(q, k, v), repeats),
        "favor": median_seconds(
            lambda: favor_attention(q, k, v, TIME_M, projection=w), repeats
        ),
        "favor_causal": median_seconds(
            lambda: favor_attention(q, k, v, TIME_M, causal=True, projection=w), repeats
        ),
    }


@functools.lru_cache
def _timings() -> tuple[dict[str, list[float]], str]:
    """Median times per method and N, and the machine they were measured on.

    On the CPU the timings run on one thread: the build machine may be shared, and one
    thread keeps the two methods comparable when it is. The thread count is restored after.
    """
    g = torch.Generator().manual_seed(3)
    with one_cpu_thread():
        rows = [_time_one(n, g) for n in TIME_N]
    return {key: [row[key] for row in rows] for key in rows[0]}, timing_device()


def crossover(ns: list[int], slow: list[float], fast: list[float]) -> float | None:
    """First N where `fast` becomes faster than `slow`, interpolated on log-log axes."""
    diff = np.log(np.array(slow)) - np.log(np.array(fast))  # > 0 where fast wins
    for i in range(1, len(ns)):
        if diff[i - 1] <= 0 < diff[i]:
            t = diff[i - 1] / (diff[i - 1] - diff[i])
            return float(
                np.exp(np.log(ns[i - 1]) + t * (np.log(ns[i]) - np.log(ns[i - 1])))
            )
    return float(ns[0]) if diff[0] > 0 else None


@measured
def time_figure():
    """Wall-clock time of exact attention and FAVOR+ against N, on the build's device."""
    t, _ = _timings()
    fig, ax = figure(width=6.0, height=3.8)
    for key, color, label in (
        ("exact", COLORS[3], "exact attention (N × N weights)"),
        ("favor", COLORS[0], f"FAVOR+, m = {TIME_M}"),
        ("favor_causal", COLORS[2], f"FAVOR+ causal, m = {TIME_M}"),
    ):
        ax.plot(TIME_N, [s * 1e3 for s in t[key]], "o-", color=color, label=label)
    n_cross = crossover(TIME_N, t["exact"], t["favor"])
    if n_cross is not None:
        ax.axvline(
            n_cross, color=COLORS[1], linestyle=":", label=f"crossover ≈ {n_cross:,.0f}"
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="sequence length N",
        ylabel="median time (ms)",
        title=f"one head, d = {D}, float32, "
        + ("CPU, 1 thread" if device().type == "cpu" else device().type),
    )
    ax.set_xticks(TIME_N, [str(n) for n in TIME_N])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return fig


def _describe(name: str, n_cross: float | None) -> str:
    if n_cross is None:
        return f"{name} is not faster than exact attention at any length up to N = {TIME_N[-1]:,}"
    if n_cross <= TIME_N[0]:
        return (
            f"{name} is already faster at N = {TIME_N[0]}, the shortest length measured"
        )
    return f"{name} becomes faster than exact attention at about N = {n_cross:,.0f}"


@measured
def time_numbers() -> dict[str, str]:
    t, machine = _timings()
    i = len(TIME_N) - 1
    ratio = t["exact"][i] / t["favor"][i]
    return {
        "crossover": _describe("FAVOR+", crossover(TIME_N, t["exact"], t["favor"])),
        "crossover_causal": _describe(
            "causal FAVOR+", crossover(TIME_N, t["exact"], t["favor_causal"])
        ),
        "n_max": f"{TIME_N[i]:,}",
        "speed_max": f"{ratio:.1f} times faster"
        if ratio >= 1
        else f"{1 / ratio:.1f} times slower",
        "m": str(TIME_M),
        "d": str(D),
        "device": machine,
        "slope_exact": f"{_slope(TIME_N[-3:], t['exact'][-3:]):.2f}",
        "slope_favor": f"{_slope(TIME_N[-3:], t['favor'][-3:]):.2f}",
    }
