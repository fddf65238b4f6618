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

from snippets.bilingual import join, same, say
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


def _err(x: float, bracketed: bool = False) -> str:
    """A largest absolute difference for the page: exact zeros are said as such
    (`bracketed`: the page puts it inside brackets, where the Chinese adds none)."""
    if x != 0:
        return f"{x:.1e}"
    return say("0 (bit for bit)", "0，逐位相同" if bracketed else "0（逐位相同）")


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
    pairs = (_IMAGE * _IMAGE) ** 2  # query-key pairs
    return {
        "original": f"{w} × {h}",
        "tokens": str(patches.shape[1]),
        "side": str(_IMAGE // _PATCH),
        "patch_dim": str(patches.shape[2]),
        "pixels": f"{_IMAGE * _IMAGE:,}",
        "pairs": say(f"{pairs / 1e9:.1f} billion", f"{pairs / 1e8:.0f} 亿"),
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
    image_size, grid, patch = (
        f"{_IMAGE} × {_IMAGE}",
        f"{n_side} × {n_side}",
        f"{_PATCH} × {_PATCH}",
    )
    ax_img.set(
        title=say(
            f"{image_size} pixels, {grid} patches of {patch}",
            f"{image_size} 像素，{grid} 个 {patch} 的图像块",
        )
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
    last, total = first + shown - 1, n_side * n_side
    ax_seq.set_title(
        say(
            f"part of the sequence: tokens {first} to {last} of {total}, outlined above",
            f"序列的一部分：词元 {first} 到 {last}（共 {total} 个），即上图框出的图像块",
        ),
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
            (patchify(image, _PATCH) - unfold).abs().max().item(), bracketed=True
        ),
        "device": same(str(dev)),
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
    conv, head = f"{c.in_channels}→{c.d_model}", f"{c.d_model}→{c.num_classes}"
    layers = f"{c.depth} × {layer:,}"
    rows = [
        (
            say(
                f"patch embedding (convolution {conv}, kernel {c.patch_size})",
                f"图像块嵌入（卷积 {conv}，卷积核大小 {c.patch_size}）",
            ),
            count_parameters(model.patch_embed),
        ),
        (say("class token", "类别词元"), model.cls_token.numel()),
        (
            say(
                f"position embeddings ({c.num_patches} + 1 positions)",
                f"位置嵌入（{c.num_patches} + 1 个位置）",
            ),
            model.pos_embed.numel(),
        ),
        (
            say(f"encoder layers ({layers})", f"编码器层（{layers}）"),
            c.depth * layer,
        ),
        (
            say("final LayerNorm", "最终的 LayerNorm"),
            count_parameters(model.encoder.norm),
        ),
        (say(f"head ({head})", f"分类头（{head}）"), count_parameters(model.head)),
    ]
    total = count_parameters(model)
    return markdown_table(
        [say("part", "部分"), say("parameters", "参数量"), say("share", "占比")],
        [[name, f"{n:,}", f"{n / total:.1%}"] for name, n in rows]
        + [[say("**total**", "**合计**"), f"**{total:,}**", "100%"]],
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


_WITH_HEAD = say("with head", "含分类头")
_WITHOUT_HEAD = say("without head", "不含分类头")


def variants_table() -> str:
    """Our counts for the paper's models, beside torchvision's documentation and Table 1."""
    rows = []
    for name, config, torchvision, paper in VARIANTS:
        with torch.device("meta"):
            model = VisionTransformer(config)
        total, head = count_parameters(model), count_parameters(model.head)
        theirs = f"{torchvision:,}" if torchvision else "—"
        counts = ((_WITH_HEAD, total), (_WITHOUT_HEAD, total - head))
        rounds = [label for label, count in counts if f"{round(count / 1e6)}M" == paper]
        rows.append(
            [
                say(name, name.replace(", ", "，")),  # ViT-H/14, 518 × 518
                f"{total:,}",
                f"{total - head:,}",
                theirs,
                paper,
                join(say(", ", "、"), rounds) or say("neither", "都不是"),
            ]
        )
    return markdown_table(
        [
            say("model", "模型"),
            say("ours, 1000-class head", "我们的计数，含 1000 类分类头"),
            say("ours, without head", "我们的计数，不含分类头"),
            same("torchvision"),
            say("Table 1", "表 1"),
            say("which count rounds to Table 1", "四舍五入后等于表 1 的计数"),
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
        (say("image", "图像"), x),
        (say("after the strided convolution", "带步幅的卷积之后"), patches),
        (say("flattened: one token per patch", "展平：每个图像块一个词元"), tokens),
        (
            say("class token prepended, positions added", "前置类别词元，加上位置嵌入"),
            sequence,
        ),
        (
            say(
                "after 12 encoder layers and the final LayerNorm",
                "经过 12 个编码器层和最终的 LayerNorm 之后",
            ),
            encoded,
        ),
        (say("attention weights of one layer", "一层的注意力权重"), attn),
        (say("logits, from the class token alone", "logits，仅由类别词元得出"), logits),
    ]
    return markdown_table(
        [say("step", "步骤"), say("shape", "形状")],
        [[name, f"`{tuple(t.shape)}`"] for name, t in rows],
    )


# ---------------------------------------------------------------------------------------------
# Swin: windows and shifted windows
# ---------------------------------------------------------------------------------------------


def window_figure() -> Figure:
    """Windows and shifted windows on an 8 x 8 grid of tokens, and the equivalent dense mask."""
    side, m, shift = 8, 4, 2
    cmap = ListedColormap(COLORS)
    count = (side // m + 1) ** 2  # windows after the shift
    plain = say(f"windows of {m} × {m}", f"{m} × {m} 的窗口")
    shifted = say(
        f"shifted by {shift}: {count} windows", f"移位 {shift} 后：{count} 个窗口"
    )
    fig, axes = figure(ncols=3, width=10, height=3.6)
    for ax, s, title in ((axes[0], 0, plain), (axes[1], shift, shifted)):
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
        title=say("shifted windows as a 64 × 64 mask", "移位窗口表示为 64 × 64 掩码"),
        xlabel=say("key token", "键词元"),
        ylabel=say("query token", "查询词元"),
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
        "device": same(str(dev)),
        "tokens": f"{tokens:,}",
        "dense_scores": f"{tokens**2:,}",
        "window_scores": f"{tokens * window**2:,}",
        "ratio": f"{tokens**2 // (tokens * window**2)}",
    }
