"""Chapter 4, masks: the masks drawn, -inf before the softmax, the empty row, teacher forcing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from matplotlib.colors import ListedColormap, to_rgba
from torch import Tensor, nn

from snippets.attention import scaled_dot_product_attention
from snippets.bilingual import join, same, say
from snippets.masks import (
    causal_mask,
    combine,
    naive_attention,
    padding_mask,
    prefix_by_prefix,
)
from snippets.measure import check_ratio, compare, fmt_ratio, timing_device
from snippets.plotting import COLORS, INK, Figure, figure, markdown_table
from snippets.runtime import device, measured

# English example sentences: their tokens are data, shown as they are in both editions
_SENTENCES = [
    [same(w) for w in s.split()]
    for s in ("the cat sat on the mat", "a dog barked loudly", "hello world")
]
_N = 6  # the batch is padded to the longest sentence
_PAD = same("<pad>")

# Allowed cells: a translucent blue that reads on the white and the slate background alike;
# blocked cells: fully transparent.
_MASK_CMAP = ListedColormap([(0, 0, 0, 0), to_rgba(COLORS[0], 0.5)])


def _tokens(b: int) -> list[str]:
    return _SENTENCES[b] + [_PAD] * (_N - len(_SENTENCES[b]))


def _draw(ax, mask: Tensor, rows: list[str], cols: list[str], title: str) -> None:
    n_r, n_c = mask.shape
    ax.imshow(mask.float().numpy(), cmap=_MASK_CMAP, vmin=0, vmax=1)
    ax.set_xticks(range(n_c), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n_r), rows, fontsize=8)
    ax.set_xticks([x - 0.5 for x in range(n_c + 1)], minor=True)
    ax.set_yticks([y - 0.5 for y in range(n_r + 1)], minor=True)
    ax.grid(which="major", visible=False)
    ax.grid(which="minor", visible=True)
    ax.tick_params(which="minor", length=0)
    for i in range(n_r):
        for j in range(n_c):
            if not mask[i, j]:
                ax.text(j, i, "×", ha="center", va="center", color=INK, fontsize=8)
    ax.set_title(title, fontsize=10)


def mask_figure() -> Figure:
    """Padding mask of a batch, causal mask, and the two combined for one sentence."""
    lengths = torch.tensor([len(s) for s in _SENTENCES])
    pad = padding_mask(lengths, _N)  # (B, 1, 1, N)
    causal = causal_mask(_N)  # (N, N)
    both = combine(causal, pad)  # (B, 1, N, N)
    fig, axes = figure(ncols=3, width=9.6, height=3.7)
    _draw(
        axes[0],
        pad[:, 0, 0],
        [say(f"sentence {b}", f"句子 {b}") for b in range(3)],
        [say(f"key {j}", f"键 {j}") for j in range(_N)],
        say(
            "padding mask, (B, 1, 1, N)\nshown as (B, N)",
            "填充掩码，(B, 1, 1, N)\n显示为 (B, N)",
        ),
    )
    _draw(
        axes[1],
        causal,
        _SENTENCES[0],
        _SENTENCES[0],
        say("causal mask, (N, N)", "因果掩码，(N, N)"),
    )
    _draw(
        axes[2],
        both[1, 0],
        _tokens(1),
        _tokens(1),
        say("causal & padding,\nsentence 1", "因果掩码与填充掩码\n（句子 1）"),
    )
    axes[0].set_ylabel(say("sequence", "序列"))
    for ax in axes[1:]:
        ax.set_ylabel(say("query", "查询"))
        ax.set_xlabel(say("key", "键"))
    return fig


def masking_table() -> str:
    """One query row of a causal attention, step by step: scores, -inf, exp, weights."""
    g = torch.Generator().manual_seed(4)
    q, k = (torch.randn(4, 8, generator=g, dtype=torch.float64) for _ in range(2))
    i = 2  # query 2 may look at keys 0, 1, 2
    scores = (q @ k.T / 8**0.5)[i]  # (4,)
    masked = scores.masked_fill(~causal_mask(4)[i], float("-inf"))
    exp = torch.exp(masked - masked.max())
    weights = exp / exp.sum()

    def row(name: str, values: Tensor) -> list[str]:
        return [name] + [
            "$-\\infty$" if torch.isneginf(x) else f"{x.item():.3f}" for x in values
        ]

    header = [say("query 2", "查询 2")]
    header += [say(f"key {j}", f"键 {j}") for j in range(3)]
    header += [say("key 3 (future)", "键 3（未来）")]
    return markdown_table(
        header,
        [
            row(
                say(
                    "score $s_{2j} = q_2 \\cdot k_j / \\sqrt{d_k}$",
                    "评分 $s_{2j} = q_2 \\cdot k_j / \\sqrt{d_k}$",
                ),
                scores,
            ),
            row(say("after the mask", "掩码之后"), masked),
            row("$e^{s_{2j} - \\max_j s_{2j}}$", exp),
            row(say("weight (divided by the sum)", "权重（除以总和）"), weights),
        ],
        "lrrrr",
    )


def _fill_and_softmax(scores: Tensor, forbidden: Tensor, value: float) -> str:
    """The weights after masked_fill(forbidden, value) and a softmax, or the error raised."""
    try:
        weights = torch.softmax(scores.masked_fill(forbidden, value), dim=-1)
    except RuntimeError as error:  # float16 cannot hold -1e9: masked_fill refuses it
        return f"`RuntimeError: {error}`"
    return ", ".join(f"{w:.3f}" for w in weights.float().tolist())


def large_negative_table() -> str:
    """masked_fill with -1e9 and with torch.finfo(dtype).min, in three dtypes, as run."""
    keep = torch.tensor([True, True, False])  # key 2 is masked
    rows = []
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        scores = torch.tensor([1.0, 2.0, 3.0], dtype=dtype)
        low = torch.finfo(dtype).min
        mantissa, exponent = f"{low:.2e}".split("e")
        shown = (
            f"{low:,.0f}"
            if abs(low) < 1e6
            else f"${mantissa} \\times 10^{{{int(exponent)}}}$"
        )
        rows.append(
            [
                f"`{str(dtype).removeprefix('torch.')}`",
                shown,
                _fill_and_softmax(scores, ~keep, -1e9),
                _fill_and_softmax(scores, ~keep, low),
                _fill_and_softmax(scores, torch.ones_like(keep), low),
            ]
        )
    return markdown_table(
        [
            say("dtype", "数据类型"),
            "`torch.finfo(dtype).min`",
            say("weights, fill $-10^9$", "权重，填充 $-10^9$"),
            say("weights, fill `finfo(dtype).min`", "权重，填充 `finfo(dtype).min`"),
            say(
                "weights of a fully masked row, fill `finfo(dtype).min`",
                "全掩蔽行的权重，填充 `finfo(dtype).min`",
            ),
        ],
        rows,
        "lrlll",
    )


# ---------------------------------------------------------------------------------------------
# The fully masked row
# ---------------------------------------------------------------------------------------------

_B, _H, _D = 2, 2, 8
_LENGTHS = torch.tensor([4, 2])


def _empty_row_setup() -> tuple[Tensor, Tensor, Tensor]:
    """Input (B, N, D), projections (3, D, D) and a mask (B, N, N) with empty rows.

    The mask is causal and pads keys AND queries (the outer product of the padding vector
    with itself), a common construction: padded queries of sentence 1 may attend to nothing.
    """
    g = torch.Generator().manual_seed(5)
    x = torch.randn(_B, 4, _D, generator=g)
    w = torch.randn(3, _D, _D, generator=g) / _D**0.5
    real = padding_mask(_LENGTHS, 4)[:, 0, 0]  # (B, N)
    mask = combine(causal_mask(4), real[:, :, None], real[:, None, :])  # (B, N, N)
    return x, w, mask


def _two_layers(attend, x: Tensor, w: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Two residual self-attention layers sharing weights: returns both layers' outputs."""
    first = x + attend(x @ w[0], x @ w[1], x @ w[2], mask)
    second = first + attend(first @ w[0], first @ w[1], first @ w[2], mask)
    return first, second


def _torch_fused(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _empty_row_results() -> dict[str, dict[str, str]]:
    """implementation -> what is non-finite after each layer, and whether the gradient is finite."""
    x, w, mask = _empty_row_setup()
    real = padding_mask(_LENGTHS, 4)[:, 0, 0]  # (B, N) True for real tokens
    dev = device()
    x, w, mask, real = (t.to(dev) for t in (x, w, mask, real))

    def nonfinite(t: Tensor) -> str:
        return f"{(~torch.isfinite(t)).sum().item()} / {t.numel()}"

    def finite(t: Tensor) -> str:
        return say("yes", "是") if torch.isfinite(t).all() else say("no", "否")

    results = {}
    naive = say(
        "naive ($-\\infty$, `torch.softmax`)", "朴素实现（$-\\infty$，`torch.softmax`）"
    )
    ours = say("ours (`snippets.attention`)", "我们的实现（`snippets.attention`）")
    attends = {
        naive: lambda q, k, v, m: naive_attention(q, k, v, m)[0],
        ours: lambda q, k, v, m: scaled_dot_product_attention(q, k, v, m)[0],
        "`F.scaled_dot_product_attention`": _torch_fused,
    }
    for name, attend in attends.items():
        x_in = x.clone().requires_grad_(True)
        first, second = _two_layers(attend, x_in, w, mask)
        second[real].sum().backward()  # a loss on real tokens only
        results[name] = dict(
            first=nonfinite(first),
            first_real=nonfinite(first[real]),
            second=nonfinite(second),
            second_real=nonfinite(second[real]),
            grad=finite(x_in.grad),
        )
    # nn.MultiheadAttention, with its default need_weights=True, and its own mask convention.
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(_D, _H, batch_first=True).to(dev)
    # True = NOT allowed
    attn_mask = (~mask[:, None]).expand(_B, _H, 4, 4).reshape(_B * _H, 4, 4)
    x_in = x.clone().requires_grad_(True)
    first = x_in + mha(x_in, x_in, x_in, attn_mask=attn_mask)[0]
    second = first + mha(first, first, first, attn_mask=attn_mask)[0]
    second[real].sum().backward()
    results["`nn.MultiheadAttention`"] = dict(
        first=nonfinite(first),
        first_real=nonfinite(first[real]),
        second=nonfinite(second),
        second_real=nonfinite(second[real]),
        grad=finite(x_in.grad),
    )
    return results


def empty_row_table() -> str:
    columns = ("first", "first_real", "second", "second_real", "grad")
    return markdown_table(
        [
            say("implementation", "实现"),
            say("layer 1, all tokens", "第 1 层，全部词元"),
            say("layer 1, real tokens", "第 1 层，真实词元"),
            say("layer 2, all tokens", "第 2 层，全部词元"),
            say("layer 2, real tokens", "第 2 层，真实词元"),
            say("finite gradient?", "梯度有限？"),
        ],
        [[name] + [r[c] for c in columns] for name, r in _empty_row_results().items()],
        "lrrrrc",
    )


def empty_row() -> dict[str, str]:
    """The empty row of the naive softmax against ours, and what PyTorch's fused function gave."""
    x, w, mask = _empty_row_setup()
    q, k, v = x @ w[0], x @ w[1], x @ w[2]
    naive_out, naive_w = naive_attention(q, k, v, mask)
    ours_out, ours_w = scaled_dot_product_attention(q, k, v, mask)
    fused = _torch_fused(
        q.to(device()), k.to(device()), v.to(device()), mask.to(device())
    )
    empty = ~mask.any(dim=-1)  # (B, N): rows with nothing to attend to
    b, i = empty.nonzero()[0].tolist()
    fused_row = fused[b, i].cpu()
    if torch.isfinite(fused_row).all() and torch.equal(fused_row, torch.zeros(_D)):
        fused_says = say("zeros, the same as ours", "零，与我们的函数相同")
    elif torch.isfinite(fused_row).all():
        fused_says = say("finite but non-zero values", "有限但非零的值")
    else:
        fused_says = say(
            "non-finite values, like the naive code", "非有限值，与朴素的代码一样"
        )

    def of(count: int, total: int) -> str:
        return say(f"{count} of {total}", f"{count} / {total}")

    return {
        "lengths": join(say(" and ", " 和 "), map(str, _LENGTHS.tolist())),
        "n_empty": str(int(empty.sum())),
        "row": say(f"query {i} of sentence {b}", f"序列 {b} 的查询 {i}"),
        "naive_weights_nonfinite": of(
            (~torch.isfinite(naive_w[b, i])).sum().item(), naive_w.size(-1)
        ),
        "naive_out_nonfinite": of((~torch.isfinite(naive_out[b, i])).sum().item(), _D),
        "ours_weights": ", ".join(f"{x:g}" for x in ours_w[b, i].tolist()),
        "ours_out_max": f"{ours_out[b, i].abs().max().item():g}",
        "fused": fused_says,
        # names, shown as they are in both editions
        "device": same(str(device())),
        "torch": same(torch.__version__),
    }


# ---------------------------------------------------------------------------------------------
# Teacher forcing
# ---------------------------------------------------------------------------------------------

_D_TF = 16


def _layer(g: torch.Generator):
    w = torch.randn(3, _D_TF, _D_TF, generator=g) / _D_TF**0.5

    def layer(x: Tensor, mask: Tensor | None = None) -> Tensor:
        return scaled_dot_product_attention(x @ w[0], x @ w[1], x @ w[2], mask)[0]

    return layer


def future_leak_figure() -> Figure:
    """Change the input at one position and see which outputs move, with and without a mask."""
    g = torch.Generator().manual_seed(6)
    layer = _layer(g)
    n, changed_at = 10, 5
    x = torch.randn(1, n, _D_TF, generator=g)
    x2 = x.clone()
    x2[0, changed_at] = torch.randn(_D_TF, generator=g)
    fig, ax = figure(width=6.4, height=3.0)
    pos = torch.arange(n)
    for offset, mask, color, label in (
        (-0.2, None, COLORS[3], say("no mask", "无掩码")),
        (0.2, causal_mask(n), COLORS[0], say("causal mask", "因果掩码")),
    ):
        delta = (layer(x2, mask) - layer(x, mask)).abs().amax(dim=-1)[0]  # (n,)
        ax.bar(pos + offset, delta.numpy(), width=0.4, color=color, label=label)
    ax.axvline(
        changed_at,
        color=COLORS[1],
        linestyle="--",
        label=say("changed input", "改变的输入"),
    )
    ax.set(
        xlabel=say("output position $i$", "输出位置 $i$"),
        ylabel=say(
            r"largest $|\Delta\, \mathrm{output}_i|$",
            r"输出 $i$ 的最大 $|\Delta|$",
        ),
        xticks=range(n),
    )
    ax.legend()
    return fig


def teacher_forcing_numbers() -> dict[str, str]:
    """One causal pass against n separate prefix runs: the largest difference."""
    g = torch.Generator().manual_seed(7)
    layer = _layer(g)
    n = 32
    x = torch.randn(4, n, _D_TF, generator=g)
    parallel = layer(x, causal_mask(n))
    one_by_one = prefix_by_prefix(layer, x)
    return {
        "n": str(n),
        "max_diff": f"{(parallel - one_by_one).abs().max().item():.1e}",
    }


def _attention_multiply_adds(n: int, d: int) -> int:
    """Multiply-adds of one unmasked single-head layer on n positions of width d:
    three projections (3 n d^2), the scores (n^2 d) and the weighted sum (n^2 d)."""
    return 3 * n * d * d + 2 * n * n * d


@measured
def teacher_forcing_timing() -> dict[str, str]:
    """One causal pass against the prefix-by-prefix loop, timed in interleaved rounds.

    The operation count predicts the ratio: the loop runs the layer on prefixes of
    length 1, 2, ..., n, the single pass once on length n.
    """
    g = torch.Generator().manual_seed(8)
    n, d = 64, 32
    w = (torch.randn(3, d, d, generator=g) / d**0.5).to(device())
    x = torch.randn(4, n, d, generator=g).to(device())

    def layer(x: Tensor, mask: Tensor | None = None) -> Tensor:
        return scaled_dot_product_attention(x @ w[0], x @ w[1], x @ w[2], mask)[0]

    mask = causal_mask(n, device=device())
    with torch.no_grad():
        t = compare(
            {
                "one pass": lambda: layer(x, mask),
                "loop": lambda: prefix_by_prefix(layer, x),
                # n calls that do almost no arithmetic: the loop's fixed cost
                "n single positions": lambda: [
                    layer(x[:, i : i + 1]) for i in range(n)
                ],
            },
            rounds=15,
        )
    ratio = t.ratio("loop", "one pass")
    predicted = sum(_attention_multiply_adds(i, d) for i in range(1, n + 1))
    predicted /= _attention_multiply_adds(n, d)
    share = t.ratio("n single positions", "loop")
    calls = say(
        f"{n} calls of the layer on a single position each took "
        f"{share.estimate:.0%} of the loop's time (95% interval "
        f"{share.low:.0%}–{share.high:.0%})",
        f"调用该层 {n} 次、每次只作用于一个位置，用时为循环的 {share.estimate:.0%}"
        f"（95% 置信区间 {share.low:.0%}–{share.high:.0%}）",
    )
    if share.low >= 0.7:
        calls += say(
            ": at this size the loop's cost is the fixed cost of its calls, not their "
            "arithmetic, and its match with the count is one of sizes, not of causes",
            "：在这一规模下，循环的开销是其各次调用的固定开销，而不是它们的算术运算；"
            "它与计数的吻合只在数值上，而不在原因上",
        )
    check_ratio("chapter 4, loop vs one causal pass", ratio, predicted)
    return {
        "n": str(n),
        "parallel_ms": f"{t.median('one pass') * 1e3:.2f}",
        "loop_ms": f"{t.median('loop') * 1e3:.1f}",
        "sentence": t.verdict(
            "one pass",
            "loop",
            {
                "one pass": say("the single causal pass", "单次因果前向传播"),
                "loop": say("the loop", "循环"),
            },
        ),
        "predicted": fmt_ratio(predicted),
        "calls": calls,
        "device": timing_device(),
    }
