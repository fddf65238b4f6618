"""Scaled dot-product attention, and the measurements that explain its sqrt(d_k) scaling.

Shapes follow the course convention: `(..., N, d)`, where `...` is any batch and head dimensions.
Masks are boolean and True means "may attend".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


# --8<-- [start:sdpa]
def scaled_dot_product_attention(
    q: Tensor,  # (..., n_q, d_k)
    k: Tensor,  # (..., n_k, d_k)
    v: Tensor,  # (..., n_k, d_v)
    mask: Tensor
    | None = None,  # bool, broadcastable to (..., n_q, n_k); True = may attend
) -> tuple[Tensor, Tensor]:
    """softmax(q k^T / sqrt(d_k)) v, returning the output (..., n_q, d_v) and the weights.

    A query whose mask row is all False has nothing to attend to: it gets zero weights
    and a zero output rather than the NaN that softmax over a row of -inf would give.
    """
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., n_q, n_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    # Subtracting the row maximum keeps exp() in range; a fully masked row has max -inf.
    row_max = scores.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(scores.dtype).min)
    exp = torch.exp(scores - row_max)  # exp(-inf) = 0 for masked entries
    total = exp.sum(dim=-1, keepdim=True)
    weights = exp / total.clamp_min(
        torch.finfo(scores.dtype).tiny
    )  # 0/tiny = 0 when empty
    return weights @ v, weights


# --8<-- [end:sdpa]


# --8<-- [start:variance]
def dot_product_samples(d_k: int, n_samples: int, generator: torch.Generator) -> Tensor:
    """q . k for n_samples independent pairs with i.i.d. N(0, 1) components: shape (n_samples,)."""
    q = torch.randn(n_samples, d_k, generator=generator, dtype=torch.float64)
    k = torch.randn(n_samples, d_k, generator=generator, dtype=torch.float64)
    return (q * k).sum(dim=-1)


# --8<-- [end:variance]


# --8<-- [start:saturation]
def softmax_statistics(
    d_k: int, n_keys: int, n_queries: int, scaled: bool, generator: torch.Generator
) -> dict[str, float]:
    """How peaked softmax over n_keys random scores is, with or without dividing by sqrt(d_k).

    Returns the mean largest weight, the mean entropy (in nats; log(n_keys) is uniform)
    and the median Frobenius norm of the softmax Jacobian diag(p) - p p^T, the factor by
    which every gradient reaching the scores through the softmax is multiplied.
    """
    q = torch.randn(n_queries, d_k, generator=generator, dtype=torch.float64)
    k = torch.randn(n_keys, d_k, generator=generator, dtype=torch.float64)
    scores = q @ k.T  # (n_queries, n_keys), each entry has variance d_k
    if scaled:
        scores = scores / math.sqrt(d_k)  # variance 1 whatever d_k
    p = torch.softmax(scores, dim=-1)
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(dim=-1)
    jacobian = torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(
        -2
    )  # (n_queries, n_keys, n_keys)
    return {
        "max_weight": p.max(dim=-1).values.mean().item(),
        "entropy": entropy.mean().item(),
        "jacobian_norm": torch.linalg.matrix_norm(jacobian).median().item(),
    }


# --8<-- [end:saturation]
