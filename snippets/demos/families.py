"""Chapter 9, attention families: soft vs top-k weights, what each costs, additive vs dot product."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from matplotlib.colors import LinearSegmentedColormap, to_rgba

from snippets.attention import scaled_dot_product_attention
from snippets.bilingual import same, say
from snippets.families import (
    AdditiveAttention,
    DotProductAttention,
    counted_multiply_adds,
    local_attention,
    topk_attention,
)
from snippets.measure import (
    Timings,
    check_ratio,
    compare,
    fmt_ratio,
    peak_memory_bytes,
    timing_device,
)
from snippets.plotting import COLORS, Figure, figure, markdown_table
from snippets.runtime import device, measured

_TOP_K = 8  # the k of top-k in the cost table and the timings
_D = 64  # query/key/value width in the cost table and the timings
_COST_NS = [256, 1_024, 4_096, 16_384, 65_536]
_FIG_K = 4  # the k of the weights figure
# the method's name, as Chinese writing keeps it too (top-k)
_TOP, _FIG_TOP = same(f"top-{_TOP_K}"), same(f"top-{_FIG_K}")
_KEY_POSITION = say("key position", "键的位置")
_WEIGHT = say("weight", "权重")


def _ramp(color: str) -> LinearSegmentedColormap:
    """From transparent (the page's background, in either palette) to `color`."""
    r, g, b, _ = to_rgba(color)
    return LinearSegmentedColormap.from_list("ramp", [(r, g, b, 0.0), (r, g, b, 1.0)])


def weights_figure() -> Figure:
    """Soft and top-k weights of the same queries over the same keys."""
    gen = torch.Generator().manual_seed(9)
    n_q, n_k, d = 10, 32, 16
    q = torch.randn(n_q, d, generator=gen)
    k = torch.randn(n_k, d, generator=gen)
    v = torch.randn(n_k, d, generator=gen)
    _, soft = scaled_dot_product_attention(q, k, v)
    _, hard = topk_attention(q, k, v, _FIG_K)
    fig, axes = figure(ncols=3, width=10.5, height=3.3)
    vmax = max(soft.max().item(), hard.max().item())
    for ax, w, title in (
        (axes[0], soft, say("soft: every key gets weight", "软注意力：每个键都有权重")),
        (
            axes[1],
            hard,
            _FIG_TOP
            + say(f": {_FIG_K} non-zeros per row", f"：每行 {_FIG_K} 个非零值"),
        ),
    ):
        im = ax.imshow(w, cmap=_ramp(COLORS[0]), vmin=0, vmax=vmax, aspect="auto")
        ax.set(title=title, xlabel=_KEY_POSITION, ylabel=say("query", "查询"))
        ax.grid(False)
    fig.colorbar(im, ax=axes[1], shrink=0.9)  # the bar chart's axis says "weight"
    row = 0
    pos = torch.arange(n_k)
    soft_label = say("soft", "软注意力")
    axes[2].bar(pos - 0.2, soft[row], width=0.4, color=COLORS[0], label=soft_label)
    axes[2].bar(pos + 0.2, hard[row], width=0.4, color=COLORS[1], label=_FIG_TOP)
    axes[2].set(
        title=say(f"query {row}: both rows sum to 1", f"查询 {row}：两行之和都为 1"),
        xlabel=_KEY_POSITION,
        ylabel=_WEIGHT,
    )
    axes[2].legend()
    return fig


@functools.cache
def _costs() -> dict[int, dict[str, int]]:
    """keys n -> multiply-adds per query: scoring, soft attention, top-k attention."""
    gen = torch.Generator().manual_seed(0)
    costs = {}
    for n in _COST_NS:
        q = torch.randn(1, _D, generator=gen)  # one query: the cost per query
        k = torch.randn(n, _D, generator=gen)
        v = torch.randn(n, _D, generator=gen)
        costs[n] = {
            "score": counted_multiply_adds(lambda q=q, k=k: q @ k.T),
            "soft": counted_multiply_adds(
                lambda q=q, k=k, v=v: scaled_dot_product_attention(q, k, v)
            ),
            "hard": counted_multiply_adds(
                lambda q=q, k=k, v=v: topk_attention(q, k, v, _TOP_K)
            ),
        }
    return costs


def cost_table() -> str:
    """Multiply-adds per query, counted by FlopCounterMode while the code runs."""
    rows = [
        [
            f"{n:,}",
            f"{r['score']:,}",
            f"{r['soft'] - r['score']:,}",
            f"{r['hard'] - r['score']:,}",
            f"{r['hard'] / r['soft']:.3f}",
            f"{_TOP_K / n:.5f}",
        ]
        for n, r in _costs().items()
    ]
    return markdown_table(
        [
            say("keys $n$", "键数 $n$"),
            say("scoring (both)", "打分（两者）"),
            say("weighted sum, soft", "加权和，软注意力"),
            say("weighted sum, ", "加权和，") + _TOP,
            _TOP + say(" total / soft total", " 总计 / 软注意力总计"),
            "$k/n$",
        ],
        rows,
        "rrrrrr",
    )


def cost_numbers() -> dict[str, str]:
    n_max = max(_COST_NS)
    at_max = _costs()[n_max]
    return {
        "k": str(_TOP_K),
        "d": str(_D),
        "n_max": f"{n_max:,}",
        "ratio_max": f"{at_max['hard'] / at_max['soft']:.3f}",
        "claimed_max": f"{_TOP_K / n_max:.5f}",
    }


_LOCAL_N, _LOCAL_W = 40, 4  # source length and window half-width of the local figure
_LOCAL_T, _LOCAL_P = 20, 22.6  # local-m's centre p_t = t; local-p's predicted centre


def local_figure() -> Figure:
    """One query's weights over a short source: global, local-m and local-p."""
    gen = torch.Generator().manual_seed(15)
    d = 16
    q = torch.randn(1, d, generator=gen)
    k = torch.randn(_LOCAL_N, d, generator=gen)
    v = torch.randn(_LOCAL_N, d, generator=gen)
    _, glob = scaled_dot_product_attention(q, k, v)
    _, at_t = local_attention(q, k, v, torch.tensor([float(_LOCAL_T)]), _LOCAL_W, False)
    centre = torch.tensor([_LOCAL_P])
    _, soft_p = local_attention(q, k, v, centre, _LOCAL_W, gaussian=False)
    _, faded = local_attention(q, k, v, centre, _LOCAL_W, gaussian=True)
    pos = torch.arange(_LOCAL_N)
    fig, axes = figure(nrows=3, width=7.5, height=5.4, sharex=True, sharey=True)
    axes[0].bar(pos, glob[0], color=COLORS[0])
    axes[0].set_title(
        say("global: every source position is scored", "全局：为每个源位置打分")
    )
    for ax, centre_at in ((axes[1], _LOCAL_T), (axes[2], _LOCAL_P)):
        ax.axvspan(
            round(centre_at) - _LOCAL_W - 0.5,
            round(centre_at) + _LOCAL_W + 0.5,
            color=COLORS[5],
            alpha=0.15,
            linewidth=0,
        )
        ax.axvline(centre_at, color=COLORS[3], linestyle=":", linewidth=1)
    axes[1].bar(pos, at_t[0], color=COLORS[1])
    window, p_t = 2 * _LOCAL_W + 1, f"$p_t = t = {_LOCAL_T}$"
    axes[1].set_title(  # the variants' names, as the paper and the page write them
        same("local-m")
        + say(
            f": softmax over the {window} keys around {p_t}",
            f"：在 {p_t} 周围的 {window} 个键上做 softmax",
        )
    )
    axes[2].bar(pos, soft_p[0], color="none", edgecolor=COLORS[1], label="softmax")
    axes[2].bar(
        pos, faded[0], color=COLORS[2], label=say("times the Gaussian", "乘以高斯函数")
    )
    axes[2].set_title(
        same("local-p")
        + say(
            f": predicted $p_t = {_LOCAL_P}$, weights faded by a Gaussian",
            f"：预测的 $p_t = {_LOCAL_P}$，权重按高斯函数衰减",
        )
    )
    axes[2].legend(fontsize=8, loc="upper left")
    axes[2].set_xlabel(say("source position $s$", "源位置 $s$"))
    for ax in axes:
        ax.set_ylabel(_WEIGHT)
    return fig


def local_numbers() -> dict[str, str]:
    """Multiply-adds of one query of local attention, counted at every length of the cost
    table; the same at every length."""
    gen = torch.Generator().manual_seed(16)
    counts = set()
    for n in _COST_NS:
        q = torch.randn(1, _D, generator=gen)
        k = torch.randn(n, _D, generator=gen)
        v = torch.randn(n, _D, generator=gen)
        centre = torch.tensor([n / 2])
        counts.add(
            counted_multiply_adds(
                lambda q=q, k=k, v=v, c=centre: local_attention(q, k, v, c, _LOCAL_W)
            )
        )
    return {
        "w": str(_LOCAL_W),
        "keys": str(2 * _LOCAL_W + 1),
        "count": ", ".join(f"{c:,}" for c in sorted(counts)),
        "formula": f"{(2 * _LOCAL_W + 1) * 2 * _D:,}",
        "soft_max": f"{_costs()[max(_COST_NS)]['soft']:,}",
    }


_T_QUERIES, _T_KEYS = 256, 4_096
_T_ROUNDS = 10
_T_LABELS = {
    "hard": _TOP + say(" attention", " 注意力"),
    "soft": say("soft attention", "软注意力"),
}
_T_NAMES = {
    "soft": say("soft attention, whole function", "软注意力，整个函数"),
    "fused": say("soft attention, PyTorch fused", "软注意力，PyTorch 融合函数"),
    "hard": _TOP + say(" attention, whole function", " 注意力，整个函数"),
    "score": say(
        "scoring alone, $QK^\\top/\\sqrt{d_k}$ (both need it)",
        "仅打分，$QK^\\top/\\sqrt{d_k}$（两者都需要）",
    ),
    "select": say(
        f"choosing the top {_TOP_K} alone, from given scores",
        f"仅从给定的评分中选出最大的 {_TOP_K} 个",
    ),
}


@functools.cache
def _timings() -> Timings:
    gen = torch.Generator().manual_seed(1)
    dev = device()
    q = torch.randn(_T_QUERIES, _D, generator=gen).to(dev)
    k = torch.randn(_T_KEYS, _D, generator=gen).to(dev)
    v = torch.randn(_T_KEYS, _D, generator=gen).to(dev)
    scores = q @ k.T / _D**0.5
    calls = {
        "soft": lambda: scaled_dot_product_attention(q, k, v),
        "fused": lambda: F.scaled_dot_product_attention(q, k, v),
        "hard": lambda: topk_attention(q, k, v, _TOP_K),
        "score": lambda: q @ k.T / _D**0.5,
        "select": lambda: scores.topk(_TOP_K, dim=-1),
    }
    return compare(calls, rounds=_T_ROUNDS, warmup=1)


@measured
def timing_table() -> str:
    t = _timings()
    rows = []
    for key, label in _T_NAMES.items():
        r = t.ratio(key, "soft")
        rows.append(
            [
                label,
                f"{t.median(key) * 1e3:.2f} ms",
                f"{fmt_ratio(r.estimate)} [{r.interval()}]",
            ]
        )
    return markdown_table(
        [
            say(
                f"{_T_QUERIES:,} queries, {_T_KEYS:,} keys, $d = {_D}$",
                f"{_T_QUERIES:,} 个查询，{_T_KEYS:,} 个键，$d = {_D}$",
            ),
            say("median time", "中位时间"),
            say("÷ soft attention [95%]", "÷ 软注意力 [95%]"),
        ],
        rows,
        "lrr",
    )


@measured
def timing_numbers() -> dict[str, str]:
    t = _timings()
    hard_vs_soft = t.ratio("hard", "soft")
    n, k = _T_KEYS, _TOP_K
    counted = (n * _D + k * _D) / (n * _D + n * _D)  # per query: scores + weighted sum
    share = t.median("select") / t.median("hard")
    why = ""
    if share >= 0.3:
        why = say(
            f"choosing the top {k} took {share:.0%} of top-{k} attention's time, "
            "and the count of multiply-adds leaves it out",
            f"选出最大的 {k} 个占了 top-k 注意力 {share:.0%} 的时间，"
            "而乘加次数的统计没有把它算在内",
        )
    check_ratio("chapter 9, top-k vs soft", hard_vs_soft, counted, why=why)
    return {
        "queries": f"{_T_QUERIES:,}",
        "keys": f"{_T_KEYS:,}",
        "rounds": str(_T_ROUNDS),
        "sentence": t.verdict("hard", "soft", _T_LABELS),
        "counted": fmt_ratio(counted),
        "select_share": f"{share:.0%}",
        "device": timing_device(),
    }


_A_NS = [128, 256, 512]
_A_HIDDEN = 32
_A_ROUNDS = 8


@measured
def additive_vs_dot_table() -> str:
    """Time and peak memory of the two score functions with the same hidden width.

    The memory count predicts the ratio: the additive score forms an (n, n, h) tensor of
    query-key sums, the dot product an (n, n) matrix of scores.
    """
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)  # the modules' initial weights
    dev = device()
    additive = AdditiveAttention(_A_HIDDEN, _A_HIDDEN, _A_HIDDEN).to(dev)
    dot = DotProductAttention(_A_HIDDEN, _A_HIDDEN, _A_HIDDEN).to(dev)
    rows = []
    with torch.no_grad():
        for n in _A_NS:
            x = torch.randn(n, _A_HIDDEN, generator=gen).to(dev)
            calls = {
                "additive": lambda x=x: additive(x, x, x),
                "dot": lambda x=x: dot(x, x, x),
            }
            t = compare(calls, rounds=_A_ROUNDS, warmup=1)
            peaks = {name: peak_memory_bytes(call) for name, call in calls.items()}
            r = t.ratio("additive", "dot")
            rows.append(
                [
                    f"{n:,}",
                    f"{t.median('additive') * 1e3:.2f} ms",
                    f"{t.median('dot') * 1e3:.2f} ms",
                    f"{fmt_ratio(r.estimate)} [{r.interval()}]",
                    f"{peaks['additive'] / 2**20:.2f} MiB",
                    f"{peaks['dot'] / 2**20:.2f} MiB",
                    fmt_ratio(peaks["additive"] / peaks["dot"]),
                ]
            )
    return markdown_table(
        [
            say("$n$ (queries = keys)", "$n$（查询数 = 键数）"),
            say("additive: time", "加性：时间"),
            say("dot product: time", "点积：时间"),
            say("additive ÷ dot, time [95%]", "加性 ÷ 点积，时间 [95%]"),
            say("additive: peak memory", "加性：峰值内存"),
            say("dot product: peak memory", "点积：峰值内存"),
            say("memory ratio", "内存之比"),
        ],
        rows,
        "rrrrrrr",
    )
