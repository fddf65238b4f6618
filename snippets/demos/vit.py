"""Chapter 15, the Vision Transformer: patches of a real photograph, ViT-B/16's parameters
counted on the meta device, and Swin's shifted windows as masks."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import ListedColormap
from matplotlib.patches import Rectangle
from sklearn.datasets import load_sample_image

from snippets.plotting import COLORS, Figure, figure, markdown_table
from snippets.runtime import device
from snippets.vit import (
    VARIANTS,
    PatchEmbedding,
    VisionTransformer,
    ViTConfig,
    count_parameters,
    patchify,
    shifted_window_attention,
    window_groups,
    window_mask,
)

_IMAGE, _PATCH = 224, 16


def _err(x: float) -> str:
    """A largest absolute difference for the page: exact zeros are said as such."""
    return "0 (bit for bit)" if x == 0 else f"{x:.1e}"


@functools.cache
def _photograph() -> torch.Tensor:
    """scikit-learn's sample photograph, centre-cropped to a square and resized: (3, 224, 224)."""
    rgb = torch.tensor(load_sample_image("china.jpg")).permute(2, 0, 1).float() / 255
    _, h, w = rgb.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = rgb[:, top : top + side, left : left + side]
    resized = F.interpolate(
        square[None], size=(_IMAGE, _IMAGE), mode="bilinear", antialias=True
    )
    return resized[0].clamp(0, 1)


def patch_numbers() -> dict[str, str]:
    image = _photograph()
    patches = patchify(image[None], _PATCH)  # (1, N, 3 * 16 * 16)
    h, w = load_sample_image("china.jpg").shape[:2]
    return {
        "original": f"{w} × {h}",
        "tokens": str(patches.shape[1]),
        "side": str(_IMAGE // _PATCH),
        "patch_dim": str(patches.shape[2]),
        "pixels": f"{_IMAGE * _IMAGE:,}",
        "pairs": f"{(_IMAGE * _IMAGE) ** 2 / 1e9:.1f} billion",
    }


def patch_figure() -> Figure:
    """The photograph cut into a 14 x 14 grid, and the start of the sequence it becomes."""
    image = _photograph()
    n_side = _IMAGE // _PATCH
    fig, (ax_img, ax_seq) = figure(
        nrows=2, width=6.4, height=7.6, gridspec_kw={"height_ratios": [5, 1]}
    )
    ax_img.imshow(image.permute(1, 2, 0).numpy())
    for k in range(1, n_side):
        ax_img.axhline(k * _PATCH - 0.5, color="#ffffff", linewidth=0.8)
        ax_img.axvline(k * _PATCH - 0.5, color="#ffffff", linewidth=0.8)
    for index in (0, 1, 2, n_side, n_side * n_side - 1):
        r, c = divmod(index, n_side)
        ax_img.text(
            c * _PATCH + _PATCH / 2,
            r * _PATCH + _PATCH / 2,
            str(index),
            ha="center",
            va="center",
            fontsize=7,
            color="#000000",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "#ffffff", "alpha": 0.8},
        )
    ax_img.set(
        title=f"{_IMAGE} × {_IMAGE} pixels, {n_side} × {n_side} patches of {_PATCH} × {_PATCH}"
    )
    ax_img.set_axis_off()
    # Tokens FIRST .. FIRST + 17 in reading order, side by side with a gap between them:
    # the end of one row of patches runs straight into the start of the next.
    first, shown, gap = 5 * n_side + 6, 18, 4
    strip = np.zeros((_PATCH, shown * (_PATCH + gap), 4))
    # (3, 14, 14, 16, 16)
    patches = image.unfold(1, _PATCH, _PATCH).unfold(2, _PATCH, _PATCH)
    for k in range(shown):
        r, c = divmod(first + k, n_side)
        x0 = k * (_PATCH + gap)
        strip[:, x0 : x0 + _PATCH, :3] = patches[:, r, c].permute(1, 2, 0).numpy()
        strip[:, x0 : x0 + _PATCH, 3] = 1.0  # opaque patch, transparent gap
        ax_img.add_patch(
            Rectangle(
                (c * _PATCH - 0.5, r * _PATCH - 0.5),
                _PATCH,
                _PATCH,
                fill=False,
                edgecolor=COLORS[6],
                linewidth=1.6,
            )
        )
    ax_seq.imshow(strip)
    ax_seq.set_xticks(
        [k * (_PATCH + gap) + _PATCH / 2 for k in range(shown)],
        [str(first + k) for k in range(shown)],
        fontsize=7,
    )
    ax_seq.set_yticks([])
    ax_seq.grid(False)
    for side in ("left", "bottom"):
        ax_seq.spines[side].set_visible(False)
    ax_seq.tick_params(length=0)
    ax_seq.set_title(
        f"part of the sequence: tokens {first} to {first + shown - 1} of "
        f"{n_side * n_side}, outlined above",
        fontsize=9,
    )
    return fig


def embedding_checks() -> dict[str, str]:
    """Strided convolution vs flatten-then-linear, on the photograph, same weights."""
    g = torch.Generator().manual_seed(0)
    dev = device()
    embed = PatchEmbedding(_PATCH, 3, 768).to(dev)
    with torch.no_grad():
        embed.proj.weight.copy_(torch.randn(768, 3, _PATCH, _PATCH, generator=g) * 0.02)
        image = _photograph()[None].to(dev)  # (1, 3, 224, 224)
        conv = embed(image)  # (1, 196, 768)
        linear = embed.as_linear()(patchify(image, _PATCH))  # (1, 196, 768)
        unfold = F.unfold(image, _PATCH, stride=_PATCH).transpose(1, 2)
    return {
        "conv_vs_linear": _err((conv - linear).abs().max().item()),
        "scale": f"{conv.abs().max().item():.2f}",
        "patchify_vs_unfold": _err(
            (patchify(image, _PATCH) - unfold).abs().max().item()
        ),
        "device": str(dev),
    }


# ---------------------------------------------------------------------------------------------
# ViT-B/16, counted and traced on the meta device: shapes and sizes, no memory, no arithmetic
# ---------------------------------------------------------------------------------------------


@functools.cache
def _vit_base() -> VisionTransformer:
    with torch.device("meta"):
        return VisionTransformer(ViTConfig())


def parameter_table() -> str:
    model = _vit_base()
    c = model.config
    layer = count_parameters(model.encoder.layers[0])
    rows = [
        (
            f"patch embedding (convolution {c.in_channels}→{c.d_model}, kernel {c.patch_size})",
            count_parameters(model.patch_embed),
        ),
        ("class token", model.cls_token.numel()),
        (
            f"position embeddings ({c.num_patches} + 1 positions)",
            model.pos_embed.numel(),
        ),
        (f"encoder layers ({c.depth} × {layer:,})", c.depth * layer),
        ("final LayerNorm", count_parameters(model.encoder.norm)),
        (f"head ({c.d_model}→{c.num_classes})", count_parameters(model.head)),
    ]
    total = count_parameters(model)
    return markdown_table(
        ["part", "parameters", "share"],
        [[name, f"{n:,}", f"{n / total:.1%}"] for name, n in rows]
        + [["**total**", f"**{total:,}**", "100%"]],
        "lrr",
    )


def parameter_numbers() -> dict[str, str]:
    model = _vit_base()
    c = model.config
    total, head = count_parameters(model), count_parameters(model.head)
    layer = model.encoder.layers[0]
    attention, mlp = count_parameters(layer.self_attn), count_parameters(layer.ff)
    pre_logits = c.d_model * c.d_model + c.d_model  # a Linear(d, d) before the head
    head_21k = c.d_model * 21843 + 21843  # ImageNet-21k has 21,843 classes
    return {
        "total": f"{total:,}",
        "total_m": f"{total / 1e6:.1f}M",
        "backbone": f"{total - head:,}",
        "backbone_m": f"{(total - head) / 1e6:.1f}M",
        "head": f"{head:,}",
        "attention": f"{attention:,}",
        "mlp": f"{mlp:,}",
        "pre_logits": f"{pre_logits:,}",
        "cls": f"{model.cls_token.numel():,}",
        "pretrain_m": f"{(total - head + pre_logits + head_21k) / 1e6:.1f}M",
    }


def variants_table() -> str:
    """Our counts for the paper's models, beside torchvision's documentation and Table 1."""
    rows = []
    for name, config, torchvision, paper in VARIANTS:
        with torch.device("meta"):
            model = VisionTransformer(config)
        total, head = count_parameters(model), count_parameters(model.head)
        theirs = f"{torchvision:,}" if torchvision else "—"
        rounds = [
            label
            for label, count in (("with head", total), ("without head", total - head))
            if f"{round(count / 1e6)}M" == paper
        ]
        rows.append(
            [
                name,
                f"{total:,}",
                f"{total - head:,}",
                theirs,
                paper,
                ", ".join(rounds) or "neither",
            ]
        )
    return markdown_table(
        [
            "model",
            "ours, 1000-class head",
            "ours, without head",
            "torchvision",
            "Table 1",
            "which count rounds to Table 1",
        ],
        rows,
        "lrrrrl",
    )


def shape_trace() -> str:
    """The shapes of one image through ViT-B/16, computed on the meta device."""
    model = _vit_base()
    x = torch.empty(1, 3, _IMAGE, _IMAGE, device="meta")
    patches = model.patch_embed.proj(x)
    tokens = model.patch_embed(x)
    sequence = model.tokens(x)
    encoded = model.encoder(sequence)
    logits = model(x)
    attn = model.encoder.layers[0].attn_weights
    rows = [
        ("image", x),
        ("after the strided convolution", patches),
        ("flattened: one token per patch", tokens),
        ("class token prepended, positions added", sequence),
        ("after 12 encoder layers and the final LayerNorm", encoded),
        ("attention weights of one layer", attn),
        ("logits, from the class token alone", logits),
    ]
    return markdown_table(
        ["step", "shape"], [[name, f"`{tuple(t.shape)}`"] for name, t in rows]
    )


# ---------------------------------------------------------------------------------------------
# Swin: windows and shifted windows
# ---------------------------------------------------------------------------------------------


def window_figure() -> Figure:
    """Windows and shifted windows on an 8 x 8 grid of tokens, and the equivalent dense mask."""
    side, m, shift = 8, 4, 2
    cmap = ListedColormap(COLORS)
    fig, axes = figure(ncols=3, width=10, height=3.6)
    for ax, s, title in (
        (axes[0], 0, f"windows of {m} × {m}"),
        (axes[1], shift, f"shifted by {shift}: {(side // m + 1) ** 2} windows"),
    ):
        groups = window_groups(side, side, m, s).view(side, side)
        _, colour = torch.unique(groups, return_inverse=True)  # 0, 1, 2, ... per window
        ax.imshow(colour.numpy() % len(COLORS), cmap=cmap, vmin=0, vmax=len(COLORS) - 1)
        for k in range(side + 1):
            ax.axhline(k - 0.5, color="#ffffff", linewidth=0.6)
            ax.axvline(k - 0.5, color="#ffffff", linewidth=0.6)
        ax.set(title=title, xticks=[], yticks=[])
        ax.grid(False)
    mask = window_mask(side, side, m, shift)
    shown = np.ma.masked_where(~mask.numpy(), np.ones(mask.shape))  # False: transparent
    axes[2].imshow(shown, cmap=ListedColormap([COLORS[0]]), interpolation="nearest")
    axes[2].set(
        title="shifted windows as a 64 × 64 mask",
        xlabel="key token",
        ylabel="query token",
    )
    axes[2].grid(False)
    return fig


def swin_checks() -> dict[str, str]:
    """Window by window (Swin's way) against dense attention under the equivalent mask."""
    g = torch.Generator().manual_seed(1)
    dev = device()
    side, m = 8, 4
    q, k, v = (torch.randn(2, side, side, 16, generator=g).to(dev) for _ in range(3))
    errors = {}
    for shift in (0, m // 2):
        windowed = shifted_window_attention(q, k, v, m, shift)
        dense = F.scaled_dot_product_attention(
            *(t.reshape(2, side * side, 16) for t in (q, k, v)),
            attn_mask=window_mask(side, side, m, shift).to(dev),
        ).reshape(2, side, side, 16)
        errors[shift] = (windowed - dense).abs().max().item()
    tokens, window = 56 * 56, 7  # Swin-T's first stage: 224 / 4 = 56 tokens per side
    return {
        "err_plain": _err(errors[0]),
        "err_shifted": _err(errors[m // 2]),
        "device": str(dev),
        "tokens": f"{tokens:,}",
        "dense_scores": f"{tokens**2:,}",
        "window_scores": f"{tokens * window**2:,}",
        "ratio": f"{tokens**2 // (tokens * window**2)}",
    }
