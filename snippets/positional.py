"""Positional information for attention: sinusoidal, learned and rotary encodings.

Self-attention treats its input as a set: permuting the tokens permutes the output and
changes nothing else. Every encoding here breaks that symmetry in a different way:

- the sinusoidal encoding of Vaswani et al. (2017) is a fixed table added to the input;
- a learned encoding is a trainable table added to the input;
- rotary embeddings (RoPE, Su et al. 2021) rotate queries and keys instead, so that the
  score q . k depends only on the offset between their positions.

Shapes follow the course convention: `(B, N, d)` for a batch of sequences, `(..., N, d)` when
any leading dimensions are allowed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from snippets import checks
from snippets.attention import scaled_dot_product_attention


# --8<-- [start:self_attention]
def self_attention(x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor) -> Tensor:
    """One head of self-attention: queries, keys and values all come from x (..., N, d).

    Nothing here knows where a token sits: each output row depends on its own
    input row and on the *set* of all rows.
    """
    checks.floating("(..., N, d)", x=x)
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (..., N, d_k) each, d_v for v
    out, _ = scaled_dot_product_attention(q, k, v)  # (..., N, d_v)
    return out


# --8<-- [end:self_attention]


# --8<-- [start:sinusoidal]
def inverse_frequencies(d_model: int, base: float = 10000.0) -> Tensor:
    """The d_model/2 frequencies w_i = base ** (-2i / d_model), i = 0 .. d/2 - 1.

    A geometric sequence from 1 down to almost 1/base: wavelengths from 2π to
    almost 2π · base positions. Computed in float64; callers cast.
    """
    checks.positive_ints(d_model=d_model)
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (d/2,): 0, 2, 4, ...
    return base ** (-two_i / d_model)  # `**` is the power; `^` would be XOR


def sinusoidal_encoding(
    n_positions: int, d_model: int, *, dtype: torch.dtype = torch.float32
) -> Tensor:
    """PE[pos, 2i] = sin(pos · w_i) and PE[pos, 2i+1] = cos(pos · w_i).

    Returns the (n_positions, d_model) table that the Transformer adds to its
    embeddings. Computed in float64 and cast to `dtype`.
    """
    checks.non_negative_ints(n_positions=n_positions)
    pos = torch.arange(n_positions, dtype=torch.float64).unsqueeze(1)  # (N, 1)
    angle = pos * inverse_frequencies(d_model)  # (N, d/2)
    pe = torch.empty(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)  # even dimensions
    pe[:, 1::2] = torch.cos(angle)  # odd dimensions
    return pe.to(dtype)


# --8<-- [end:sinusoidal]


# --8<-- [start:shift]
def shift_matrix(k: int, d_model: int, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """The (d_model, d_model) matrix M_k with PE[pos + k] = M_k @ PE[pos], any pos.

    By the addition formulas, each (sin, cos) pair of frequency w turns by the
    angle k·w: M_k is block-diagonal, one 2 × 2 rotation per pair, free of pos.
    """
    angle = k * inverse_frequencies(d_model)  # (d/2,)
    c, s = torch.cos(angle), torch.sin(angle)
    blocks = torch.stack(  # (d/2, 2, 2): [[cos, sin], [-sin, cos]]
        (torch.stack((c, s), -1), torch.stack((-s, c), -1)), dim=-2
    )
    return torch.block_diag(*blocks).to(dtype)  # (d, d)


# --8<-- [end:shift]


# --8<-- [start:learned]
class LearnedPositionalEmbedding(nn.Module):
    """A trainable vector per position, added to the input: x + P[:N].

    The table has max_len rows and no rule for a position beyond them: unlike
    the sinusoidal encoding, it cannot encode a longer sequence than it was made for.
    """

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        checks.positive_ints(max_len=max_len, d_model=d_model)
        self.max_len = max_len
        self.table = nn.Embedding(max_len, d_model)  # (max_len, d)
        nn.init.normal_(self.table.weight, std=0.02)  # small, like token embeddings

    def forward(self, x: Tensor) -> Tensor:  # x: (B, N, d)
        checks.floating("(..., N, d)", x=x, d=self.table.embedding_dim)
        n = x.size(-2)
        if n > self.max_len:
            raise ValueError(f"{n} positions, but max_len is {self.max_len}")
        positions = torch.arange(n, device=x.device)  # (N,)
        return x + self.table(positions)  # (B, N, d) + (N, d)


# --8<-- [end:learned]


# --8<-- [start:rope]
def apply_rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotary position embedding: rotate each pair (x[2i], x[2i+1]) by pos · w_i.

    x is (..., N, d) with d even, positions is (N,). Applied to queries and keys
    (not values) before attention, it makes q_m . k_n a function of the offset:
    rotating by m·w, then undoing a rotation by n·w, rotates by (m - n)·w.
    """
    checks.floating("(..., N, d)", x=x)
    checks.even("x's last dimension d", x.size(-1))  # pairs of coordinates
    checks.shape("positions", positions, x.shape[-2:-1], "(N of x)")
    w = inverse_frequencies(x.size(-1), base).to(x.device)  # (d/2,)
    angle = positions.to(x.device, torch.float64)[:, None] * w  # (N, d/2)
    cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (..., N, d/2) each
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    # (..., N, d/2, 2) -> (..., N, d): the pairs interleaved again
    return rotated.flatten(-2)


# --8<-- [end:rope]


def xor_denominators(d_model: int) -> list[tuple[int, float, int]]:
    """For each pair index i: (i, 10000 ** (2i/d), 10000 ^ (2*i // d)).

    The second value is the encoding's denominator; the third is what Python computes when
    `**` is written as `^` (bitwise XOR, defined for integers only, hence the `//`).
    """
    return [
        (i, 10000 ** (2 * i / d_model), 10000 ^ (2 * i // d_model))
        for i in range(d_model // 2)
    ]


def xor_encoding(n_positions: int, d_model: int) -> Tensor:
    """The table that `^` in place of `**` gives: every pair shares the denominator 10000."""
    denominators = torch.tensor(
        [x for _, _, x in xor_denominators(d_model)], dtype=torch.float64
    )
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]  # (N, 1)
    angle = pos / denominators  # (N, d/2)
    pe = torch.empty(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return pe
