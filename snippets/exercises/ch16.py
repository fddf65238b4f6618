"""Chapter 16's code exercises; every expected answer comes from a brute-force loop
written here."""

from __future__ import annotations

import torch

from snippets.exercises import Case, Exercise


def _relative_cases() -> list[Case]:
    """Reference: a double loop over queries i and keys j, S[i, j] = q_i . e_(j-i)."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for shape in ((5, 3), (2, 3, 4, 8), (1, 4)):
        *batch, n, d = shape
        q = torch.randn(shape, generator=g, dtype=torch.float64)
        e_rel = torch.randn(2 * n - 1, d, generator=g, dtype=torch.float64)
        expected = torch.empty(*batch, n, n, dtype=torch.float64)
        for i in range(n):
            for j in range(n):
                expected[..., i, j] = q[..., i, :] @ e_rel[j - i + n - 1]
        inputs = f"q {shape}, e_rel ({2 * n - 1}, {d}) for distances -{n - 1}..{n - 1}"
        cases.append(Case(inputs, (q, e_rel), expected))
    return cases


def _scan_cases() -> list[Case]:
    """Reference: the recurrence, one step at a time from the given state."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for batch, n, d, s, scale in (
        (2, 7, 3, 4, 1.0),
        (1, 1, 2, 3, 1.0),
        (1, 9, 1, 2, 0.01),
    ):
        # decays in (0, 1) as exp(delta A) gives; scale 0.01 keeps a close to 1
        a = torch.exp(
            -scale * torch.rand(batch, n, d, s, generator=g, dtype=torch.float64)
        )
        b = torch.randn(batch, n, d, s, generator=g, dtype=torch.float64)
        state = 5.0 * torch.randn(batch, d, s, generator=g, dtype=torch.float64)
        h, states = state, []
        for t in range(n):
            h = a[:, t] * h + b[:, t]
            states.append(h)
        inputs = (
            f"a and b ({batch}, {n}, {d}, {s}), a in (0, 1); state ({batch}, {d}, {s}), "
            "of size about 5"
        )
        cases.append(Case(inputs, (a, b, state), torch.stack(states, dim=1)))
    return cases


EXERCISES = [
    Exercise(
        "16.3",
        "relative_logits_bidirectional",
        "Relative logits in both directions",
        _relative_cases,
    ),
    Exercise("16.4", "scan_from_state", "A scan that starts from a state", _scan_cases),
]
