"""Chapter 14's exercises, solved: the arithmetic of a Transformer layer, the arithmetic
intensity of a matrix product, and the median of same-round ratios with its interval."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


# --8<-- [start:layer_flops]
def layer_flops(n: int, d_model: int, d_ff: int) -> tuple[int, int, int]:
    """FLOPs of one layer's forward pass over n tokens, two per multiply-add:
    (projections, mixing, mlp). Projections: the maps to Q, K, V and back through
    W_O, each (n, d) @ (d, d). Mixing: Q K^T and A V, over all heads together,
    whatever their number. MLP: (n, d) @ (d, d_ff) and back."""
    projections = 4 * 2 * n * d_model * d_model
    mixing = 2 * 2 * n * n * d_model
    mlp = 2 * 2 * n * d_model * d_ff
    return projections, mixing, mlp


# --8<-- [end:layer_flops]


# --8<-- [start:matmul_intensity]
def matmul_intensity(m: int, k: int, n: int, bytes_per_number: int) -> float:
    """FLOPs per byte of the product of an (m, k) and a (k, n) matrix that reads both
    operands from memory once and writes the (m, n) result once."""
    flops = 2 * m * k * n
    moved = bytes_per_number * (m * k + k * n + m * n)
    return flops / moved


# --8<-- [end:matmul_intensity]


# --8<-- [start:ratio_interval]
def ratio_interval(
    slow: Sequence[float], fast: Sequence[float]
) -> tuple[float, float, float]:
    """(estimate, low, high): the median over rounds of slow[r] / fast[r], the ratio
    of two calls timed in the same round r, with the sign test's 95% interval: the
    k-th smallest and k-th largest ratio, for the largest k whose interval misses
    the true median with probability 2 P(Binomial(R, 1/2) < k) <= 5%.

    Dividing within a round cancels what the machine did during that round; the
    ratio of the two medians would not.
    """
    ratios = sorted(s / f for s, f in zip(slow, fast, strict=True))
    rounds = len(ratios)

    def miss(k: int) -> float:
        """2 P(Binomial(R, 1/2) < k): the interval's chance of missing the median."""
        return 2 * sum(math.comb(rounds, i) for i in range(k)) / 2**rounds

    k = max((k for k in range(1, rounds // 2 + 1) if miss(k) <= 0.05), default=0)
    if k == 0:
        raise ValueError(f"a 95% interval needs at least 6 rounds, got {rounds}")
    return statistics.median(ratios), ratios[k - 1], ratios[rounds - k]


# --8<-- [end:ratio_interval]
