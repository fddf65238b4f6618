"""Chapter 10's code exercises; the expected answers come from loops written here (a
count, a breadth-first search) and from PyTorch's scaled_dot_product_attention."""

from __future__ import annotations

from collections import deque

import torch
import torch.nn.functional as F

from snippets.exercises import Case, Exercise


def _pairs_by_loops(n: int, w: int, dilation: int) -> int:
    """Count, row by row, the keys i + k * dilation (|k| <= w) that exist."""
    return sum(
        1 for i in range(n) for k in range(-w, w + 1) if 0 <= i + k * dilation < n
    )


def _pair_cases() -> list[Case]:
    """Reference: the loop above. Cases where the reach w * dilation is shorter than
    the sequence, and longer (whole offsets fall off both ends), with n a multiple of
    the dilation and not (which tells floor(n / dilation) from its ceiling)."""
    cases = []
    for n, w, dilation in ((50, 3, 1), (64, 4, 5), (20, 6, 4), (23, 7, 4), (7, 10, 1)):
        inputs = f"n={n} positions, window={w}, dilation={dilation}"
        cases.append(Case(inputs, (n, w, dilation), _pairs_by_loops(n, w, dilation)))
    return cases


def _mask(n: int, allowed) -> torch.Tensor:  # allowed(i, j) -> bool
    return torch.tensor([[bool(allowed(i, j)) for j in range(n)] for i in range(n)])


def _layers_by_search(mask: torch.Tensor, causal: bool) -> int:
    """Breadth-first search from every query along mask edges (query i reads key j),
    with the residual stream: the hops to the farthest key that full attention would
    give the query, at least 1; -1 if some such key is never reached."""
    n = mask.size(-1)
    reads = [mask[i].nonzero().flatten().tolist() for i in range(n)]
    worst = 1
    for i in range(n):
        hops = {i: 0}
        todo = deque([i])
        while todo:
            a = todo.popleft()
            for b in reads[a]:
                if b not in hops:
                    hops[b] = hops[a] + 1
                    todo.append(b)
        owed = range(i + 1) if causal else range(n)
        if any(j not in hops for j in owed):
            return -1
        worst = max(worst, *(hops[j] for j in owed))
    return worst


def _layers_cases() -> list[Case]:
    """Reference: the search above, on masks built here pair by pair. One mask leaves
    out the diagonal: only the residual connection keeps a position's own."""
    masks = [
        ("a sliding window, n=30, w=4", _mask(30, lambda i, j: abs(i - j) <= 4), False),
        (
            "a window plus one global token, n=40, w=1, global position 0",
            _mask(40, lambda i, j: abs(i - j) <= 1 or i == 0 or j == 0),
            False,
        ),
        (
            "the Sparse Transformer's strided pattern, n=49, stride 7 (causal)",
            _mask(49, lambda i, j: 0 <= i - j <= 7 or (i >= j and (i - j) % 7 == 0)),
            True,
        ),
        (
            "the 3 previous positions, not the query's own, n=20 (causal)",
            _mask(20, lambda i, j: 1 <= i - j <= 3),
            True,
        ),
        (
            "a dilated window alone, n=30, w=2, dilation 3",
            _mask(30, lambda i, j: abs(i - j) <= 6 and (i - j) % 3 == 0),
            False,
        ),
    ]
    return [
        Case(f"{words} as a bool mask", (mask, causal), _layers_by_search(mask, causal))
        for words, mask, causal in masks
    ]


def _global_mask(n: int, w: int, glob: list[int]) -> torch.Tensor:
    """Longformer's pattern, pair by pair: the window, and every pair with a global."""
    return _mask(n, lambda i, j: abs(i - j) <= w or i in glob or j in glob)


def _window_global_cases() -> list[Case]:
    """Reference: PyTorch's fused attention under the mask above. Global tokens inside
    other queries' windows, at both ends, a window of zero and one wider than N."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for batch, n, d, d_v, w, glob in (
        ((2, 2), 40, 8, 5, 3, [0, 17]),
        ((), 33, 4, 6, 0, [32]),
        ((1,), 16, 8, 3, 20, [0, 1]),
    ):
        q, k = (
            torch.randn(*batch, n, d, generator=g, dtype=torch.float64)
            for _ in range(2)
        )
        v = torch.randn(*batch, n, d_v, generator=g, dtype=torch.float64)
        expected = F.scaled_dot_product_attention(
            q, k, v, attn_mask=_global_mask(n, w, glob)
        )
        inputs = (
            f"q and k {(*batch, n, d)}, v {(*batch, n, d_v)}, window={w}, "
            f"global_idx={glob}"
        )
        cases.append(Case(inputs, (q, k, v, w, glob), expected))
    return cases


EXERCISES = [
    Exercise("10.2", "dilated_pair_count", "Counting the pairs", _pair_cases),
    Exercise("10.3", "pattern_layers_to_connect", "Layers to connect", _layers_cases),
    Exercise(
        "10.4",
        "window_global_attention",
        "Global tokens, skipping the work",
        _window_global_cases,
    ),
]
