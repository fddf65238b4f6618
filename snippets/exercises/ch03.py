"""Chapter 3's code exercises; every expected answer comes from PyTorch or a closed
form."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from snippets.exercises import Case, Exercise


def _variance_cases() -> list[Case]:
    """Closed form: Var(q.k) = d_k sigma^4. The sample variance of n products has a
    standard error of sigma^4 sqrt((2 d_k^2 + 6 d_k) / n) (from the fourth moment of a
    sum of d_k products of normals); a case passes within 6 standard errors."""

    def case(d_k: int, sigma: float, n: int) -> Case:
        truth = d_k * sigma**4
        error = sigma**4 * math.sqrt((2 * d_k**2 + 6 * d_k) / n)

        def judge(got: object) -> str | None:
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()  # a one-number tensor is a number, as in `close`
            if not isinstance(got, float | int) or isinstance(got, bool):
                return f"expected a float, got {type(got).__name__}"
            if abs(got - truth) > 6 * error:
                return f"{got:.4g} is more than 6 standard errors from {truth:g}"
            return None

        inputs = f"d_k={d_k}, sigma={sigma}, n_samples={n}, a seeded generator"
        return Case(
            inputs, (d_k, sigma, n, torch.Generator().manual_seed(1)), judge=judge
        )

    return [case(16, 1.0, 20_000), case(64, 2.0, 20_000), case(8, 0.5, 40_000)]


def _jacobian_cases() -> list[Case]:
    """Reference: torch.autograd.functional.jacobian of torch.softmax, row by row."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for shape, scale in (((5,), 1.0), ((3, 4), 3.0), ((2, 2, 6), 10.0)):
        s = scale * torch.randn(shape, generator=g, dtype=torch.float64)
        rows = s.reshape(-1, shape[-1])
        jac = torch.stack(
            [
                torch.autograd.functional.jacobian(lambda x: x.softmax(-1), r)
                for r in rows
            ]
        )
        expected = jac.reshape(*shape, shape[-1])
        cases.append(
            Case(f"scores s of shape {shape}, scale {scale:g}", (s,), expected)
        )
    return cases


def _qk_norm_cases() -> list[Case]:
    """Reference: F.normalize and PyTorch's fused attention with scale=g."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for (b, n, m, d), temp in (((1, 4, 5, 8), 1.0), ((2, 3, 7, 16), 10.0)):
        q, k, v = (
            torch.randn(b, rows, d, generator=g, dtype=torch.float64)
            for rows in (n, m, m)
        )
        expected = F.scaled_dot_product_attention(
            F.normalize(q, dim=-1), F.normalize(k, dim=-1), v, scale=temp
        )
        inputs = f"q ({b}, {n}, {d}), k and v ({b}, {m}, {d}), g={temp:g}"
        cases.append(Case(inputs, (q, k, v, temp), expected))
    return cases


EXERCISES = [
    Exercise("3.2", "dot_product_variance", "Wider components", _variance_cases),
    Exercise("3.3", "softmax_jacobian", "The softmax Jacobian", _jacobian_cases),
    Exercise("3.4", "qk_norm_attention", "QK-norm", _qk_norm_cases),
]
