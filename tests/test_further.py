"""Chapter 16: relative attention, 1-D deformable attention and a selective SSM, each
against a brute-force computation, a PyTorch function or a closed form."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from snippets.further import (
    DeformableAttention1d,
    SelectiveSSM,
    linear_sample,
    relative_attention,
    relative_logits_direct,
    relative_logits_skewed,
    scan_parallel,
    scan_recurrent,
    selective_scan,
    ssm_matrix,
)

F64 = dict(atol=1e-12, rtol=1e-12)  # float64 sums of a few hundred terms
F32 = dict(atol=1e-5, rtol=1e-5)  # float32 against PyTorch's own kernels


# ------------------------------------------------------------------------ relative attention


def _relative_logits_loop(q: torch.Tensor, e_rel: torch.Tensor) -> torch.Tensor:
    """Brute force: S[i, j] = q_i . e_(j - i), e_rel row r = distance r - (n - 1)."""
    n = q.size(-2)
    s = torch.zeros(*q.shape[:-1], n, dtype=q.dtype)
    for i in range(n):
        for j in range(i + 1):
            s[..., i, j] = (q[..., i, :] * e_rel[j - i + n - 1]).sum(-1)
    return s


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (2, 3, 9, 4), (16, 8)])
def test_skewed_and_gathered_relative_logits_equal_brute_force(gen, shape):
    *batch, n, d = shape
    q = torch.randn(*batch, n, d, generator=gen, dtype=torch.float64)
    e_rel = torch.randn(n, d, generator=gen, dtype=torch.float64)
    expected = _relative_logits_loop(q, e_rel)
    torch.testing.assert_close(relative_logits_skewed(q, e_rel), expected, **F64)
    torch.testing.assert_close(relative_logits_direct(q, e_rel), expected, **F64)


def test_skew_puts_distance_j_minus_i_in_cell_i_j():
    n = 6
    q = torch.ones(n, 1, dtype=torch.float64)
    e_rel = torch.arange(-(n - 1), 1, dtype=torch.float64).unsqueeze(-1)  # distances
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    expected = torch.where(j <= i, (j - i).double(), 0.0)
    assert torch.equal(relative_logits_skewed(q, e_rel), expected)


def test_relative_logits_depend_only_on_the_offset_for_equal_queries(gen):
    """All queries equal: S_rel is constant along each diagonal (a Toeplitz matrix)."""
    n, d = 7, 5
    q = torch.randn(1, d, generator=gen, dtype=torch.float64).expand(n, d)
    s = relative_logits_skewed(q, torch.randn(n, d, generator=gen, dtype=torch.float64))
    for offset in range(n):
        diagonal = torch.diagonal(s, offset=-offset)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal), **F64)


def test_relative_attention_matches_torch_sdpa_with_an_additive_bias(gen):
    b, h, n, d = 2, 3, 10, 8
    q, k, v = (torch.randn(b, h, n, d, generator=gen) for _ in range(3))
    e_rel = torch.randn(n, d, generator=gen)
    out, weights = relative_attention(q, k, v, e_rel)
    # torch computes softmax(q k^T / sqrt(d) + bias) v; our bias is S_rel / sqrt(d).
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    bias = (_relative_logits_loop(q, e_rel) / math.sqrt(d)).masked_fill(
        ~causal, float("-inf")
    )
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    torch.testing.assert_close(out, expected, **F32)
    assert torch.all(weights.triu(1) == 0)  # causal: no weight on the future


# ------------------------------------------------------------------------ deformable attention


def test_linear_sample_matches_grid_sample(gen):
    """grid_sample with align_corners=True maps x = -1 .. 1 onto positions 0 .. N - 1."""
    b, n, d, m = 3, 11, 4, 40
    values = torch.randn(b, n, d, generator=gen, dtype=torch.float64)
    positions = torch.rand(b, m, generator=gen, dtype=torch.float64) * (n + 3) - 2
    grid = torch.stack([2 * positions / (n - 1) - 1, torch.zeros_like(positions)], -1)
    expected = F.grid_sample(
        values.transpose(1, 2).unsqueeze(2),  # (B, d, 1, N): a one-row image
        grid.unsqueeze(1),  # (B, 1, M, 2)
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )[:, :, 0].transpose(1, 2)
    torch.testing.assert_close(linear_sample(values, positions), expected, **F64)


def test_linear_sample_integers_read_exactly_and_halves_average(gen):
    values = torch.randn(1, 8, 3, generator=gen, dtype=torch.float64)
    integers = torch.tensor([[0.0, 3.0, 7.0]], dtype=torch.float64)
    assert torch.equal(linear_sample(values, integers), values[:, [0, 3, 7]])
    halves = torch.tensor([[0.5, 4.5]], dtype=torch.float64)
    expected = torch.stack([values[0, :2].mean(0), values[0, 4:6].mean(0)])[None]
    torch.testing.assert_close(linear_sample(values, halves), expected, **F64)
    outside = torch.tensor([[-1.0, 8.0, -0.5]], dtype=torch.float64)
    expected = torch.stack([torch.zeros(3), torch.zeros(3), values[0, 0] / 2])[None]
    torch.testing.assert_close(linear_sample(values, outside), expected, **F64)


def test_linear_sample_gradient_is_the_local_slope(gen):
    values = torch.randn(1, 9, 1, generator=gen, dtype=torch.float64)
    positions = torch.tensor([[0.3, 2.5, 6.9]], dtype=torch.float64, requires_grad=True)
    linear_sample(values, positions).sum().backward()
    left = positions.detach().floor().long()[0]
    slope = values[0, left + 1, 0] - values[0, left, 0]
    torch.testing.assert_close(positions.grad[0], slope, **F64)


def _identity_deformable(
    offsets: list[list[float]], d_model: int
) -> DeformableAttention1d:
    """A module whose projections are identities and whose offsets are fixed per head."""
    h, k = len(offsets), len(offsets[0])
    module = DeformableAttention1d(d_model, h, k).double()
    with torch.no_grad():
        for linear in (module.value, module.out):
            linear.weight.copy_(torch.eye(d_model))
            linear.bias.zero_()
        module.offsets.weight.zero_()
        module.offsets.bias.copy_(torch.tensor(offsets).flatten())
        module.weights.weight.zero_()  # equal weights: a plain average of the reads
        module.weights.bias.zero_()
    return module


def test_deformable_attention_averages_the_values_at_its_offsets(gen):
    values = torch.randn(2, 12, 4, generator=gen, dtype=torch.float64)
    query = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    reference = torch.tensor([[3.0, 5.0, 8.0], [2.0, 4.0, 9.0]], dtype=torch.float64)
    # head 0 (channels 0-1) reads p - 1 and p + 2; head 1 (channels 2-3) reads p + 0.5 twice
    module = _identity_deformable([[-1.0, 2.0], [0.5, 0.5]], d_model=4)
    out, positions, weights = module(query, reference, values)
    p = reference.long()
    batch = torch.arange(2)[:, None]
    head0 = (values[batch, p - 1, :2] + values[batch, p + 2, :2]) / 2
    head1 = (values[batch, p, 2:] + values[batch, p + 1, 2:]) / 2
    torch.testing.assert_close(out, torch.cat([head0, head1], dim=-1), **F64)
    assert positions.shape == weights.shape == (2, 3, 2, 2)
    torch.testing.assert_close(
        weights.sum(-1), torch.ones(2, 3, 2, dtype=torch.float64)
    )


def test_deformable_attention_starts_with_spread_points():
    module = DeformableAttention1d(d_model=8, num_heads=2, num_points=3)
    _, positions, _ = module(
        torch.randn(1, 1, 8), torch.tensor([[10.0]]), torch.randn(1, 20, 8)
    )
    expected = torch.tensor([[11.0, 12.0, 13.0], [9.0, 8.0, 7.0]])  # +-1, +-2, +-3
    torch.testing.assert_close(positions[0, 0], expected)


# ------------------------------------------------------------------------ state-space model


def _scan_scalar_loop(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h_t = a_t h_(t-1) + b_t, one scalar at a time, independent of the snippet's loop."""
    out = torch.empty_like(b)
    for index in torch.cartesian_prod(
        *(torch.arange(s) for s in (b.size(0), *b.shape[2:]))
    ):
        bi, rest = int(index[0]), tuple(int(i) for i in index[1:])
        h = 0.0
        for t in range(b.size(1)):
            h = a[(bi, t, *rest)].item() * h + b[(bi, t, *rest)].item()
            out[(bi, t, *rest)] = h
    return out


@pytest.mark.parametrize("n", [1, 2, 7, 16, 33])
def test_parallel_and_recurrent_scans_equal_a_scalar_loop(gen, n):
    a = torch.rand(2, n, 3, 2, generator=gen, dtype=torch.float64)
    b = torch.randn(2, n, 3, 2, generator=gen, dtype=torch.float64)
    expected = _scan_scalar_loop(a, b)
    torch.testing.assert_close(scan_recurrent(a, b), expected, **F64)
    torch.testing.assert_close(scan_parallel(a, b), expected, **F64)


def test_constant_ssm_has_the_geometric_closed_form():
    """D = N = 1, A = -1, B = C = 1, delta and x constant: y_t = delta (1 - a^(t+1)) / (1 - a)."""
    n, delta = 20, 0.3
    a = math.exp(-delta)
    ones = torch.ones(1, n, 1, dtype=torch.float64)
    y = selective_scan(
        ones, delta * ones, -torch.ones(1, 1, dtype=torch.float64), ones, ones
    )
    t = torch.arange(n, dtype=torch.float64)
    torch.testing.assert_close(y[0, :, 0], delta * (1 - a ** (t + 1)) / (1 - a), **F64)


def test_matrix_form_equals_the_recurrence(gen):
    torch.manual_seed(0)
    model = SelectiveSSM(d_model=5, d_state=3).double()
    x = torch.randn(2, 24, 5, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x, scan=scan_recurrent)
        torch.testing.assert_close(model(x, scan=scan_parallel), expected, **F64)
        m = ssm_matrix(*model.parts(x))  # (B, D, n, n)
    assert torch.all(m.triu(1) == 0)  # causal
    torch.testing.assert_close(torch.einsum("bdts,bsd->btd", m, x), expected, **F64)


def test_selective_ssm_is_causal(gen):
    torch.manual_seed(0)
    model = SelectiveSSM(d_model=4, d_state=2).double()
    x = torch.randn(1, 16, 4, generator=gen, dtype=torch.float64)
    changed = x.clone()
    changed[:, 10:] += 1.0
    with torch.no_grad():
        y, y_changed = model(x), model(changed)
    assert torch.equal(y[:, :10], y_changed[:, :10])
    assert not torch.allclose(y[:, 10:], y_changed[:, 10:])
