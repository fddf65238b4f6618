"""Chapter 3's exercises, solved: the variance of q.k, the softmax Jacobian, QK-norm."""

from __future__ import annotations

import torch
from torch import Tensor


# --8<-- [start:dot_product_variance]
def dot_product_variance(
    d_k: int, sigma: float, n_samples: int, generator: torch.Generator
) -> float:
    """The sample variance of q . k over n_samples pairs whose components are
    independent N(0, sigma^2); the derivation predicts d_k * sigma^4."""
    shape = (n_samples, d_k)
    q = sigma * torch.randn(shape, generator=generator, dtype=torch.float64)
    k = sigma * torch.randn(shape, generator=generator, dtype=torch.float64)
    return (q * k).sum(dim=-1).var().item()


# --8<-- [end:dot_product_variance]


# --8<-- [start:softmax_jacobian]
def softmax_jacobian(s: Tensor) -> Tensor:
    """dp/ds for p = softmax(s) over the last axis: diag(p) - p p^T.

    s: (..., n); returns (..., n, n), entry [i, j] = dp_i / ds_j.
    """
    p = torch.softmax(s, dim=-1)
    return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)


# --8<-- [end:softmax_jacobian]


# --8<-- [start:qk_norm_attention]
def qk_norm_attention(q: Tensor, k: Tensor, v: Tensor, g: float) -> Tensor:
    """Attention on unit-length queries and keys, with temperature g:
    softmax(g q_hat k_hat^T) v, where x_hat = x / ||x||. Scores lie in [-g, g]
    whatever d_k, so the width of the head no longer sets the spread."""
    q_hat = q / q.norm(dim=-1, keepdim=True)
    k_hat = k / k.norm(dim=-1, keepdim=True)
    weights = torch.softmax(g * q_hat @ k_hat.transpose(-2, -1), dim=-1)
    return weights @ v


# --8<-- [end:qk_norm_attention]
