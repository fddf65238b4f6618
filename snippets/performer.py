"""Performer's FAVOR+: softmax attention estimated with positive random features, in linear time.

Choromanski et al., *Rethinking Attention with Performers* (2020, arXiv:2009.14794).

The softmax kernel exp(q.k / sqrt(d)) is written as an expectation over random vectors w,
exp(x.y) = E_w[phi_w(x) phi_w(y)], and estimated with m samples. Each query and key becomes
an m-dimensional positive feature vector, and attention becomes Q' (K'^T V) normalised by
Q' (K'^T 1): products that never form the N x N matrix. Shapes: `(..., N, d)`, where `...`
is any batch and head dimensions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from snippets import checks
from snippets.masks import causal_mask


# --8<-- [start:projections]
def gaussian_random_features(
    m: int, d: int, generator: torch.Generator | None = None
) -> Tensor:
    """m independent N(0, I_d) rows, shape (m, d), float64: plain Monte Carlo."""
    checks.positive_ints(m=m, d=d)
    return torch.randn(m, d, generator=generator, dtype=torch.float64)


def orthogonal_random_features(
    m: int, d: int, generator: torch.Generator | None = None
) -> Tensor:
    """m rows, shape (m, d), float64, exactly orthogonal within each block of d.

    Each block is the Q factor of a Gaussian matrix (signs fixed so that it is uniformly
    distributed over rotations); its rows are unit vectors, so each one is rescaled by
    the norm of a fresh N(0, I_d) vector, a chi(d) variable. Every row on its own is
    then distributed exactly like a Gaussian row, so the estimator stays unbiased; only
    the dependence between rows changes, and that is what lowers the variance.
    """
    checks.positive_ints(m=m, d=d)
    n_blocks = math.ceil(m / d)
    g = torch.randn(n_blocks, d, d, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(g)  # q: (n_blocks, d, d), orthogonal matrices
    # Haar-uniform
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    directions = q.transpose(-2, -1).reshape(n_blocks * d, d)[:m]  # (m, d), rows of Q^T
    norms = torch.randn(m, d, generator=generator, dtype=torch.float64).norm(dim=-1)
    return directions * norms.unsqueeze(-1)  # (m, d), row norms ~ chi(d)


# --8<-- [end:projections]


# --8<-- [start:features]
def _log_features(x: Tensor, projection: Tensor) -> Tensor:
    """log of the positive features, less the 1/sqrt(m): w.x - |x|^2/2, (..., N, m)."""
    x = x / x.size(-1) ** 0.25  # q.k / sqrt(d) = (q / d^(1/4)) . (k / d^(1/4))
    w = projection.to(x)  # (m, d), or (..., m, d) for several draws at once
    return x @ w.transpose(-2, -1) - 0.5 * (x * x).sum(dim=-1, keepdim=True)


def softmax_features(x: Tensor, projection: Tensor) -> Tensor:
    """Positive random features phi(x) = exp(w.x - |x|^2/2) / sqrt(m): (..., N, m).

    x is a query or key of width d; it is divided by d^(1/4) here, so that
    phi(q) . phi(k) estimates exp(q.k / sqrt(d)), the unnormalised softmax weight.
    projection may carry leading dimensions (..., m, d) that broadcast with x's.
    """
    checks.floating("(..., m, d)", projection=projection, d=x.size(-1))
    m = projection.size(-2)
    return torch.exp(_log_features(x, projection)) / math.sqrt(m)


# --8<-- [end:features]


# --8<-- [start:linear]
def linear_attention(q_feat: Tensor, k_feat: Tensor, v: Tensor) -> Tensor:
    """Q'(K'^T V) / Q'(K'^T 1) for features (..., N, m) and values (..., N, d_v).

    The brackets are the whole trick: K'^T V is (m, d_v), whatever N is, so the cost is
    O(N m d_v) in time and O(m d_v) in extra memory instead of O(N^2).
    """
    checks.attention_inputs(q_feat, k_feat, v)
    kv = k_feat.transpose(-2, -1) @ v  # (..., m, d_v)
    k_sum = k_feat.sum(dim=-2)  # (..., m): K'^T 1
    numerator = q_feat @ kv  # (..., N, d_v)
    denominator = q_feat @ k_sum.unsqueeze(-1)  # (..., N, 1)
    return numerator / denominator


# --8<-- [end:linear]


# --8<-- [start:causal_prefix]
def causal_linear_attention_prefix(q_feat: Tensor, k_feat: Tensor, v: Tensor) -> Tensor:
    """The causal form as prefix sums.

    Query i uses sum_{j <= i} k'_j v_j^T and sum_{j <= i} k'_j. Written for clarity:
    the running sums are kept for every position, (..., N, m, d_v) in memory.
    `causal_linear_attention` computes the same in chunks.
    """
    checks.self_attention_inputs(q_feat, k_feat, v)  # causal: n_q == n_k
    # (..., N, m, d_v)
    kv = torch.cumsum(k_feat.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)
    k_sum = torch.cumsum(k_feat, dim=-2)  # (..., N, m)
    numerator = (q_feat.unsqueeze(-2) @ kv).squeeze(-2)  # (..., N, d_v)
    denominator = (q_feat * k_sum).sum(dim=-1, keepdim=True)  # (..., N, 1)
    return numerator / denominator


# --8<-- [end:causal_prefix]


# --8<-- [start:causal_chunked]
def causal_linear_attention(
    q_feat: Tensor, k_log: Tensor, v: Tensor, chunk_size: int = 64
) -> Tensor:
    """The causal prefix-sum form, one chunk of positions at a time, in O(N) memory.

    Inside a chunk: the masked quadratic form over at most chunk_size keys. From earlier
    chunks: one running state U = sum k'_j v_j^T (m, d_v) and z = sum k'_j (m). The keys
    come as logarithms of their features, k_log = log k', so that each prefix can be
    scaled by its own running maximum: a later, larger key then rescales the state
    instead of pushing earlier keys below the smallest float.
    """
    checks.self_attention_inputs(q_feat, k_log, v)  # causal: n_q == n_k
    checks.positive_ints(chunk_size=chunk_size)
    n = q_feat.size(-2)
    batch, m = q_feat.shape[:-2], q_feat.size(-1)
    # (..., m, d_v), scaled by exp(-top)
    state = q_feat.new_zeros(*batch, m, v.size(-1))
    k_total = q_feat.new_zeros(*batch, m, 1)  # (..., m, 1), same scale
    top = q_feat.new_full((*batch, 1, 1), float("-inf"))  # running max of k_log
    outputs = []
    for start in range(0, n, chunk_size):
        qc, lc, vc = (t[..., start : start + chunk_size, :] for t in (q_feat, k_log, v))
        new_top = torch.maximum(top, lc.amax(dim=(-2, -1), keepdim=True))
        rescale = torch.exp(top - new_top)  # <= 1; exp(-inf) = 0 before the first chunk
        state, k_total, top = state * rescale, k_total * rescale, new_top
        kc = torch.exp(lc - top)  # (..., c, m), this chunk's keys at the running scale
        c = qc.size(-2)
        causal = causal_mask(c, qc.device)
        local = (qc @ kc.transpose(-2, -1)) * causal  # (..., c, c), j <= i only
        numerator = qc @ state + local @ vc  # (..., c, d_v)
        denominator = qc @ k_total + local.sum(dim=-1, keepdim=True)  # (..., c, 1)
        outputs.append(numerator / denominator)
        state = state + kc.transpose(-2, -1) @ vc
        k_total = k_total + kc.sum(dim=-2).unsqueeze(-1)
    return torch.cat(outputs, dim=-2)


# --8<-- [end:causal_chunked]


# --8<-- [start:favor]
def favor_attention(
    q: Tensor,  # (..., N, d)
    k: Tensor,  # (..., N, d)
    v: Tensor,  # (..., N, d_v)
    num_features: int,
    causal: bool = False,
    orthogonal: bool = True,
    generator: torch.Generator | None = None,
    projection: Tensor | None = None,
) -> Tensor:
    """FAVOR+ estimate of softmax(q k^T / sqrt(d)) v with num_features random features.

    One projection (m, d) is drawn on the CPU from `generator` and shared by all batch
    and head dimensions; pass `projection` to reuse one instead, as a trained model
    does between redraws. Causal attention (query i sees keys j <= i) uses the chunked
    prefix sums.
    """
    checks.attention_inputs(q, k, v, same_length=causal)
    checks.positive_ints(num_features=num_features)
    if projection is None:
        draw = orthogonal_random_features if orthogonal else gaussian_random_features
        projection = draw(num_features, q.size(-1), generator)
    projection = projection.to(q)  # (m, d)
    log_q = _log_features(q, projection)  # (..., N, m)
    log_k = _log_features(k, projection)  # (..., N, m)
    # Constant factors cancel between numerator and denominator, so exp() is taken after
    # subtracting a maximum: one per query row, and one shared by the keys (for causal
    # attention, one per prefix of the keys), which keeps features from underflowing.
    q_feat = torch.exp(log_q - log_q.amax(dim=-1, keepdim=True))
    if causal:  # the keys' scale follows the running maximum, chunk by chunk
        return causal_linear_attention(q_feat, log_k, v)
    k_feat = torch.exp(log_k - log_k.amax(dim=(-2, -1), keepdim=True))
    return linear_attention(q_feat, k_feat, v)


# --8<-- [end:favor]


# --8<-- [start:estimates]
def kernel_estimates(
    q: Tensor,  # (d,)
    k: Tensor,  # (d,)
    num_features: int,
    draws: int,
    orthogonal: bool,
    generator: torch.Generator | None = None,
) -> Tensor:
    """phi(q) . phi(k) for `draws` independent projections, shape (draws,).

    Each entry is one FAVOR+ estimate of exp(q.k / sqrt(d)) with num_features features.
    """
    checks.positive_ints(num_features=num_features, draws=draws)
    draw = orthogonal_random_features if orthogonal else gaussian_random_features
    w = torch.stack([draw(num_features, q.size(-1), generator) for _ in range(draws)])
    phi_q = softmax_features(q.reshape(1, 1, -1), w)  # (draws, 1, m)
    phi_k = softmax_features(k.reshape(1, 1, -1), w)  # (draws, 1, m)
    return (phi_q * phi_k).sum(dim=-1).squeeze(-1)


# --8<-- [end:estimates]


# --8<-- [start:mse]
def orthogonal_pair_moment(z_sq: float, d: int) -> float:
    """exp(-|z|^2) E[exp((w_1 + w_2).z)], w_1 and w_2 orthogonal rows of
    `orthogonal_random_features`.

    Independent rows would give exactly 1. Orthogonal rows are r_1 u_1 and r_2 u_2, with
    r_1, r_2 ~ chi(d) and (u_1.z, u_2.z) / |z| two coordinates of a uniform unit vector;
    expanding both exponentials, every term with p, q >= 1 carries the factor
    Gamma(d/2+p) Gamma(d/2+q) / (Gamma(d/2) Gamma(d/2+p+q)) < 1 that independence lacks.
    """
    if d < 1:
        raise ValueError(f"d must be a positive integer, got {d}")
    if z_sq < 0:
        raise ValueError(f"z_sq must be >= 0, got {z_sq}")
    if z_sq == 0:
        return 1.0
    # far past the peak of (z_sq/2)^n / n!
    n_max = int(z_sq + 12 * math.sqrt(z_sq) + 40)
    h = d / 2
    # log of term (p, q) = a[p] + a[q] - c[p + q], with n = p + q up to 2 n_max
    c = np.array([math.lgamma(h + n) for n in range(2 * n_max + 1)])
    a = c[: n_max + 1] - np.array([math.lgamma(p + 1) for p in range(n_max + 1)])
    c = c + math.lgamma(h) - np.arange(2 * n_max + 1) * math.log(z_sq / 2)
    p = np.arange(n_max + 1)
    log_terms = a[:, None] + a[None, :] - c[p[:, None] + p[None, :]]
    return float(np.exp(log_terms - z_sq).sum())


def kernel_relative_mse(z_sq: float, m: int, d: int, orthogonal: bool) -> float:
    """Exact E[(estimate - K)^2] / K^2 of the positive-feature estimate of K = exp(x.y).

    z_sq = |x + y|^2. I.i.d. rows: (exp(z_sq) - 1) / m (the variance formula above).
    Orthogonal rows add, for each ordered pair of rows in the same block of d, the
    covariance K^2 (orthogonal_pair_moment - 1) / m^2, which is negative.
    """
    if m < 1:
        raise ValueError(f"m must be a positive integer, got {m}")
    if d < 1:
        raise ValueError(f"d must be a positive integer, got {d}")
    if z_sq < 0:
        raise ValueError(f"z_sq must be >= 0, got {z_sq}")
    iid = math.expm1(z_sq) / m
    if not orthogonal:
        return iid
    blocks = [d] * (m // d) + ([m % d] if m % d else [])
    pairs = sum(b * (b - 1) for b in blocks)  # ordered pairs of rows in one block
    return iid + pairs / m**2 * (orthogonal_pair_moment(z_sq, d) - 1)


# --8<-- [end:mse]


def relative_error(approx: Tensor, exact: Tensor) -> float:
    """||approx - exact||_F / ||exact||_F."""
    return ((approx - exact).norm() / exact.norm()).item()
