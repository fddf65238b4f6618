"""Chapter 15, the Vision Transformer (Dosovitskiy et al., 2020), and Swin's windowed attention.

An image becomes a sequence: cut it into p x p patches, flatten each, project it linearly
(a strided convolution does exactly that), prepend a learned class token, add learned
position embeddings, and run the pre-LN Transformer encoder of chapter 7. The class token's
final vector goes to a linear head.

Images are (B, C, H, W) as in PyTorch; token sequences are batch-first (B, N, d).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from snippets import checks
from snippets.attention import scaled_dot_product_attention
from snippets.transformer import Encoder, TransformerConfig, count_parameters

__all__ = [
    "NO_WEIGHT_DECAY",
    "PatchEmbedding",
    "ViTConfig",
    "VisionTransformer",
    "attention_rollout",
    "count_parameters",
    "patchify",
    "shifted_window_attention",
    "weight_decay_groups",
    "window_groups",
    "window_mask",
]


# --8<-- [start:patches]
def patchify(images: Tensor, patch_size: int) -> Tensor:
    """(B, C, H, W) -> (B, N, C p p): non-overlapping p x p patches in reading order.

    Patch n sits at row n // (W / p), column n % (W / p) of the patch grid; its
    vector lists channel 0's p x p pixels row by row, then channel 1's, and so
    on.
    """
    checks.tensor("(B, C, H, W)", images=images)  # any dtype: entries are only moved
    checks.positive_ints(patch_size=patch_size)
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image {h}x{w} is not a whole number of {p}x{p} patches")
    x = images.reshape(b, c, h // p, p, w // p, p)  # (B, C, rows, p, cols, p)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, rows, cols, C, p, p)
    return x.reshape(b, (h // p) * (w // p), c * p * p)  # (B, N, C p p)


class PatchEmbedding(nn.Module):
    """Flatten each patch and apply one linear map, written as a convolution.

    A Conv2d whose kernel and stride both equal p visits each patch exactly
    once, and at each patch it computes W . vec(patch) + b: the same linear
    layer for every patch.
    """

    def __init__(self, patch_size: int, in_channels: int, d_model: int) -> None:
        super().__init__()
        checks.positive_ints(
            patch_size=patch_size, in_channels=in_channels, d_model=d_model
        )
        self.patch_size = patch_size
        self.proj = nn.Conv2d(
            in_channels, d_model, kernel_size=patch_size, stride=patch_size
        )

    def forward(self, images: Tensor) -> Tensor:  # (B, C, H, W) -> (B, N, d)
        checks.floating("(B, C, H, W)", images=images, C=self.proj.in_channels)
        h, w = images.shape[-2:]  # the convolution would drop a partial patch
        checks.divisible_by("patch_size", self.patch_size, H=h, W=w)
        x = self.proj(images)  # (B, d, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (B, N, d), patches in reading order

    def as_linear(self) -> nn.Linear:
        """The equivalent nn.Linear(C p p, d) acting on `patchify(images, p)`."""
        d, c, p, _ = self.proj.weight.shape
        linear = nn.Linear(c * p * p, d).to(self.proj.weight)
        with torch.no_grad():
            linear.weight.copy_(self.proj.weight.reshape(d, c * p * p))
            linear.bias.copy_(self.proj.bias)
        return linear


# --8<-- [end:patches]


# --8<-- [start:config]
@dataclass
class ViTConfig:
    """Hyperparameters. The defaults are ViT-Base/16 on 224 x 224 images (Table 1)."""

    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    num_classes: int = 1000
    d_model: int = 768  # the paper's hidden size D
    depth: int = 12  # encoder layers
    num_heads: int = 12
    mlp_dim: int = 3072  # inner width of each layer's MLP
    dropout: float = 0.0
    layer_norm_eps: float = 1e-6  # the paper's code; PyTorch's default is 1e-5

    def __post_init__(self) -> None:
        checks.divisible_by("patch_size", self.patch_size, image_size=self.image_size)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def encoder_config(self) -> TransformerConfig:
        """The encoder of chapter 7, in ViT's variant: pre-LN and a GELU MLP."""
        return TransformerConfig(
            d_model=self.d_model,
            num_heads=self.num_heads,
            d_ff=self.mlp_dim,
            num_layers=self.depth,
            dropout=self.dropout,
            norm_first=True,
            activation="gelu",
            layer_norm_eps=self.layer_norm_eps,
        )


# --8<-- [end:config]


# --8<-- [start:model]
class VisionTransformer(nn.Module):
    """Patches -> [class token; patch tokens] + positions -> encoder -> head.

    The head reads the class token only.
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        c = self.config = config
        self.patch_embed = PatchEmbedding(c.patch_size, c.in_channels, c.d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.pos_embed = nn.Parameter(torch.empty(1, c.num_patches + 1, c.d_model))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)  # learned, one per position
        self.dropout = nn.Dropout(c.dropout)
        self.encoder = Encoder(c.encoder_config())  # pre-LN layers + a final LayerNorm
        self.head = nn.Linear(c.d_model, c.num_classes)

    def tokens(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> the encoder's input (B, 1 + N, d)."""
        checks.floating("(B, C, S, S)", images=images, S=self.config.image_size)
        x = self.patch_embed(images)  # (B, N, d)
        # (B, 1, d): same for every image
        cls = self.cls_token.expand(x.size(0), -1, -1)
        return self.dropout(torch.cat([cls, x], dim=1) + self.pos_embed)

    def forward(self, images: Tensor) -> Tensor:  # (B, C, H, W) -> logits (B, classes)
        x = self.encoder(self.tokens(images))  # (B, 1 + N, d)
        return self.head(x[:, 0])  # only the class token is classified

    def cls_attention(self) -> Tensor:
        """After a forward pass: each layer's attention from the class token to the
        patches, (depth, B, H, N). Row sums are below 1: the rest goes to the class
        token itself.
        """
        return torch.stack(
            [layer.attn_weights[:, :, 0, 1:] for layer in self.encoder.layers]
        )


# --8<-- [end:model]


# Parameters that ViT training code exempts from weight decay besides every bias and
# LayerNorm parameter (timm's VisionTransformer.no_weight_decay lists the same two).
NO_WEIGHT_DECAY = ("pos_embed", "cls_token")


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: `weight_decay` on weight matrices and convolution kernels,
    none on biases, normalisation parameters (every tensor of fewer than 2 dimensions),
    the position embeddings and the class token.

    Decay pulls a parameter towards zero. For a weight matrix that limits its scale;
    for a bias, a LayerNorm gain or a position embedding it pulls towards a particular
    value, zero, that has no reason to be right.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    decay, exempt = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            skip = p.ndim < 2 or name.rsplit(".", 1)[-1] in NO_WEIGHT_DECAY
            (exempt if skip else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": exempt, "weight_decay": 0.0},
    ]


# --8<-- [start:rollout]
def attention_rollout(weights: Sequence[Tensor]) -> Tensor:
    """Attention rollout (Abnar and Zuidema, 2020): how much each token after the last
    layer draws on each input token, through every layer.

    `weights` holds one (B, H, N, N) tensor per layer, first layer first. Each layer's
    heads are averaged, the identity is added for the residual connection and the rows
    are renormalised: A_l = (mean_h W_l + I) / 2 for rows that sum to 1. The layers are
    then chained, R = A_L ... A_2 A_1. Returns (B, N, N); every row sums to 1.
    """
    if not weights:
        raise ValueError("weights must hold one (B, H, N, N) tensor per layer")
    rollout = None
    for w in weights:
        if w.dim() != 4 or w.size(-1) != w.size(-2):
            raise ValueError(
                f"each layer's weights must be (B, H, N, N), got {w.shape}"
            )
        a = w.mean(dim=1) + torch.eye(w.size(-1), dtype=w.dtype, device=w.device)
        a = a / a.sum(dim=-1, keepdim=True)  # (B, N, N), rows sum to 1
        rollout = a if rollout is None else a @ rollout  # later layers on the left
    return rollout


# --8<-- [end:rollout]


# --8<-- [start:windows]
def window_groups(height: int, width: int, window: int, shift: int = 0) -> Tensor:
    """The window of each token of a height x width grid, in reading order.

    Returns shape (height * width,).

    Window boundaries fall on rows and columns shift, shift + window, ...; with
    shift > 0 the windows at the edges are smaller (Swin's shifted windows,
    without any wrap-around).
    """
    checks.positive_ints(height=height, width=width, window=window)
    rows = torch.div(torch.arange(height) - shift, window, rounding_mode="floor") + 1
    cols = torch.div(torch.arange(width) - shift, window, rounding_mode="floor") + 1
    return (rows[:, None] * (width + 1) + cols[None, :]).flatten()


def window_mask(height: int, width: int, window: int, shift: int = 0) -> Tensor:
    """(N, N) bool, True = may attend: both tokens are in the same (shifted) window."""
    groups = window_groups(height, width, window, shift)
    return groups[:, None] == groups[None, :]


# --8<-- [end:windows]


# --8<-- [start:swin]
def shifted_window_attention(
    q: Tensor,  # (B, H, W, d) tokens on a grid
    k: Tensor,
    v: Tensor,
    window: int,
    shift: int = 0,
) -> Tensor:
    """Attention inside window x window blocks, computed window by window as Swin does.

    With shift > 0 the grid is rolled by -shift so that the shifted windows
    become regular blocks again; the blocks at the far edges then hold tokens
    from opposite sides of the image, and a mask keeps those regions apart. The
    result is rolled back. (B, H, W, d).
    """
    checks.floating("(B, H, W, d)", q=q, k=k, v=v)
    checks.same_shape(q=q, k=k, v=v)  # one grid of tokens, one width d
    b, h, w, d = q.shape
    m = window
    checks.divisible_by("window", m, H=h, W=w)

    def partition(x: Tensor) -> Tensor:  # (B, H, W, c) -> (B, nW, M*M, c)
        x = x.reshape(x.size(0), h // m, m, w // m, m, -1).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(x.size(0), (h // m) * (w // m), m * m, x.size(-1))

    def roll(x: Tensor, by: int) -> Tensor:
        return torch.roll(x, shifts=(by, by), dims=(1, 2))

    # Regions of the rolled grid, per axis [0, H-M), [H-M, H-shift), [H-shift, H):
    # tokens that the roll brought together from opposite edges get other labels.
    row_parts = (slice(0, h - m), slice(h - m, h - shift), slice(h - shift, h))
    col_parts = (slice(0, w - m), slice(w - m, w - shift), slice(w - shift, w))
    region = torch.zeros(1, h, w, 1, device=q.device)
    for i, rows in enumerate(row_parts):
        for j, cols in enumerate(col_parts):
            region[:, rows, cols] = 3 * i + j
    labels = partition(region)[0, :, :, 0]  # (nW, M*M)
    mask = labels[:, :, None] == labels[:, None, :]  # (nW, M*M, M*M): same region
    qw, kw, vw = (partition(roll(x, -shift)) for x in (q, k, v))  # (B, nW, M*M, d)
    out, _ = scaled_dot_product_attention(qw, kw, vw, mask)  # per window
    out = out.reshape(b, h // m, w // m, m, m, d).permute(0, 1, 3, 2, 4, 5)
    return roll(out.reshape(b, h, w, d), shift)  # (B, H, W, d)


# --8<-- [end:swin]


# (name, config, torchvision's documented num_params or None, the paper's Table 1 count)
# torchvision: https://pytorch.org/vision/stable/models/vision_transformer.html; its ViT-H/14
# weights are for 518 x 518 images. Paper: Dosovitskiy et al. (2020), Table 1.
VARIANTS = [
    ("ViT-B/16", ViTConfig(), 86_567_656, "86M"),
    ("ViT-B/32", ViTConfig(patch_size=32), 88_224_232, "86M"),
    (
        "ViT-L/16",
        ViTConfig(d_model=1024, depth=24, num_heads=16, mlp_dim=4096),
        304_326_632,
        "307M",
    ),
    (
        "ViT-L/32",
        ViTConfig(patch_size=32, d_model=1024, depth=24, num_heads=16, mlp_dim=4096),
        306_535_400,
        "307M",
    ),
    (
        "ViT-H/14",
        ViTConfig(patch_size=14, d_model=1280, depth=32, num_heads=16, mlp_dim=5120),
        None,
        "632M",
    ),
    (
        "ViT-H/14, 518 × 518",
        ViTConfig(
            image_size=518,
            patch_size=14,
            d_model=1280,
            depth=32,
            num_heads=16,
            mlp_dim=5120,
        ),
        633_470_440,
        "632M",
    ),
]
