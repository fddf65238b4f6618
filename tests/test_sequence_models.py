"""Chapter 1: the three layers, their cost formulas and the gradient-reach measurement."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from snippets.sequence_models import (
    KINDS,
    LSTM,
    Convolution,
    Recurrent,
    SelfAttention,
    forget_bias,
    gradient_reach,
    layers_to_connect,
    make_layer,
    multiply_adds,
    orthogonal_recurrence,
    path_length,
    sequential_steps,
    tanh_rnn,
)

F64 = dict(atol=1e-12, rtol=1e-10)  # float64 sums of a few hundred terms


def test_tanh_rnn_loop_equals_torch_rnn(gen):
    rnn = nn.RNN(5, 7, batch_first=True).double()
    x = torch.randn(3, 11, 5, generator=gen, dtype=torch.float64)
    expected, _ = rnn(x)
    ours = tanh_rnn(
        x, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
    )
    torch.testing.assert_close(ours, expected, **F64)


@pytest.mark.parametrize("kind", KINDS)
def test_every_layer_maps_b_n_d_to_b_n_d(gen, kind):
    layer = make_layer(kind, 8)
    x = torch.randn(2, 13, 8, generator=gen)
    assert layer(x).shape == (2, 13, 8)


@pytest.mark.parametrize("kind", KINDS)
def test_every_layer_is_causal(gen, kind):
    """Changing input t changes no output before t (exactly: the values are not used)."""
    layer = make_layer(kind, 6)
    x = torch.randn(1, 9, 6, generator=gen)
    y = layer(x.clone())
    x[:, 5] += 1.0
    y2 = layer(x)
    assert torch.equal(y[:, :5], y2[:, :5])
    assert not torch.allclose(y[:, 5:], y2[:, 5:])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n, d", [(7, 4), (32, 16)])
def test_multiply_adds_match_pytorchs_flop_counter(gen, kind, n, d):
    """PyTorch's FlopCounterMode counts 2 FLOPs per multiply-add of every matrix product."""
    layer = make_layer(kind, d, kernel_size=3)
    x = torch.randn(1, n, d, generator=gen)
    with FlopCounterMode(display=False) as counter:
        layer(x)
    assert counter.get_total_flops() == 2 * multiply_adds(kind, n, d, kernel_size=3)


def test_sequential_steps():
    assert sequential_steps("recurrent", 100) == 100
    assert sequential_steps("convolution", 100) == 1
    assert sequential_steps("self-attention", 100) == 1


@pytest.mark.parametrize("n", [2, 5, 8, 17])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_layers_to_connect_is_the_smallest_stack_whose_receptive_field_reaches(n, k):
    """Brute force: stack L causal convolutions and ask autograd whether y_{n-1} sees x_0."""
    torch.manual_seed(n * 10 + k)
    d = 3
    x = torch.randn(n, d, dtype=torch.float64)

    def reaches_first(num_layers: int) -> bool:
        stack = nn.Sequential(*(Convolution(d, k) for _ in range(num_layers))).double()
        return gradient_reach(stack, x)[0].item() > 0

    needed = layers_to_connect("convolution", n, k)
    assert reaches_first(needed)
    if needed > 1:
        assert not reaches_first(needed - 1)


@pytest.mark.parametrize("layer_cls", [Recurrent, SelfAttention])
def test_one_recurrent_or_attention_layer_connects_the_ends(gen, layer_cls):
    layer = layer_cls(4).double()
    x = torch.randn(10, 4, generator=gen, dtype=torch.float64)
    assert gradient_reach(layer, x)[0] > 0
    assert (
        layers_to_connect("recurrent", 10)
        == layers_to_connect("self-attention", 10)
        == 1
    )


@pytest.mark.parametrize("layer_cls", [Recurrent, LSTM, SelfAttention])
def test_gradient_reach_equals_the_full_autograd_jacobian(gen, layer_cls):
    """Against torch.autograd.functional.jacobian, one output component at a time."""
    layer = layer_cls(5).double()
    x = torch.randn(8, 5, generator=gen, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda z: layer(z[None])[0, -1], x)
    expected = jac.pow(2).sum(dim=(0, 2)).sqrt()  # jac: (d_out, N, d_in)
    torch.testing.assert_close(gradient_reach(layer, x), expected, **F64)


class LinearRNN(nn.Module):
    """h_t = W h_{t-1} + U x_t: its Jacobian d h_{n-1} / d x_t is W^(n-1-t) U in closed form."""

    def __init__(self, w: torch.Tensor, u: torch.Tensor) -> None:
        super().__init__()
        self.w, self.u = w, u

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, d_in) -> (B, N, d)
        h = x.new_zeros(x.size(0), self.w.size(0))
        states = []
        for t in range(x.size(1)):
            h = h @ self.w.T + x[:, t] @ self.u.T
            states.append(h)
        return torch.stack(states, dim=1)


def test_gradient_reach_of_a_linear_rnn_is_the_norm_of_w_power_times_u(gen):
    n, d, d_in = 12, 4, 3
    w = 0.5 * torch.randn(d, d, generator=gen, dtype=torch.float64)
    u = torch.randn(d, d_in, generator=gen, dtype=torch.float64)
    x = torch.randn(n, d_in, generator=gen, dtype=torch.float64)
    expected = torch.stack(
        [
            torch.linalg.matrix_norm(torch.linalg.matrix_power(w, n - 1 - t) @ u)
            for t in range(n)
        ]
    )
    torch.testing.assert_close(gradient_reach(LinearRNN(w, u), x), expected, **F64)


def test_gradient_reach_of_a_contracting_linear_rnn_decays_geometrically(gen):
    """W = r * (orthogonal matrix): ||W^m U||_F = r^m ||U||_F exactly, a straight line in log."""
    n, d, r = 30, 4, 0.8
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    u = torch.randn(d, d, generator=gen, dtype=torch.float64)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    reach = gradient_reach(LinearRNN(r * q, u), x).flip(0)  # index = distance
    expected = r ** torch.arange(n, dtype=torch.float64) * torch.linalg.matrix_norm(u)
    torch.testing.assert_close(reach, expected, **F64)


def test_attention_reach_is_flat_when_the_weights_are_uniform(gen):
    """With W_Q = 0 every score is 0, so y_{n-1} = W_O (mean of v_t) + b: d y/d x_t = W_O W_V / n."""
    n, d = 20, 6
    layer = SelfAttention(d).double()
    with torch.no_grad():
        layer.w_q.weight.zero_()
        layer.w_q.bias.zero_()
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    w_o, w_v = layer.w_o.weight.detach(), layer.w_v.weight.detach()
    expected = torch.linalg.matrix_norm(w_o @ w_v) / n
    torch.testing.assert_close(gradient_reach(layer, x), expected.expand(n), **F64)


def test_orthogonal_recurrence_makes_w_hh_orthogonal():
    torch.manual_seed(0)
    w = orthogonal_recurrence(Recurrent(8)).rnn.weight_hh_l0.detach().double()
    torch.testing.assert_close(
        w @ w.T, torch.eye(8, dtype=torch.float64), atol=1e-6, rtol=0
    )


def test_forget_bias_opens_the_forget_gate_only():
    """At zero input and state the forget gate is sigmoid(total bias) = sigmoid(1)."""
    torch.manual_seed(0)
    layer = LSTM(4)
    before = [
        p.detach().clone() for p in (layer.lstm.bias_ih_l0, layer.lstm.bias_hh_l0)
    ]
    forget_bias(layer, 1.0)
    b_ih, b_hh = layer.lstm.bias_ih_l0.detach(), layer.lstm.bias_hh_l0.detach()
    assert torch.equal((b_ih + b_hh)[4:8], torch.ones(4))
    for old, new in zip(before, (b_ih, b_hh), strict=True):  # gates i, g, o untouched
        assert torch.equal(old[:4], new[:4]) and torch.equal(old[8:], new[8:])


def test_recurrent_reach_decays_by_orders_of_magnitude_and_attention_does_not():
    """The chapter's figure in miniature, with fixed seeds: at distance 60 the default tanh RNN
    has lost more than 10 orders of magnitude; attention stays within a factor 10 of distance 1.
    (PyTorch's default W_hh has spectral radius about 1/sqrt(3) and tanh' <= 1, so the norm
    falls roughly like (1/sqrt(3))^60 ~ 1e-14; the margins are wide.)"""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 16, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    rnn = gradient_reach(Recurrent(16).double(), x).flip(0)
    attn = gradient_reach(SelfAttention(16).double(), x).flip(0)
    assert rnn[60] < 1e-10 * rnn[1]
    assert 0.1 < attn[60] / attn[1] < 10


@pytest.mark.parametrize("n", [2, 7, 12])
def test_path_length_of_a_recurrence_is_the_number_of_state_updates(gen, n):
    """Brute force: with W = w I and U = I, d h_{n-1} / d x_0 = w^(n-1) I. The power of w,
    read off the measured reach at two values of w, counts the updates between the ends."""
    d = 3
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    eye = torch.eye(d, dtype=torch.float64)

    def reach_of_first(w: float) -> float:
        return gradient_reach(LinearRNN(w * eye, eye), x)[0].item()

    power = math.log(reach_of_first(0.9) / reach_of_first(0.5)) / math.log(0.9 / 0.5)
    assert power == pytest.approx(path_length("recurrent", n), abs=1e-9)
    assert layers_to_connect("recurrent", n) == 1  # ... in a single layer


def test_path_length_of_convolution_and_attention_is_their_layer_count():
    for n, k in [(2, 3), (17, 3), (100, 5)]:
        assert path_length("convolution", n, k) == layers_to_connect(
            "convolution", n, k
        )
        assert path_length("self-attention", n, k) == 1
