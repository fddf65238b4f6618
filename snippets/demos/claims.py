"""Appendix, claims checked: the numbers behind the verdicts that no chapter computes.

The other rows of the appendix reuse the chapters' own demos, so that the appendix and the
chapter show the same measurement.
"""

from __future__ import annotations

from snippets.claims import (
    BLEU,
    BLEU_CONFERENCE_BIG_FRENCH,
    multihead_without_output_projection,
    worked_example_discrepancies,
)


def _fmt(x: float) -> str:
    return "0" if x == 0 else f"{x:.2g}" if x >= 0.01 else f"{x:.1e}"


def worked_example_numbers() -> dict[str, str]:
    """Largest entry-wise error of each claimed matrix of the 3x3 example."""
    return {key: _fmt(value) for key, value in worked_example_discrepancies().items()}


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
