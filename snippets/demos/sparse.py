"""Chapter 10, sparse attention: the patterns drawn, how many pairs each keeps, and the
measured time and memory of banded attention against dense attention."""

from __future__ import annotations

import functools
import math

import torch
from matplotlib.colors import ListedColormap, to_rgba
from matplotlib.ticker import NullLocator

from snippets.attention import scaled_dot_product_attention
from snippets.measure import (
    median_seconds,
    one_cpu_thread,
    peak_memory_bytes,
    timing_device,
)
from snippets.plotting import COLORS, figure
from snippets.runtime import device, measured
from snippets.sparse import (
    bigbird_mask,
    fixed_mask,
    global_tokens_mask,
    mask_density,
    sliding_window_attention,
    sliding_window_mask,
    strided_mask,
)

N_DRAW = 64


def _cells(color: str) -> ListedColormap:
    """False cells transparent (the page's background), True cells in `color`."""
    return ListedColormap([(0.0, 0.0, 0.0, 0.0), to_rgba(color)])


def _patterns(n: int) -> list[tuple[str, torch.Tensor, str]]:
    gen = torch.Generator().manual_seed(10)
    return [
        ("full", torch.ones(n, n, dtype=torch.bool), COLORS[1]),
        ("sliding window, $w=3$", sliding_window_mask(n, 3), COLORS[0]),
        ("window + global tokens 0, 40", global_tokens_mask(n, 3, [0, 40]), COLORS[0]),
        ("BigBird, blocks of 4", bigbird_mask(n, 4, 3, 1, 2, gen), COLORS[2]),
        ("strided, stride 8", strided_mask(n, 8), COLORS[4]),
        ("fixed, stride 8, $c=2$", fixed_mask(n, 8, 2), COLORS[4]),
    ]


def patterns_figure():
    fig, axes = figure(ncols=3, nrows=2, width=9.6, height=6.8)
    for ax, (title, mask, color) in zip(axes.flat, _patterns(N_DRAW), strict=True):
        ax.imshow(
            mask.float(), cmap=_cells(color), vmin=0, vmax=1, interpolation="nearest"
        )
        ax.set_title(f"{title}\n{100 * mask_density(mask):.0f}% of pairs", fontsize=10)
        ax.set(xticks=[0, 32, 63], yticks=[0, 32, 63])
        ax.grid(False)
        for side in ("top", "right"):
            ax.spines[side].set_visible(True)
    for ax in axes[1]:
        ax.set_xlabel("key position $j$")
    for ax in axes[:, 0]:
        ax.set_ylabel("query position $i$")
    return fig


DENSITY_NS = [64, 128, 256, 512, 1024, 2048]


def density_figure():
    """Keys per query as n grows: the quantity that decides the cost of a layer."""
    gen = torch.Generator().manual_seed(11)
    curves = {
        "full (causal)": lambda n: torch.ones(n, n, dtype=torch.bool).tril(),
        "sliding window, $w=16$": lambda n: sliding_window_mask(n, 16),
        "BigBird, block 16: 3 window, 2 global, 3 random": lambda n: bigbird_mask(
            n, 16, 3, 2, 3, gen
        ),
        r"strided, stride $\lfloor\sqrt{n}\rfloor$": lambda n: strided_mask(
            n, math.isqrt(n)
        ),
    }
    fig, ax = figure(width=6.4, height=3.8)
    for (name, build), color, marker in zip(
        curves.items(), COLORS, "osD^", strict=False
    ):
        per_query = [mask_density(build(n)) * n for n in DENSITY_NS]
        ax.plot(DENSITY_NS, per_query, marker=marker, color=color, label=name)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="sequence length $n$",
        ylabel="keys per query (mean)",
    )
    ax.set_xticks(DENSITY_NS, [str(n) for n in DENSITY_NS])
    ax.xaxis.set_minor_locator(NullLocator())  # no 3x10^2-style labels
    ax.legend(fontsize=8)
    return fig


def agreement() -> str:
    """Banded attention against dense attention with the window mask, as the build ran it."""
    gen = torch.Generator().manual_seed(12)
    n, w = 1000, 37
    q, k, v = (torch.randn(2, 4, n, 32, generator=gen).to(device()) for _ in range(3))
    banded = sliding_window_attention(q, k, v, w)
    dense, _ = scaled_dot_product_attention(
        q, k, v, sliding_window_mask(n, w, q.device)
    )
    err = (banded - dense).abs().max().item()
    return (
        f"For a batch of 2 × 4 heads × {n:,} positions × 32 dimensions and $w = {w}$, "
        f"run on `{device()}`, the largest difference between `sliding_window_attention` "
        f"and dense attention with `sliding_window_mask` is **{err:.1e}** (float32)."
    )


BENCH_NS = [512, 1_024, 2_048, 4_096, 8_192]
BENCH_D = 32
BENCH_W = 64


@functools.cache
def _benchmark() -> tuple[list[dict[str, float]], str]:
    gen = torch.Generator().manual_seed(13)
    dev = device()
    rows = []
    where = timing_device()
    with one_cpu_thread():
        for n in BENCH_NS:
            q, k, v = (
                torch.randn(1, 1, n, BENCH_D, generator=gen).to(dev) for _ in range(3)
            )
            mask = sliding_window_mask(n, BENCH_W, dev)  # built outside the measurement

            def dense(q=q, k=k, v=v, mask=mask):
                return scaled_dot_product_attention(q, k, v, mask)

            def banded(q=q, k=k, v=v):
                return sliding_window_attention(q, k, v, BENCH_W)

            # The memory run comes first and doubles as the warm-up of the timing.
            dense_b, banded_b = peak_memory_bytes(dense), peak_memory_bytes(banded)
            rows.append(
                {
                    "n": n,
                    # Dense at the longest n takes seconds: fewer repeats there.
                    "dense_s": median_seconds(
                        dense, repeats=3 if n <= 2_048 else 1, warmup=0
                    ),
                    "banded_s": median_seconds(banded, repeats=5, warmup=0),
                    "dense_b": dense_b,
                    "banded_b": banded_b,
                }
            )
    return rows, where


@measured
def speed_figure():
    rows, where = _benchmark()
    ns = [r["n"] for r in rows]
    fig, axes = figure(ncols=2, width=9.6, height=3.6)
    for key, ax, unit, scale in (
        ("_s", axes[0], "median time (ms)", 1e3),
        ("_b", axes[1], "peak memory (MiB)", 2.0**-20),
    ):
        ax.plot(
            ns,
            [r["dense" + key] * scale for r in rows],
            "o-",
            color=COLORS[3],
            label="dense + window mask",
        )
        ax.plot(
            ns,
            [r["banded" + key] * scale for r in rows],
            "s-",
            color=COLORS[0],
            label="sliding_window_attention",
        )
        ax.set(xscale="log", yscale="log", xlabel="sequence length $n$", ylabel=unit)
        ax.set_xticks(ns, [f"{n:,}" for n in ns])
        ax.xaxis.set_minor_locator(NullLocator())
    axes[0].legend()
    fig.suptitle(
        f"$w = {BENCH_W}$, $d = {BENCH_D}$, one head; {where}",
        fontsize=9,
    )
    return fig


@measured
def speed_table() -> str:
    lines = [
        "| $n$ | dense: time | banded: time | speed-up "
        "| dense: peak memory | banded: peak memory | memory ratio |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in _benchmark()[0]:
        lines.append(
            f"| {r['n']:,} | {r['dense_s'] * 1e3:.1f} ms | {r['banded_s'] * 1e3:.1f} ms "
            f"| {r['dense_s'] / r['banded_s']:.1f}× "
            f"| {r['dense_b'] / 2**20:.1f} MiB | {r['banded_b'] / 2**20:.1f} MiB "
            f"| {r['dense_b'] / r['banded_b']:.0f}× |"
        )
    return "\n".join(lines)


@measured
def speed_numbers() -> dict[str, str]:
    rows, where = _benchmark()
    first, last = rows[0], rows[-1]
    return {
        "n_max": f"{last['n']:,}",
        "w": str(BENCH_W),
        "d": str(BENCH_D),
        "speedup_max": f"{last['dense_s'] / last['banded_s']:.1f}",
        "memory_ratio_max": f"{last['dense_b'] / last['banded_b']:.0f}",
        "banded_growth": f"{last['banded_b'] / first['banded_b']:.0f}",
        "dense_growth": f"{last['dense_b'] / first['dense_b']:.0f}",
        "length_growth": f"{last['n'] // first['n']}",
        "device": where,
    }
