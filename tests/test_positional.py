"""Chapter 6: positional encodings, each checked against a closed form or an independent construction."""

from __future__ import annotations

import math

import pytest
import torch

from snippets.attention import scaled_dot_product_attention
from snippets.positional import (
    LearnedPositionalEmbedding,
    apply_rope,
    inverse_frequencies,
    self_attention,
    shift_matrix,
    sinusoidal_encoding,
    xor_denominators,
    xor_encoding,
)

# float64 throughout unless stated: sums of a few hundred products round at ~1e-15 relative.
TOL64 = dict(atol=1e-10, rtol=1e-10)


def _weights(gen, d, dtype=torch.float64):
    return [
        torch.randn(d, d, generator=gen, dtype=dtype) / math.sqrt(d) for _ in range(3)
    ]


# --- without positions, self-attention cannot see order ------------------------------------


def test_self_attention_is_permutation_equivariant(gen):
    """f(P x) = P f(x) for every permutation P: the layer only sees the set of tokens."""
    x = torch.randn(3, 10, 16, generator=gen, dtype=torch.float64)
    w = _weights(gen, 16)
    perm = torch.randperm(10, generator=gen)
    torch.testing.assert_close(
        self_attention(x[:, perm], *w), self_attention(x, *w)[:, perm], **TOL64
    )


def test_torch_multihead_attention_is_permutation_equivariant(gen):
    """The same property for PyTorch's own module, an implementation independent of ours."""
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True).double()
    x = torch.randn(2, 9, 16, generator=gen, dtype=torch.float64)
    perm = torch.randperm(9, generator=gen)
    out_perm, _ = mha(x[:, perm], x[:, perm], x[:, perm])
    out, _ = mha(x, x, x)
    torch.testing.assert_close(out_perm, out[:, perm], **TOL64)


def test_causal_mask_breaks_permutation_equivariance(gen):
    """Under a causal mask the first output is the first token's own value, x_0 W_V, so
    permuting the input does not permute the output (Haviv et al. 2022)."""
    x = torch.randn(1, 10, 16, generator=gen, dtype=torch.float64)
    w_q, w_k, w_v = _weights(gen, 16)
    mask = torch.ones(10, 10, dtype=torch.bool).tril()

    def causal(z: torch.Tensor) -> torch.Tensor:
        return scaled_dot_product_attention(z @ w_q, z @ w_k, z @ w_v, mask)[0]

    perm = torch.arange(9, -1, -1)  # reverse the sequence
    torch.testing.assert_close(causal(x[:, perm])[:, 0], x[:, 9] @ w_v, **TOL64)
    assert (causal(x[:, perm]) - causal(x)[:, perm]).abs().max() > 0.1


def test_causal_uniform_attention_turns_a_repeated_token_into_a_position_signal(gen):
    """W_Q = 0 gives uniform weights; causally, output i is the mean of values 0..i, so
    for one first token b followed by copies of a it is (v_b + i v_a) / (i + 1)."""
    n, d = 8, 4
    _, w_k, w_v = _weights(gen, d)
    b, a = torch.randn(2, d, generator=gen, dtype=torch.float64)
    x = torch.cat([b[None], a.expand(n - 1, d)])  # (n, d)
    mask = torch.ones(n, n, dtype=torch.bool).tril()
    out, _ = scaled_dot_product_attention(x @ (0 * w_k), x @ w_k, x @ w_v, mask)
    i = torch.arange(n, dtype=torch.float64)[:, None]
    torch.testing.assert_close(out, (b @ w_v + i * (a @ w_v)) / (i + 1), **TOL64)
    plain = self_attention(x, 0 * w_k, w_k, w_v)  # no mask: the copies of a agree
    torch.testing.assert_close(plain[1:], plain[1:2].expand(n - 1, d), **TOL64)


def test_adding_positions_breaks_equivariance(gen):
    x = torch.randn(1, 10, 16, generator=gen, dtype=torch.float64)
    w = _weights(gen, 16)
    pe = sinusoidal_encoding(10, 16, dtype=torch.float64)
    perm = torch.arange(9, -1, -1)  # reverse the sequence
    permuted_first = self_attention(x[:, perm] + pe, *w)
    permuted_after = self_attention(x + pe, *w)[:, perm]
    assert (permuted_first - permuted_after).abs().max() > 1e-2


# --- the sinusoidal encoding -----------------------------------------------------------------


@pytest.mark.parametrize("n, d", [(1, 2), (50, 8), (128, 64), (7, 512)])
def test_sinusoidal_matches_the_formula_elementwise(n, d):
    """Against a plain double loop over the paper's formula (section 3.5), in Python floats."""
    pe = sinusoidal_encoding(n, d, dtype=torch.float64)
    assert pe.shape == (n, d)
    expected = torch.empty(n, d, dtype=torch.float64)
    for pos in range(n):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            expected[pos, 2 * i] = math.sin(angle)
            expected[pos, 2 * i + 1] = math.cos(angle)
    torch.testing.assert_close(pe, expected, atol=1e-12, rtol=0)


def test_sinusoidal_default_dtype_is_float32_and_odd_width_is_refused():
    assert sinusoidal_encoding(4, 8).dtype == torch.float32
    with pytest.raises(ValueError, match="even"):
        sinusoidal_encoding(4, 7)


def test_wavelengths_span_two_pi_to_almost_two_pi_times_10000():
    w = inverse_frequencies(512)
    assert w[0].item() == 1.0
    # the last pair has i = 255: wavelength 2π · 10000^(510/512)
    assert math.isclose(2 * math.pi / w[-1].item(), 2 * math.pi * 10000 ** (510 / 512))
    assert (w[1:] < w[:-1]).all()


@pytest.mark.parametrize("k", [0, 1, 5, 37, -3])
def test_shift_is_one_fixed_linear_map(k):
    """PE[pos + k] = M_k PE[pos] for every pos, with the same M_k."""
    d, n = 64, 200
    pe = sinusoidal_encoding(n + abs(k), d, dtype=torch.float64)
    start = max(0, -k)
    before = pe[start : start + n - abs(k)]  # PE[pos]
    after = pe[start + k : start + k + n - abs(k)]  # PE[pos + k]
    m = shift_matrix(k, d)
    torch.testing.assert_close(before @ m.T, after, **TOL64)


@pytest.mark.parametrize("k", [1, 4, 100])
def test_shift_matrix_equals_exponential_of_the_rotation_generator(k):
    """Independent construction: M_k = exp(k G), G block-diagonal [[0, w], [-w, 0]].

    d/dpos (sin(w pos), cos(w pos)) = (w cos, -w sin) = G (sin, cos), so shifting by k is
    the flow of this linear ODE for time k, computed here by torch.linalg.matrix_exp.
    """
    d = 16
    w = inverse_frequencies(d)
    generator = torch.block_diag(
        *[torch.tensor([[0.0, x], [-x, 0.0]], dtype=torch.float64) for x in w.tolist()]
    )
    torch.testing.assert_close(
        shift_matrix(k, d), torch.linalg.matrix_exp(k * generator), atol=1e-9, rtol=1e-9
    )


def test_shift_matrices_are_rotations_that_compose(gen):
    d = 32
    a, b = shift_matrix(3, d), shift_matrix(11, d)
    torch.testing.assert_close(a @ a.T, torch.eye(d, dtype=torch.float64), **TOL64)
    torch.testing.assert_close(a @ b, shift_matrix(14, d), **TOL64)


def test_dot_product_of_encodings_depends_only_on_distance():
    """PE[p] . PE[q] = sum_i cos(w_i (p - q)): a closed form with no p or q alone in it."""
    d, n = 128, 300
    pe = sinusoidal_encoding(n, d, dtype=torch.float64)
    sim = pe @ pe.T
    offsets = torch.arange(n)[:, None] - torch.arange(n)[None, :]  # p - q
    closed = torch.cos(offsets[..., None].double() * inverse_frequencies(d)).sum(-1)
    torch.testing.assert_close(sim, closed, atol=1e-9, rtol=1e-9)


def test_xor_instead_of_power_gives_one_frequency():
    """Python's `^` is XOR: 10000 ^ 0 == 10000, so every pair gets the same denominator."""
    rows = xor_denominators(8)
    assert [r[1] for r in rows] == pytest.approx([1, 10, 100, 1000])
    assert [r[2] for r in rows] == [10000] * 4
    pe = xor_encoding(128, 64)
    assert torch.linalg.matrix_rank(pe).item() == 2  # one sin column and one cos column
    # Neighbouring positions: sum over 32 pairs of (2 sin(w/2))^2 with w = 1/10000 each,
    # a distance of sqrt(32) / 10000; the correct table keeps them about 1 apart.
    xor_step = (pe[1:] - pe[:-1]).norm(dim=-1)
    torch.testing.assert_close(
        xor_step, torch.full_like(xor_step, math.sqrt(32) / 1e4), rtol=1e-6, atol=0
    )
    good = sinusoidal_encoding(128, 64, dtype=torch.float64)
    assert (good[1:] - good[:-1]).norm(dim=-1).min() > 0.5


# --- learned positions -----------------------------------------------------------------------


def test_learned_embedding_adds_one_trainable_row_per_position(gen):
    emb = LearnedPositionalEmbedding(max_len=12, d_model=8)
    x = torch.randn(2, 5, 8, generator=gen)
    out = emb(x)
    torch.testing.assert_close(out - x, emb.table.weight[:5].expand(2, 5, 8))
    out.sum().backward()
    grad = emb.table.weight.grad
    assert torch.equal(
        grad[:5], torch.full((5, 8), 2.0)
    )  # batch of 2, each position once
    assert torch.equal(grad[5:], torch.zeros(7, 8))  # unused positions get no gradient
    assert sum(p.numel() for p in emb.parameters()) == 12 * 8


def test_learned_embedding_refuses_positions_beyond_its_table():
    emb = LearnedPositionalEmbedding(max_len=4, d_model=2)
    with pytest.raises(ValueError, match="max_len"):
        emb(torch.zeros(1, 5, 2))


# --- rotary position embeddings --------------------------------------------------------------


def _rope_complex(x, positions, base=10000.0):
    """Independent formulation (RoFormer eq. 13): pairs as complex numbers times e^{i pos w}."""
    d = x.size(-1)
    w = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    phase = torch.polar(
        torch.ones(len(positions), d // 2, dtype=torch.float64),
        positions.double()[:, None] * w,
    )
    return torch.view_as_real(z * phase).reshape(x.shape)


@pytest.mark.parametrize("shape", [(6, 8), (2, 3, 10, 16), (1, 5, 64)])
def test_rope_matches_complex_multiplication(gen, shape):
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    positions = torch.randint(0, 1000, (shape[-2],), generator=gen)
    torch.testing.assert_close(
        apply_rope(x, positions), _rope_complex(x, positions), **TOL64
    )


def test_rope_preserves_norms_and_is_identity_at_position_zero(gen):
    x = torch.randn(4, 7, 32, generator=gen, dtype=torch.float64)
    rotated = apply_rope(x, torch.arange(7))
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1), **TOL64)
    torch.testing.assert_close(rotated[:, 0], x[:, 0], atol=0, rtol=0)


def test_rope_score_depends_only_on_the_offset(gen):
    """q at m, k at n: (R_m q) . (R_n k) is unchanged when m and n move together."""
    d = 32
    q = torch.randn(d, generator=gen, dtype=torch.float64)
    k = torch.randn(d, generator=gen, dtype=torch.float64)

    def score(m: int, n: int) -> float:
        rq = apply_rope(q[None], torch.tensor([m]))[0]
        rk = apply_rope(k[None], torch.tensor([n]))[0]
        return (rq @ rk).item()

    for m, n in [(0, 0), (5, 2), (2, 5), (17, 40)]:
        for shift in (1, 13, 500):
            assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-9)
    # ... and it does depend on the offset, else RoPE would carry no information
    assert abs(score(0, 3) - score(0, 0)) > 1e-3


def test_rope_score_matrix_is_toeplitz(gen):
    """For whole sequences: S[m, n] = (R_m q_m) . (R_n k_n) with q_m = q, k_n = k is constant along diagonals."""
    n, d = 20, 16
    q = torch.randn(d, generator=gen, dtype=torch.float64).expand(n, d)
    k = torch.randn(d, generator=gen, dtype=torch.float64).expand(n, d)
    pos = torch.arange(n)
    s = apply_rope(q, pos) @ apply_rope(k, pos).T  # (N, N)
    for offset in range(-n + 1, n):
        diag = torch.diagonal(s, offset)
        torch.testing.assert_close(diag, diag[:1].expand_as(diag), **TOL64)


def test_rope_float32_on_large_positions_stays_close_to_float64(gen):
    """Angles and their sines are computed in float64 before the cast: position 10^5 stays accurate.

    In float32 the angle 10^5 itself would carry an error of ~4e-3 (half a unit in the last place).
    """
    x = torch.randn(3, 16, generator=gen)
    pos = torch.tensor([0, 99_999, 100_000])
    torch.testing.assert_close(
        apply_rope(x, pos).double(), _rope_complex(x, pos), atol=1e-5, rtol=1e-5
    )
