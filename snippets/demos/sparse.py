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
from snippets.bilingual import Say, say, zh
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


# The axes of every mask drawn
_KEY_AXIS = say("key position $j$", "键位置 $j$")
_QUERY_AXIS = say("query position $i$", "查询位置 $i$")


def _patterns(n: int) -> list[tuple[Say, torch.Tensor, str]]:
    gen = torch.Generator().manual_seed(10)
    return [
        (say("full", "完整"), torch.ones(n, n, dtype=torch.bool), COLORS[1]),
        (
            say("sliding window, $w=3$", "滑动窗口，$w=3$"),
            sliding_window_mask(n, 3),
            COLORS[0],
        ),
        (
            say("window + global tokens 0, 40", "窗口 + 全局词元 0、40"),
            global_tokens_mask(n, 3, [0, 40]),
            COLORS[0],
        ),
        (
            say("BigBird, blocks of 4", "BigBird，块大小 4"),
            bigbird_mask(n, 4, 3, 1, 2, gen),
            COLORS[2],
        ),
        (say("strided, stride 8", "跨步，步幅 8"), strided_mask(n, 8), COLORS[4]),
        (
            say("fixed, stride 8, $c=2$", "固定，步幅 8，$c=2$"),
            fixed_mask(n, 8, 2),
            COLORS[4],
        ),
    ]


def patterns_figure() -> Figure:
    fig, axes = figure(ncols=3, nrows=2, width=9.6, height=6.8)
    for ax, (title, mask, color) in zip(axes.flat, _patterns(_N_DRAW), strict=True):
        ax.imshow(
            mask.float(), cmap=_cells(color), vmin=0, vmax=1, interpolation="nearest"
        )
        share = f"{100 * mask_density(mask):.0f}%"
        pairs = say(f"\n{share} of pairs", f"\n{share} 的配对")
        ax.set_title(title + pairs, fontsize=10)
        ax.set(xticks=[0, 32, 63], yticks=[0, 32, 63])
        ax.grid(False)
        for side in ("top", "right"):
            ax.spines[side].set_visible(True)
    for ax in axes[1]:
        ax.set_xlabel(_KEY_AXIS)
    for ax in axes[:, 0]:
        ax.set_ylabel(_QUERY_AXIS)
    fig.get_layout_engine().set(h_pad=0.2)  # the lower titles clear the upper ticks
    return fig


_DENSITY_NS = [64, 128, 256, 512, 1024, 2048]
_LENGTH_AXIS = say("sequence length $n$", "序列长度 $n$")


def density_figure() -> Figure:
    """Keys per query as n grows: the quantity that decides the cost of a layer."""
    gen = torch.Generator().manual_seed(11)
    names = (
        say("full (causal)", "完整（因果）"),
        say("sliding window, $w=16$", "滑动窗口，$w=16$"),
        say(
            "BigBird, block 16: 3 window, 2 global, 3 random",
            "BigBird，块大小 16：3 个窗口块、2 个全局块、3 个随机块",
        ),
        # the CJK font has no ⌊ ⌋: in Chinese they are math
        say("strided, stride ⌊√$n$⌋", r"跨步，步幅 $\lfloor$√$n\rfloor$"),
    )
    builds = (
        causal_mask,
        lambda n: sliding_window_mask(n, 16),
        lambda n: bigbird_mask(n, 16, 3, 2, 3, gen),
        lambda n: strided_mask(n, math.isqrt(n)),
    )
    curves = dict(zip(names, builds, strict=True))
    fig, ax = figure(width=6.4, height=3.8)
    for (name, build), color, marker in zip(
        curves.items(), COLORS, "osD^", strict=False
    ):
        per_query = [mask_density(build(n)) * n for n in _DENSITY_NS]
        ax.plot(_DENSITY_NS, per_query, marker=marker, color=color, label=name)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=_LENGTH_AXIS,
        ylabel=say("keys per query (mean)", "每个查询的键数（平均）"),
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
    return say(
        f"For a batch of 2 × 4 heads × {n:,} positions × 32 dimensions and $w = {w}$, "
        f"run on `{device()}`, the largest difference between "
        "`sliding_window_attention` and dense attention with `sliding_window_mask` "
        f"is **{err:.1e}** (float32).",
        f"对于批量大小为 2、4 个头、{n:,} 个位置、32 维的输入，取 $w = {w}$，"
        f"在 `{device()}` 上运行时，`sliding_window_attention` 与使用 "
        f"`sliding_window_mask` 的稠密注意力之间的最大差异为 **{err:.1e}**（float32）。",
    )


_BENCH_NS = [256, 512, 1_024, 2_048, 4_096]
_BENCH_D = 32
_BENCH_W = 64
_BENCH_ROUNDS = 6
_BENCH_LABELS = {
    "banded": say("the banded function", "带状函数"),
    "fused": say(
        "PyTorch's fused function with the same mask", "使用同一掩码的 PyTorch 融合函数"
    ),
    "dense": say("our dense function with the mask", "我们使用掩码的稠密函数"),
}
_BENCH_NAMES = {
    "dense": say("dense + window mask (ours)", "稠密 + 窗口掩码（我们的实现）"),
    "fused": say("PyTorch fused + window mask", "PyTorch 融合 + 窗口掩码"),
    "banded": "sliding_window_attention",
}
# What the tables call each call: in a column's name, and in "slow ÷ fast"
_DENSE, _FUSED = say("dense", "稠密"), say("fused", "融合")
_SHORT = {
    "dense": _DENSE,
    "fused": _FUSED,
    "banded": say("banded", "带状"),
    "block": say("block", "块稀疏"),
    "full": say("every tile", "全部分块"),
}
_DENSE_FUNCTION = say("the dense function", "稠密函数")


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
    units = (
        say("median time (ms)", "中位时间（ms）"),
        say("peak memory (MiB)", "峰值内存（MiB）"),
    )
    for ax, unit in zip(axes, units, strict=True):
        ax.set(xscale="log", yscale="log", xlabel=_LENGTH_AXIS, ylabel=unit)
        ax.set_xticks(ns, [f"{n:,}" for n in ns])
        ax.xaxis.set_minor_locator(NullLocator())
    axes[0].legend()
    return fig


def _speed_table(
    timings: dict[int, Timings],
    fast: str,
    name: Say,
    predicted: Callable[[int], float],
    slows: dict[str, Say] | None = None,
) -> Say:
    """Median times of dense attention with the mask (ours and fused) and of `fast`, the
    speed-ups over `fast` of each of `slows` (key -> its name in the header; dense and
    fused by default) with their intervals, and the count's prediction, per N."""
    slows = slows or {"dense": _DENSE, "fused": _FUSED}
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
    header = ["$N$", say("dense (ms)", "稠密（ms）"), say("fused (ms)", "融合（ms）")]
    header += [say(f"{name} (ms)", f"{zh(name)}（ms）")]
    header += [
        say(f"{slow} ÷ {fast} [95%]", f"{zh(slow)} ÷ {zh(_SHORT[fast])} [95%]")
        for slow in slows.values()
    ]
    header += [say("predicted by the count", "计数预测")]
    return markdown_table(header, rows, "r" * len(header))


@measured
def speed_table() -> str:
    timings = {n: r["t"] for n, r in _benchmark().items()}
    return _speed_table(timings, "banded", _SHORT["banded"], _predicted_speedup)


@measured
def memory_table() -> str:
    rows = [
        [
            f"{n:,}",
            *(significant(r["peaks"][key] / 2**20) for key in ("dense", "banded")),
        ]
        for n, r in _benchmark().items()
    ]
    header = [
        "$N$",
        say("dense (MiB)", "稠密（MiB）"),
        say("banded (MiB)", "带状（MiB）"),
    ]
    return markdown_table(header, rows, "rrr")


def _against_count(measured: Ratio, predicted: float) -> Say:
    """The measured speed-up as a share of the count's prediction, in words."""
    share = measured.estimate / predicted
    return say(
        f"{fmt_ratio(share)} times the count's prediction, within the factor of 3 that "
        "the build allows between a measurement and its model",
        f"计数预测值的 {fmt_ratio(share)} 倍，在构建过程所允许的测量值与其模型之间"
        "相差 3 倍的范围以内",
    )


@measured
def speed_numbers() -> dict[str, str]:
    rows = _benchmark()
    n_min, n = min(rows), max(rows)
    first, last = rows[n_min], rows[n]
    t = last["t"]
    predicted = _predicted_speedup(n)
    why = fault_evidence(_DENSE_FUNCTION, t.page_faults("dense"), n, t.median("dense"))
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
            say(
                "The extra factor is not arithmetic but memory: ",
                "多出的倍数不是来自算术，而是来自内存：",
            )
            + why
            if why
            else say(
                "No excess of page faults was measured to explain a gap",
                "没有测到可以解释这一差距的多余缺页",
            )
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
        (
            say(f"window $w={w}$, dilation 1", f"窗口 $w={w}$，扩张率 1"),
            sliding_window_mask(n, w),
        ),
        (
            say(f"window $w={w}$, dilation 3", f"窗口 $w={w}$，扩张率 3"),
            dilated_window_mask(n, w, 3),
        ),
    ]
    for ax, (title, mask) in zip(axes, panels, strict=True):
        ax.imshow(mask.float(), cmap=_cells(COLORS[0]), vmin=0, vmax=1)
        reach = f"±{w * (3 if 'dilation 3' in title else 1)}"
        ax.set_title(title + say(f"\nreach {reach}", f"\n覆盖范围 {reach}"))
        ax.set(xticks=[0, 20, 39], yticks=[0, 20, 39], xlabel=_KEY_AXIS)
        ax.grid(False)
        for side in ("top", "right"):
            ax.spines[side].set_visible(True)
    axes[0].set_ylabel(_QUERY_AXIS)
    return fig


_LAYOUT_BLOCKS = 16  # blocks per side of the layouts checked against dense attention
_LAYOUT_B = 32  # positions per block there


_LAYOUT_NAMES = (
    say("sliding window, 1 block each side", "滑动窗口，每侧 1 个块"),
    say("window + global blocks 0, 5", "窗口 + 全局块 0、5"),
    say(
        "BigBird: 3 window, 1 global, 2 random",
        "BigBird：3 个窗口块、1 个全局块、2 个随机块",
    ),
    say("strided, stride 4", "跨步，步幅 4"),
    say("fixed, stride 4, $c = 1$", "固定，步幅 4，$c = 1$"),
    say("dilated window, 2 each side, dilation 2", "扩张窗口，每侧 2 个，扩张率 2"),
)


def _named_layouts(num_blocks: int) -> dict[Say, torch.Tensor]:
    """The patterns of this chapter on blocks: name -> bool (nb, nb) layout."""
    gen = torch.Generator().manual_seed(10)
    window, global_, bigbird, strided, fixed, dilated = _LAYOUT_NAMES
    return {
        window: sliding_window_mask(num_blocks, 1),
        global_: global_tokens_mask(num_blocks, 1, [0, 5]),
        bigbird: bigbird_layout(num_blocks, 3, 1, 2, gen),
        strided: strided_mask(num_blocks, 4),
        fixed: fixed_mask(num_blocks, 4, 1),
        dilated: dilated_window_mask(num_blocks, 2, 2),
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
                say(
                    f"{tiles} of {layout.numel()}",
                    f"{layout.numel()} 个中的 {tiles} 个",
                ),
                f"{100 * tiles / layout.numel():.0f}%",
                f"{(out - dense).abs().max().item():.1e}",
            ]
        )
    header = [
        say("layout", "布局"),
        say("tiles computed", "计算的分块"),
        say("share", "比例"),
        say("largest difference (float32)", "最大差异（float32）"),
    ]
    return markdown_table(header, rows, "lrrr")


_BLOCK_NS = [1024, 2048, 4096]
_BLOCK_B = 64
_BLOCK_D = 64  # head width
_BLOCK_ROUNDS = 6
# In Chinese the function's name is code, with a space before the words that follow it
_BLOCK_LABELS = {
    "dense": say(
        "dense attention with the mask (ours)", "使用掩码的稠密注意力（我们的实现）"
    ),
    "fused": say(
        "PyTorch's fused function with the mask", "使用掩码的 PyTorch 融合函数"
    ),
    "block": say("block_sparse_attention", "`block_sparse_attention` "),
    "full": say(
        "block_sparse_attention with every tile listed",
        "列出全部分块的 `block_sparse_attention` ",
    ),
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
    slows = {key: _SHORT[key] for key in ("dense", "fused", "full")}
    name = say("block-sparse", "块稀疏")
    return _speed_table(_block_benchmark(), "block", name, _tiles_saved, slows)


@measured
def block_speed_numbers() -> dict[str, str]:
    n = max(_BLOCK_NS)
    t = _block_benchmark()[n]
    predicted = _tiles_saved(n)
    why = fault_evidence(_DENSE_FUNCTION, t.page_faults("dense"), n, t.median("dense"))
    # The count's model is tested on the function itself: its time with every tile
    # listed over its time with the layout's. (The fused function scores every pair at
    # its own rate per pair, which the count does not know.)
    # Listing every tile gathers n x n numbers' worth of fresh memory at every call: a
    # gap beyond the band is excused only by the page faults measured for it.
    full_why = fault_evidence(
        say("the function with every tile listed", "列出全部分块的函数"),
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
        "full_gap": say(f" {full_why}.", f"{zh(full_why)}。")
        if full_why and full_check.endswith(full_why)
        else "",
        "fused_share": fmt_ratio(t.ratio("fused", "block").estimate / predicted),
        "dense_share": say(
            f"{fmt_ratio(dense_share)} times the prediction",
            f"是预测值的 {fmt_ratio(dense_share)} 倍",
        ),
        "dense_gap": say(
            "The extra factor is memory, not arithmetic: ",
            "多出的倍数来自内存，而不是算术：",
        )
        + why
        + say(".", "。")
        if why
        else "",
        # time per (query, key) pair computed: the listed tiles', or all N^2 of them
        "per_pair_block": f"{t.median('block') / pairs * 1e9:.0f}",
        "per_pair_fused": f"{t.median('fused') / n**2 * 1e9:.0f}",
        "tiles_short": say(
            f"{int(short.sum())} of {short.numel()}",
            f"{short.numel()} 个中的 {int(short.sum())}",
        ),
        "n_min": f"{min(_BLOCK_NS):,}",
        "vs_fused_short": _block_benchmark()[min(_BLOCK_NS)].verdict(
            "block", "fused", _BLOCK_LABELS
        ),
        "device": timing_device(),
    }
