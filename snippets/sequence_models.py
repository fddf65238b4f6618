"""Three ways for one position of a sequence to use another one.

Recurrence, convolution and self-attention, compared in chapter 1 on what
"Attention Is All You Need" (Table 1) compares: the work a layer does, how
many of its steps must run one after another, and how many steps separate two
positions. Every layer maps `(B, N, d)` to `(B, N, d)` and is causal: position
t sees positions 0..t only, so all three can be asked what the last position
knows about the first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snippets import checks
from snippets.attention import scaled_dot_product_attention
from snippets.masks import causal_mask

Kind = Literal["recurrent", "convolution", "self-attention"]
KINDS: tuple[Kind, ...] = ("recurrent", "convolution", "self-attention")


# --8<-- [start:recurrence]
def tanh_rnn(
    x: Tensor,  # (B, N, d_in)
    w_ih: Tensor,  # (d, d_in)
    w_hh: Tensor,  # (d, d)
    b_ih: Tensor,  # (d,)
    b_hh: Tensor,  # (d,)
) -> Tensor:
    """All states (B, N, d) of h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

    The loop is the point: step t needs h_{t-1}, so the N steps run one after
    another however many processors there are. `torch.nn.RNN` runs the same
    loop in compiled code. The state starts at h_{-1} = 0.
    """
    checks.floating("(B, N, d_in)", x=x)
    h = x.new_zeros(x.size(0), w_hh.size(0))  # (B, d)
    states = []
    for t in range(x.size(1)):  # N sequential steps
        h = torch.tanh(x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)  # (B, d)
        states.append(h)
    return torch.stack(states, dim=1)  # (B, N, d)


# --8<-- [end:recurrence]


# --8<-- [start:layers]
class Recurrent(nn.Module):
    """A tanh RNN layer (PyTorch's `nn.RNN`, which computes `tanh_rnn`)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.rnn = nn.RNN(d, d, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, d) -> (B, N, d)
        return self.rnn(x)[0]


class LSTM(nn.Module):
    """An LSTM layer: a gated recurrence whose cell state can carry further."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(d, d, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, d) -> (B, N, d)
        return self.lstm(x)[0]


class Convolution(nn.Module):
    """A causal 1-D convolution: output t mixes inputs t-k+1..t.

    Each of the k offsets has its own d x d matrix.
    """

    def __init__(self, d: int, kernel_size: int = 3) -> None:
        super().__init__()
        checks.positive_ints(d=d, kernel_size=kernel_size)
        self.k = kernel_size
        self.conv = nn.Conv1d(d, d, kernel_size)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, d) -> (B, N, d)
        checks.floating("(B, N, d)", x=x, d=self.conv.in_channels)
        x = x.transpose(1, 2)  # (B, d, N): channels first, as Conv1d wants
        x = F.pad(x, (self.k - 1, 0))  # (B, d, k-1+N): zeros on the left
        return self.conv(x).transpose(1, 2)  # (B, N, d)


class SelfAttention(nn.Module):
    """One head of causal self-attention, with Q, K, V, output projections."""

    def __init__(self, d: int) -> None:
        super().__init__()
        checks.positive_ints(d=d)
        self.w_q, self.w_k = nn.Linear(d, d), nn.Linear(d, d)
        self.w_v, self.w_o = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, d) -> (B, N, d)
        checks.floating("(B, N, d)", x=x, d=self.w_q.in_features)
        causal = causal_mask(x.size(1), x.device)  # (N, N)
        q, k, v = self.w_q(x), self.w_k(x), self.w_v(x)  # (B, N, d) each
        # one step: every position attends to all earlier ones at once
        out, _ = scaled_dot_product_attention(q, k, v, causal)  # (B, N, d)
        return self.w_o(out)


# --8<-- [end:layers]


def make_layer(kind: Kind, d: int, kernel_size: int = 3) -> nn.Module:
    """The layer of this kind and width d, PyTorch's default initialisation."""
    checks.one_of("kind", kind, KINDS)
    if kind == "recurrent":
        return Recurrent(d)
    if kind == "convolution":
        return Convolution(d, kernel_size)
    return SelfAttention(d)


# --8<-- [start:counts]
def multiply_adds(kind: Kind, n: int, d: int, kernel_size: int = 3) -> int:
    """Multiply-adds of one layer's matrix products, one sequence of length n.

    Recurrent: W_ih x_t and W_hh h_{t-1} at every step, 2 n d^2.
    Convolution: k matrices of d x d per position, k n d^2.
    Self-attention: four projections, 4 n d^2, plus the scores Q K^T and the
    weighted sum of the values, n^2 d each. (Causal attention could skip half
    of the n^2 terms; a plain implementation computes them, then masks.)
    """
    checks.one_of("kind", kind, KINDS)
    if kind == "recurrent":
        return 2 * n * d * d
    if kind == "convolution":
        return kernel_size * n * d * d
    return 4 * n * d * d + 2 * n * n * d


def sequential_steps(kind: Kind, n: int) -> int:
    """Steps of one layer that must wait for the previous step."""
    checks.one_of("kind", kind, KINDS)
    return n if kind == "recurrent" else 1


def layers_to_connect(kind: Kind, n: int, kernel_size: int = 3) -> int:
    """Stacked layers needed before output n-1 depends on input 0.

    A causal convolution widens the receptive field by k-1 positions per
    layer, so it needs ceil((n-1)/(k-1)) layers (log_k n with the dilated
    convolutions that the paper's Table 1 assumes). One recurrent or one
    attention layer already connects every pair of positions.
    """
    checks.one_of("kind", kind, KINDS)
    if kind == "convolution":
        checks.int_between("kernel_size", kernel_size, 2)  # it widens by k - 1
        return math.ceil((n - 1) / (kernel_size - 1))
    return 1


def path_length(kind: Kind, n: int, kernel_size: int = 3) -> int:
    """Steps a signal crosses from input 0 to output n-1: Table 1's path length.

    The recurrence connects them in one layer, but through n-1 updates of its
    state, one per position; a convolution through one step per stacked layer;
    attention through one weighted average.
    """
    checks.one_of("kind", kind, KINDS)
    if kind == "recurrent":
        return n - 1
    return layers_to_connect(kind, n, kernel_size)


# --8<-- [end:counts]


# --8<-- [start:reach]
def gradient_reach(layer: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """||d y_{N-1} / d x_t||_F for t = 0..N-1, shape (N,).

    How strongly the last output depends on each input. x is one sequence
    (N, d_in); the layer maps (B, N, d_in) to (B, N, d_out), each sequence
    of the batch on its own. Rather than d_out backward passes, the input is
    copied d_out times and copy i backpropagates output component i, so one
    pass gives the whole Jacobian (d_out, N, d_in).
    """
    checks.floating("(N, d_in)", x=x)
    n, d_in = x.shape
    d_out = layer(x[None, :1]).size(-1)
    copies = x.expand(d_out, n, d_in).clone().requires_grad_(True)
    last = layer(copies)[:, -1]  # (d_out, d_out): row i from copy i
    # (d_out, N, d_in): entry (i, t, j) is d y_{N-1, i} / d x_{t, j}
    (jac,) = torch.autograd.grad(last.diagonal().sum(), copies)
    return jac.pow(2).sum(dim=(0, 2)).sqrt()  # Frobenius norm per position


# --8<-- [end:reach]


# --8<-- [start:inits]
def orthogonal_recurrence(layer: Recurrent) -> Recurrent:
    """Replace W_hh by a random orthogonal matrix: all singular values 1."""
    nn.init.orthogonal_(layer.rnn.weight_hh_l0)
    return layer


def forget_bias(layer: LSTM, value: float = 1.0) -> LSTM:
    """Start the forget gate mostly open by setting its bias.

    PyTorch stacks the gates in the order input, forget, cell, output.
    """
    d = layer.lstm.hidden_size
    with torch.no_grad():
        layer.lstm.bias_ih_l0[d : 2 * d] = value
        layer.lstm.bias_hh_l0[d : 2 * d] = 0.0
    return layer


# --8<-- [end:inits]
