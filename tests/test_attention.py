"""Chapter 3: scaled dot-product attention against PyTorch, and the variance derivation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from snippets.attention import (
    dot_product_samples,
    scaled_dot_product_attention,
    softmax_statistics,
)

# float32 matmuls round at ~1e-7 relative; float64 at ~1e-16.
TOL = {
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float64: dict(atol=1e-12, rtol=1e-12),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "batch, n_q, n_k, d, d_v",
    [
        ((), 1, 1, 1, 1),
        ((3,), 5, 7, 8, 4),
        ((2, 4), 9, 6, 16, 16),
        ((2, 1, 3), 4, 11, 5, 3),
    ],
)
@pytest.mark.parametrize("masked", [False, True])
def test_matches_torch_sdpa(gen, dtype, batch, n_q, n_k, d, d_v, masked):
    q = torch.randn(*batch, n_q, d, generator=gen, dtype=dtype)
    k = torch.randn(*batch, n_k, d, generator=gen, dtype=dtype)
    v = torch.randn(*batch, n_k, d_v, generator=gen, dtype=dtype)
    mask = None
    if masked:
        mask = torch.rand(*batch, n_q, n_k, generator=gen) > 0.4
        mask[..., 0] = (
            True  # torch returns NaN for empty rows; compared separately below
        )
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, expected, **TOL[dtype])
    assert weights.shape == (*batch, n_q, n_k)
    torch.testing.assert_close(
        weights.sum(-1), torch.ones_like(weights.sum(-1)), **TOL[dtype]
    )


def test_mask_broadcasts_over_heads(gen):
    q, k, v = (torch.randn(2, 4, 6, 8, generator=gen) for _ in range(3))
    mask = torch.tril(torch.ones(6, 6, dtype=torch.bool))  # (n_q, n_k), shared by all
    out, _ = scaled_dot_product_attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, expected, **TOL[torch.float32])


def test_fully_masked_row_gives_zeros_not_nan(gen):
    q, k, v = (torch.randn(1, 3, 4, generator=gen) for _ in range(3))
    mask = torch.ones(1, 3, 3, dtype=torch.bool)
    mask[0, 1] = False  # query 1 may attend to nothing
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert torch.equal(weights[0, 1], torch.zeros(3))
    assert torch.equal(out[0, 1], torch.zeros(4))
    # the other rows are untouched by the empty one
    expected = F.scaled_dot_product_attention(q[:, [0, 2]], k, v)
    torch.testing.assert_close(out[:, [0, 2]], expected)


def test_gradients_are_finite_with_an_empty_row(gen):
    q, k, v = (
        torch.randn(2, 5, 4, generator=gen, requires_grad=True) for _ in range(3)
    )
    mask = torch.ones(2, 5, 5, dtype=torch.bool)
    mask[:, 0] = False
    out, _ = scaled_dot_product_attention(q, k, v, mask)
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_weights_are_a_softmax_of_scaled_scores(gen):
    q, k, v = (torch.randn(4, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    _, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(weights, torch.softmax(q @ k.T / math.sqrt(8), dim=-1))


@pytest.mark.parametrize("d_k", [1, 16, 256])
def test_dot_product_variance_is_d_k(d_k):
    """Var(q.k) = d_k and E[q.k] = 0, each within 5 standard errors of the sample estimate."""
    n = 40_000
    s = dot_product_samples(d_k, n, torch.Generator().manual_seed(d_k))
    # Var of the sample variance of q.k is (E[(qk)^4] - d_k^2)/n = (2 d_k^2 + 6 d_k)/n.
    se = math.sqrt((2 * d_k**2 + 6 * d_k) / n)
    assert abs(s.var().item() - d_k) < 5 * se
    assert abs(s.mean().item()) < 5 * math.sqrt(d_k / n)


def test_scaling_keeps_softmax_unsaturated():
    g = torch.Generator().manual_seed(0)
    unscaled = softmax_statistics(512, 64, 256, scaled=False, generator=g)
    scaled = softmax_statistics(512, 64, 256, scaled=True, generator=g)
    assert unscaled["max_weight"] > 0.8 > 0.3 > scaled["max_weight"]
    assert scaled["entropy"] > 2 * unscaled["entropy"]
    assert scaled["jacobian_norm"] > 10 * unscaled["jacobian_norm"]


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("d_k", [1, 16, 64])
def test_jacobian_norms_match_autograd(d_k, scaled):
    """dp/ds and dp/dq = J K / c, each query on its own, by autograd instead of the closed form."""
    n_keys, n_queries, seed = 8, 5, 3  # odd n_queries: the median is one of the values
    stats = softmax_statistics(
        d_k, n_keys, n_queries, scaled, torch.Generator().manual_seed(seed)
    )
    g = torch.Generator().manual_seed(seed)  # the same draws, in the same order
    q = torch.randn(n_queries, d_k, generator=g, dtype=torch.float64)
    k = torch.randn(n_keys, d_k, generator=g, dtype=torch.float64)
    c = math.sqrt(d_k) if scaled else 1.0
    jacobian = torch.autograd.functional.jacobian
    dp_ds = [jacobian(lambda s: torch.softmax(s, -1), k @ x / c) for x in q]
    dp_dq = [jacobian(lambda x: torch.softmax(k @ x / c, -1), x) for x in q]
    assert dp_dq[0].shape == (n_keys, d_k)
    for key, jacs in (("jacobian_norm", dp_ds), ("query_gradient_norm", dp_dq)):
        expected = torch.stack([torch.linalg.matrix_norm(j) for j in jacs]).median()
        assert stats[key] == pytest.approx(expected.item(), rel=1e-12)


def test_unscaled_gradient_to_the_query_is_larger_for_narrow_heads_only():
    """Without scaling, dp/dq = J K carries |K| ~ sqrt(d_k): larger while the softmax is
    not saturated, far smaller once it is. With scaling it stays at one size."""

    def norms(d_k: int) -> tuple[float, float]:
        unscaled, scaled = (
            softmax_statistics(d_k, 64, 512, s, torch.Generator().manual_seed(d_k))
            for s in (False, True)
        )
        return unscaled["query_gradient_norm"], scaled["query_gradient_norm"]

    (u16, s16), (u512, s512) = norms(16), norms(512)
    assert u16 > 3 * s16  # about 7 times larger over seeds 0 to 9
    assert u512 < s512  # 0.1 to 0.75 times as large over seeds 0 to 9
    assert 0.8 < s16 / s512 < 1.25
