"""Chapter 2, query, key, value: the look-up, the worked example, a sentence, self vs cross."""

from __future__ import annotations

import torch

from snippets.bilingual import same, say
from snippets.plotting import Figure, figure, markdown_table
from snippets.qkv import (
    SENTENCE,
    W_K,
    W_Q,
    W_V,
    X,
    cross_attention,
    cross_attention_builtin,
    hand_built_attention,
    hard_lookup,
    self_attention,
    self_attention_builtin,
    soft_lookup,
    worked_example,
)

# A small library: keys say what a book is about (maths, history, cooking), values what
# you take away from it (formulas, dates, recipes). The query asks for history with some maths.
_BOOKS = [
    say("Linear algebra", "《线性代数》"),
    say("A history of mathematics", "《数学史》"),
    say("Roman history", "《罗马史》"),
    say("Roman cookery", "《罗马烹饪》"),
]
_KEYS = [[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 1.0, 0.0], [0.0, 0.6, 0.8]]
_VALUES = [[9.0, 0.0, 0.0], [4.0, 5.0, 0.0], [0.0, 9.0, 0.0], [0.0, 3.0, 6.0]]
_QUERY = [1.0, 2.0, 0.0]
_TEMPERATURES = [0.1, 1.0, 10.0]


def _vec(t: torch.Tensor, digits: int | None = None) -> str:
    """(0.6, 0.8, 0) for digits=None (shortest form), else fixed decimals."""
    fmt = "g" if digits is None else f".{digits}f"
    return "(" + ", ".join(f"{v:{fmt}}" for v in t.tolist()) + ")"


def lookup() -> dict[str, str]:
    """The library look-up, hard and soft at three temperatures, as the build computed it:
    the query, the table of scores and weights, and the hard look-up's answer."""
    q, k, v = (torch.tensor(a, dtype=torch.float64) for a in (_QUERY, _KEYS, _VALUES))
    outputs, weights = {}, {}  # temperature -> the soft look-up's output and weights
    for t in _TEMPERATURES:
        outputs[t], weights[t] = soft_lookup(q, k, v, t)
    header = [say("book", "书"), say("key", "键"), say("value", "值")]
    header += [say("score $q \\cdot k$", "评分 $q \\cdot k$")]
    header += [say(f"weight, $T = {t:g}$", f"权重，$T = {t:g}$") for t in _TEMPERATURES]
    scores = k @ q
    rows = [
        [book, _vec(k[i]), _vec(v[i]), f"{scores[i]:.1f}"]
        + [f"{weights[t][i]:.3f}" for t in _TEMPERATURES]
        for i, book in enumerate(_BOOKS)
    ]
    rows.append(
        [say("**soft look-up output**", "**软查找的输出**"), "", "", ""]
        + [f"**{_vec(outputs[t], 2)}**" for t in _TEMPERATURES]
    )
    best = _BOOKS[int(scores.argmax())]
    return {
        "query": _vec(q),
        "table": markdown_table(header, rows, "lllr" + "r" * len(_TEMPERATURES)),
        "best": best,
        "hard": _vec(hard_lookup(q, k, v)),
    }


def _latex(m: torch.Tensor, digits: int) -> str:
    rows = [" & ".join(f"{v:.{digits}f}" for v in row) for row in m.tolist()]
    return r"\begin{bmatrix} " + r" \\ ".join(rows) + r" \end{bmatrix}"


def _err(diff: torch.Tensor) -> str:
    """The largest absolute entry: "0" when exactly zero, else like 4.4e-16."""
    worst = diff.abs().max().item()
    return "0" if worst == 0 else f"{worst:.1e}"


def worked_example_values() -> dict[str, str]:
    """Each matrix of the worked example as LaTeX, and the checks the build ran on it."""
    x, w_q, w_k, w_v = (
        torch.tensor(a, dtype=torch.float64) for a in (X, W_Q, W_K, W_V)
    )
    steps = worked_example(x, w_q, w_k, w_v)
    # Inputs have one decimal, so Q, K, V have at most two and, for these inputs, the
    # scores at most three: those are shown exactly. From the square root on, rounded to 3.
    digits = dict(x=1, w_q=1, w_k=1, w_v=1, q=2, k=2, v=2, scores=3)
    out = {name: _latex(m, digits.get(name, 3)) for name, m in steps.items()}
    fused = torch.nn.functional.scaled_dot_product_attention(
        steps["q"], steps["k"], steps["v"]
    )
    ours, _ = self_attention(x, w_q, w_k, w_v)
    row_sums = steps["weights"].sum(-1)
    gaps = (steps["output"] - fused, steps["output"] - ours, row_sums - 1)
    worst = max(c.abs().max().item() for c in gaps)
    # The page promises an example that adds up: stop the build if not.
    if worst > 1e-12:
        raise ArithmeticError(f"the worked example is off by {worst:.1e}")
    out.update(
        sqrt_dk=f"{steps['k'].size(-1) ** 0.5:.4f}",
        err_torch=_err(steps["output"] - fused),
        err_course=_err(steps["output"] - ours),
        row_sum_err=_err(row_sums - 1),
    )
    return out


def sentence_heatmap() -> Figure:
    """Self-attention weights over a sentence: hand-built projections, then random ones."""
    x, hand = hand_built_attention()
    g = torch.Generator().manual_seed(0)
    d = x.size(-1)
    w_q, w_k = (
        torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5 for _ in range(2)
    )
    _, random = self_attention(x, w_q, w_k, torch.eye(d, dtype=torch.float64))
    fig, axes = figure(ncols=2, width=8.8, height=4.4)
    n = len(SENTENCE)
    for ax, weights, title in (
        (
            axes[0],
            hand,
            say(
                "hand-built $W_Q$, $W_K$ (features chosen by hand)",
                "手工构造的 $W_Q$、$W_K$（特征由人挑选）",
            ),
        ),
        (
            axes[1],
            random,
            say(
                "random $W_Q$, $W_K$ (an untrained layer)",
                "随机的 $W_Q$、$W_K$（未训练的层）",
            ),
        ),
    ):
        ax.imshow(weights.numpy(), vmin=0, vmax=1, cmap="viridis")
        for i in range(n):
            for j in range(n):
                w = weights[i, j].item()
                ax.text(
                    j,
                    i,
                    f"{w:.2f}".lstrip("0"),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if w > 0.5 else "white",
                )
        tokens = [same(word) for word in SENTENCE]  # the example stays in English
        ax.set_xticks(range(n), tokens, rotation=45, ha="right")
        ax.set_yticks(range(n), tokens)
        ax.set(
            xlabel=say("key (the word attended to)", "键（被关注的词）"), title=title
        )
        ax.grid(False)
        ax.title.set_fontsize(9)
    # in Chinese an empty second line keeps the label clear of the tick labels, which a
    # browser without the CJK font draws wider than matplotlib measured them
    axes[0].set_ylabel(say("query (the word attending)", "查询（发出关注的词）\n"))
    return fig


def hand_built_numbers() -> dict[str, str]:
    _, weights = hand_built_attention()
    it, cat, fish = (SENTENCE.index(w) for w in ("it", "cat", "fish"))
    return {
        "it_cat": f"{weights[it, cat]:.2f}",
        "it_fish": f"{weights[it, fish]:.2f}",
        "n_words": str(len(SENTENCE)),
    }


def shapes_table() -> str:
    """Self- and cross-attention on random inputs: the shapes, and agreement with PyTorch."""
    g = torch.Generator().manual_seed(3)
    b, n_q, n_kv, d_model, d_k, d_v = 2, 5, 7, 16, 8, 12
    x = torch.randn(b, n_q, d_model, generator=g)
    memory = torch.randn(b, n_kv, d_model, generator=g)
    w_q, w_k = (torch.randn(d_model, d_k, generator=g) for _ in range(2))
    w_v = torch.randn(d_model, d_v, generator=g)
    self_out, self_w = self_attention(x, w_q, w_k, w_v)
    cross_out, cross_w = cross_attention(x, memory, w_q, w_k, w_v)
    self_err = (self_out - self_attention_builtin(x, w_q, w_k, w_v)).abs().max()
    cross_err = (
        (cross_out - cross_attention_builtin(x, memory, w_q, w_k, w_v)).abs().max()
    )

    def shape(t: torch.Tensor) -> str:
        return "(" + ", ".join(str(s) for s in t.shape) + ")"

    table = markdown_table(
        [
            "",
            say("queries from", "查询来自"),
            say("keys and values from", "键和值来自"),
            say("weights", "权重"),
            say("output", "输出"),
            say("largest difference from PyTorch", "与 PyTorch 的最大差异"),
        ],
        [
            [
                say("self-attention", "自注意力"),
                f"`x` {shape(x)}",
                f"`x` {shape(x)}",
                shape(self_w),
                shape(self_out),
                f"{self_err.item():.1e}",
            ],
            [
                say("cross-attention", "交叉注意力"),
                f"`x` {shape(x)}",
                f"`memory` {shape(memory)}",
                shape(cross_w),
                shape(cross_out),
                f"{cross_err.item():.1e}",
            ],
        ],
        "lllllr",
    )
    sizes = (
        f"$N_q = {n_q}$",
        f"$N_{{kv}} = {n_kv}$",
        f"$d_{{\\text{{model}}}} = {d_model}$",
        f"$d_k = {d_k}$",
        f"$d_v = {d_v}$",
    )
    intro = say(
        "Random inputs in float32: a batch of {}, {} queries, {} keys, {}, {} "
        "and {}.".format(b, *sizes),
        "float32 的随机输入：批量大小为 {}，{} 个查询，{} 个键，{}、{} 和 {}。".format(
            b, *sizes
        ),
    )
    return intro + "\n\n" + table
