"""Chapter 2's code exercises; the expected answers come from PyTorch's fused attention
and from a Gaussian kernel evaluated on distances."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snippets.exercises import Case, Exercise


def _bilinear_cases() -> list[Case]:
    """Reference: F.scaled_dot_product_attention on Q = X W_Q and K = X W_K; with the
    identity as values, the same function returns the weights."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for batch, n, d_model, d_k, d_v in (
        ((), 4, 5, 3, 2),
        ((2, 3), 6, 8, 2, 4),
        ((2,), 5, 6, 1, 3),
    ):
        x = torch.randn(*batch, n, d_model, generator=g, dtype=torch.float64)
        w_q, w_k = (
            torch.randn(d_model, d_k, generator=g, dtype=torch.float64)
            for _ in range(2)
        )
        w_v = torch.randn(d_model, d_v, generator=g, dtype=torch.float64)
        q, k = x @ w_q, x @ w_k
        eye = torch.eye(n, dtype=torch.float64).expand(*batch, n, n)
        expected = (
            F.scaled_dot_product_attention(q, k, x @ w_v),
            F.scaled_dot_product_attention(q, k, eye),
        )
        inputs = (
            f"x of shape {tuple(x.shape)}, m = W_Q W_K^T with W_Q and W_K of shape "
            f"({d_model}, {d_k}), w_v ({d_model}, {d_v}), d_k={d_k}"
        )
        cases.append(Case(inputs, (x, w_q @ w_k.T, w_v, d_k), expected))
    return cases


def _kernel_weights(
    queries: torch.Tensor, keys: torch.Tensor, width: float
) -> torch.Tensor:
    """exp(-||q - k||^2 / (2 width^2)), normalised over the keys, from distances.

    The softmax of the negative scaled squared distances is that normalisation,
    computed without underflow for a query far from every key."""
    distance = torch.cdist(queries, keys, compute_mode="donot_use_mm_for_euclid_dist")
    return torch.softmax(-distance.pow(2) / (2 * width**2), dim=-1)


def _kernel_cases() -> list[Case]:
    """One-dimensional regression as in the Nadaraya-Watson setting, a batch of
    vectors, and queries so far from every key that exp() of their scores
    underflows to 0 (the output must then be the nearest key's value)."""
    g = torch.Generator().manual_seed(0)
    cases = []

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    x_train = 5 * torch.rand(20, 1, generator=g, dtype=torch.float64)
    y_train = 2 * torch.sin(x_train) + x_train + 0.5 * randn(20, 1)
    x_test = torch.linspace(0, 5, 11, dtype=torch.float64).unsqueeze(-1)
    batch = (randn(2, 5, 3), randn(2, 7, 3), randn(2, 7, 4))
    far = (
        torch.tensor([[100.0, 0.0], [-60.0, 0.0]], dtype=torch.float64),
        randn(6, 2),
        randn(6, 3),
    )
    for (queries, keys, values), width, what in (
        ((x_test, x_train, y_train), 0.5, "11 points in [0, 5], 20 noisy samples"),
        (batch, 2.0, "a batch of 2: 5 queries, 7 keys in 3-d, 4-d values"),
        (far, 0.5, "2 queries about 100 and 60 away from 6 keys in 2-d, 3-d values"),
    ):
        expected = _kernel_weights(queries, keys, width) @ values
        inputs = (
            f"{what}: queries {tuple(queries.shape)}, keys {tuple(keys.shape)}, "
            f"values {tuple(values.shape)}, width={width:g}"
        )
        cases.append(Case(inputs, (queries, keys, values, width), expected))
    return cases


EXERCISES = [
    Exercise("2.3", "bilinear_attention", "Only the product matters", _bilinear_cases),
    Exercise(
        "2.4",
        "gaussian_kernel_attention",
        "Kernel regression is attention",
        _kernel_cases,
    ),
]
