"""Chapter 5, multi-head attention: agreement with PyTorch, parameters, heads, batch_first."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from snippets.masks import causal_mask, padding_mask, to_key_padding_mask
from snippets.multihead import (
    MultiHeadAttention,
    count_parameters,
    expected_parameters,
)
from snippets.plotting import figure
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
    rows = [
        "| torch module | largest output difference | largest weight difference |",
        "| --- | ---: | ---: |",
    ]
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
            f"| `batch_first={batch_first}` | {(out - ref).abs().max().item():.1e} "
            f"| {(w.mean(dim=1) - ref_w).abs().max().item():.1e} |"
        )
    return (
        f"Batch of {B} sequences of {N} tokens, $d_{{model}} = {d}$, {H} heads, causal and "
        f"padding masks, float32 on `{dev}`; weights compared after averaging ours over the "
        "heads, as PyTorch returns them by default:\n\n" + "\n".join(rows)
    )


# ---------------------------------------------------------------------------------------------
# Parameter count
# ---------------------------------------------------------------------------------------------

D_MODEL = 512  # the base Transformer of Vaswani et al.


def parameter_table() -> str:
    rows = [
        "| heads $H$ | $d_{head}$ | shape of one head's $W_Q^{(h)}$ | ours "
        "| `nn.MultiheadAttention` | $4d^2 + 4d$ |",
        "| ---: | ---: | :---: | ---: | ---: | ---: |",
    ]
    for heads in (1, 2, 8, 16, 64):
        ours = count_parameters(MultiHeadAttention(D_MODEL, heads))
        theirs = count_parameters(nn.MultiheadAttention(D_MODEL, heads))
        rows.append(
            f"| {heads} | {D_MODEL // heads} | {D_MODEL} × {D_MODEL // heads} "
            f"| {ours:,} | {theirs:,} | {expected_parameters(D_MODEL):,} |"
        )
    return "\n".join(rows)


def parameter_numbers() -> dict[str, str]:
    with_bias = count_parameters(MultiHeadAttention(D_MODEL, 8))
    return {
        "d_model": str(D_MODEL),
        "count": f"{with_bias:,}",
        "weights": f"{4 * D_MODEL**2:,}",
        "biases": f"{4 * D_MODEL:,}",
        "no_bias": f"{count_parameters(MultiHeadAttention(D_MODEL, 8, bias=False)):,}",
    }


# ---------------------------------------------------------------------------------------------
# Per-head attention maps, with hand-set projections
# ---------------------------------------------------------------------------------------------

WORDS = ["the", "cat", "saw", "a", "dog", "and", "the", "cat"]
HEAD_NAMES = ["previous token", "next token", "same word", "first token"]


def hand_built_heads() -> tuple[MultiHeadAttention, Tensor]:
    """A 4-head module whose W_Q, W_K are set by hand so that each head looks for one thing.

    Token i is x_i = [one-hot of its position (8) | one-hot of its word (8) | zeros (16)].
    Head h owns rows 8h..8h+7 of the stored weights of w_q and w_k (nn.Linear's
    (out, in) layout: columns 8h..8h+7 of W_Q and W_K in the page's x @ W); a match
    scores s^2 / sqrt(8) = 6 and gets almost all the weight. W_V and W_O keep their
    random initialisation.
    """
    n, d_model, heads = len(WORDS), 32, 4
    vocab = sorted(set(WORDS))
    x = torch.zeros(1, n, d_model)
    for i, word in enumerate(WORDS):
        x[0, i, i] = 1.0  # position
        x[0, i, 8 + vocab.index(word)] = 1.0  # word
    torch.manual_seed(12)
    mha = MultiHeadAttention(d_model, heads)
    s = math.sqrt(6 * math.sqrt(8))
    wq = torch.zeros(d_model, d_model)  # (out, in): row = head feature, column = input
    wk = torch.zeros(d_model, d_model)
    bq = torch.zeros(d_model)
    for i in range(n):
        wq[0 + i, i] = s  # head 0, previous token: query i looks for key i - 1
        wq[8 + i, i] = s  # head 1, next token: query i looks for key i + 1
    for j in range(n - 1):
        wk[0 + j + 1, j] = s  # key j answers query j + 1 in head 0
        wk[8 + j, j + 1] = s  # key j + 1 answers query j in head 1
    wk[0 + 0, 0] = s  # the first token has no predecessor: it attends to itself
    wk[8 + n - 1, n - 1] = s  # the last has no successor: itself
    for w in range(8):
        wq[16 + w, 8 + w] = s  # head 2, same word: query and key are the word
        wk[16 + w, 8 + w] = s
    bq[24] = s  # head 3, first token: every query (a bias) looks for position 0
    wk[24, 0] = s
    with torch.no_grad():
        mha.w_q.weight.copy_(wq)
        mha.w_k.weight.copy_(wk)
        mha.w_q.bias.copy_(bq)
        mha.w_k.bias.zero_()
    return mha, x


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


def head_maps_figure():
    mha, x = hand_built_heads()
    with torch.no_grad():
        _, weights = mha(x, x, x)  # (1, H, n, n)
        # One head of full width with the very same W_Q, W_K: it divides by sqrt(32), not
        # sqrt(8), so its score is half the sum of the four heads' scaled scores.
        _, single = _one_head(mha)(x, x, x)  # (1, 1, n, n)
    panels = [
        *[(weights[0, h], f"head {h}: {name}") for h, name in enumerate(HEAD_NAMES)],
        (weights[0].mean(dim=0), "average of the 4 heads\n(what PyTorch returns)"),
        (single[0, 0], "one head, same $W_Q, W_K$\n(no split)"),
    ]
    fig, axes = figure(ncols=3, nrows=2, width=9.6, height=6.6)
    for ax, (w, title) in zip(axes.flat, panels, strict=True):
        im = ax.imshow(w.numpy(), vmin=0, vmax=1)
        ax.set_xticks(range(len(WORDS)), WORDS, rotation=60, fontsize=8)
        ax.set_yticks(range(len(WORDS)), WORDS, fontsize=8)
        ax.grid(False)
        ax.set_title(title, fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("query")
    for ax in axes[1]:
        ax.set_xlabel("key")
    fig.colorbar(im, ax=axes, shrink=0.6, label="attention weight")
    return fig


# ---------------------------------------------------------------------------------------------
# The batch_first pitfall
# ---------------------------------------------------------------------------------------------

B_PIT, N_PIT, D_PIT = 4, 6, 16


def _pitfall_setup() -> tuple[nn.MultiheadAttention, nn.MultiheadAttention, Tensor]:
    g = torch.Generator().manual_seed(13)
    torch.manual_seed(13)
    default = nn.MultiheadAttention(D_PIT, 2)  # batch_first=False: expects (N, B, d)
    fixed = nn.MultiheadAttention(D_PIT, 2, batch_first=True)
    fixed.load_state_dict(default.state_dict())  # same weights, other layout
    x = torch.randn(B_PIT, N_PIT, D_PIT, generator=g)  # (B, N, d), batch first
    return default, fixed, x


def _calls(default: nn.MultiheadAttention, fixed: nn.MultiheadAttention):
    def transposed(x: Tensor) -> tuple[Tensor, Tensor]:
        xt = x.transpose(0, 1)  # (N, B, d), the layout the default module expects
        out, w = default(xt, xt, xt)
        return out.transpose(0, 1), w

    return {
        "wrong: `default(x, x, x)`": lambda x: default(x, x, x),
        "fixed: `default` on `x.transpose(0, 1)`, output transposed back": transposed,
        "fixed: `fixed(x, x, x)`, `batch_first=True`": lambda x: fixed(x, x, x),
    }


def pitfall_table() -> str:
    default, fixed, x = _pitfall_setup()
    reference = MultiHeadAttention.from_torch(default)  # batch-first by construction
    x2 = x.clone()
    x2[1] = torch.randn(N_PIT, D_PIT, generator=torch.Generator().manual_seed(14))
    rows = [
        f"| call, `x` of shape (B, N, d) = ({B_PIT}, {N_PIT}, {D_PIT}) "
        "| output shape | weights shape "
        "| largest difference from the correct output "
        "| sequence 0's output when only sequence 1 changes |",
        "| --- | :---: | :---: | ---: | :---: |",
    ]
    with torch.no_grad():
        right, _ = reference(x, x, x)
        for name, call in _calls(default, fixed).items():
            out, w = call(x)
            out2, _ = call(x2)
            moved = (out2[0] - out[0]).abs().max().item()
            verdict = f"changes (by up to {moved:.2f})" if moved > 1e-6 else "unchanged"
            rows.append(
                f"| {name} | {tuple(out.shape)} | {tuple(w.shape)} "
                f"| {(out - right).abs().max().item():.1e} | {verdict} |"
            )
    return "\n".join(rows)


def pitfall_figure():
    """Which inputs does output (sequence 0, token 0) depend on? Jacobian norms per input token."""
    default, fixed, x = _pitfall_setup()
    calls = list(_calls(default, fixed).values())
    fig, axes = figure(ncols=2, width=8.0, height=2.9)
    for ax, call, title in (
        (axes[0], calls[0], "default module, (B, N, d) input: wrong"),
        (axes[1], calls[2], "batch_first=True: right"),
    ):
        jac = torch.autograd.functional.jacobian(lambda t, c=call: c(t)[0][0, 0], x)
        influence = jac.norm(dim=(0, 3))  # (B, N): ||d out[0, 0] / d x[b, j]||
        ax.imshow(influence.numpy(), cmap="viridis")
        ax.set_xticks(range(N_PIT))
        ax.set_yticks(range(B_PIT))
        ax.grid(False)
        ax.set(xlabel="token $j$", ylabel="sequence $b$", title=title)
    fig.suptitle(
        r"$\| \partial\, \mathrm{output}[0, 0] / \partial\, x[b, j] \|$: "
        "what the first token of sequence 0 depends on",
        fontsize=10,
    )
    return fig
