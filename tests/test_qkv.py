"""Chapter 2: look-ups, projections, the worked example, self- and cross-attention."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snippets.qkv import (
    FEATURES,
    SEEKS,
    SENTENCE,
    W_K,
    W_Q,
    W_V,
    WORD_FEATURES,
    X,
    cross_attention,
    cross_attention_builtin,
    hand_built_attention,
    hard_lookup,
    project,
    self_attention,
    self_attention_builtin,
    soft_lookup,
    worked_example,
)

F64 = dict(atol=1e-12, rtol=1e-12)  # float64, a handful of products per entry
F32 = dict(atol=1e-5, rtol=1e-5)  # float32 matmuls round at ~1e-7 relative


def _example() -> dict[str, torch.Tensor]:
    args = (torch.tensor(a, dtype=torch.float64) for a in (X, W_Q, W_K, W_V))
    return worked_example(*args)


def test_worked_example_projections_equal_numpy_products():
    steps = _example()
    for name, w in (("q", W_Q), ("k", W_K), ("v", W_V)):
        np.testing.assert_allclose(
            steps[name].numpy(), np.array(X) @ np.array(w), atol=1e-12
        )


def test_worked_example_output_equals_torch_sdpa():
    """The page's final matrix against PyTorch's fused attention on the same Q, K, V."""
    steps = _example()
    expected = F.scaled_dot_product_attention(steps["q"], steps["k"], steps["v"])
    torch.testing.assert_close(steps["output"], expected, **F64)


def test_worked_example_is_consistent_step_by_step():
    """Each printed matrix follows from the previous ones, recomputed here independently."""
    s = _example()
    torch.testing.assert_close(s["scores"], s["q"] @ s["k"].T, **F64)
    torch.testing.assert_close(s["scaled"], s["scores"] / math.sqrt(3), **F64)
    exp = torch.exp(s["scaled"])
    torch.testing.assert_close(s["weights"], exp / exp.sum(-1, keepdim=True), **F64)
    torch.testing.assert_close(
        s["weights"].sum(-1), torch.ones(3, dtype=torch.float64), **F64
    )
    torch.testing.assert_close(s["output"], s["weights"] @ s["v"], **F64)


def test_worked_example_queries_are_not_x_times_x_transposed():
    """The error of a widely copied example: its 'Q' was X X^T. Here W_Q is not X^T."""
    s = _example()
    assert not torch.allclose(s["q"], s["x"] @ s["x"].T)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_self_attention_matches_torch_sdpa(gen, dtype):
    x = torch.randn(2, 3, 6, 10, generator=gen, dtype=dtype)  # (B, H, N, d_model)
    w_q, w_k = (torch.randn(10, 4, generator=gen, dtype=dtype) for _ in range(2))
    w_v = torch.randn(10, 7, generator=gen, dtype=dtype)
    out, weights = self_attention(x, w_q, w_k, w_v)
    expected = F.scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v)
    tol = F64 if dtype == torch.float64 else F32
    torch.testing.assert_close(out, expected, **tol)
    torch.testing.assert_close(
        self_attention_builtin(x, w_q, w_k, w_v), expected, **tol
    )
    assert out.shape == (2, 3, 6, 7) and weights.shape == (2, 3, 6, 6)


@pytest.mark.parametrize("masked", [False, True])
def test_cross_attention_shapes_and_torch_sdpa_with_n_q_not_n_k(gen, masked):
    b, n_q, n_kv, d_model, d_k, d_v = 2, 5, 9, 8, 4, 6
    x_q = torch.randn(b, n_q, d_model, generator=gen, dtype=torch.float64)
    x_kv = torch.randn(b, n_kv, d_model, generator=gen, dtype=torch.float64)
    w_q, w_k = (
        torch.randn(d_model, d_k, generator=gen, dtype=torch.float64) for _ in range(2)
    )
    w_v = torch.randn(d_model, d_v, generator=gen, dtype=torch.float64)
    mask = None
    if masked:
        mask = torch.rand(b, n_q, n_kv, generator=gen) > 0.5
        mask[..., 0] = (
            True  # every query may attend somewhere (torch gives NaN otherwise)
        )
    out, weights = cross_attention(x_q, x_kv, w_q, w_k, w_v, mask)
    assert out.shape == (b, n_q, d_v) and weights.shape == (b, n_q, n_kv)
    expected = F.scaled_dot_product_attention(
        x_q @ w_q, x_kv @ w_k, x_kv @ w_v, attn_mask=mask
    )
    torch.testing.assert_close(out, expected, **F64)
    if not masked:
        builtin = cross_attention_builtin(x_q, x_kv, w_q, w_k, w_v)
        torch.testing.assert_close(builtin, expected, **F64)


def test_self_attention_is_cross_attention_of_a_sequence_with_itself(gen):
    x = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    w = [torch.randn(5, 5, generator=gen, dtype=torch.float64) for _ in range(3)]
    torch.testing.assert_close(
        self_attention(x, *w)[0], cross_attention(x, x, *w)[0], **F64
    )


def test_cross_attention_output_is_a_mix_of_the_other_sequence_values(gen):
    """Each output row is a convex combination of the rows of V = x_kv W_V: with W_K = 0 all
    scores tie and every query, whatever it is, gets the plain mean of those rows."""
    x_q = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    x_kv = torch.randn(9, 6, generator=gen, dtype=torch.float64)
    w_q, w_v = (torch.randn(6, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    out, _ = cross_attention(
        x_q, x_kv, w_q, torch.zeros(6, 3, dtype=torch.float64), w_v
    )
    torch.testing.assert_close(out, (x_kv @ w_v).mean(0).expand(4, 3), **F64)


def test_project_shapes(gen):
    x = torch.randn(2, 5, 8, generator=gen)
    q, k, v = project(x, torch.randn(8, 4), torch.randn(8, 4), torch.randn(8, 3))
    assert q.shape == k.shape == (2, 5, 4) and v.shape == (2, 5, 3)


def _library(gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    return tuple(
        torch.randn(*s, generator=gen, dtype=torch.float64)
        for s in ((4,), (6, 4), (6, 3))
    )


def test_soft_lookup_weights_are_a_distribution_and_match_torch_sdpa(gen):
    """With temperature sqrt(d_k), one soft look-up is scaled dot-product attention of one query."""
    q, k, v = _library(gen)
    out, weights = soft_lookup(q, k, v, temperature=math.sqrt(4))
    assert (weights > 0).all()
    torch.testing.assert_close(
        weights.sum(), torch.tensor(1.0, dtype=torch.float64), **F64
    )
    expected = F.scaled_dot_product_attention(q[None], k, v)[0]
    torch.testing.assert_close(out, expected, **F64)


def test_soft_lookup_becomes_hard_as_temperature_goes_to_zero(gen):
    q, k, v = _library(gen)
    top2 = (k @ q).topk(2).values
    gap = (top2[0] - top2[1]).item()
    # at T = gap / 50 every other weight is below exp(-50) ~ 2e-22 of the largest
    out, weights = soft_lookup(q, k, v, temperature=gap / 50)
    torch.testing.assert_close(out, hard_lookup(q, k, v), **F64)
    assert weights.max() == 1.0


def test_soft_lookup_becomes_the_mean_as_temperature_grows(gen):
    q, k, v = _library(gen)
    out, _ = soft_lookup(q, k, v, temperature=1e9)
    torch.testing.assert_close(
        out, v.mean(0), atol=1e-7, rtol=0
    )  # weights 1/n + O(1/T)


def test_only_the_soft_lookup_passes_a_gradient_to_the_query(gen):
    q, k, v = _library(gen)
    q.requires_grad_(True)
    assert not hard_lookup(q, k, v).requires_grad  # argmax: piecewise constant in q
    out, _ = soft_lookup(q, k, v)
    (grad,) = torch.autograd.grad(out.sum(), q)
    assert grad.abs().sum() > 0


def test_hand_built_weights_follow_the_rules_written_in_the_tables():
    """Recompute the sentence's weights pair by pair from WORD_FEATURES and SEEKS alone:
    score(i, j) = strength * (number of features of word j sought by a feature of word i)."""
    strength = 8.0
    _, weights = hand_built_attention(strength)
    d = len(FEATURES)
    expected = torch.zeros(len(SENTENCE), len(SENTENCE), dtype=torch.float64)
    for i, wi in enumerate(SENTENCE):
        sought = [g for f in WORD_FEATURES[wi] for g in SEEKS.get(f, [])]
        for j, wj in enumerate(SENTENCE):
            expected[i, j] = strength * sum(g in WORD_FEATURES[wj] for g in sought)
    expected = torch.softmax(expected / math.sqrt(d), dim=-1)
    torch.testing.assert_close(weights, expected, **F64)
    it = SENTENCE.index("it")
    assert weights[it].argmax() == SENTENCE.index("cat")
