"""Chapter 9's code exercises; the expected answers come from brute-force loops written
here and from torch.topk, never from the course's own functions."""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch

from snippets.exercises import Case, Exercise


def _local_p_loops(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, centres: torch.Tensor, w: int
) -> torch.Tensor:
    """Luong et al.'s equation, one query at a time: softmax over the keys of the
    window round(p_t) +- w that exist, times a Gaussian of sd w / 2 around p_t."""
    *batch, n_q, _ = q.shape
    n_k = k.size(-2)
    out = torch.zeros(*batch, n_q, v.size(-1), dtype=q.dtype)
    for at in itertools.product(*[range(size) for size in batch]):
        for t in range(n_q):
            p = centres[at][t].item()
            window = [s for s in range(round(p) - w, round(p) + w + 1) if 0 <= s < n_k]
            scores = [
                (q[at][t] @ k[at][s]).item() / math.sqrt(q.size(-1)) for s in window
            ]
            top = max(scores)
            total = sum(math.exp(e - top) for e in scores)
            for s, e in zip(window, scores, strict=True):
                a = math.exp(e - top) / total * math.exp(-((s - p) ** 2) / (w**2 / 2))
                out[at][t] += a * v[at][s]
    return out


def _local_p_cases() -> list[Case]:
    """Reference: the loops above. Centres near both ends cut the window; one case has
    batch and head dimensions, one a window wider than the source."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for batch, n_q, n_k, d_k, d_v, w in (
        ((), 6, 20, 8, 3, 2),
        ((2, 2), 5, 16, 4, 6, 3),
        ((1,), 4, 5, 4, 2, 6),
    ):
        q = torch.randn(*batch, n_q, d_k, generator=g, dtype=torch.float64)
        k = torch.randn(*batch, n_k, d_k, generator=g, dtype=torch.float64)
        v = torch.randn(*batch, n_k, d_v, generator=g, dtype=torch.float64)
        centres = n_k * torch.rand(*batch, n_q, generator=g, dtype=torch.float64)
        centres[..., 0], centres[..., 1] = 0.3, n_k - 0.2  # both ends of the source
        inputs = (
            f"q {(*batch, n_q, d_k)}, k {(*batch, n_k, d_k)}, v {(*batch, n_k, d_v)}, "
            f"centres {(*batch, n_q)} in [0, {n_k}] (two at the ends), window={w}"
        )
        expected = _local_p_loops(q, k, v, centres, w)
        cases.append(Case(inputs, (q, k, v, centres, w), expected))
    return cases


class _Counted:
    """A number that counts every comparison made with it, in a shared counter."""

    def __init__(self, value: float, counter: list[int]) -> None:
        self.value, self.counter = value, counter

    def _compare(self, other: Any) -> float:
        if not isinstance(other, _Counted):
            raise TypeError("compare the items with each other only")
        self.counter[0] += 1
        return self.value - other.value

    def __lt__(self, other: Any) -> bool:
        return self._compare(other) < 0

    def __le__(self, other: Any) -> bool:
        return self._compare(other) <= 0

    def __gt__(self, other: Any) -> bool:
        return self._compare(other) > 0

    def __ge__(self, other: Any) -> bool:
        return self._compare(other) >= 0

    def __deepcopy__(self, memo: dict[int, Any]) -> _Counted:
        return self  # the checker copies the arguments; the count must stay shared

    def __repr__(self) -> str:
        return f"{self.value:.3f}"


def _tournament_cases() -> list[Case]:
    """Reference: torch.topk on the underlying values, for the choice and its order;
    the page's bound n - 1 + (k - 1) ceil(log2 n) for the comparisons counted."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for n, k in ((64, 4), (37, 5), (10, 1), (8, 8)):
        values = torch.randn(n, generator=g, dtype=torch.float64)
        counter = [0]
        items = [_Counted(x, counter) for x in values.tolist()]
        right = values.topk(k).indices.tolist()
        bound = n - 1 + (k - 1) * math.ceil(math.log2(n))

        def judge(
            got: object, right: list[int] = right, bound: int = bound, c=counter
        ) -> str | None:
            if not isinstance(got, list | tuple) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in got
            ):
                return "expected a list of integer indices"
            if list(got) != right:
                return f"the k largest, largest first, are at {right}"
            if c[0] > bound:
                return f"{c[0]} comparisons; a tournament needs at most {bound}"
            return None

        inputs = (
            f"{n} items that count the comparisons made with them (values drawn from "
            f"N(0, 1)), k={k}; at most {bound} comparisons allowed"
        )
        cases.append(Case(inputs, (items, k), judge=judge))
    return cases


EXERCISES = [
    Exercise("9.3", "local_p_attention", "Local-p as masked attention", _local_p_cases),
    Exercise("9.4", "tournament_top_k", "A knockout tournament", _tournament_cases),
]
