"""Chapter 9, attention families: soft vs top-k weights, what each costs, additive vs dot product."""

from __future__ import annotations

import functools

import torch
from matplotlib.colors import LinearSegmentedColormap, to_rgba

from snippets.attention import scaled_dot_product_attention
from snippets.families import (
    AdditiveAttention,
    DotProductAttention,
    counted_multiply_adds,
    topk_attention,
)
from snippets.measure import (
    median_seconds,
    one_cpu_thread,
    peak_memory_bytes,
    timing_device,
)
from snippets.plotting import COLORS, figure
from snippets.runtime import device, measured

TOP_K = 8  # the k of top-k in the cost table and the timings
D = 64  # query/key/value width in the cost table and the timings
COST_NS = [256, 1_024, 4_096, 16_384, 65_536]
FIG_K = 4  # the k of the weights figure


def _ramp(color: str) -> LinearSegmentedColormap:
    """From transparent (the page's background, in either palette) to `color`."""
    r, g, b, _ = to_rgba(color)
    return LinearSegmentedColormap.from_list("ramp", [(r, g, b, 0.0), (r, g, b, 1.0)])


def weights_figure():
    """Soft and top-k weights of the same queries over the same keys."""
    gen = torch.Generator().manual_seed(9)
    n_q, n_k, d = 10, 32, 16
    q = torch.randn(n_q, d, generator=gen)
    k = torch.randn(n_k, d, generator=gen)
    v = torch.randn(n_k, d, generator=gen)
    _, soft = scaled_dot_product_attention(q, k, v)
    _, hard = topk_attention(q, k, v, FIG_K)
    fig, axes = figure(ncols=3, width=10.5, height=3.3)
    vmax = max(soft.max().item(), hard.max().item())
    for ax, w, title in (
        (axes[0], soft, "soft: every key gets weight"),
        (axes[1], hard, f"top-{FIG_K}: {FIG_K} non-zeros per row"),
    ):
        im = ax.imshow(w, cmap=_ramp(COLORS[0]), vmin=0, vmax=vmax, aspect="auto")
        ax.set(title=title, xlabel="key position", ylabel="query")
        ax.grid(False)
    fig.colorbar(im, ax=axes[1], label="weight", shrink=0.9)
    row = 0
    pos = torch.arange(n_k)
    axes[2].bar(pos - 0.2, soft[row], width=0.4, color=COLORS[0], label="soft")
    axes[2].bar(pos + 0.2, hard[row], width=0.4, color=COLORS[1], label=f"top-{FIG_K}")
    axes[2].set(
        title=f"query {row}: both rows sum to 1",
        xlabel="key position",
        ylabel="weight",
    )
    axes[2].legend()
    return fig


@functools.cache
def _costs() -> list[dict[str, int]]:
    gen = torch.Generator().manual_seed(0)
    rows = []
    for n in COST_NS:
        q = torch.randn(1, D, generator=gen)  # one query: the cost per query
        k = torch.randn(n, D, generator=gen)
        v = torch.randn(n, D, generator=gen)
        rows.append(
            {
                "n": n,
                "score": counted_multiply_adds(lambda q=q, k=k: q @ k.T),
                "soft": counted_multiply_adds(
                    lambda q=q, k=k, v=v: scaled_dot_product_attention(q, k, v)
                ),
                "hard": counted_multiply_adds(
                    lambda q=q, k=k, v=v: topk_attention(q, k, v, TOP_K)
                ),
            }
        )
    return rows


def cost_table() -> str:
    """Multiply-adds per query, counted by FlopCounterMode while the code runs."""
    lines = [
        f"| keys $n$ | scoring (both) | weighted sum, soft | weighted sum, top-{TOP_K} "
        f"| top-{TOP_K} total / soft total | $k/n$ |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in _costs():
        lines.append(
            f"| {r['n']:,} | {r['score']:,} | {r['soft'] - r['score']:,} "
            f"| {r['hard'] - r['score']:,} | {r['hard'] / r['soft']:.3f} "
            f"| {TOP_K / r['n']:.5f} |"
        )
    return "\n".join(lines)


def cost_numbers() -> dict[str, str]:
    last = _costs()[-1]
    return {
        "k": str(TOP_K),
        "d": str(D),
        "n_max": f"{last['n']:,}",
        "ratio_max": f"{last['hard'] / last['soft']:.3f}",
        "claimed_max": f"{TOP_K / last['n']:.5f}",
    }


T_QUERIES, T_KEYS = 256, 4_096


@functools.cache
def _timings() -> dict[str, float | str]:
    gen = torch.Generator().manual_seed(1)
    dev = device()
    q = torch.randn(T_QUERIES, D, generator=gen).to(dev)
    k = torch.randn(T_KEYS, D, generator=gen).to(dev)
    v = torch.randn(T_KEYS, D, generator=gen).to(dev)
    scores = q @ k.T / D**0.5
    where = timing_device()
    with one_cpu_thread():
        return {
            "soft": median_seconds(
                lambda: scaled_dot_product_attention(q, k, v), repeats=7
            ),
            "hard": median_seconds(lambda: topk_attention(q, k, v, TOP_K), repeats=7),
            "score": median_seconds(lambda: q @ k.T / D**0.5, repeats=7),
            "select": median_seconds(lambda: scores.topk(TOP_K, dim=-1), repeats=7),
            "device": where,
        }


@measured
def timing_table() -> str:
    t = _timings()
    ms = 1e3
    return "\n".join(
        [
            f"| {T_QUERIES:,} queries, {T_KEYS:,} keys, $d = {D}$ | median time |",
            "| --- | ---: |",
            f"| soft attention, whole function | {t['soft'] * ms:.2f} ms |",
            f"| top-{TOP_K} attention, whole function | {t['hard'] * ms:.2f} ms |",
            f"| scoring alone, $QK^\\top/\\sqrt{{d}}$ (both need it) "
            f"| {t['score'] * ms:.2f} ms |",
            f"| choosing the top {TOP_K} alone, from given scores "
            f"| {t['select'] * ms:.2f} ms |",
        ]
    )


@measured
def timing_numbers() -> dict[str, str]:
    t = _timings()
    return {
        "queries": f"{T_QUERIES:,}",
        "keys": f"{T_KEYS:,}",
        "ratio": f"{t['hard'] / t['soft']:.2f}",
        "device": t["device"],
    }


A_NS = [128, 256, 512]
A_HIDDEN = 32


@measured
def additive_vs_dot_table() -> str:
    """Time and peak memory of the two score functions with the same hidden width."""
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)  # the modules' initial weights
    dev = device()
    additive = AdditiveAttention(A_HIDDEN, A_HIDDEN, A_HIDDEN).to(dev)
    dot = DotProductAttention(A_HIDDEN, A_HIDDEN, A_HIDDEN).to(dev)
    lines = [
        "| $n$ (queries = keys) | additive: time | dot product: time "
        "| additive: peak memory | dot product: peak memory |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    with torch.no_grad(), one_cpu_thread():
        for n in A_NS:
            x = torch.randn(n, A_HIDDEN, generator=gen).to(dev)
            row = [f"| {n:,} "]
            for mod in (additive, dot):
                seconds = median_seconds(lambda m=mod, x=x: m(x, x, x), repeats=3)
                row.append(f"| {seconds * 1e3:.2f} ms ")
            for mod in (additive, dot):
                mib = peak_memory_bytes(lambda m=mod, x=x: m(x, x, x)) / 2**20
                row.append(f"| {mib:.2f} MiB ")
            lines.append("".join(row) + "|")
    return "\n".join(lines)
