"""Chapter 4, masks: the masks drawn, -inf before the softmax, the empty row, teacher forcing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from matplotlib.colors import ListedColormap, to_rgba
from torch import Tensor, nn

from snippets.attention import scaled_dot_product_attention
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

_SENTENCES = [
    ["the", "cat", "sat", "on", "the", "mat"],
    ["a", "dog", "barked", "loudly"],
    ["hello", "world"],
]
_N = 6  # the batch is padded to the longest sentence
_PAD = "<pad>"

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
        [f"sentence {b}" for b in range(3)],
        [f"key {j}" for j in range(_N)],
        "padding mask, (B, 1, 1, N)\nshown as (B, N)",
    )
    _draw(axes[1], causal, _SENTENCES[0], _SENTENCES[0], "causal mask, (N, N)")
    _draw(axes[2], both[1, 0], _tokens(1), _tokens(1), "causal & padding,\nsentence 1")
    axes[0].set_ylabel("sequence")
    for ax in axes[1:]:
        ax.set_ylabel("query")
        ax.set_xlabel("key")
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

    return markdown_table(
        ["query 2", "key 0", "key 1", "key 2", "key 3 (future)"],
        [
            row("score $s_{2j} = q_2 \\cdot k_j / \\sqrt{d_k}$", scores),
            row("after the mask", masked),
            row("$e^{s_{2j} - \\max_j s_{2j}}$", exp),
            row("weight (divided by the sum)", weights),
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
            "dtype",
            "`torch.finfo(dtype).min`",
            "weights, fill $-10^9$",
            "weights, fill `finfo(dtype).min`",
            "weights of a fully masked row, fill `finfo(dtype).min`",
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

    results = {}
    attends = {
        "naive ($-\\infty$, `torch.softmax`)": lambda q, k, v, m: naive_attention(
            q, k, v, m
        )[0],
        "ours (`snippets.attention`)": lambda q, k, v, m: scaled_dot_product_attention(
            q, k, v, m
        )[0],
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
            grad="yes" if torch.isfinite(x_in.grad).all() else "no",
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
        grad="yes" if torch.isfinite(x_in.grad).all() else "no",
    )
    return results


def empty_row_table() -> str:
    columns = ("first", "first_real", "second", "second_real", "grad")
    return markdown_table(
        [
            "implementation",
            "layer 1, all tokens",
            "layer 1, real tokens",
            "layer 2, all tokens",
            "layer 2, real tokens",
            "finite gradient?",
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
        fused_says = "zeros, the same as ours"
    elif torch.isfinite(fused_row).all():
        fused_says = "finite but non-zero values"
    else:
        fused_says = "non-finite values, like the naive code"
    return {
        "lengths": " and ".join(str(n) for n in _LENGTHS.tolist()),
        "n_empty": str(int(empty.sum())),
        "row": f"query {i} of sentence {b}",
        "naive_weights_nonfinite": f"{(~torch.isfinite(naive_w[b, i])).sum().item()} of {naive_w.size(-1)}",
        "naive_out_nonfinite": f"{(~torch.isfinite(naive_out[b, i])).sum().item()} of {_D}",
        "ours_weights": ", ".join(f"{x:g}" for x in ours_w[b, i].tolist()),
        "ours_out_max": f"{ours_out[b, i].abs().max().item():g}",
        "fused": fused_says,
        "device": str(device()),
        "torch": torch.__version__,
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
        (-0.2, None, COLORS[3], "no mask"),
        (0.2, causal_mask(n), COLORS[0], "causal mask"),
    ):
        delta = (layer(x2, mask) - layer(x, mask)).abs().amax(dim=-1)[0]  # (n,)
        ax.bar(pos + offset, delta.numpy(), width=0.4, color=color, label=label)
    ax.axvline(changed_at, color=COLORS[1], linestyle="--", label="changed input")
    ax.set(
        xlabel="output position $i$",
        ylabel=r"largest $|\Delta\, \mathrm{output}_i|$",
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
    calls = (
        f"{n} calls of the layer on a single position each took "
        f"{share.estimate:.0%} of the loop's time (95% interval "
        f"{share.low:.0%}–{share.high:.0%})"
    )
    if share.low >= 0.7:
        calls += (
            ": at this size the loop's cost is the fixed cost of its calls, not their "
            "arithmetic, and its match with the count is one of sizes, not of causes"
        )
    check_ratio("chapter 4, loop vs one causal pass", ratio, predicted)
    return {
        "n": str(n),
        "parallel_ms": f"{t.median('one pass') * 1e3:.2f}",
        "loop_ms": f"{t.median('loop') * 1e3:.1f}",
        "sentence": t.verdict(
            "one pass",
            "loop",
            {"one pass": "the single causal pass", "loop": "the loop"},
        ),
        "predicted": fmt_ratio(predicted),
        "calls": calls,
        "device": timing_device(),
    }
