"""Chapter 15's exercises, solved: patches back into an image, position embeddings
resized to a new grid of patches, and Swin's relative position bias."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


# --8<-- [start:unpatchify]
def unpatchify(patches: Tensor, patch_size: int, height: int, width: int) -> Tensor:
    """(B, N, C p p) -> (B, C, H, W): the inverse of `patchify`.

    `patchify` reshapes, permutes and reshapes; undoing it runs the same three
    steps backwards, with the inverse permutation. Nothing is computed, entries
    only move, so unpatchify(patchify(x)) == x exactly.
    """
    b, _, length = patches.shape
    p = patch_size
    rows, cols, c = height // p, width // p, length // (p * p)
    x = patches.reshape(b, rows, cols, c, p, p)
    # (B, C, rows, p, cols, p): the axes of patchify's input, in order
    x = x.permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, height, width)


# --8<-- [end:unpatchify]


# --8<-- [start:resize_position_embeddings]
def resize_position_embeddings(pos_embed: Tensor, new_grid: tuple[int, int]) -> Tensor:
    """Learned position embeddings (1, 1 + g g, D) of a g x g grid of patches, resized
    to a new grid (rows, cols) by bilinear interpolation: (1, 1 + rows cols, D).

    Row 0 belongs to the class token, which has no place in the image: it is
    kept as it is. The others are laid out on their grid again, as a D-channel
    g x g image, so that the interpolation mixes neighbours in the image, not
    neighbours in the sequence.
    """
    cls, grid = pos_embed[:, :1], pos_embed[:, 1:]
    g = math.isqrt(grid.size(1))  # the old grid is square
    # (1, D, g, g): one channel per embedding dimension
    image = grid.reshape(1, g, g, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(image, size=new_grid, mode="bilinear", align_corners=False)
    # (1, rows cols, D), back in reading order
    grid = resized.flatten(2).transpose(1, 2)
    return torch.cat([cls, grid], dim=1)


# --8<-- [end:resize_position_embeddings]


# --8<-- [start:swin_relative_bias]
def swin_relative_bias(table: Tensor, window: int) -> Tensor:
    """Swin's relative position bias, (heads, M M, M M), from its table
    ((2M - 1)^2, heads): one learned value per head for each offset
    (row_i - row_j, col_i - col_j) between two tokens of an M x M window.

    Each offset lies in [-(M - 1), M - 1] along each axis, hence (2M - 1)^2
    rows; the offset (dr, dc) is row (dr + M - 1)(2M - 1) + (dc + M - 1).
    """
    m = window
    rows, cols = torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")
    # (M M,) each: the row and the column of every token, in reading order
    rows, cols = rows.flatten(), cols.flatten()
    # (M M, M M): offsets between query i and key j, shifted into 0 .. 2M - 2
    dr = rows[:, None] - rows[None, :] + m - 1
    dc = cols[:, None] - cols[None, :] + m - 1
    # (M M, M M): the row of the table for each pair
    index = dr * (2 * m - 1) + dc
    # (M M, M M, heads) -> (heads, M M, M M)
    return table[index].permute(2, 0, 1)


# --8<-- [end:swin_relative_bias]
