"""Chapter 14's code exercises; the answers come from PyTorch's FLOP counter run on
real layers (on the meta device: shapes only, no arithmetic), the sizes of real
tensors, and a sign-test interval computed here by adding fair coins one at a time."""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from snippets.exercises import Case, Exercise


def _layer_cases() -> list[Case]:
    """Reference: the FLOP counter on one layer, component by component: the four
    linear maps, multi-head attention's two products, the MLP."""
    cases = []
    for n, d, heads, d_ff in (
        (16, 32, 4, 128),
        (1024, 768, 12, 3072),
        (300, 64, 1, 96),
    ):
        x = torch.empty(n, d, device="meta")
        w_q, w_k, w_v, w_o = (nn.Linear(d, d, device="meta") for _ in range(4))
        up = nn.Linear(d, d_ff, device="meta")
        down = nn.Linear(d_ff, d, device="meta")
        with FlopCounterMode(display=False) as projections:
            q, k, v = w_q(x), w_k(x), w_v(x)
            w_o(v)  # the output projection of a (n, d) result
        # (heads, n, d_k) each
        q, k, v = (t.view(n, heads, -1).transpose(0, 1) for t in (q, k, v))
        with FlopCounterMode(display=False) as mixing:
            (q @ k.transpose(1, 2)).softmax(dim=-1) @ v
        with FlopCounterMode(display=False) as mlp:
            down(F.gelu(up(x)))
        expected = tuple(c.get_total_flops() for c in (projections, mixing, mlp))
        inputs = f"n={n} tokens, d_model={d} ({heads} heads), d_ff={d_ff}"
        cases.append(Case(inputs, (n, d, d_ff), expected))
    return cases


def _intensity_cases() -> list[Case]:
    """Reference: FLOPs of the product from the FLOP counter, bytes from the sizes of
    the two operands and the result as PyTorch allocates them."""
    dtypes = {2: torch.float16, 4: torch.float32, 8: torch.float64}
    cases = []
    for m, k, n, size in (
        (4096, 64, 4096, 2),
        (4096, 1024, 4096, 2),
        (1, 4096, 4096, 4),
        (7, 3, 5, 8),
    ):
        a = torch.empty(m, k, device="meta", dtype=dtypes[size])
        b = torch.empty(k, n, device="meta", dtype=dtypes[size])
        with FlopCounterMode(display=False) as counter:
            c = a @ b
        moved = sum(t.numel() * t.element_size() for t in (a, b, c))
        expected = counter.get_total_flops() / moved
        inputs = f"({m}, {k}) @ ({k}, {n}), {size} bytes per number"
        cases.append(Case(inputs, (m, k, n, size), expected))
    return cases


def _interval_reference(ratios: list[float]) -> tuple[float, float, float]:
    """The median, and the k-th smallest and k-th largest ratio for the largest k with
    2 P(Binomial(R, 1/2) < k) <= 5%, the binomial built by adding one coin at a time."""
    rounds = len(ratios)
    pmf = [1.0]  # distribution of the number of heads after 0 coins
    for _ in range(rounds):
        pmf = [(a + b) / 2 for a, b in zip([0.0, *pmf], [*pmf, 0.0], strict=True)]
    k = 1
    while k + 1 <= rounds // 2 and 2 * sum(pmf[: k + 1]) <= 0.05:
        k += 1
    ordered = sorted(ratios)
    return statistics.median(ratios), ordered[k - 1], ordered[rounds - k]


def _ratio_cases() -> list[Case]:
    """Times whose ratio of medians differs from the median of same-round ratios: the
    machine speeds up and slows down from round to round, both calls alike."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for rounds, true_ratio in ((6, 2.0), (9, 1.3), (20, 0.8), (31, 3.0)):
        load = 1 + 4 * torch.rand(rounds, generator=g, dtype=torch.float64)
        noise = 1 + 0.2 * torch.rand(2, rounds, generator=g, dtype=torch.float64)
        fast = (1e-3 * load * noise[0]).tolist()
        slow = (1e-3 * true_ratio * load * noise[1]).tolist()
        expected = _interval_reference([s / f for s, f in zip(slow, fast, strict=True)])
        inputs = (
            f"{rounds} rounds of times (seconds) of a slow and a fast call, about "
            f"{true_ratio:g} times apart, on a machine whose load varies 5-fold"
        )
        cases.append(Case(inputs, (slow, fast), expected, atol=1e-12, rtol=1e-12))
    return cases


EXERCISES = [
    Exercise("14.2", "layer_flops", "Attention against the MLP", _layer_cases),
    Exercise("14.3", "matmul_intensity", "Arithmetic intensity", _intensity_cases),
    Exercise("14.4", "ratio_interval", "Same-round ratios", _ratio_cases),
]
