"""Chapter 15's code exercises; every expected answer comes from PyTorch or a
brute-force loop written here."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from snippets.exercises import Case, Exercise


def _unpatchify_cases() -> list[Case]:
    """Reference: F.fold with kernel = stride = p, which places each column of patch
    values back at its patch's pixels (the inverse of F.unfold, hence of patchify)."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for b, c, h, w, p in ((2, 3, 8, 12, 4), (1, 1, 6, 6, 3), (1, 2, 5, 5, 5)):
        n = (h // p) * (w // p)
        patches = torch.randn(b, n, c * p * p, generator=g, dtype=torch.float64)
        expected = F.fold(patches.transpose(1, 2), (h, w), kernel_size=p, stride=p)
        inputs = (
            f"patches ({b}, {n}, {c * p * p}) of {c}-channel {h}x{w} images, "
            f"patch_size={p}, height={h}, width={w}"
        )
        cases.append(Case(inputs, (patches, p, h, w), expected))
    return cases


def _bilinear_weights(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in): each output sample as a mix of the input samples, with the
    half-pixel convention of align_corners=False: output i sits at input coordinate
    (i + 0.5) n_in / n_out - 0.5, clamped at 0; it mixes the two nearest samples."""
    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        x = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = min(math.floor(x), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        t = x - lo
        weights[i, lo] += 1 - t
        weights[i, hi] += t
    return weights


def _resize_cases() -> list[Case]:
    """Reference: a loop over the output grid with separable bilinear weights built
    entry by entry above; the class token's row is copied."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for old, new, d in ((4, (6, 6), 5), (3, (5, 2), 4), (6, (4, 4), 3), (2, (2, 2), 6)):
        pos = torch.randn(1, 1 + old * old, d, generator=g, dtype=torch.float64)
        wr, wc = _bilinear_weights(old, new[0]), _bilinear_weights(old, new[1])
        grid = pos[0, 1:].reshape(old, old, d)
        rows = []
        for r in range(new[0]):
            for c in range(new[1]):
                mix = wr[r][:, None] * wc[c][None, :]  # (old, old)
                rows.append((mix[:, :, None] * grid).sum(dim=(0, 1)))
        expected = torch.cat([pos[0, :1], torch.stack(rows)])[None]
        inputs = (
            f"pos_embed (1, 1 + {old}*{old}, {d}) of a {old}x{old} grid, new_grid={new}"
        )
        cases.append(Case(inputs, (pos, new), expected))
    return cases


def _relative_bias_cases() -> list[Case]:
    """Reference: a loop over every pair of tokens of the window."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for m, heads in ((2, 3), (3, 1), (1, 2)):
        table = torch.randn((2 * m - 1) ** 2, heads, generator=g, dtype=torch.float64)
        expected = torch.empty(heads, m * m, m * m, dtype=torch.float64)
        for i in range(m * m):
            for j in range(m * m):
                dr, dc = i // m - j // m, i % m - j % m
                expected[:, i, j] = table[(dr + m - 1) * (2 * m - 1) + dc + m - 1]
        inputs = f"table ({(2 * m - 1) ** 2}, {heads}) for {heads} heads, window={m}"
        cases.append(Case(inputs, (table, m), expected))
    return cases


EXERCISES = [
    Exercise("15.3", "unpatchify", "From patches back to pixels", _unpatchify_cases),
    Exercise(
        "15.4",
        "resize_position_embeddings",
        "Position embeddings for a new resolution",
        _resize_cases,
    ),
    Exercise(
        "15.5",
        "swin_relative_bias",
        "Swin's relative position bias",
        _relative_bias_cases,
    ),
]
