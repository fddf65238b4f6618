"""Masks: which keys each query may attend to.

Every mask in the course is boolean and True means "may attend". A mask acts on
the scores before the softmax (forbidden scores become -inf, so their weights are
exactly 0) and broadcasts against the scores' shape `(B, H, n_q, n_k)`.

PyTorch is not consistent about the meaning of True: the boolean `attn_mask` of
`torch.nn.functional.scaled_dot_product_attention` agrees with us (True = may
attend), while `torch.nn.MultiheadAttention` reads a boolean `attn_mask` or
`key_padding_mask` the other way round (True = ignore). The converters below
make the difference explicit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from snippets import checks


# --8<-- [start:causal]
def causal_mask(n: int, device: torch.device | str | None = None) -> Tensor:
    """(n, n) bool, True on and below the diagonal: query i sees keys j <= i.

    Broadcasts against scores (B, H, n, n): one mask for every sequence and head.
    """
    checks.non_negative_ints(n=n)
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


# --8<-- [end:causal]


# --8<-- [start:padding]
def padding_mask(lengths: Tensor, n: int) -> Tensor:
    """(B, 1, 1, n) bool, True where key position j < lengths[b] (a real token).

    `lengths` is (B,) integer. The singleton dimensions broadcast over the heads
    and the queries: every query of sequence b ignores the same padded keys.
    """
    checks.integer("(B,)", lengths=lengths)
    checks.non_negative_ints(n=n)
    positions = torch.arange(n, device=lengths.device)  # (n,)
    keep = positions < lengths.unsqueeze(-1)  # (B, 1) vs (n,) -> (B, n)
    return keep[:, None, None, :]  # (B, 1, 1, n)


def combine(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of broadcastable masks, skipping None: allowed if all allow."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        out = out & m  # broadcasts: (n, n) & (B, 1, 1, n) -> (B, 1, n, n)
    return out


# --8<-- [end:padding]


# --8<-- [start:torch]
def to_key_padding_mask(mask: Tensor) -> Tensor:
    """Our padding mask (B, 1, 1, n), True = real token, as the (B, n)
    `key_padding_mask` of `nn.MultiheadAttention`, where True = IGNORE."""
    checks.boolean("(B, 1, 1, n)", mask=mask)  # ~ on an int mask would flip bits
    return ~mask[:, 0, 0, :]  # (B, n)


def to_torch_attn_mask(mask: Tensor) -> Tensor:
    """Our (n_q, n_k) mask, True = may attend, as the boolean `attn_mask` of
    `nn.MultiheadAttention`, where True = NOT allowed.
    (`F.scaled_dot_product_attention` takes ours unchanged.)"""
    checks.bool_mask(mask)
    return ~mask


# --8<-- [end:torch]


# --8<-- [start:naive]
def naive_attention(
    q: Tensor,  # (..., n_q, d_k)
    k: Tensor,  # (..., n_k, d_k)
    v: Tensor,  # (..., n_k, d_v)
    mask: Tensor | None = None,  # bool, True = may attend
) -> tuple[Tensor, Tensor]:
    """The textbook version: -inf where masked, then torch.softmax.

    Correct as long as every query may attend to at least one key. A fully
    masked row is all -inf, and its softmax is exp(-inf) / sum(exp(-inf)),
    that is 0 / 0: NaN weights and a NaN output.
    """
    checks.attention_inputs(q, k, v, mask)
    scores = q @ k.transpose(-2, -1) / q.size(-1) ** 0.5  # (..., n_q, n_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


# --8<-- [end:naive]


# --8<-- [start:teacher]
def prefix_by_prefix(layer: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Run `layer` on each prefix x[:, :i+1] alone and keep its last position.

    This is what generation does, one token at a time, and what training would
    need without a causal mask: n calls for a sequence of length n. x is
    (B, n, d); row i of the result (B, n, d_out) saw only positions 0..i.
    """
    checks.floating("(B, n, d)", x=x)
    n = x.size(1)
    return torch.stack([layer(x[:, : i + 1])[:, -1] for i in range(n)], dim=1)


# --8<-- [end:teacher]
