"""Appendix, claims checked: the numbers behind the verdicts that no chapter computes.

The other rows of the appendix reuse the chapters' own demos, so that the appendix and the
chapter show the same measurement.
"""

from __future__ import annotations

import itertools
import math

import torch

from snippets.bilingual import say
from snippets.claims import (
    BLEU,
    BLEU_CONFERENCE_BIG_FRENCH,
    CLAIMED_A,
    CLAIMED_K,
    CLAIMED_Q,
    CLAIMED_V,
    CLAIMED_Z,
    W_K,
    W_Q,
    X,
    lsh_multiply_adds,
    mask_and_band_multiply_adds,
    multihead_without_output_projection,
    tiled_attention_difference,
    worked_example_discrepancies,
)
from snippets.qkv import worked_example


def _fmt(x: float) -> str:
    return "0" if x == 0 else f"{x:.2g}" if x >= 0.01 else f"{x:.1e}"


def worked_example_numbers() -> dict[str, str]:
    """Largest entry-wise error of each claimed matrix of the 3x3 example."""
    return {key: _fmt(value) for key, value in worked_example_discrepancies().items()}


def _latex(m: torch.Tensor, digits: int) -> str:
    rows = [" & ".join(f"{v:.{digits}f}" for v in row) for row in m.tolist()]
    return r"\begin{bmatrix} " + r" \\ ".join(rows) + r" \end{bmatrix}"


def worked_example_matrices() -> dict[str, str]:
    """The example's inputs and claimed matrices beside what its own numbers give, as LaTeX.

    Each recomputed matrix uses only numbers the example itself states: its X and W for
    Q and K, its Q and K for A, its A and V for Z.
    """
    steps = worked_example(X, W_Q, W_K, W_Q)  # W_V = W_Q = X in the example
    own_scores = CLAIMED_Q @ CLAIMED_K.T / math.sqrt(X.size(-1))
    matrices = {
        "x": (X, 1),
        "w_k": (W_K, 1),
        "claimed_q": (CLAIMED_Q, 2),
        "x_w_q": (steps["q"], 2),  # inputs with one decimal: two decimals are exact
        "x_x_t": (X @ X.T, 2),
        "claimed_k": (CLAIMED_K, 2),
        "x_w_k": (steps["k"], 2),
        "claimed_a": (CLAIMED_A, 1),
        "softmax_own": (torch.softmax(own_scores, dim=-1), 3),
        "claimed_z": (CLAIMED_Z, 3),
        "a_v": (CLAIMED_A @ CLAIMED_V, 3),  # one decimal times two: three are exact
    }
    return {name: _latex(m, digits) for name, (m, digits) in matrices.items()}


def multihead_numbers() -> dict[str, str]:
    """Distance to PyTorch's module with and without the output projection W_O."""
    result = multihead_without_output_projection()
    return {
        "with_w_o": _fmt(result["with_w_o"]),
        "without_w_o": f"{result['without_w_o']:.0%}",
    }


def bleu_numbers() -> dict[str, str]:
    """The gain that comparing two different tasks of Table 2 seems to show."""
    de, fr = BLEU[("big", "English-German")], BLEU[("big", "English-French")]
    return {
        "de_big": f"{de:.1f}",
        "fr_big": f"{fr:.1f}",
        "de_base": f"{BLEU[('base', 'English-German')]:.1f}",
        "fr_base": f"{BLEU[('base', 'English-French')]:.1f}",
        "fr_conference": f"{BLEU_CONFERENCE_BIG_FRENCH:.1f}",
        "false_gain": f"{BLEU_CONFERENCE_BIG_FRENCH / de - 1:.0%}",
    }


_MASK_N, _MASK_W, _MASK_D = 512, 32, 32  # one head: length, window half-width, width
_LSH_LENGTHS, _LSH_CHUNK, _LSH_D, _LSH_BUCKETS = (1_024, 2_048, 4_096), 32, 32, 8


def masking_numbers() -> dict[str, str]:
    """Dense attention with and without a window mask, and the banded function, counted."""
    c = mask_and_band_multiply_adds(_MASK_N, _MASK_W, _MASK_D)
    return {
        "n": f"{_MASK_N:,}",
        "w": str(_MASK_W),
        "d": str(_MASK_D),
        "dense": f"{c['dense']:,}",
        "masked": f"{c['masked']:,}",
        "banded": f"{c['banded']:,}",
        "ratio": f"{c['masked'] / c['banded']:.1f}",
    }


def reformer_numbers() -> dict[str, str]:
    """How the counted arithmetic of one LSH round grows each time N doubles."""
    c = lsh_multiply_adds(_LSH_LENGTHS, _LSH_CHUNK, _LSH_D, _LSH_BUCKETS)

    def growth(counts: list[int]) -> str:
        steps = [f"{b / a:.2f}" for a, b in itertools.pairwise(counts)]
        return say(" and ".join(steps), " 和 ".join(steps))

    lengths = [f"{n:,}" for n in _LSH_LENGTHS]
    return {
        "lengths": say(", ".join(lengths), "、".join(lengths)),
        "chunk": str(_LSH_CHUNK),
        "d": str(_LSH_D),
        "buckets": str(_LSH_BUCKETS),
        "fixed": growth(c["fixed"]),
        "scaled": growth(c["scaled"]),
    }


def exactness_numbers() -> dict[str, str]:
    """Largest difference of the tiled (FlashAttention) algorithm from PyTorch's attention."""
    return {
        "float64": f"{tiled_attention_difference(torch.float64):.1e}",
        "float32": f"{tiled_attention_difference(torch.float32):.1e}",
    }
