"""Claims often made about attention, recomputed from their own inputs.

The appendix "Claims checked" quotes a claim's numbers as data and recomputes, with the
course's code, what they should have been; tests/test_claims.py asserts each verdict.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from snippets.attention import scaled_dot_product_attention
from snippets.families import counted_multiply_adds
from snippets.flash import tiled_attention
from snippets.multihead import MultiHeadAttention
from snippets.qkv import worked_example
from snippets.reformer import lsh_attention
from snippets.sparse import sliding_window_attention, sliding_window_mask

# --8<-- [start:worked-example-data]
# A widely copied 3x3 example: token embeddings X and projections W_Q = W_V = X.
X = torch.tensor(
    [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]], dtype=torch.float64
)
W_Q = X.clone()
W_K = torch.tensor(
    [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6], [0.3, 0.5, 0.7]], dtype=torch.float64
)
W_V = X.clone()
# What the example states it obtained at each step:
CLAIMED_Q = torch.tensor(
    [[0.14, 0.32, 0.5], [0.32, 0.77, 1.22], [0.5, 1.22, 1.94]], dtype=torch.float64
)
CLAIMED_K = torch.tensor(
    [[0.26, 0.44, 0.62], [0.62, 1.07, 1.52], [0.98, 1.7, 2.42]], dtype=torch.float64
)
CLAIMED_V = CLAIMED_Q.clone()  # stated identical to Q
CLAIMED_A = torch.tensor(
    [[0.2, 0.3, 0.5], [0.1, 0.7, 0.2], [0.4, 0.4, 0.2]], dtype=torch.float64
)
CLAIMED_Z = torch.tensor(
    [[0.342, 0.81, 1.278], [0.21, 0.658, 1.106], [0.256, 0.612, 0.968]],
    dtype=torch.float64,
)
# --8<-- [end:worked-example-data]


def max_abs(a: Tensor, b: Tensor) -> float:
    """Largest entry-wise difference between two matrices."""
    return (a - b).abs().max().item()


# --8<-- [start:worked-example-check]
def worked_example_discrepancies() -> dict[str, float]:
    """How far each claimed matrix is from what the example's earlier numbers give."""
    steps = worked_example(X, W_Q, W_K, W_V)  # chapter 2's computation, step by step
    claimed_scores = CLAIMED_Q @ CLAIMED_K.T / math.sqrt(X.size(-1))
    return {
        "q_vs_x_w_q": max_abs(CLAIMED_Q, steps["q"]),  # Q should be X W_Q ...
        "q_vs_x_x_t": max_abs(CLAIMED_Q, X @ X.T),  # ... what it equals instead
        "k_vs_x_w_k": max_abs(CLAIMED_K, steps["k"]),  # K should be X W_K
        # A should be the softmax of the example's own (scaled) scores
        "a_vs_softmax": max_abs(CLAIMED_A, torch.softmax(claimed_scores, dim=-1)),
        "z_vs_a_v": max_abs(CLAIMED_Z, CLAIMED_A @ CLAIMED_V),  # Z should be A V
    }


# --8<-- [end:worked-example-check]


# --8<-- [start:without-w-o]
def multihead_without_output_projection(
    d_model: int = 64, num_heads: int = 8, n: int = 10, seed: int = 0
) -> dict[str, float]:
    """Relative distance to PyTorch's nn.MultiheadAttention, with the same weights,
    of the heads concatenated and then projected by W_O, and of the heads only
    concatenated."""
    torch.manual_seed(seed)
    reference = nn.MultiheadAttention(d_model, num_heads, batch_first=True).eval()
    ours = MultiHeadAttention.from_torch(reference)
    x = torch.randn(1, n, d_model, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected, _ = reference(x, x, x)
        full, _ = ours(x, x, x)
        ours.w_o = nn.Identity()  # "multi-head attention = the heads, concatenated"
        concatenated, _ = ours(x, x, x)

    def relative(out: Tensor) -> float:
        return ((out - expected).norm() / expected.norm()).item()

    return {"with_w_o": relative(full), "without_w_o": relative(concatenated)}


# --8<-- [end:without-w-o]


# Vaswani et al. (2017), Table 2: BLEU on newstest2014, as printed in the arXiv version;
# the conference version printed 41.0 for the big model on English-French.
BLEU_CONFERENCE_BIG_FRENCH = 41.0
BLEU = {
    ("base", "English-German"): 27.3,
    ("big", "English-German"): 28.4,
    ("base", "English-French"): 38.1,
    ("big", "English-French"): 41.8,
}


# Part II: what the cheaper attentions cost, counted by PyTorch rather than timed.


def mask_and_band_multiply_adds(
    n: int = 512, window: int = 32, d: int = 32
) -> dict[str, int]:
    """Multiply-adds of one head of dense attention without and with a sliding-window mask,
    and of chapter 10's banded function, which skips the masked pairs."""
    g = torch.Generator().manual_seed(10)
    q, k, v = (torch.randn(1, 1, n, d, generator=g) for _ in range(3))
    mask = sliding_window_mask(n, window)
    attention = scaled_dot_product_attention
    return {
        "dense": counted_multiply_adds(lambda: attention(q, k, v)),
        "masked": counted_multiply_adds(lambda: attention(q, k, v, mask)),
        "banded": counted_multiply_adds(
            lambda: sliding_window_attention(q, k, v, window)
        ),
    }


def lsh_multiply_adds(
    lengths: tuple[int, ...] = (1_024, 2_048, 4_096),
    chunk: int = 32,
    d: int = 32,
    buckets: int = 8,
) -> dict[str, list[int]]:
    """Multiply-adds of one round of chapter 12's LSH attention at each length: with a
    fixed number of buckets, and with the Reformer paper's 2N / chunk buckets (the average
    bucket then fills half a chunk)."""
    g = torch.Generator().manual_seed(12)
    counts: dict[str, list[int]] = {"fixed": [], "scaled": []}
    for n in lengths:
        qk, v = torch.randn(1, n, d, generator=g), torch.randn(1, n, d, generator=g)
        for key, n_b in (("fixed", buckets), ("scaled", 2 * n // chunk)):
            counts[key].append(
                counted_multiply_adds(
                    lambda qk=qk, v=v, n_b=n_b: lsh_attention(
                        qk, v, n_b, 1, chunk, generator=torch.Generator().manual_seed(0)
                    )
                )
            )
    return counts


def tiled_attention_difference(dtype: torch.dtype = torch.float64) -> float:
    """Largest difference between chapter 13's tiled attention (FlashAttention's algorithm)
    and PyTorch's attention, for a length that is not a multiple of the blocks."""
    g = torch.Generator().manual_seed(13)
    q, k, v = (torch.randn(1, 1, 500, 32, generator=g, dtype=dtype) for _ in range(3))
    ours = tiled_attention(q, k, v, 128, query_block_size=100)
    return max_abs(ours, torch.nn.functional.scaled_dot_product_attention(q, k, v))
