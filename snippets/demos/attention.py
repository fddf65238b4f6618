"""Chapter 3, scaled dot-product attention: the measurements behind the sqrt(d_k) scaling."""

from __future__ import annotations

import functools

import torch

from snippets.attention import (
    dot_product_samples,
    scaled_dot_product_attention,
    softmax_statistics,
)
from snippets.bilingual import say
from snippets.plotting import COLORS, Figure, figure, markdown_table, significant
from snippets.runtime import device

_D_KS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
_N_SAMPLES = 20_000
_N_KEYS = 64
_N_QUERIES = 2048  # the median of a norm spread over orders of magnitude


@functools.cache
def _variances() -> dict[int, dict[str, float]]:
    """d_k -> mean and variance of q.k, and variance of q.k / sqrt(d_k), over the samples."""
    g = torch.Generator().manual_seed(0)
    moments = {}
    for d_k in _D_KS:
        s = dot_product_samples(d_k, _N_SAMPLES, g)
        moments[d_k] = {
            "mean": s.mean().item(),
            "var": s.var().item(),
            "scaled_var": (s / d_k**0.5).var().item(),
        }
    return moments


def variance_figure() -> Figure:
    moments = _variances()
    fig, ax = figure(width=5.6, height=3.6)
    d = list(moments)
    ax.plot(
        d,
        d,
        color=COLORS[1],
        linestyle="--",
        label=say(
            r"theory: $\mathrm{Var}(q\cdot k) = d_k$",
            r"理论值：$\mathrm{Var}(q\cdot k) = d_k$",
        ),
    )
    ax.plot(
        d,
        [m["var"] for m in moments.values()],
        "o",
        color=COLORS[0],
        label=say(r"measured $\mathrm{Var}(q\cdot k)$", r"实测 $q\cdot k$ 的方差"),
    )
    ax.plot(
        d,
        [m["scaled_var"] for m in moments.values()],
        "s",
        color=COLORS[2],
        label=say(  # √ as text: see plotting.legible
            r"measured Var($q\cdot k$ / √$d_k$)", r"实测 $q\cdot k$ / √$d_k$ 的方差"
        ),
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"$d_k$",
        ylabel=say("variance", "方差"),
        title=say(
            f"{_N_SAMPLES:,} random pairs per point",
            f"每个点 {_N_SAMPLES:,} 对随机向量",
        ),
    )
    ax.legend()
    return fig


def variance_table() -> str:
    return markdown_table(
        [
            "$d_k$",
            say("mean of $q\\cdot k$", "$q\\cdot k$ 的均值"),
            say("variance of $q\\cdot k$", "$q\\cdot k$ 的方差"),
            say(
                "variance of $q\\cdot k/\\sqrt{d_k}$", "$q\\cdot k/\\sqrt{d_k}$ 的方差"
            ),
        ],
        [
            [
                d_k,
                f"{m['mean']:+.3f}",
                significant(m["var"]),
                significant(m["scaled_var"]),
            ]
            for d_k, m in _variances().items()
        ],
        "rrrr",
    )


@functools.cache
def _saturation() -> dict[bool, dict[int, dict[str, float]]]:
    """scaled -> d_k -> softmax statistics; scaled and unscaled use the same queries and keys."""
    return {
        scaled: {
            d: softmax_statistics(
                d, _N_KEYS, _N_QUERIES, scaled, torch.Generator().manual_seed(d)
            )
            for d in _D_KS
        }
        for scaled in (False, True)
    }


_UNSCALED, _SCALED = say("unscaled", "未缩放"), say("scaled", "缩放")
_DP_DS, _DP_DQ = r"$\|\partial p/\partial s\|_F$", r"$\|\partial p/\partial q\|_F$"


def saturation_figure() -> Figure:
    stats = _saturation()
    fig, axes = figure(ncols=2, nrows=2, width=8.0, height=6.0)
    keys = ("max_weight", "entropy", "jacobian_norm", "query_gradient_norm")
    for scaled, color, name in (
        (False, COLORS[3], _UNSCALED),
        (True, COLORS[0], _SCALED),
    ):
        for ax, key in zip(axes.flat, keys, strict=True):
            ax.plot(
                _D_KS,
                [stats[scaled][d][key] for d in _D_KS],
                "o-",
                color=color,
                label=name,
            )
    axes[0, 0].set(ylabel=say("mean largest weight", "平均最大权重"), ylim=(0, 1.05))
    axes[0, 1].axhline(
        torch.log(torch.tensor(float(_N_KEYS))).item(),
        color=COLORS[1],
        linestyle=":",
        label=say("uniform", "均匀分布"),
    )
    axes[0, 1].set(ylabel=say("mean entropy (nats)", "平均熵（奈特）"))
    for ax, norm in ((axes[1, 0], _DP_DS), (axes[1, 1], _DP_DQ)):
        ax.set(ylabel=say(f"median {norm}", f"{norm} 的中位数"), yscale="log")
    for ax in axes.flat:
        ax.set(xscale="log", xlabel=r"$d_k$")
    axes[0, 1].legend()
    return fig


_GRADIENT_D_KS = [16, 64, 256, 512]  # the widths the page's table shows


def gradient_table() -> str:
    """Median Jacobian norms, dp/ds and dp/dq, with and without scaling, as measured."""
    stats = _saturation()
    header = ["$d_k$"]
    for quantity in (say("largest weight", "最大权重"), _DP_DS, _DP_DQ):
        header += [quantity + say(", ", "，") + name for name in (_UNSCALED, _SCALED)]
    rows = []
    for d_k in _GRADIENT_D_KS:
        off, on = stats[False][d_k], stats[True][d_k]
        rows.append(
            [
                d_k,
                f"{off['max_weight']:.2f}",
                f"{on['max_weight']:.2f}",
                significant(off["jacobian_norm"]),
                significant(on["jacobian_norm"]),
                significant(off["query_gradient_norm"]),
                significant(on["query_gradient_norm"]),
            ]
        )
    return markdown_table(header, rows, "r" * len(header))


def headline_numbers() -> dict[str, str]:
    stats = _saturation()
    var = {d: m["var"] for d, m in _variances().items()}

    def unscaled_over_scaled(key: str, d_k: int) -> float:
        return stats[False][d_k][key] / stats[True][d_k][key]

    def below(d_k: int) -> bool:
        """The unscaled gradient to the query is below the scaled one at d_k."""
        key = "query_gradient_norm"
        return stats[False][d_k][key] < stats[True][d_k][key]

    # The d_k from which on the unscaled gradient to the query is below the scaled one.
    crossover = next((d for d in _D_KS if all(below(e) for e in _D_KS if e >= d)), None)
    if crossover is None:  # the page says "it falls below ... from d_k = X on"
        raise AssertionError(
            f"the unscaled gradient to the query is not below the scaled one at the "
            f"widest d_k = {_D_KS[-1]}: chapter 3's argument about wide heads fails"
        )
    scaled_q = [s["query_gradient_norm"] for s in stats[True].values()]
    unscaled_q = [s["query_gradient_norm"] for s in stats[False].values()]
    return {
        "jac_ratio_16": f"{unscaled_over_scaled('jacobian_norm', 16):.1f}",
        "q_ratio_16": f"{unscaled_over_scaled('query_gradient_norm', 16):.1f}",
        "q_ratio_512": f"{1 / unscaled_over_scaled('query_gradient_norm', 512):.1f}",
        "q_crossover": str(crossover),
        "q_scaled_min": f"{min(scaled_q):.2f}",
        "q_scaled_max": f"{max(scaled_q):.2f}",
        "q_unscaled_spread": f"{max(unscaled_q) / min(unscaled_q):.0f}",
        "n_queries": str(_N_QUERIES),
        "var_64": f"{var[64]:.1f}",
        "var_512": f"{var[512]:.0f}",
        "max_unscaled_512": f"{stats[False][512]['max_weight']:.2f}",
        "max_scaled_512": f"{stats[True][512]['max_weight']:.2f}",
        "jac_ratio_512": f"{1 / unscaled_over_scaled('jacobian_norm', 512):.0f}",
        "n_keys": str(_N_KEYS),
        "n_samples": f"{_N_SAMPLES:,}",
    }


def agreement_with_pytorch() -> str:
    """Our function against torch's fused one on one random case, as the build computed it."""
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 4, 7, 16, generator=g) for _ in range(3))
    mask = torch.rand(2, 1, 7, 7, generator=g) > 0.3
    mask[..., 0] = True  # every query may attend somewhere
    ours, _ = scaled_dot_product_attention(
        q.to(device()), k.to(device()), v.to(device()), mask.to(device())
    )
    theirs = torch.nn.functional.scaled_dot_product_attention(
        q.to(device()), k.to(device()), v.to(device()), attn_mask=mask.to(device())
    )
    err = (ours - theirs).abs().max().item()
    return say(
        f"On a batch of 2 × 4 heads × 7 queries × 16 dimensions with a random mask, run on "
        f"`{device()}`, the largest difference between the two outputs is "
        f"**{err:.1e}** (float32).",
        f"在一批 2 × 4 个头 × 7 个查询 × 16 维的输入上，使用随机掩码、在 `{device()}` "
        f"上运行，两个输出之间的最大差异为 **{err:.1e}**（float32）。",
    )
