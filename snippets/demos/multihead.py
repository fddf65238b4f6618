"""Chapter 5, multi-head attention: agreement with PyTorch, parameters, heads, batch_first."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from snippets.bilingual import same, say, zh
from snippets.masks import causal_mask, padding_mask, to_key_padding_mask
from snippets.multihead import (
    WORDS,
    MultiHeadAttention,
    count_parameters,
    expected_parameters,
    hand_built_heads,
)
from snippets.plotting import Figure, figure, markdown_table
from snippets.runtime import device

# ---------------------------------------------------------------------------------------------
# Agreement with torch.nn.MultiheadAttention
# ---------------------------------------------------------------------------------------------


def agreement_with_pytorch() -> str:
    """Ours, copied from a torch module, against that module, for both batch_first settings."""
    dev = device()
    g = torch.Generator().manual_seed(10)
    B, N, d, H = 2, 7, 32, 4
    x = torch.randn(B, N, d, generator=g).to(dev)
    pad = padding_mask(torch.tensor([7, 5]), N).to(dev)  # (B, 1, 1, N)
    mask = causal_mask(N, device=dev) & pad  # (B, 1, N, N), True = may attend
    rows = []
    for batch_first in (True, False):
        torch.manual_seed(11)
        m = nn.MultiheadAttention(d, H, batch_first=batch_first).to(dev)
        with torch.no_grad():  # non-zero biases, so that copying them is tested too
            m.in_proj_bias.normal_()
            m.out_proj.bias.normal_()
        ours = MultiHeadAttention.from_torch(m)
        out, w = ours(x, x, x, mask)
        xt = x if batch_first else x.transpose(0, 1)  # (N, B, d) for the default layout
        ref, ref_w = m(
            xt,
            xt,
            xt,
            attn_mask=~causal_mask(N, device=dev),  # True = NOT allowed, for torch
            key_padding_mask=to_key_padding_mask(pad),  # (B, N), True = ignore
        )
        ref = ref if batch_first else ref.transpose(0, 1)
        rows.append(
            [
                f"`batch_first={batch_first}`",
                f"{(out - ref).abs().max().item():.1e}",
                f"{(w.mean(dim=1) - ref_w).abs().max().item():.1e}",
            ]
        )
    header = [
        say("torch module", "PyTorch 模块"),
        say("largest output difference", "输出的最大差异"),
        say("largest weight difference", "权重的最大差异"),
    ]
    intro = say(
        f"Batch of {B} sequences of {N} tokens, $d_{{model}} = {d}$, {H} heads, causal and "
        f"padding masks, float32 on `{dev}`; weights compared after averaging ours over the "
        "heads, as PyTorch returns them by default:",
        f"一批 {B} 个序列，每个 {N} 个词元，$d_{{model}} = {d}$，{H} 个头，使用因果掩码和"
        f"填充掩码，在 `{dev}` 上以 float32 运行；比较权重时，先把我们各头的权重求平均，"
        "因为 PyTorch 默认返回的是平均值：",
    )
    return intro + "\n\n" + markdown_table(header, rows, "lrr")


# ---------------------------------------------------------------------------------------------
# Parameter count
# ---------------------------------------------------------------------------------------------

_D_MODEL = 512  # the base Transformer of Vaswani et al.


def parameter_table() -> str:
    rows = []
    for heads in (1, 2, 8, 16, 64):
        ours = count_parameters(MultiHeadAttention(_D_MODEL, heads))
        theirs = count_parameters(nn.MultiheadAttention(_D_MODEL, heads))
        rows.append(
            [
                heads,
                _D_MODEL // heads,
                f"{_D_MODEL} × {_D_MODEL // heads}",
                f"{ours:,}",
                f"{theirs:,}",
                f"{expected_parameters(_D_MODEL):,}",
            ]
        )
    return markdown_table(
        [
            say("heads $H$", "头数 $H$"),
            "$d_{head}$",
            say("shape of one head's $W_Q^{(h)}$", "单个头的 $W_Q^{(h)}$ 的形状"),
            say("ours", "我们的实现"),
            "`nn.MultiheadAttention`",
            "$4d^2 + 4d$",
        ],
        rows,
        "rrcrrr",
    )


def parameter_numbers() -> dict[str, str]:
    with_bias = count_parameters(MultiHeadAttention(_D_MODEL, 8))
    return {
        "d_model": str(_D_MODEL),
        "count": f"{with_bias:,}",
        "weights": f"{4 * _D_MODEL**2:,}",
        "biases": f"{4 * _D_MODEL:,}",
        "no_bias": f"{count_parameters(MultiHeadAttention(_D_MODEL, 8, bias=False)):,}",
    }


# ---------------------------------------------------------------------------------------------
# Per-head attention maps, with hand-set projections
# ---------------------------------------------------------------------------------------------

_HEAD_NAMES = [
    say("previous token", "前一个词元"),
    say("next token", "后一个词元"),
    say("same word", "相同的单词"),
    say("first token", "第一个词元"),
]


def _one_head(mha: MultiHeadAttention) -> MultiHeadAttention:
    """One head of full width with the very same weights as `mha`."""
    one = MultiHeadAttention(mha.d_model, 1)
    one.load_state_dict(mha.state_dict())
    return one


def single_head_numbers() -> dict[str, str]:
    """The one wide head's score against the four heads' scaled scores, checked.

    Each head divides q_h . k_h by sqrt(d_head); the single head divides the sum of the
    same products by sqrt(d_model). Its score is sqrt(d_head / d_model) times the sum of
    the heads' scaled scores: 1/2 for 4 heads of width 8.
    """
    mha, x = hand_built_heads()
    one = _one_head(mha)
    with torch.no_grad():
        q = mha.split_heads(mha.w_q(x))  # (1, H, n, d_head)
        k = mha.split_heads(mha.w_k(x))
        per_head = q @ k.transpose(-2, -1) / math.sqrt(mha.d_head)  # (1, H, n, n)
        wide = mha.w_q(x) @ mha.w_k(x).transpose(-2, -1) / math.sqrt(mha.d_model)
        factor = math.sqrt(mha.d_head / mha.d_model)
        score_err = (wide - factor * per_head.sum(dim=1)).abs().max().item()
        _, weights = one(x, x, x)  # the module's own weights, (1, 1, n, n)
        expected = torch.softmax(factor * per_head.sum(dim=1), dim=-1)
        weight_err = (weights[:, 0] - expected).abs().max().item()
    return {
        "d_head": str(mha.d_head),
        "d_model": str(mha.d_model),
        "heads": str(mha.num_heads),
        "factor": f"{factor:g}",
        "score_err": f"{score_err:.1e}",
        "weight_err": f"{weight_err:.1e}",
    }


def head_maps_figure() -> Figure:
    mha, x = hand_built_heads()
    with torch.no_grad():
        _, weights = mha(x, x, x)  # (1, H, n, n)
        # One head of full width with the very same W_Q, W_K: it divides by sqrt(32), not
        # sqrt(8), so its score is half the sum of the four heads' scaled scores.
        _, single = _one_head(mha)(x, x, x)  # (1, 1, n, n)
    panels = [
        *[
            (weights[0, h], say(f"head {h}: {name}", f"头 {h}：{zh(name)}"))
            for h, name in enumerate(_HEAD_NAMES)
        ],
        (
            weights[0].mean(dim=0),
            say(
                "average of the 4 heads\n(what PyTorch returns)",
                "4 个头的平均\n（PyTorch 返回的结果）",
            ),
        ),
        (
            single[0, 0],
            say(
                "one head, same $W_Q, W_K$\n(no split)",
                "单个头，相同的 $W_Q, W_K$\n（不拆分）",
            ),
        ),
    ]
    words = [same(word) for word in WORDS]  # the example sentence stays in English
    fig, axes = figure(ncols=3, nrows=2, width=9.6, height=6.6)
    for ax, (w, title) in zip(axes.flat, panels, strict=True):
        im = ax.imshow(w.numpy(), vmin=0, vmax=1)
        ax.set_xticks(range(len(words)), words, rotation=60, fontsize=8)
        ax.set_yticks(range(len(words)), words, fontsize=8)
        ax.grid(False)
        ax.set_title(title, fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel(say("query", "查询"))
    for ax in axes[1]:
        ax.set_xlabel(say("key", "键"))
    fig.colorbar(im, ax=axes, shrink=0.6, label=say("attention weight", "注意力权重"))
    return fig


# ---------------------------------------------------------------------------------------------
# The batch_first pitfall
# ---------------------------------------------------------------------------------------------

_B_PIT, _N_PIT, _D_PIT = 4, 6, 16


def _pitfall_setup() -> tuple[nn.MultiheadAttention, nn.MultiheadAttention, Tensor]:
    g = torch.Generator().manual_seed(13)
    torch.manual_seed(13)
    default = nn.MultiheadAttention(_D_PIT, 2)  # batch_first=False: expects (N, B, d)
    fixed = nn.MultiheadAttention(_D_PIT, 2, batch_first=True)
    fixed.load_state_dict(default.state_dict())  # same weights, other layout
    x = torch.randn(_B_PIT, _N_PIT, _D_PIT, generator=g)  # (B, N, d), batch first
    return default, fixed, x


_WRONG = say("wrong: `default(x, x, x)`", "错误：`default(x, x, x)`")
_TRANSPOSED = say(
    "fixed: `default` on `x.transpose(0, 1)`, output transposed back",
    "修正：对 `x.transpose(0, 1)` 调用 `default`，再把输出转置回来",
)
_FIXED = say(
    "fixed: `fixed(x, x, x)`, `batch_first=True`",
    "修正：`fixed(x, x, x)`，`batch_first=True`",
)


def _calls(default: nn.MultiheadAttention, fixed: nn.MultiheadAttention):
    def transposed(x: Tensor) -> tuple[Tensor, Tensor]:
        xt = x.transpose(0, 1)  # (N, B, d), the layout the default module expects
        out, w = default(xt, xt, xt)
        return out.transpose(0, 1), w

    return {
        _WRONG: lambda x: default(x, x, x),
        _TRANSPOSED: transposed,
        _FIXED: lambda x: fixed(x, x, x),
    }


def pitfall_table() -> str:
    default, fixed, x = _pitfall_setup()
    reference = MultiHeadAttention.from_torch(default)  # batch-first by construction
    x2 = x.clone()
    x2[1] = torch.randn(_N_PIT, _D_PIT, generator=torch.Generator().manual_seed(14))
    rows = []
    with torch.no_grad():
        right, _ = reference(x, x, x)
        for name, call in _calls(default, fixed).items():
            out, w = call(x)
            out2, _ = call(x2)
            moved = (out2[0] - out[0]).abs().max().item()
            verdict = (
                say(f"changes (by up to {moved:.2f})", f"改变（最多 {moved:.2f}）")
                if moved > 1e-6
                else say("unchanged", "不变")
            )
            rows.append(
                [
                    name,
                    tuple(out.shape),
                    tuple(w.shape),
                    f"{(out - right).abs().max().item():.1e}",
                    verdict,
                ]
            )
    return markdown_table(
        [
            say(
                f"call, `x` of shape (B, N, d) = ({_B_PIT}, {_N_PIT}, {_D_PIT})",
                f"调用，`x` 的形状 (B, N, d) = ({_B_PIT}, {_N_PIT}, {_D_PIT})",
            ),
            say("output shape", "输出形状"),
            say("weights shape", "权重形状"),
            say("largest difference from the correct output", "与正确输出的最大差异"),
            say(
                "sequence 0's output when only sequence 1 changes",
                "只改变序列 1 时，序列 0 的输出",
            ),
        ],
        rows,
        "lccrc",
    )


def pitfall_figure() -> Figure:
    """Which inputs does output (sequence 0, token 0) depend on? Jacobian norms per input token."""
    default, fixed, x = _pitfall_setup()
    calls = _calls(default, fixed)
    fig, axes = figure(ncols=2, width=8.0, height=2.9)
    for ax, call, title in (
        (
            axes[0],
            calls[_WRONG],
            say(
                "default module, (B, N, d) input: wrong",
                "默认模块，输入 (B, N, d)：错误",
            ),
        ),
        # the argument as it is written in code, in both languages
        (axes[1], calls[_FIXED], same("batch_first=True") + say(": right", "：正确")),
    ):
        jac = torch.autograd.functional.jacobian(lambda t, c=call: c(t)[0][0, 0], x)
        influence = jac.norm(dim=(0, 3))  # (B, N): ||d out[0, 0] / d x[b, j]||
        ax.imshow(influence.numpy(), cmap="viridis")
        ax.set_xticks(range(_N_PIT))
        ax.set_yticks(range(_B_PIT))
        ax.grid(False)
        ax.set(
            xlabel=say("token $j$", "词元 $j$"),
            ylabel=say("sequence $b$", "序列 $b$"),
            title=title,
        )
    norm = r"$\| \partial\, \mathrm{output}[0, 0] / \partial\, x[b, j] \|$"
    fig.suptitle(
        say(
            norm + ": what the first token of sequence 0 depends on",
            norm + "：序列 0 的第一个词元依赖于什么",
        ),
        fontsize=10,
    )
    return fig
