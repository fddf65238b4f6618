"""Chapter 1's code exercises; the expected answers come from a brute-force search of
the positions a stack of convolutions reaches, and from autograd."""

from __future__ import annotations

import torch

from snippets.exercises import Case, Exercise


def _layers_by_search(n: int, k: int) -> int:
    """Brute force: the offsets s (output t reads input t - s) that a stack of
    causal convolutions with dilations 1, k, k^2, ... reaches, one layer at a time,
    until the offset n - 1 is among them. No logarithm, no closed form."""
    reached = torch.zeros(n, dtype=torch.bool)
    reached[0] = True  # no layer: output t is input t
    layers, dilation = 0, 1
    while not reached[n - 1]:
        wider = reached.clone()
        for tap in range(1, k):  # tap a reads the input a * dilation positions back
            shift = tap * dilation
            if shift < n:
                wider[shift:] |= reached[: n - shift]
        reached, layers, dilation = wider, layers + 1, dilation * k
    return layers


def _dilated_cases() -> list[Case]:
    """Exact powers whose floating-point logarithm rounds up (log_5 125 and log_5
    15625 come out just above 3 and 6), one past a power, and n = 1."""
    cases = []
    for n, k in ((125, 5), (15625, 5), (244, 3), (1, 3)):
        inputs = f"sequence length n={n}, kernel_size={k}"
        cases.append(Case(inputs, (n, k), _layers_by_search(n, k)))
    return cases


def _reach_by_autograd(w: torch.Tensor, u: torch.Tensor, n: int) -> torch.Tensor:
    """Autograd through the loop h_t = W h_{t-1} + U x_t, h_{-1} = 0: the full
    Jacobian of h_{n-1} with respect to x (d, n, d_in), then a norm per position."""

    def last_state(x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(w.size(0), dtype=w.dtype)
        for t in range(n):
            h = w @ h + u @ x[t]
        return h

    x = torch.zeros(n, u.size(1), dtype=u.dtype)  # linear: any input will do
    jacobian = torch.autograd.functional.jacobian(last_state, x)
    return jacobian.pow(2).sum(dim=(0, 2)).sqrt()


def _reach_cases() -> list[Case]:
    """A scaled orthogonal W (geometric decay), a random W, one with spectral radius
    above 1 (growth), and n = 1 (only U)."""
    g = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    orthogonal, _ = torch.linalg.qr(randn(4, 4))
    cases = []
    for w, u, n, what in (
        (0.9 * orthogonal, randn(4, 3), 12, "0.9 times an orthogonal 4x4 matrix"),
        (randn(5, 5) / 5**0.5, randn(5, 5), 9, "a 5x5 matrix of N(0, 1/5) entries"),
        (1.1 * orthogonal, randn(4, 2), 20, "1.1 times an orthogonal 4x4 matrix"),
        (randn(3, 3), randn(3, 6), 1, "a 3x3 matrix of N(0, 1) entries"),
    ):
        inputs = f"w: {what}; u of shape {tuple(u.shape)}; n={n}"
        cases.append(Case(inputs, (w, u, n), _reach_by_autograd(w, u, n)))
    return cases


EXERCISES = [
    Exercise(
        "1.2", "dilated_layers_to_connect", "Dilated convolutions", _dilated_cases
    ),
    Exercise(
        "1.3",
        "linear_recurrence_reach",
        "A gradient through a linear recurrence",
        _reach_cases,
    ),
]
