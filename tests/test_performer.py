"""Chapter 11: FAVOR+ random features against the softmax kernel and exact attention."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snippets.attention import scaled_dot_product_attention
from snippets.performer import (
    causal_linear_attention,
    causal_linear_attention_prefix,
    favor_attention,
    gaussian_random_features,
    kernel_relative_mse,
    linear_attention,
    orthogonal_random_features,
    softmax_features,
)

F64 = dict(atol=1e-12, rtol=1e-12)  # float64 round-off on these small sizes is ~1e-15


def test_orthogonal_features_are_orthogonal_within_each_block(gen):
    m, d = 40, 16  # blocks of 16, 16 and 8 rows
    w = orthogonal_random_features(m, d, gen)
    assert w.shape == (m, d)
    unit = w / w.norm(dim=-1, keepdim=True)
    for start in range(0, m, d):
        block = unit[start : start + d]
        torch.testing.assert_close(
            block @ block.T, torch.eye(len(block), dtype=w.dtype), **F64
        )


def test_orthogonal_rows_are_distributed_like_gaussian_rows(gen):
    """Each row ~ N(0, I_d): |w|^2 ~ chi^2(d) (mean d, variance 2d), and w.u ~ N(0, 1)."""
    m, d = 4096, 16
    w = orthogonal_random_features(m, d, gen)
    sq = (w * w).sum(-1)
    # Rows in different blocks are independent, rows in one block nearly so: 5 s.e. of a mean
    # of m chi^2(d) values, sqrt(2d/m), leaves room for that.
    assert abs(sq.mean().item() - d) < 5 * math.sqrt(2 * d / m)
    u = torch.nn.functional.normalize(
        torch.randn(d, generator=gen, dtype=w.dtype), dim=0
    )
    proj = w @ u
    assert abs(proj.mean().item()) < 5 / math.sqrt(m)
    assert abs(proj.var().item() - 1) < 5 * math.sqrt(2 / m)


@pytest.mark.parametrize("orthogonal", [False, True])
def test_kernel_estimate_is_unbiased(gen, orthogonal):
    """The mean of phi(q).phi(k) over many projections approaches exp(q.k / sqrt(d))."""
    d, m, draws = 16, 16, 3000
    q, k = (0.5 * torch.randn(d, generator=gen, dtype=torch.float64) for _ in range(2))
    exact = math.exp(float(q @ k) / math.sqrt(d))  # the reference: no random features
    draw = orthogonal_random_features if orthogonal else gaussian_random_features
    w = torch.stack([draw(m, d, gen) for _ in range(draws)])  # (draws, m, d)
    phi_q = softmax_features(q.reshape(1, 1, d), w)  # (draws, 1, m)
    phi_k = softmax_features(k.reshape(1, 1, d), w)
    assert (phi_q > 0).all() and (phi_k > 0).all()  # positive features, unlike sin/cos
    est = (phi_q * phi_k).sum(-1).flatten()  # (draws,)
    # Standard error: closed form for i.i.d. rows (Var of one feature's product is
    # exact^2 (exp(|x + y|^2) - 1), x, y = q, k / d^(1/4)); orthogonal rows have no larger
    # variance (Choromanski et al., Theorem 2), so the same bound serves both. 4 s.e.: a
    # false alarm has probability 6e-5 for a fixed seed that passes once.
    x, y = q / d**0.25, k / d**0.25
    se = exact * math.sqrt((math.exp(float(((x + y) ** 2).sum())) - 1) / (m * draws))
    assert abs(est.mean().item() - exact) < 4 * se
    # ... and the bound is not vacuous: the sample agrees with the closed form within 30%.
    assert 0.7 < est.std().item() / math.sqrt(draws) / se < 1.3


def test_one_feature_variance_matches_the_closed_form(gen):
    """Var(phi_w(x) phi_w(y)) = exp(2 x.y) (exp(|x + y|^2) - 1) for w ~ N(0, I)."""
    d, n = 8, 40_000
    q, k = (0.4 * torch.randn(d, generator=gen, dtype=torch.float64) for _ in range(2))
    w = torch.randn(
        n, 1, d, generator=gen, dtype=torch.float64
    )  # n draws of one feature
    est = softmax_features(q.reshape(1, 1, d), w) * softmax_features(
        k.reshape(1, 1, d), w
    )
    est = est.flatten()
    x, y = q / d**0.25, k / d**0.25
    theory = math.exp(2 * float(x @ y)) * (math.exp(float(((x + y) ** 2).sum())) - 1)
    # s.e. of a sample variance: sqrt((mu_4 - sigma^4) / n), mu_4 estimated from the sample.
    centred = est - est.mean()
    se = math.sqrt(((centred**4).mean().item() - est.var().item() ** 2) / n)
    assert abs(est.var().item() - theory) < 5 * se


def _pair_with_z_sq(
    d: int, z_sq: float, gen: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """x, y in R^d (already divided by d^(1/4)) in random directions, with |x + y|^2 = z_sq."""
    x, y = (torch.randn(d, generator=gen, dtype=torch.float64) for _ in range(2))
    scale = math.sqrt(z_sq) / (x + y).norm()
    return x * scale, y * scale


def _kernel_sq_errors(
    x: torch.Tensor, y: torch.Tensor, m: int, draws: int, orthogonal: bool, gen
) -> torch.Tensor:
    """(estimate / exp(x.y) - 1)^2 for `draws` independent projections of m rows.

    Orthogonal draws: whole blocks of d rows, drawn in one call (blocks are independent),
    cut to m rows per draw; m must be below d or a multiple of it.
    """
    d = x.numel()
    if orthogonal:
        per_draw = max(m, d)
        w = orthogonal_random_features(draws * per_draw, d, gen)
        w = w.reshape(draws, per_draw, d)[:, :m]
    else:
        w = gaussian_random_features(draws * m, d, gen).reshape(draws, m, d)
    # phi(x).phi(y) = mean over rows of exp(w.(x + y) - |x|^2/2 - |y|^2/2); exact = exp(x.y)
    log_ratio = w @ (x + y) - 0.5 * (x + y).dot(x + y)
    return (torch.exp(log_ratio).mean(-1) - 1) ** 2


@pytest.mark.parametrize(("d", "m", "z_sq"), [(8, 5, 0.5), (8, 8, 0.5), (8, 24, 1.0)])
def test_kernel_mse_formula_matches_monte_carlo(gen, d, m, z_sq):
    """kernel_relative_mse, i.i.d. and orthogonal (one partial block, one block, three
    blocks), against the mean squared error of 10,000 seeded draws, within 4 s.e. (small
    |x + y|^2 keeps the squared errors' tails light enough for the sample s.e. to hold)."""
    draws = 10_000
    x, y = _pair_with_z_sq(d, z_sq, gen)
    for orthogonal in (False, True):
        sq = _kernel_sq_errors(x, y, m, draws, orthogonal, gen)
        se = sq.std().item() / math.sqrt(draws)
        theory = kernel_relative_mse(z_sq, m, d, orthogonal)
        assert abs(sq.mean().item() - theory) < 4 * se


def test_orthogonal_features_lower_the_kernel_mse(gen):
    """Theorem 2's effect, measured: at |x + y|^2 = 1, d = m = 16, 10,000 seeded draws give
    an orthogonal MSE below 0.9 times the i.i.d. one. The exact ratio is 0.78; over 40 seeds
    the measured one had a standard deviation of 0.025, so the margin is about 5 of them."""
    d, m, draws = 16, 16, 10_000
    x, y = _pair_with_z_sq(d, 1.0, gen)
    mse = {
        o: _kernel_sq_errors(x, y, m, draws, o, gen).mean().item()
        for o in (False, True)
    }
    assert mse[True] < 0.9 * mse[False]


@pytest.mark.parametrize("d", [2, 3, 16, 64])
def test_kernel_mse_obeys_theorem_2(d):
    """Choromanski et al. (2021), Theorem 2, for m <= d orthogonal rows:
    MSE_ort <= MSE_iid - 2(m-1)/(m(d+2)) (SM - exp(-(|x|^2+|y|^2)/2))^2; divided by SM^2 the
    gap is 2(m-1)/(m(d+2)) (1 - exp(-|x+y|^2/2))^2. Strict for m >= 2 and x + y != 0."""
    for m in sorted({2, d // 2 + 1, d}):
        for z_sq in (1e-3, 0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
            iid = kernel_relative_mse(z_sq, m, d, orthogonal=False)
            orth = kernel_relative_mse(z_sq, m, d, orthogonal=True)
            gap = 2 * (m - 1) / (m * (d + 2)) * (1 - math.exp(-z_sq / 2)) ** 2
            assert orth <= iid - gap + 1e-12 * iid
            assert orth < iid


def test_kernel_mse_rejects_bad_arguments():
    with pytest.raises(ValueError, match="m must"):
        kernel_relative_mse(1.0, 0, 8, orthogonal=True)
    with pytest.raises(ValueError, match="z_sq"):
        kernel_relative_mse(-1.0, 4, 8, orthogonal=True)
    with pytest.raises(ValueError, match="d must"):
        kernel_relative_mse(1.0, 4, 0, orthogonal=True)


@pytest.mark.parametrize("orthogonal", [False, True])
def test_error_falls_like_one_over_sqrt_m(orthogonal):
    """Relative error against exact softmax attention: log-log slope near -1/2 in m.

    Small inputs (|q|^2/sqrt(d) about 0.25) keep the estimator in its asymptotic regime. Each
    point is the RMS of 16 draws: its log has s.e. about 1/sqrt(2*16) = 0.18, which gives the
    fitted slope over m = 32..2048 a s.e. near 0.04; the tolerance is 0.1, 2.5 s.e.
    """
    d, n, draws = 16, 64, 16
    g = torch.Generator().manual_seed(11)
    q, k = (
        0.25 * torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(2)
    )
    v = torch.randn(n, d, generator=g, dtype=torch.float64)
    exact, _ = scaled_dot_product_attention(q, k, v)
    ms = [32, 128, 512, 2048]
    rms = []
    for m in ms:
        errs = [
            (
                (
                    favor_attention(q, k, v, m, orthogonal=orthogonal, generator=g)
                    - exact
                ).norm()
                / exact.norm()
            ).item()
            for _ in range(draws)
        ]
        rms.append(math.sqrt(np.mean(np.square(errs))))
    slope = np.polyfit(np.log(ms), np.log(rms), 1)[0]
    assert -0.6 < slope < -0.4
    assert rms[-1] < 0.05  # and it does approach exact attention


def _quadratic(qf: torch.Tensor, kf: torch.Tensor, v: torch.Tensor, causal: bool):
    """The O(N^2) form of the same features: (Q'K'^T, masked) V, each row normalised."""
    a = qf @ kf.transpose(-2, -1)
    if causal:
        a = a * torch.ones(a.shape[-2:], dtype=torch.bool).tril()
    return (a @ v) / a.sum(-1, keepdim=True)


def test_linear_form_equals_quadratic_form(gen):
    qf, kf = (
        torch.rand(2, 3, 30, 8, generator=gen, dtype=torch.float64) for _ in range(2)
    )
    v = torch.randn(2, 3, 30, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(
        linear_attention(qf, kf, v), _quadratic(qf, kf, v, False), **F64
    )


@pytest.mark.parametrize("chunk_size", [1, 7, 50, 64])
def test_causal_prefix_sums_equal_masked_quadratic_form(gen, chunk_size):
    qf, kf = (
        torch.rand(2, 50, 8, generator=gen, dtype=torch.float64) for _ in range(2)
    )
    v = torch.randn(2, 50, 5, generator=gen, dtype=torch.float64)
    expected = _quadratic(qf, kf, v, causal=True)
    torch.testing.assert_close(
        causal_linear_attention(qf, kf.log(), v, chunk_size), expected, **F64
    )
    torch.testing.assert_close(
        causal_linear_attention_prefix(qf, kf, v), expected, **F64
    )


@pytest.mark.parametrize("causal", [False, True])
def test_favor_equals_quadratic_form_of_its_features(gen, causal):
    """favor_attention, with its max-subtraction for stability, is exactly the ratio of the
    unstabilised features softmax_features(q), softmax_features(k) for the same projection."""
    q, k, v = (
        torch.randn(2, 4, 33, 16, generator=gen, dtype=torch.float64) for _ in range(3)
    )
    w = orthogonal_random_features(24, 16, gen)
    out = favor_attention(q, k, v, 24, causal=causal, projection=w)
    expected = _quadratic(softmax_features(q, w), softmax_features(k, w), v, causal)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)


def test_causal_output_ignores_the_future(gen):
    q, k, v = (torch.randn(1, 40, 8, generator=gen) for _ in range(3))
    w = orthogonal_random_features(32, 8, gen)
    out = favor_attention(q, k, v, 32, causal=True, projection=w)
    k2, v2 = k.clone(), v.clone()
    k2[:, 25:] += 3.0
    v2[:, 25:] -= 5.0
    out2 = favor_attention(q, k2, v2, 32, causal=True, projection=w)
    # Not bit-equal: the shared max subtracted from the keys moves with the future keys.
    torch.testing.assert_close(out2[:, :25], out[:, :25], atol=1e-5, rtol=1e-5)


def test_causal_running_max_keeps_early_prefixes_alive(gen):
    """Early keys with tiny features, later keys with large ones: one shared scale for all
    keys would underflow every early prefix in float32 (0/0); the running maximum does not.

    Reference: the unstabilised quadratic form of the same features in float64.
    """
    d, n = 16, 128
    c = torch.nn.functional.normalize(
        torch.randn(d, generator=gen, dtype=torch.float64), dim=0
    )
    scale = (
        d**0.25
    )  # so that q / d^(1/4), the vector inside the features, is 20 c + noise
    q = scale * (20 * c + 0.3 * torch.randn(n, d, generator=gen, dtype=torch.float64))
    late = torch.nn.functional.normalize(
        torch.randn(64, d, generator=gen, dtype=torch.float64), dim=-1
    )
    early = 20 * c + 0.3 * torch.randn(64, d, generator=gen, dtype=torch.float64)
    k = scale * torch.cat([early, 3 * late])
    v = torch.randn(n, d, generator=gen, dtype=torch.float64)
    w = orthogonal_random_features(32, d, gen)
    expected = _quadratic(
        softmax_features(q, w), softmax_features(k, w), v, causal=True
    )
    out = favor_attention(
        q.float(), k.float(), v.float(), 32, causal=True, projection=w
    )
    # float32 with exponents near 100: about 1e-5 absolute on outputs of size ~1.
    torch.testing.assert_close(out.double(), expected, atol=1e-4, rtol=1e-4)
    # The case is not vacuous: with one shared key scale the first 64 prefixes are all 0.
    log_k = softmax_features(k, w).log()  # float64: about -160 early, +5 late
    shared = torch.exp((log_k - log_k.amax()).float())
    assert (shared[:64] == 0).all()


def test_shapes_and_one_projection_for_all_heads(gen):
    q, k = (torch.randn(2, 3, 10, 8, generator=gen) for _ in range(2))
    v = torch.randn(2, 3, 10, 5, generator=gen)
    w = gaussian_random_features(16, 8, gen)
    out = favor_attention(q, k, v, 16, projection=w)
    assert out.shape == (2, 3, 10, 5)
    one = favor_attention(q[1, 2], k[1, 2], v[1, 2], 16, projection=w)
    torch.testing.assert_close(out[1, 2], one)
