"""Chapter 6's exercises, solved: RoPE scores by offset, "rotate half", ALiBi."""

from __future__ import annotations

import torch
from torch import Tensor

from snippets.positional import inverse_frequencies


# --8<-- [start:rope_offset_scores]
def rope_offset_scores(q: Tensor, k: Tensor, offsets: Tensor) -> Tensor:
    """The RoPE score of q at any position m with k at position m + offset, for
    every offset, without any position: per pair i, with delta = offset * w_i,
    a_i cos(delta) + b_i sin(delta), where a_i is the pair's dot product and
    b_i = q_{2i+1} k_{2i} - q_{2i} k_{2i+1}.

    q, k: (..., d) with d even; offsets: (T,) integers n - m. Returns (..., T).
    """
    # (d/2,)
    w = inverse_frequencies(q.size(-1)).to(q.dtype)
    # (..., d/2): each pair's two coordinates
    q1, q2 = q[..., 0::2], q[..., 1::2]
    k1, k2 = k[..., 0::2], k[..., 1::2]
    # (..., d/2)
    a = q1 * k1 + q2 * k2
    b = q2 * k1 - q1 * k2
    # (T, d/2): every pair's angle at every offset
    angle = offsets.to(q.dtype)[:, None] * w
    # (..., 1, d/2) against (T, d/2), summed over the pairs: (..., T)
    return (a[..., None, :] * angle.cos() + b[..., None, :] * angle.sin()).sum(-1)


# --8<-- [end:rope_offset_scores]


# --8<-- [start:apply_rope_half]
def apply_rope_half(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """RoPE in the "rotate half" layout: dimension j is paired with j + d/2 and the
    pair is rotated by pos * w_j, with the frequencies w_j of the interleaved form.

    x: (..., N, d) with d even; positions: (N,). Returns (..., N, d).
    """
    half = x.size(-1) // 2
    # (d/2,)
    w = inverse_frequencies(x.size(-1), base).to(x.device)
    # (N, d/2)
    angle = positions.to(x.device, torch.float64)[:, None] * w
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    # (..., N, d/2): first and second halves
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


# --8<-- [end:apply_rope_half]


# --8<-- [start:alibi_bias]
def alibi_bias(num_heads: int, n: int) -> Tensor:
    """ALiBi's bias -m_h |i - j| for query i and key j, one slope per head:
    m_h = 2^(-8h/H) for h = 1 .. H (H a power of 2), from 1/2 down to 1/256
    for 8 heads. Added to the scores; a causal model also masks j > i.

    Returns (H, n, n), float32.
    """
    h = torch.arange(1, num_heads + 1, dtype=torch.float64)
    # (H,)
    slopes = 2.0 ** (-8.0 * h / num_heads)
    pos = torch.arange(n, dtype=torch.float64)
    # (n, n): |i - j|
    distance = (pos[:, None] - pos[None, :]).abs()
    return (-slopes[:, None, None] * distance).float()


# --8<-- [end:alibi_bias]
