"""The verdicts of the appendix "Claims checked" that rest on a computation.

The claimed numbers are quoted data (snippets/claims.py); the references here are NumPy
products and PyTorch's own module, independent of the course's code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from snippets.claims import (
    CLAIMED_A,
    CLAIMED_K,
    CLAIMED_Q,
    CLAIMED_V,
    CLAIMED_Z,
    W_K,
    W_Q,
    X,
    lsh_multiply_adds,
    mask_and_band_multiply_adds,
    multihead_without_output_projection,
    tiled_attention_difference,
    worked_example_discrepancies,
)

REPO = Path(__file__).resolve().parents[1]
CLAIMS_PAGE = REPO / "docs" / "en" / "appendix" / "claims.md"


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_the_worked_example_does_not_follow_from_its_own_inputs():
    x, w_q, w_k = X.numpy(), W_Q.numpy(), W_K.numpy()
    q, k, a, v, z = (
        t.numpy() for t in (CLAIMED_Q, CLAIMED_K, CLAIMED_A, CLAIMED_V, CLAIMED_Z)
    )
    np.testing.assert_allclose(q, x @ x.T, atol=1e-12)  # its "Q" is X X^T ...
    assert np.abs(q - x @ w_q).max() > 0.1  # ... not X W_Q
    assert np.abs(k - x @ w_k).max() > 0.1
    assert np.abs(a - _softmax(q @ k.T / np.sqrt(3))).max() > 0.1
    assert np.abs(z - a @ v).max() > 0.1
    # The numbers the appendix prints are these same differences.
    found = worked_example_discrepancies()
    assert found["q_vs_x_x_t"] < 1e-12
    assert found["q_vs_x_w_q"] == pytest.approx(np.abs(q - x @ w_q).max())
    assert found["z_vs_a_v"] == pytest.approx(np.abs(z - a @ v).max())
    assert found["k_vs_x_w_k"] == pytest.approx(np.abs(k - x @ w_k).max())
    assert found["a_vs_softmax"] == pytest.approx(
        np.abs(a - _softmax(q @ k.T / np.sqrt(3))).max()
    )


def test_xor_is_not_a_power_in_python():
    d_model, i = 8, 1
    with pytest.raises(TypeError):
        10000 ^ (2 * i / d_model)
    assert 10000 ^ (2 * i // d_model) == 10000 != 10000 ** (2 * i / d_model)


def test_multihead_attention_needs_the_output_projection():
    result = multihead_without_output_projection()
    assert (
        result["with_w_o"] < 1e-5
    )  # equal to PyTorch's module, up to float32 rounding
    assert result["without_w_o"] > 0.5  # the concatenation alone is another function


def test_every_test_the_claims_page_cites_exists():
    cited = re.findall(r"`(tests/test_\w+\.py)::(test_\w+)`", CLAIMS_PAGE.read_text())
    assert len(cited) >= 10
    missing = []
    for path, name in cited:
        tree = ast.parse((REPO / path).read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if name not in names:
            missing.append(f"{path}::{name}")
    assert not missing, missing


def test_a_mask_over_dense_attention_skips_no_multiply_add():
    """Chapter 10: masking hides scores after computing them; the band never computes them."""
    n, w, d = 512, 32, 32
    counts = mask_and_band_multiply_adds(n, w, d)
    assert counts["masked"] == counts["dense"] == n * n * (d + d)  # QK^T and AV in full
    block = w  # the banded function's query block when w >= 32
    assert counts["banded"] == n * (block + 2 * w) * (d + d)  # N (b + 2w) scores


def test_lsh_arithmetic_is_linear_for_fixed_buckets_and_not_when_they_grow_with_n():
    """Chapter 12: one round is N * 2C scores plus the hash projection, N * d * n_b / 2."""
    lengths, chunk, d, buckets = (128, 256, 512), 16, 8, 4
    counts = lsh_multiply_adds(lengths, chunk, d, buckets)
    for n, fixed, scaled in zip(
        lengths, counts["fixed"], counts["scaled"], strict=True
    ):
        assert fixed == n * 2 * chunk * (d + d) + n * d * buckets // 2
        assert scaled == n * 2 * chunk * (d + d) + n * d * (2 * n // chunk) // 2


def test_the_tiled_flashattention_algorithm_is_exact():
    """Chapter 13: tiling with the online softmax changes rounding, not the function."""
    assert tiled_attention_difference() < 1e-13  # float64
