"""Chapter 11's code exercises; the expected answers come from a closed form (the Gram
matrix of the features) and from the masked quadratic form, summed with loops here."""

from __future__ import annotations

import torch

from snippets.exercises import Case, Exercise, close


def _trig_gram(x: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """What phi(x_i) . phi(x_j) must be, pair by pair: exp((|x_i'|^2 + |x_j'|^2) / 2)
    times the mean over the rows w_r of cos(w_r . (x_i' - x_j')), x' = x / d^(1/4)."""
    x = x / x.size(-1) ** 0.25
    n = x.size(-2)
    gram = torch.zeros(*x.shape[:-1], n, dtype=x.dtype)
    for i in range(n):
        for j in range(n):
            xi, xj = x[..., i, :], x[..., j, :]
            mean_cos = torch.cos((xi - xj) @ projection.T).mean(dim=-1)
            norms = 0.5 * ((xi * xi).sum(-1) + (xj * xj).sum(-1))
            gram[..., i, j] = torch.exp(norms) * mean_cos
    return gram


def _trig_cases() -> list[Case]:
    """Reference: the closed form above. Features are judged by their dot products,
    which any order or sign of the cos and sin columns leaves unchanged; the tolerance
    (1e-10 absolute plus 1e-8 relative, entry by entry) is float64 rounding."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for batch, n, d, m, sigma in (((), 5, 16, 6, 1.0), ((2, 3), 4, 4, 10, 0.5)):
        x = sigma * torch.randn(*batch, n, d, generator=g, dtype=torch.float64)
        projection = torch.randn(m, d, generator=g, dtype=torch.float64)
        gram = _trig_gram(x, projection)

        def judge(got: object, gram=gram, shape=(*batch, n, 2 * m)) -> str | None:
            if not isinstance(got, torch.Tensor):
                return f"expected a tensor, got {type(got).__name__}"
            if tuple(got.shape) != shape:
                return f"shape {tuple(got.shape)}, expected {shape}"
            got = got.double()
            problem = close(got @ got.transpose(-2, -1), gram, 1e-10, 1e-8)
            return problem and f"the dot products phi(x_i) . phi(x_j): {problem}"

        inputs = (
            f"x {(*batch, n, d)} with N(0, {sigma:g}^2) entries, projection ({m}, {d})"
        )
        cases.append(Case(inputs, (x, projection), judge=judge))
    return cases


def _masked_quadratic(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """o_i = sum_{j <= i} (q_i . k_j) v_j / sum_{j <= i} q_i . k_j, term by term."""
    out = torch.zeros(*q.shape[:-1], v.size(-1), dtype=q.dtype)
    for i in range(q.size(-2)):
        numerator = torch.zeros(*q.shape[:-2], v.size(-1), dtype=q.dtype)
        denominator = torch.zeros(*q.shape[:-2], 1, dtype=q.dtype)
        for j in range(i + 1):
            weight = (q[..., i, :] * k[..., j, :]).sum(-1, keepdim=True)
            numerator += weight * v[..., j, :]
            denominator += weight
        out[..., i, :] = numerator / denominator
    return out


def _causal_cases() -> list[Case]:
    """Reference: the masked quadratic form above. Batch and head dimensions, a single
    position, and features spread over several orders of magnitude."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for batch, n, m, d_v, spread in (
        ((2, 3), 10, 8, 5, 0.5),
        ((), 1, 4, 3, 0.5),
        ((1,), 12, 6, 2, 3.0),
    ):
        q_feat, k_feat = (
            torch.exp(spread * torch.randn(*batch, n, m, generator=g)).double()
            for _ in range(2)
        )
        v = torch.randn(*batch, n, d_v, generator=g, dtype=torch.float64)
        inputs = (
            f"positive features q_feat and k_feat {(*batch, n, m)} (exp of "
            f"N(0, {spread:g}^2)), v {(*batch, n, d_v)}"
        )
        expected = _masked_quadratic(q_feat, k_feat, v)
        cases.append(Case(inputs, (q_feat, k_feat, v), expected, atol=1e-9, rtol=1e-9))
    return cases


EXERCISES = [
    Exercise("11.2", "trig_features", "Trigonometric features", _trig_cases),
    Exercise(
        "11.3",
        "causal_linear_attention_recurrent",
        "Causal attention as a recurrence",
        _causal_cases,
    ),
]
