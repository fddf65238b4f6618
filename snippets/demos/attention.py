"""Chapter 3, scaled dot-product attention: the measurements behind the sqrt(d_k) scaling."""

from __future__ import annotations

import functools

import torch

from snippets.attention import (
    dot_product_samples,
    scaled_dot_product_attention,
    softmax_statistics,
)
from snippets.plotting import COLORS, figure
from snippets.runtime import device

D_KS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
N_SAMPLES = 20_000
N_KEYS = 64
N_QUERIES = 2048  # the median of a norm spread over orders of magnitude


@functools.cache
def _variances() -> list[tuple[int, float, float, float]]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for d_k in D_KS:
        s = dot_product_samples(d_k, N_SAMPLES, g)
        rows.append((d_k, s.mean().item(), s.var().item(), (s / d_k**0.5).var().item()))
    return rows


def variance_figure():
    rows = _variances()
    fig, ax = figure(width=5.6, height=3.6)
    d = [r[0] for r in rows]
    ax.plot(
        d,
        d,
        color=COLORS[1],
        linestyle="--",
        label=r"theory: $\mathrm{Var}(q\cdot k) = d_k$",
    )
    ax.plot(
        d,
        [r[2] for r in rows],
        "o",
        color=COLORS[0],
        label=r"measured $\mathrm{Var}(q\cdot k)$",
    )
    ax.plot(
        d,
        [r[3] for r in rows],
        "s",
        color=COLORS[2],
        label=r"measured $\mathrm{Var}(q\cdot k/\sqrt{d_k})$",
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"$d_k$",
        ylabel="variance",
        title=f"{N_SAMPLES:,} random pairs per point",
    )
    ax.legend()
    return fig


def variance_table() -> str:
    lines = [
        "| $d_k$ | mean of $q\\cdot k$ | variance of $q\\cdot k$ "
        "| variance of $q\\cdot k/\\sqrt{d_k}$ |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for d_k, mean, var, scaled in _variances():
        lines.append(f"| {d_k} | {mean:+.3f} | {var:.2f} | {scaled:.3f} |")
    return "\n".join(lines)


@functools.cache
def _saturation() -> dict[bool, list[dict[str, float]]]:
    """Softmax statistics per d_k; scaled and unscaled use the same queries and keys."""
    return {
        scaled: [
            softmax_statistics(
                d, N_KEYS, N_QUERIES, scaled, torch.Generator().manual_seed(d)
            )
            for d in D_KS
        ]
        for scaled in (False, True)
    }


def saturation_figure():
    stats = _saturation()
    fig, axes = figure(ncols=2, nrows=2, width=8.0, height=6.0)
    keys = ("max_weight", "entropy", "jacobian_norm", "query_gradient_norm")
    for scaled, color, name in (
        (False, COLORS[3], "unscaled"),
        (True, COLORS[0], "scaled"),
    ):
        for ax, key in zip(axes.flat, keys, strict=True):
            ax.plot(
                D_KS, [s[key] for s in stats[scaled]], "o-", color=color, label=name
            )
    axes[0, 0].set(ylabel="mean largest weight", ylim=(0, 1.05))
    axes[0, 1].axhline(
        torch.log(torch.tensor(float(N_KEYS))).item(),
        color=COLORS[1],
        linestyle=":",
        label="uniform",
    )
    axes[0, 1].set(ylabel="mean entropy (nats)")
    axes[1, 0].set(ylabel=r"median $\|\partial p/\partial s\|_F$", yscale="log")
    axes[1, 1].set(ylabel=r"median $\|\partial p/\partial q\|_F$", yscale="log")
    for ax in axes.flat:
        ax.set(xscale="log", xlabel=r"$d_k$")
    axes[0, 1].legend()
    return fig


GRADIENT_D_KS = [16, 64, 256, 512]  # the widths the page's table shows


def gradient_table() -> str:
    """Median Jacobian norms, dp/ds and dp/dq, with and without scaling, as measured."""
    stats = _saturation()
    dp_ds, dp_dq = r"$\|\partial p/\partial s\|_F$", r"$\|\partial p/\partial q\|_F$"
    lines = [
        "| $d_k$ | largest weight, unscaled | largest weight, scaled "
        f"| {dp_ds}, unscaled | {dp_ds}, scaled | {dp_dq}, unscaled | {dp_dq}, scaled |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for d_k in GRADIENT_D_KS:
        off, on = stats[False][D_KS.index(d_k)], stats[True][D_KS.index(d_k)]
        lines.append(
            f"| {d_k} | {off['max_weight']:.2f} | {on['max_weight']:.2f} "
            f"| {off['jacobian_norm']:.3g} | {on['jacobian_norm']:.3g} "
            f"| {off['query_gradient_norm']:.3g} | {on['query_gradient_norm']:.3g} |"
        )
    return "\n".join(lines)


def headline_numbers() -> dict[str, str]:
    stats = _saturation()
    var = {d: v for d, _, v, _ in _variances()}
    i512, i16 = D_KS.index(512), D_KS.index(16)

    def unscaled_over_scaled(key: str, i: int) -> float:
        return stats[False][i][key] / stats[True][i][key]

    # The d_k from which on the unscaled gradient to the query is below the scaled one.
    not_below = [
        i
        for i in range(len(D_KS))
        if stats[False][i]["query_gradient_norm"]
        >= stats[True][i]["query_gradient_norm"]
    ]
    crossover = not_below[-1] + 1 if not_below else 0
    scaled_q = [s["query_gradient_norm"] for s in stats[True]]
    unscaled_q = [s["query_gradient_norm"] for s in stats[False]]
    return {
        "jac_ratio_16": f"{unscaled_over_scaled('jacobian_norm', i16):.1f}",
        "q_ratio_16": f"{unscaled_over_scaled('query_gradient_norm', i16):.1f}",
        "q_ratio_512": f"{1 / unscaled_over_scaled('query_gradient_norm', i512):.1f}",
        "q_crossover": str(D_KS[crossover]) if crossover < len(D_KS) else "never",
        "q_scaled_min": f"{min(scaled_q):.2f}",
        "q_scaled_max": f"{max(scaled_q):.2f}",
        "q_unscaled_spread": f"{max(unscaled_q) / min(unscaled_q):.0f}",
        "n_queries": str(N_QUERIES),
        "var_64": f"{var[64]:.1f}",
        "var_512": f"{var[512]:.0f}",
        "max_unscaled_512": f"{stats[False][i512]['max_weight']:.2f}",
        "max_scaled_512": f"{stats[True][i512]['max_weight']:.2f}",
        "jac_ratio_512": f"{1 / unscaled_over_scaled('jacobian_norm', i512):.0f}",
        "n_keys": str(N_KEYS),
        "n_samples": f"{N_SAMPLES:,}",
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
    return (
        f"On a batch of 2 × 4 heads × 7 queries × 16 dimensions with a random mask, run on "
        f"`{device()}`, the largest difference between the two outputs is "
        f"**{err:.1e}** (float32)."
    )
