"""Chapter 9: additive and dot-product attention, soft vs top-k attention and their costs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from snippets.families import (
    AdditiveAttention,
    DotProductAttention,
    counted_multiply_adds,
    softmax_attend,
    topk_attention,
)

# float32 matmuls round at ~1e-7 relative; float64 at ~1e-16.
TOL = {
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float64: dict(atol=1e-12, rtol=1e-12),
}


def naive_additive(module: AdditiveAttention, q, k, v, mask=None):
    """Bahdanau's formula written out pair by pair with Python loops, no broadcasting."""
    Wq, Wk, w = module.W_q.weight, module.W_k.weight, module.v.weight[0]
    n_q, n_k = q.size(0), k.size(0)
    out = torch.zeros(n_q, v.size(1), dtype=q.dtype)
    weights = torch.zeros(n_q, n_k, dtype=q.dtype)
    for i in range(n_q):
        e = [
            float(w @ torch.tanh(Wq @ q[i] + Wk @ k[j]))
            if mask is None or mask[i, j]
            else -math.inf
            for j in range(n_k)
        ]
        m = max(e)
        exps = [math.exp(x - m) for x in e]
        total = sum(exps)
        for j in range(n_k):
            weights[i, j] = exps[j] / total
            out[i] += weights[i, j] * v[j]
    return out, weights


@pytest.mark.parametrize("masked", [False, True])
def test_additive_attention_matches_a_naive_loop(gen, masked):
    d_q, d_k, d_h, d_v, n_q, n_k = (
        5,
        3,
        7,
        4,
        6,
        9,
    )  # queries and keys of different widths
    module = AdditiveAttention(d_q, d_k, d_h).double()
    q = torch.randn(n_q, d_q, generator=gen, dtype=torch.float64)
    k = torch.randn(n_k, d_k, generator=gen, dtype=torch.float64)
    v = torch.randn(n_k, d_v, generator=gen, dtype=torch.float64)
    mask = None
    if masked:
        mask = torch.rand(n_q, n_k, generator=gen) > 0.5
        mask[:, 0] = True  # every query may attend somewhere
    with torch.no_grad():
        out, weights = module(q, k, v, mask)
        ref_out, ref_weights = naive_additive(module, q, k, v, mask)
    torch.testing.assert_close(weights, ref_weights, **TOL[torch.float64])
    torch.testing.assert_close(out, ref_out, **TOL[torch.float64])


def test_additive_attention_broadcasts_over_batch_dimensions(gen):
    module = AdditiveAttention(8, 6, 16)
    q = torch.randn(2, 3, 5, 8, generator=gen)
    k = torch.randn(2, 3, 7, 6, generator=gen)
    v = torch.randn(2, 3, 7, 4, generator=gen)
    out, weights = module(q, k, v)
    assert out.shape == (2, 3, 5, 4) and weights.shape == (2, 3, 5, 7)
    with torch.no_grad():  # each batch element on its own gives the same result
        single, _ = module(q[1, 2], k[1, 2], v[1, 2])
    torch.testing.assert_close(out[1, 2], single, **TOL[torch.float32])


def test_additive_scores_are_bounded_by_the_l1_norm_of_v(gen):
    """|v^T tanh(.)| <= sum |v_m| whatever the inputs: additive scores cannot blow up."""
    module = AdditiveAttention(16, 16, 8)
    q = 1e4 * torch.randn(5, 16, generator=gen)  # huge inputs saturate tanh
    k = 1e4 * torch.randn(9, 16, generator=gen)
    with torch.no_grad():
        scores = module.scores(q, k)
        bound = module.v.weight.abs().sum()
    assert (scores.abs() <= bound * (1 + 1e-6)).all()  # 1e-6: float32 summation order


def test_softmax_attend_gives_zeros_for_an_empty_row(gen):
    scores = torch.randn(3, 4, generator=gen)
    v = torch.randn(4, 2, generator=gen)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    out, weights = softmax_attend(scores, v, mask)
    assert torch.equal(weights[1], torch.zeros(4)) and torch.equal(
        out[1], torch.zeros(2)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dot_product_module_equals_torch_sdpa_on_projected_inputs(gen, dtype):
    module = DotProductAttention(5, 3, 8).to(dtype)
    q = torch.randn(2, 6, 5, generator=gen, dtype=dtype)
    k = torch.randn(2, 9, 3, generator=gen, dtype=dtype)
    v = torch.randn(2, 9, 4, generator=gen, dtype=dtype)
    with torch.no_grad():
        out, _ = module(q, k, v)
        expected = F.scaled_dot_product_attention(module.W_q(q), module.W_k(k), v)
    torch.testing.assert_close(out, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch, n_q, n_k", [((), 1, 1), ((3,), 5, 11), ((2, 4), 7, 6)])
def test_topk_with_k_equal_n_is_soft_attention(gen, dtype, batch, n_q, n_k):
    q = torch.randn(*batch, n_q, 8, generator=gen, dtype=dtype)
    k = torch.randn(*batch, n_k, 8, generator=gen, dtype=dtype)
    v = torch.randn(*batch, n_k, 3, generator=gen, dtype=dtype)
    out, weights = topk_attention(q, k, v, top_k=n_k)
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, k, v), **TOL[dtype]
    )
    torch.testing.assert_close(
        weights, torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), -1), **TOL[dtype]
    )


@pytest.mark.parametrize("top_k", [1, 3, 10])
def test_topk_weights_have_exactly_k_nonzeros_summing_to_one(gen, top_k):
    q = torch.randn(2, 3, 12, 16, generator=gen, dtype=torch.float64)
    k = torch.randn(2, 3, 20, 16, generator=gen, dtype=torch.float64)
    v = torch.randn(2, 3, 20, 5, generator=gen, dtype=torch.float64)
    _, weights = topk_attention(q, k, v, top_k)
    assert torch.equal((weights > 0).sum(-1), torch.full((2, 3, 12), top_k))
    torch.testing.assert_close(
        weights.sum(-1), torch.ones(2, 3, 12, dtype=torch.float64)
    )
    # The kept keys are those with the largest scores: the smallest kept score is at least
    # the largest dropped one.
    scores = q @ k.transpose(-2, -1)
    kept_min = scores.masked_fill(weights == 0, math.inf).amin(-1)
    dropped_max = scores.masked_fill(weights > 0, -math.inf).amax(-1)
    assert (kept_min >= dropped_max).all()


def test_topk_output_matches_a_brute_force_per_query(gen):
    q = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    k = torch.randn(9, 6, generator=gen, dtype=torch.float64)
    v = torch.randn(9, 3, generator=gen, dtype=torch.float64)
    out, _ = topk_attention(q, k, v, top_k=3)
    for i in range(4):
        s = [float(q[i] @ k[j]) / math.sqrt(6) for j in range(9)]
        best = sorted(range(9), key=lambda j: -s[j])[:3]
        z = sum(math.exp(s[j]) for j in best)
        expected = sum(math.exp(s[j]) / z * v[j] for j in best)
        torch.testing.assert_close(out[i], expected, **TOL[torch.float64])


def test_flop_counter_counts_a_matrix_product_in_closed_form(gen):
    a, b = torch.randn(7, 5, generator=gen), torch.randn(5, 3, generator=gen)
    assert counted_multiply_adds(lambda: a @ b) == 7 * 5 * 3


@pytest.mark.parametrize("n", [64, 1000])
def test_topk_still_pays_for_scoring_every_key(gen, n):
    """Counted multiply-adds per query: soft n*d + n*d_v, top-k n*d + k*d_v, not O(k)."""
    n_q, d, d_v, top_k = 3, 16, 8, 4
    q = torch.randn(n_q, d, generator=gen)
    k = torch.randn(n, d, generator=gen)
    v = torch.randn(n, d_v, generator=gen)
    soft = counted_multiply_adds(lambda: F.softmax(q @ k.T, -1) @ v)
    hard = counted_multiply_adds(lambda: topk_attention(q, k, v, top_k))
    assert soft == n_q * (n * d + n * d_v)
    assert hard == n_q * (n * d + top_k * d_v)
    assert hard >= n_q * n * d  # the scoring alone is already linear in n
