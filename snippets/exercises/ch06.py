"""Chapter 6's code exercises; every expected answer comes from a brute-force loop
over explicit 2 x 2 rotations or distances, written here."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from snippets.exercises import Case, Exercise


def _rotation(angle: float) -> Tensor:
    """The 2 x 2 rotation by `angle`, counter-clockwise, float64."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def _rope_by_loop(x: Tensor, pos: int, pairs: list[tuple[int, int]]) -> Tensor:
    """x (..., d) at position `pos`: pair number i, the dimensions pairs[i], turned
    by pos * 10000^(-2i/d) with an explicit rotation matrix."""
    d = x.size(-1)
    out = x.clone()
    for i, (a, b) in enumerate(pairs):
        r = _rotation(pos * 10000.0 ** (-2 * i / d))
        pair = torch.stack((x[..., a], x[..., b]), dim=-1)  # (..., 2)
        turned = pair @ r.T
        out[..., a], out[..., b] = turned[..., 0], turned[..., 1]
    return out


def _interleaved(d: int) -> list[tuple[int, int]]:
    return [(2 * i, 2 * i + 1) for i in range(d // 2)]


def _offset_cases() -> list[Case]:
    """Reference: rotate q to position m and k to position m + offset with explicit
    rotation matrices, then take the dot product; each case uses its own m."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for shape, m in (((2,), 0), ((8,), 37), ((3, 16), 1000)):
        q, k = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(2))
        offsets = torch.tensor([0, 1, -1, 5, -5, 40, -123])
        pairs = _interleaved(shape[-1])
        rq = _rope_by_loop(q, m, pairs)
        expected = torch.stack(
            [(rq * _rope_by_loop(k, m + int(t), pairs)).sum(dim=-1) for t in offsets],
            dim=-1,
        )
        inputs = (
            f"q and k of shape {shape}, offsets n - m = {offsets.tolist()} "
            f"(reference: query at m = {m})"
        )
        cases.append(Case(inputs, (q, k, offsets), expected, atol=1e-9))
    return cases


def _half_cases() -> list[Case]:
    """Reference: pair (j, j + d/2) turned by pos * 10000^(-2j/d), one explicit
    rotation matrix per pair and position. The tolerance, 1e-4, admits angles computed
    in float32, as Hugging Face's code computes them (off by about 1e-5 at position
    500); a wrong pairing, frequency or direction is off by far more."""
    g = torch.Generator().manual_seed(1)
    cases = []
    for shape, positions in (
        ((5, 8), [0, 1, 2, 3, 4]),
        ((2, 3, 4, 16), [3, 10, 11, 500]),
        ((3, 2), [7, 0, 2]),
    ):
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        d = shape[-1]
        pairs = [(j, j + d // 2) for j in range(d // 2)]
        expected = torch.stack(
            [_rope_by_loop(x[..., t, :], p, pairs) for t, p in enumerate(positions)],
            dim=-2,
        )
        inputs = f"x of shape {shape}, positions {positions}"
        cases.append(Case(inputs, (x, torch.tensor(positions)), expected, atol=1e-4))
    return cases


def _alibi_cases() -> list[Case]:
    """Reference: a double loop over heads, queries and keys with the slopes of
    Press et al. (2022), section 3: 2^(-8h/H) for h = 1 .. H."""
    cases = []
    for heads, n in ((8, 6), (16, 4), (2, 5)):
        expected = torch.empty(heads, n, n)
        for h in range(heads):
            slope = 2.0 ** (-8.0 * (h + 1) / heads)
            for i in range(n):
                for j in range(n):
                    expected[h, i, j] = slope * -abs(i - j)
        cases.append(Case(f"num_heads={heads}, n={n}", (heads, n), expected))
    return cases


EXERCISES = [
    Exercise("6.2", "rope_offset_scores", "Only the offset", _offset_cases),
    Exercise("6.3", "apply_rope_half", "Rotate half", _half_cases),
    Exercise("6.4", "alibi_bias", "Linear biases instead of positions", _alibi_cases),
]
