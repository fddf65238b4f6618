"""Chapter 13's code exercises; the answers come from softmax and log-sum-exp over the
concatenated keys, PyTorch's attention, and a closed-form count."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from snippets.exercises import Case, Exercise, close


def _merge_cases() -> list[Case]:
    """Reference: torch.logsumexp and torch.softmax over the two blocks' scores
    concatenated. Any state (m, ell, acc) that stands for those keys is accepted:
    m + log(ell) must be their log-sum-exp and acc / ell their attention output."""
    g = torch.Generator().manual_seed(0)
    lowest = torch.finfo(torch.float64).min  # the state of a block with no key

    def state(s: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if s.size(-1) == 0:  # the starting state of snippets.flash
            shape = s.shape[:-1]
            return (
                torch.full((*shape, 1), lowest, dtype=s.dtype),
                torch.zeros(*shape, 1, dtype=s.dtype),
                torch.zeros(*shape, v.size(-1), dtype=s.dtype),
            )
        m = s.amax(dim=-1, keepdim=True)
        p = torch.exp(s - m)
        return m, p.sum(dim=-1, keepdim=True), p @ v

    cases = []
    for batch, n, b1, b2, d_v, offset, what in (
        ((), 3, 4, 5, 2, (0.0, 3.0), "block 2 holds the larger scores"),
        ((2, 3), 4, 6, 2, 5, (2.0, -1.0), "block 1 holds the larger scores"),
        ((), 2, 3, 3, 4, (1000.0, 1001.0), "scores near 1000: exp overflows"),
        ((2,), 3, 5, 0, 3, (0.0, 0.0), "block 2 is empty, the starting state"),
    ):
        s1 = offset[0] + 2 * torch.randn(
            *batch, n, b1, generator=g, dtype=torch.float64
        )
        s2 = offset[1] + 2 * torch.randn(
            *batch, n, b2, generator=g, dtype=torch.float64
        )
        v1 = torch.randn(*batch, b1, d_v, generator=g, dtype=torch.float64)
        v2 = torch.randn(*batch, b2, d_v, generator=g, dtype=torch.float64)
        s, v = torch.cat([s1, s2], dim=-1), torch.cat([v1, v2], dim=-2)
        lse = torch.logsumexp(s, dim=-1, keepdim=True)  # (..., n, 1)
        out = torch.softmax(s, dim=-1) @ v  # (..., n, d_v)
        args = (*state(s1, v1), *state(s2, v2))

        def judge(got: object, lse: torch.Tensor = lse, out: torch.Tensor = out):
            if not isinstance(got, tuple | list) or len(got) != 3:
                return "expected a tuple (m, ell, acc)"
            m, ell, acc = got
            for name, t, like in (("m", m, lse), ("ell", ell, lse), ("acc", acc, out)):
                if not isinstance(t, torch.Tensor) or t.shape != like.shape:
                    shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t)
                    return f"{name} should have shape {tuple(like.shape)}, not {shape}"
            problem = close(m + torch.log(ell), lse, atol=1e-9, rtol=1e-12)
            if problem:
                return (
                    f"m + log(ell) is not the log-sum-exp of all the scores: {problem}"
                )
            problem = close(acc / ell, out, atol=1e-10, rtol=1e-9)
            if problem:
                return (
                    f"acc / ell is not softmax attention over all the keys: {problem}"
                )
            return None

        inputs = (
            f"the states (m, ell, acc) of two blocks of {b1} and {b2} keys for queries "
            f"{(*batch, n)}, values of width {d_v}; {what}"
        )
        cases.append(Case(inputs, args, judge=judge))
    return cases


def _split_cases() -> list[Case]:
    """Reference: torch.nn.functional.scaled_dot_product_attention, in float64."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for (b, h, n_q, n_k, d, d_v), splits in (
        ((1, 2, 1, 100, 16, 8), 4),
        ((2, 3, 5, 37, 8, 4), 3),
        ((1, 1, 6, 9, 4, 6), 1),
        ((1, 2, 3, 7, 8, 5), 7),
    ):
        q = torch.randn(b, h, n_q, d, generator=g, dtype=torch.float64)
        k = 2 * torch.randn(b, h, n_k, d, generator=g, dtype=torch.float64)
        v = torch.randn(b, h, n_k, d_v, generator=g, dtype=torch.float64)
        expected = F.scaled_dot_product_attention(q, k, v)
        inputs = (
            f"q {(b, h, n_q, d)}, k {(b, h, n_k, d)}, v {(b, h, n_k, d_v)}, "
            f"num_splits={splits}"
        )
        cases.append(Case(inputs, (q, k, v, splits), expected, atol=1e-10, rtol=1e-9))
    return cases


def _io_cases() -> list[Case]:
    """Closed form: with B = ceil(M / 4d) rows per block and T = ceil(N / B) query
    blocks, Q is read once (Nd), K and V once per query block (2Nd T), O and the N
    log-sum-exps written once (Nd + N). With sram = 12,700 and d = 32, M / 4d = 99.2:
    ceil gives 10 blocks of 100 rows for N = 1000, floor 11 of 99."""
    cases = []
    for n, d, sram in (
        (4096, 64, 98_304),
        (1000, 32, 10_000),
        (1000, 32, 12_700),
        (64, 64, 1_000_000),
    ):
        block = math.ceil(sram / (4 * d))
        blocks = math.ceil(n / block)
        expected = 2 * n * d + n + 2 * n * d * blocks
        inputs = f"n={n}, d={d}, sram={sram:,} numbers (blocks of {block} rows)"
        cases.append(Case(inputs, (n, d, sram), expected, atol=0, rtol=0))
    return cases


EXERCISES = [
    Exercise("13.2", "merge_blocks", "Merging two blocks", _merge_cases),
    Exercise("13.3", "split_kv_attention", "Splitting the keys", _split_cases),
    Exercise("13.4", "queries_outside_io", "The other loop order", _io_cases),
]
