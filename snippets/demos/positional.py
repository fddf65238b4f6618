"""Chapter 6, positional encoding: order blindness, the sinusoidal table, its shifts, RoPE."""

from __future__ import annotations

import math

import torch

from snippets.attention import scaled_dot_product_attention
from snippets.bilingual import same, say
from snippets.masks import causal_mask
from snippets.plotting import COLORS, Figure, figure, markdown_table
from snippets.positional import (
    apply_rope,
    inverse_frequencies,
    self_attention,
    shift_matrix,
    sinusoidal_encoding,
    xor_denominators,
    xor_encoding,
)
from snippets.runtime import device

_N_HEAT, _D_HEAT = 100, 128  # the heatmap: positions x dimensions
_POSITION, _DIMENSION = say("position", "位置"), say("dimension", "维度")


def _causal_self_attention(x: torch.Tensor, w_q, w_k, w_v) -> torch.Tensor:
    """self_attention with a causal mask: query i sees keys 0..i."""
    mask = causal_mask(x.size(-2), device=x.device)
    return scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, mask)[0]


def permutation_check() -> dict[str, str]:
    """|f(Px) - P f(x)| for self-attention without positions, with sinusoidal positions,
    and with a causal mask instead of positions."""
    g = torch.Generator().manual_seed(0)
    n, d = 12, 32
    x = torch.randn(1, n, d, generator=g)
    w = [torch.randn(d, d, generator=g) / math.sqrt(d) for _ in range(3)]
    perm = torch.randperm(n, generator=g)
    x, perm, w = x.to(device()), perm.to(device()), [m.to(device()) for m in w]
    pe = sinusoidal_encoding(n, d).to(device())
    plain = (
        (self_attention(x[:, perm], *w) - self_attention(x, *w)[:, perm]).abs().max()
    )
    with_pe = (
        (self_attention(x[:, perm] + pe, *w) - self_attention(x + pe, *w)[:, perm])
        .abs()
        .max()
    )
    causal = (
        (
            _causal_self_attention(x[:, perm], *w)
            - _causal_self_attention(x, *w)[:, perm]
        )
        .abs()
        .max()
    )
    # One distinct first token, then the same token n - 1 times: without a mask the
    # repeated tokens get identical outputs; with a causal mask output i averages
    # the first i + 1 values, so it depends on i.
    repeated = torch.cat([x[:, :1], x[:, 1:2].expand(1, n - 1, d)], dim=1)
    spread = {
        name: (f(repeated, *w)[0, 1:] - f(repeated, *w)[0, 1]).abs().max()
        for name, f in (("plain", self_attention), ("causal", _causal_self_attention))
    }
    return {
        "n": str(n),
        "d": str(d),
        "plain": f"{plain.item():.1e}",
        "with_pe": f"{with_pe.item():.2f}",
        "causal": f"{causal.item():.2f}",
        "repeated_plain": f"{spread['plain'].item():.1e}" if spread["plain"] else "0",
        "repeated_causal": f"{spread['causal'].item():.2f}",
        "device": same(str(device())),
    }


def sinusoidal_heatmap() -> Figure:
    pe = sinusoidal_encoding(_N_HEAT, _D_HEAT)
    fig, (ax, ax2) = figure(ncols=2, width=9.6, height=3.6)
    im = ax.imshow(pe.T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, origin="lower")
    ax.set(
        xlabel=_POSITION,
        ylabel=_DIMENSION,
        title=say(f"PE, d_model = {_D_HEAT}", f"位置编码，d_model = {_D_HEAT}"),
    )
    ax.grid(False)
    fig.colorbar(im, ax=ax, shrink=0.9)
    wavelengths = 2 * math.pi / inverse_frequencies(_D_HEAT)  # (d/2,)
    for dim, color in zip((0, 20, 40, 60), COLORS, strict=False):
        wl = wavelengths[dim // 2].item()
        label = say(f"dim {dim}: wavelength {wl:.0f}", f"第 {dim} 维：波长 {wl:.0f}")
        ax2.plot(pe[:, dim], color=color, label=label)
    ax2.set(
        xlabel=_POSITION,
        ylabel=say("value", "取值"),
        title=say("even (sine) dimensions", "偶数（正弦）维度"),
        ylim=(-1.1, 1.1),
    )
    ax2.legend(ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=8)
    return fig


# --- the XOR pitfall ---------------------------------------------------------------------------

_ARTICLE_LINE = "angle = pos / 10000^(2i/d_model)"
_ATTEMPTS = [
    (say("the line as printed", "原文中的写法"), _ARTICLE_LINE),
    (say("`2i` written `2*i`", "`2i` 写成 `2*i`"), "angle = pos / 10000^(2*i/d_model)"),
    (
        say("parenthesised, integer exponent", "加括号，整数指数"),
        "angle = pos / (10000 ^ (2*i // d_model))",
    ),
    (
        say("with `**`, the power", "用幂运算 `**`"),
        "angle = pos / 10000 ** (2*i / d_model)",
    ),
]


def _try(line: str, pos: int, i: int, d_model: int) -> str:
    env = {"pos": pos, "i": i, "d_model": d_model}
    try:
        exec(compile(line, "<line>", "exec"), {}, env)
    except SyntaxError as err:
        return f"`SyntaxError: {err.msg}`"
    except TypeError as err:
        return f"`TypeError: {err}`"
    return f"`angle = {env['angle']:.6g}`"


def xor_attempts() -> str:
    """Each way of typing the formula, executed by the build with pos = 3, i = 1, d_model = 8."""
    return markdown_table(
        [
            say("what is typed", "写法"),
            say("code", "代码"),
            say(
                "result for pos = 3, i = 1, d_model = 8",
                "`pos = 3`、`i = 1`、`d_model = 8` 时的结果",
            ),
        ],
        [[label, f"`{line}`", _try(line, 3, 1, 8)] for label, line in _ATTEMPTS],
    )


def xor_table() -> str:
    """Denominators with `**` and with `^`, for d_model = 512, at a few pair indices."""
    by_pair = {i: (power, xor) for i, power, xor in xor_denominators(512)}
    rows = []
    for i in (0, 1, 2, 64, 128, 192, 255):
        power, xor = by_pair[i]
        rows.append([i, f"{power:,.4g}", f"{xor:,}", f"{10000 ^ (2 * i):,}"])
    return markdown_table(
        [
            say("pair $i$", "维度对 $i$"),
            "`10000 ** (2*i/512)`",
            "`10000 ^ (2*i // 512)`",
            "`10000 ^ (2*i)`",
        ],
        rows,
        "rrrr",
    )


def xor_numbers() -> dict[str, str]:
    n, d = 128, 64
    good = sinusoidal_encoding(n, d, dtype=torch.float64)
    bad = xor_encoding(n, d)
    step_good = (good[1:] - good[:-1]).norm(dim=-1)
    step_bad = (bad[1:] - bad[:-1]).norm(dim=-1)
    spread_bad = torch.cdist(bad, bad).max()
    return {
        "n": str(n),
        "d": str(d),
        "step_good_min": f"{step_good.min().item():.2f}",
        "step_bad": f"{step_bad.mean().item():.1e}",
        "spread_bad": f"{spread_bad.item():.3f}",
        "max_diff": f"{(good - bad).abs().max().item():.2f}",
        "rank_bad": str(torch.linalg.matrix_rank(bad).item()),
    }


def xor_figure() -> Figure:
    n, d = 128, 64
    fig, axes = figure(ncols=2, width=9.6, height=3.0)
    for ax, table, title in (
        (
            axes[0],
            sinusoidal_encoding(n, d),
            say("with ** (the encoding)", "用 **（正确的编码）"),
        ),
        (
            axes[1],
            xor_encoding(n, d),
            say("with ^ (XOR): one frequency", "用 ^（异或）：只有一个频率"),
        ),
    ):
        im = ax.imshow(
            table.T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, origin="lower"
        )
        ax.set(xlabel=_POSITION, ylabel=_DIMENSION, title=title)
        ax.grid(False)
    fig.colorbar(im, ax=axes, shrink=0.9)
    return fig


# --- shifts and similarity -----------------------------------------------------------------------


def shift_check() -> dict[str, str]:
    """Largest |PE[pos + k] - M_k PE[pos]| over all positions and shifts, in float64."""
    n, d, shifts = 1000, 512, (1, 7, 50, 300)
    pe = sinusoidal_encoding(n + max(shifts), d, dtype=torch.float64)
    worst = max(
        (pe[k : k + n] - pe[:n] @ shift_matrix(k, d).T).abs().max().item()
        for k in shifts
    )
    return {
        "n": f"{n:,}",
        "d": str(d),
        "shifts": ", ".join(map(str, shifts)),
        "max_error": f"{worst:.1e}",
    }


def similarity_figure() -> Figure:
    fig, (ax, ax2) = figure(ncols=2, width=9.6, height=3.6)
    offsets = torch.arange(-200, 201)
    p = 300
    for d, color in zip((16, 64, 512), COLORS, strict=False):
        pe = sinusoidal_encoding(p + 201, d, dtype=torch.float64)
        sim = pe[p + offsets] @ pe[p] / (d / 2)  # PE[p + Δ] . PE[p], 1 at Δ = 0
        ax.plot(offsets, sim, color=color, label=f"d_model = {d}", linewidth=1.2)
    ax.set(
        xlabel=say(r"offset $\Delta$", r"偏移量 $\Delta$"),
        ylabel=r"$PE_{p+\Delta}\cdot PE_p \,/\, (d/2)$",
        title=say(f"similarity to position p = {p}", f"与位置 p = {p} 的相似度"),
    )
    ax.legend()
    pe = sinusoidal_encoding(128, 128)
    im = ax2.imshow(pe @ pe.T, cmap="viridis", origin="lower")
    ax2.set(
        xlabel=say("position q", "位置 q"),
        ylabel=say("position p", "位置 p"),
        # in Chinese all in math: the CJK font's narrow space runs "=" into the number
        title=say(
            r"$PE_p \cdot PE_q$, d_model = 128",
            r"$PE_p \cdot PE_q$，$d_\mathrm{model} = 128$",
        ),
    )
    ax2.grid(False)
    fig.colorbar(im, ax=ax2, shrink=0.9)
    return fig


# --- rotary embeddings ----------------------------------------------------------------------------


def _rope_scores(n: int = 32, d: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of one fixed query vector and one fixed key vector placed at every position."""
    g = torch.Generator().manual_seed(3)
    q = torch.randn(d, generator=g, dtype=torch.float64).expand(n, d)
    k = torch.randn(d, generator=g, dtype=torch.float64).expand(n, d)
    pos = torch.arange(n)
    rope = apply_rope(q, pos) @ apply_rope(k, pos).T / math.sqrt(d)  # (N, N)
    pe = sinusoidal_encoding(n, d, dtype=torch.float64)
    added = (q + pe) @ (k + pe).T / math.sqrt(d)  # (N, N)
    return rope, added


def _toeplitz_gap(s: torch.Tensor) -> float:
    """Largest difference between an entry and the first entry of its diagonal."""
    n = s.size(0)
    return max(
        (torch.diagonal(s, o) - torch.diagonal(s, o)[0]).abs().max().item()
        for o in range(-n + 1, n)
    )


def rope_figure() -> Figure:
    rope, added = _rope_scores()
    fig, axes = figure(ncols=2, width=9.6, height=3.8)
    for ax, s, title in (
        (axes[0], rope, say("RoPE: rotate q and k", "RoPE：旋转 q 和 k")),
        (
            axes[1],
            added,
            say("sinusoidal PE added to q and k", "正弦编码加到 q 和 k 上"),
        ),
    ):
        im = ax.imshow(s, cmap="viridis", origin="lower")
        ax.set(
            xlabel=say("key position n", "键的位置 n"),
            ylabel=say("query position m", "查询的位置 m"),
            title=title,
        )
        ax.grid(False)
        fig.colorbar(im, ax=ax, shrink=0.9)
    return fig


def rope_numbers() -> dict[str, str]:
    rope, added = _rope_scores()
    return {
        "rope_gap": f"{_toeplitz_gap(rope):.1e}",
        "added_gap": f"{_toeplitz_gap(added):.2f}",
        "n": str(rope.size(0)),
        "d": "64",
        "w_last": f"{inverse_frequencies(64)[-1].item():.2e}",
    }
