"""Chapter 2's exercises, solved: attention from the product W_Q W_K^T alone, and the
Gaussian kernel smoother written as dot-product attention."""

from __future__ import annotations

import math

import torch
from torch import Tensor


# --8<-- [start:bilinear_attention]
def bilinear_attention(
    x: Tensor, m: Tensor, w_v: Tensor, d_k: int
) -> tuple[Tensor, Tensor]:
    """Self-attention from M = W_Q W_K^T: weights softmax(X M X^T / sqrt(d_k)).

    x (..., N, d_model), m (d_model, d_model), w_v (d_model, d_v). Returns the
    output (..., N, d_v) and the weights (..., N, N), the same as with W_Q and
    W_K separately: the scores see the two only through their product.
    """
    # (..., N, N): entry (i, j) = x_i M x_j^T
    scores = x @ m @ x.transpose(-2, -1) / math.sqrt(d_k)
    weights = torch.softmax(scores, dim=-1)
    return weights @ (x @ w_v), weights


# --8<-- [end:bilinear_attention]


# --8<-- [start:gaussian_kernel_attention]
def gaussian_kernel_attention(
    queries: Tensor, keys: Tensor, values: Tensor, width: float
) -> Tensor:
    """Nadaraya-Watson regression with a Gaussian kernel, as dot-product attention.

    The weight of key j is proportional to exp(-||q - k_j||^2 / (2 width^2)).
    Expanding the square, -||q||^2 / (2 width^2) is the same for every key of a
    query, so the softmax drops it; what is left is the score q . k_j / width^2
    plus a bias -||k_j||^2 / (2 width^2) per key. The softmax subtracts each
    row's maximum, so a query far from every key still gets weights that sum to 1.
    queries (..., n_q, d), keys (..., n_k, d), values (..., n_k, d_v).
    """
    # (..., 1, n_k): the per-key bias
    bias = -0.5 * keys.pow(2).sum(dim=-1).unsqueeze(-2)
    # (..., n_q, n_k)
    scores = (queries @ keys.transpose(-2, -1) + bias) / width**2
    # (..., n_q, d_v)
    return torch.softmax(scores, dim=-1) @ values


# --8<-- [end:gaussian_kernel_attention]
