"""Chapter 10, sparse attention: the patterns drawn, how many pairs each keeps, and the
measured time and memory of banded attention against dense attention."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from matplotlib.colors import ListedColormap, to_rgba
from matplotlib.ticker import NullLocator

from snippets.attention import scaled_dot_product_attention
from snippets.masks import causal_mask
from snippets.measure import (
    Ratio,
    Timings,
    check_ratio,
    compare,
    fault_evidence,
    fmt_ratio,
    peak_memory_bytes,
    timing_device,
)
from snippets.plotting import COLORS, Figure, figure, markdown_table, significant
from snippets.runtime import device, measured
from snippets.sparse import (
    bigbird_layout,
    bigbird_mask,
    block_sparse_attention,
    dilated_window_mask,
    expand_layout,
    fixed_mask,
    global_tokens_mask,
    mask_density,
    sliding_window_attention,
    sliding_window_mask,
    strided_mask,
)

_N_DRAW = 64


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


def patterns_figure() -> Figure:
    fig, axes = figure(ncols=3, nrows=2, width=9.6, height=6.8)
    for ax, (title, mask, color) in zip(axes.flat, _patterns(_N_DRAW), strict=True):
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
    fig.get_layout_engine().set(h_pad=0.2)  # the lower titles clear the upper ticks
    return fig


_DENSITY_NS = [64, 128, 256, 512, 1024, 2048]


def density_figure() -> Figure:
    """Keys per query as n grows: the quantity that decides the cost of a layer."""
    gen = torch.Generator().manual_seed(11)
    curves = {
        "full (causal)": causal_mask,
        "sliding window, $w=16$": lambda n: sliding_window_mask(n, 16),
        "BigBird, block 16: 3 window, 2 global, 3 random": lambda n: bigbird_mask(
            n, 16, 3, 2, 3, gen
        ),
        "strided, stride ⌊√$n$⌋": lambda n: strided_mask(n, math.isqrt(n)),
    }
    fig, ax = figure(width=6.4, height=3.8)
    for (name, build), color, marker in zip(
        curves.items(), COLORS, "osD^", strict=False
    ):
        per_query = [mask_density(build(n)) * n for n in _DENSITY_NS]
        ax.plot(_DENSITY_NS, per_query, marker=marker, color=color, label=name)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="sequence length $n$",
        ylabel="keys per query (mean)",
    )
    ax.set_xticks(_DENSITY_NS, [str(n) for n in _DENSITY_NS])
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


_BENCH_NS = [256, 512, 1_024, 2_048, 4_096]
_BENCH_D = 32
_BENCH_W = 64
_BENCH_ROUNDS = 6
_BENCH_LABELS = {
    "banded": "the banded function",
    "fused": "PyTorch's fused function with the same mask",
    "dense": "our dense function with the mask",
}
_BENCH_NAMES = {
    "dense": "dense + window mask (ours)",
    "fused": "PyTorch fused + window mask",
    "banded": "sliding_window_attention",
}


def _banded_block(n: int, w: int) -> int:
    """The query block of `sliding_window_attention`: b = min(max(w, 32), N)."""
    return min(max(w, 32), n)


def _predicted_speedup(n: int) -> float:
    """Dense work 2 N^2 d over banded work 2 N (b + 2w) d: each block of b queries
    attends to a span of b + 2w keys."""
    return n / (_banded_block(n, _BENCH_W) + 2 * _BENCH_W)


@functools.cache
def _benchmark() -> dict[int, dict[str, object]]:
    """N -> the three calls timed in interleaved rounds ("t", with their page faults) and
    their peak bytes ("peaks")."""
    gen = torch.Generator().manual_seed(13)
    dev = device()
    rows = {}
    for n in _BENCH_NS:
        q, k, v = (
            torch.randn(1, 1, n, _BENCH_D, generator=gen).to(dev) for _ in range(3)
        )
        mask = sliding_window_mask(n, _BENCH_W, dev)  # built outside the measurement
        calls = {
            "dense": lambda q=q, k=k, v=v, m=mask: scaled_dot_product_attention(
                q, k, v, m
            ),
            "fused": lambda q=q, k=k, v=v, m=mask: F.scaled_dot_product_attention(
                q, k, v, attn_mask=m
            ),
            "banded": lambda q=q, k=k, v=v: sliding_window_attention(q, k, v, _BENCH_W),
        }
        with torch.no_grad():
            peaks = {name: peak_memory_bytes(call) for name, call in calls.items()}
            timings = compare(calls, rounds=_BENCH_ROUNDS, warmup=1)
        rows[n] = {"t": timings, "peaks": peaks}
    return rows


@measured
def speed_figure() -> Figure:
    rows = _benchmark()
    ns = list(rows)
    fig, axes = figure(ncols=2, width=8.0, height=3.6)
    for (key, label), color, marker in zip(
        _BENCH_NAMES.items(), [COLORS[3], COLORS[4], COLORS[0]], "oDs", strict=True
    ):
        axes[0].plot(
            ns,
            [r["t"].median(key) * 1e3 for r in rows.values()],
            marker=marker,
            color=color,
            label=label,
        )
        axes[1].plot(
            ns,
            [r["peaks"][key] / 2**20 for r in rows.values()],
            marker=marker,
            color=color,
            label=label,
        )
    for ax, unit in zip(axes, ("median time (ms)", "peak memory (MiB)"), strict=True):
        ax.set(xscale="log", yscale="log", xlabel="sequence length $n$", ylabel=unit)
        ax.set_xticks(ns, [f"{n:,}" for n in ns])
        ax.xaxis.set_minor_locator(NullLocator())
    axes[0].legend()
    return fig


def _speed_table(
    timings: dict[int, Timings],
    fast: str,
    name: str,
    predicted: Callable[[int], float],
    slows: dict[str, str] | None = None,
) -> str:
    """Median times of dense attention with the mask (ours and fused) and of `fast`, the
    speed-ups over `fast` of each of `slows` (key -> its name in the header; dense and
    fused by default) with their intervals, and the count's prediction, per N."""
    slows = slows or {"dense": "dense", "fused": "fused"}
    rows = []
    for n, t in timings.items():
        ratios = [t.ratio(slow, fast) for slow in slows]
        rows.append(
            [
                f"{n:,}",
                *(significant(t.median(key) * 1e3) for key in ("dense", "fused", fast)),
                *(f"{fmt_ratio(x.estimate)}× [{x.interval()}]" for x in ratios),
                f"{fmt_ratio(predicted(n))}×",
            ]
        )
    header = ["$N$", "dense (ms)", "fused (ms)", f"{name} (ms)"]
    header += [f"{slow} ÷ {fast} [95%]" for slow in slows.values()]
    header += ["predicted by the count"]
    return markdown_table(header, rows, "r" * len(header))


@measured
def speed_table() -> str:
    timings = {n: r["t"] for n, r in _benchmark().items()}
    return _speed_table(timings, "banded", "banded", _predicted_speedup)


@measured
def memory_table() -> str:
    rows = [
        [
            f"{n:,}",
            *(significant(r["peaks"][key] / 2**20) for key in ("dense", "banded")),
        ]
        for n, r in _benchmark().items()
    ]
    return markdown_table(["$N$", "dense (MiB)", "banded (MiB)"], rows, "rrr")


def _against_count(measured: Ratio, predicted: float) -> str:
    """The measured speed-up as a share of the count's prediction, in words."""
    share = measured.estimate / predicted
    return (
        f"{fmt_ratio(share)} times the count's prediction, within the factor of 3 that "
        "the build allows between a measurement and its model"
    )


@measured
def speed_numbers() -> dict[str, str]:
    rows = _benchmark()
    n_min, n = min(rows), max(rows)
    first, last = rows[n_min], rows[n]
    t = last["t"]
    predicted = _predicted_speedup(n)
    why = fault_evidence(
        "the dense function", t.page_faults("dense"), n, t.median("dense")
    )
    check_ratio("chapter 10, fused vs banded", t.ratio("fused", "banded"), predicted)
    check_ratio(
        "chapter 10, dense vs banded", t.ratio("dense", "banded"), predicted, why=why
    )
    return {
        "n_max": f"{n:,}",
        "w": str(_BENCH_W),
        "d": str(_BENCH_D),
        "b": str(_banded_block(n, _BENCH_W)),
        "rounds": str(_BENCH_ROUNDS),
        "predicted": fmt_ratio(predicted),
        "vs_fused": t.verdict("banded", "fused", _BENCH_LABELS),
        "vs_dense": t.verdict("banded", "dense", _BENCH_LABELS),
        "model_fused": _against_count(t.ratio("fused", "banded"), predicted),
        "dense_gap": (
            f"The extra factor is not arithmetic but memory: {why}"
            if why
            else "No excess of page faults was measured to explain a gap"
        ),
        "memory_ratio_max": f"{last['peaks']['dense'] / last['peaks']['banded']:.0f}",
        "banded_growth": f"{last['peaks']['banded'] / first['peaks']['banded']:.0f}",
        "dense_growth": f"{last['peaks']['dense'] / first['peaks']['dense']:.0f}",
        "length_growth": f"{n // n_min}",
        "device": timing_device(),
    }


def dilated_figure() -> Figure:
    """Longformer's sliding window, plain and dilated, for the same cost per query."""
    n, w = 40, 3
    fig, axes = figure(ncols=2, width=7.2, height=3.8)
    panels = [
        (f"window $w={w}$, dilation 1", sliding_window_mask(n, w)),
        (f"window $w={w}$, dilation 3", dilated_window_mask(n, w, 3)),
    ]
    for ax, (title, mask) in zip(axes, panels, strict=True):
        ax.imshow(mask.float(), cmap=_cells(COLORS[0]), vmin=0, vmax=1)
        ax.set_title(f"{title}\nreach ±{w * (3 if 'dilation 3' in title else 1)}")
        ax.set(xticks=[0, 20, 39], yticks=[0, 20, 39], xlabel="key position $j$")
        ax.grid(False)
        for side in ("top", "right"):
            ax.spines[side].set_visible(True)
    axes[0].set_ylabel("query position $i$")
    return fig


_LAYOUT_BLOCKS = 16  # blocks per side of the layouts checked against dense attention
_LAYOUT_B = 32  # positions per block there


def _named_layouts(num_blocks: int) -> dict[str, torch.Tensor]:
    """The patterns of this chapter on blocks: name -> bool (nb, nb) layout."""
    gen = torch.Generator().manual_seed(10)
    return {
        "sliding window, 1 block each side": sliding_window_mask(num_blocks, 1),
        "window + global blocks 0, 5": global_tokens_mask(num_blocks, 1, [0, 5]),
        "BigBird: 3 window, 1 global, 2 random": bigbird_layout(
            num_blocks, 3, 1, 2, gen
        ),
        "strided, stride 4": strided_mask(num_blocks, 4),
        "fixed, stride 4, $c = 1$": fixed_mask(num_blocks, 4, 1),
        "dilated window, 2 each side, dilation 2": dilated_window_mask(
            num_blocks, 2, 2
        ),
    }


def block_layout_numbers() -> dict[str, str]:
    return {"blocks": str(_LAYOUT_BLOCKS), "b": str(_LAYOUT_B)}


def block_sparse_table() -> str:
    """Each pattern as a layout: the tiles computed, and the largest difference from
    dense attention under the expanded mask."""
    n = _LAYOUT_BLOCKS * _LAYOUT_B - 5  # the last block partial
    g = torch.Generator().manual_seed(11)
    q, k, v = (torch.randn(2, n, 64, generator=g).to(device()) for _ in range(3))
    rows = []
    for name, layout in _named_layouts(_LAYOUT_BLOCKS).items():
        layout = layout.to(device())
        out = block_sparse_attention(q, k, v, layout, _LAYOUT_B)
        mask = expand_layout(layout, _LAYOUT_B, n, n)
        dense, _ = scaled_dot_product_attention(q, k, v, mask)
        tiles = int(layout.sum())
        rows.append(
            [
                name,
                f"{tiles} of {layout.numel()}",
                f"{100 * tiles / layout.numel():.0f}%",
                f"{(out - dense).abs().max().item():.1e}",
            ]
        )
    header = ["layout", "tiles computed", "share", "largest difference (float32)"]
    return markdown_table(header, rows, "lrrr")


_BLOCK_NS = [1024, 2048, 4096]
_BLOCK_B = 64
_BLOCK_D = 64  # head width
_BLOCK_ROUNDS = 6
_BLOCK_LABELS = {
    "dense": "dense attention with the mask (ours)",
    "fused": "PyTorch's fused function with the mask",
    "block": "block_sparse_attention",
    "full": "block_sparse_attention with every tile listed",
}


def _block_layout(n: int) -> torch.Tensor:
    """BigBird's layout for n positions in blocks of 64: 3 window, 1 global, 2 random."""
    gen = torch.Generator().manual_seed(12)
    return bigbird_layout(math.ceil(n / _BLOCK_B), 3, 1, 2, gen)


@functools.cache
def _block_benchmark() -> dict[int, Timings]:
    """N -> the three calls, timed in interleaved rounds with the same inputs and layout."""
    gen = torch.Generator().manual_seed(14)
    out = {}
    for n in _BLOCK_NS:
        q, k, v = (
            torch.randn(1, 1, n, _BLOCK_D, generator=gen).to(device()) for _ in range(3)
        )
        layout = _block_layout(n).to(device())
        mask = expand_layout(layout, _BLOCK_B, n, n)  # built outside the measurement
        every = torch.ones_like(layout)  # every tile listed
        calls = {
            "dense": lambda q=q, k=k, v=v, m=mask: scaled_dot_product_attention(
                q, k, v, m
            ),
            "fused": lambda q=q, k=k, v=v, m=mask: F.scaled_dot_product_attention(
                q, k, v, attn_mask=m
            ),
            "block": lambda q=q, k=k, v=v, lay=layout: block_sparse_attention(
                q, k, v, lay, _BLOCK_B
            ),
            # the same function with every tile listed: the count's model, measured
            "full": lambda q=q, k=k, v=v, lay=every: block_sparse_attention(
                q, k, v, lay, _BLOCK_B
            ),
        }
        with torch.no_grad():
            out[n] = compare(calls, rounds=_BLOCK_ROUNDS)
    return out


def _tiles_saved(n: int) -> float:
    """The count's prediction: dense work over the work of the listed tiles."""
    layout = _block_layout(n)
    return layout.numel() / int(layout.sum())


@measured
def block_speed_table() -> str:
    slows = {"dense": "dense", "fused": "fused", "full": "every tile"}
    return _speed_table(
        _block_benchmark(), "block", "block-sparse", _tiles_saved, slows
    )


@measured
def block_speed_numbers() -> dict[str, str]:
    n = max(_BLOCK_NS)
    t = _block_benchmark()[n]
    predicted = _tiles_saved(n)
    why = fault_evidence(
        "the dense function", t.page_faults("dense"), n, t.median("dense")
    )
    # The count's model is tested on the function itself: its time with every tile
    # listed over its time with the layout's. (The fused function scores every pair at
    # its own rate per pair, which the count does not know.)
    # Listing every tile gathers n x n numbers' worth of fresh memory at every call: a
    # gap beyond the band is excused only by the page faults measured for it.
    full_why = fault_evidence(
        "the function with every tile listed",
        t.page_faults("full"),
        n,
        t.median("full"),
    )
    full_check = check_ratio(
        "chapter 10, block-sparse, every tile vs the layout's",
        t.ratio("full", "block"),
        predicted,
        why=full_why,
    )
    check_ratio(
        "chapter 10, dense vs block-sparse",
        t.ratio("dense", "block"),
        predicted,
        why=why,
    )
    layout, short = _block_layout(n), _block_layout(min(_BLOCK_NS))
    pairs = int(layout.sum()) * _BLOCK_B**2
    dense_share = t.ratio("dense", "block").estimate / predicted
    return {
        "n_max": f"{n:,}",
        "b": str(_BLOCK_B),
        "d": str(_BLOCK_D),
        "rounds": str(_BLOCK_ROUNDS),
        "tiles": f"{int(layout.sum()):,}",
        "all_tiles": f"{layout.numel():,}",
        "predicted": fmt_ratio(predicted),
        "vs_fused": t.verdict("block", "fused", _BLOCK_LABELS),
        "vs_dense": t.verdict("block", "dense", _BLOCK_LABELS),
        "vs_full": t.verdict("block", "full", _BLOCK_LABELS),
        "full_share": fmt_ratio(t.ratio("full", "block").estimate / predicted),
        # the evidence, shown when the check needed it
        "full_gap": f" {full_why}."
        if full_why and full_check.endswith(full_why)
        else "",
        "fused_share": fmt_ratio(t.ratio("fused", "block").estimate / predicted),
        "dense_share": f"{fmt_ratio(dense_share)} times the prediction",
        "dense_gap": f"The extra factor is memory, not arithmetic: {why}."
        if why
        else "",
        # time per (query, key) pair computed: the listed tiles', or all N^2 of them
        "per_pair_block": f"{t.median('block') / pairs * 1e9:.0f}",
        "per_pair_fused": f"{t.median('fused') / n**2 * 1e9:.0f}",
        "tiles_short": f"{int(short.sum())} of {short.numel()}",
        "n_min": f"{min(_BLOCK_NS):,}",
        "vs_fused_short": _block_benchmark()[min(_BLOCK_NS)].verdict(
            "block", "fused", _BLOCK_LABELS
        ),
        "device": timing_device(),
    }
