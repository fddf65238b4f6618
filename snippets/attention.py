"""Scaled dot-product attention, and the measurements that explain its sqrt(d_k) scaling.

Shapes follow the course convention: `(..., N, d)`, where `...` is any batch and head dimensions.
Masks are boolean and True means "may attend".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from snippets import checks


# --8<-- [start:sdpa]
def scaled_dot_product_attention(
    q: Tensor,  # (..., n_q, d_k)
    k: Tensor,  # (..., n_k, d_k)
    v: Tensor,  # (..., n_k, d_v)
    # bool, broadcastable to (..., n_q, n_k); True = may attend
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """softmax(q k^T / sqrt(d_k)) v: returns the output (..., n_q, d_v) and the weights.

    A query whose mask row is all False has nothing to attend to: it gets zero weights
    and a zero output rather than the NaN that softmax over a row of -inf would give.
    """
    checks.attention_inputs(q, k, v, mask)  # shapes, dtypes, a bool mask
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., n_q, n_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    # Subtracting the row maximum keeps exp() in range; a fully masked row has max -inf.
    row_max = scores.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(scores.dtype).min)
    exp = torch.exp(scores - row_max)  # exp(-inf) = 0 for masked entries
    total = exp.sum(dim=-1, keepdim=True)
    # 0/tiny = 0 when empty
    weights = exp / total.clamp_min(torch.finfo(scores.dtype).tiny)
    return weights @ v, weights


# --8<-- [end:sdpa]


# --8<-- [start:variance]
def dot_product_samples(d_k: int, n_samples: int, generator: torch.Generator) -> Tensor:
    """q . k for n_samples independent pairs with i.i.d. N(0, 1) components.

    Returns shape (n_samples,).
    """
    checks.positive_ints(d_k=d_k, n_samples=n_samples)
    q = torch.randn(n_samples, d_k, generator=generator, dtype=torch.float64)
    k = torch.randn(n_samples, d_k, generator=generator, dtype=torch.float64)
    return (q * k).sum(dim=-1)


# --8<-- [end:variance]


# --8<-- [start:saturation]
def softmax_statistics(
    d_k: int, n_keys: int, n_queries: int, scaled: bool, generator: torch.Generator
) -> dict[str, float]:
    """How peaked softmax over n_keys random scores is, divided by sqrt(d_k) or not.

    Returns the mean largest weight, the mean entropy (in nats; log(n_keys) is uniform),
    and two median Frobenius norms: of the softmax Jacobian J = dp/ds = diag(p) - p p^T,
    and of dp/dq = J K / c, the Jacobian that carries a gradient back to the query
    (s = K q / c with c = sqrt(d_k) when scaled, c = 1 when not).
    """
    checks.positive_ints(d_k=d_k, n_keys=n_keys, n_queries=n_queries)
    q = torch.randn(n_queries, d_k, generator=generator, dtype=torch.float64)
    k = torch.randn(n_keys, d_k, generator=generator, dtype=torch.float64)
    c = math.sqrt(d_k) if scaled else 1.0  # scaled: score variance 1 whatever d_k
    p = torch.softmax(q @ k.T / c, dim=-1)  # (n_queries, n_keys)
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(dim=-1)
    # Row j of J = diag(p) - p p^T is p_j (e_j - p); row j of J K / c is
    # p_j (k_j - p K) / c. Their norms need distances only, (n_queries, n_keys),
    # computed as differences (no cancelling |a|^2 - 2 a.b + |b|^2): accurate when
    # J is tiny.
    exact = "donot_use_mm_for_euclid_dist"
    eye = torch.eye(n_keys, dtype=p.dtype)
    ds = p * torch.cdist(p, eye, compute_mode=exact)  # row norms of dp/ds
    dq = p * torch.cdist(p @ k, k, compute_mode=exact) / c  # row norms of dp/dq
    return {
        "max_weight": p.max(dim=-1).values.mean().item(),
        "entropy": entropy.mean().item(),
        "jacobian_norm": ds.norm(dim=-1).median().item(),  # Frobenius norms
        "query_gradient_norm": dq.norm(dim=-1).median().item(),
    }


# --8<-- [end:saturation]
