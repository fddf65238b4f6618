"""Chapter 4's exercises, solved: the padding mask of a left-padded batch, and the
mask that keeps packed documents apart."""

from __future__ import annotations

from torch import Tensor

from snippets import checks
from snippets.masks import causal_mask, padding_mask


# --8<-- [start:left_padding_mask]
def left_padding_mask(lengths: Tensor, n: int) -> Tensor:
    """(B, 1, 1, n) bool, True where key position j >= n - lengths[b]: the real
    tokens of a batch padded on the left.

    Left padding is right padding read from the end, so the chapter's mask,
    flipped along the key axis, is the answer.
    """
    return padding_mask(lengths, n).flip(-1)


# --8<-- [end:left_padding_mask]


# --8<-- [start:packed_causal_mask]
def packed_causal_mask(segment_ids: Tensor) -> Tensor:
    """(B, 1, n, n) bool: query i may attend to key j if j <= i and both tokens
    belong to the same document, segment_ids[b, i] == segment_ids[b, j].

    segment_ids is (B, n) integer, one id per packed document. Each token sees
    itself, so no row is empty.
    """
    checks.integer("(B, n)", segment_ids=segment_ids)
    # (B, 1, n, n): the block-diagonal "same document" mask
    same = segment_ids[:, None, :, None] == segment_ids[:, None, None, :]
    n = segment_ids.size(-1)
    return same & causal_mask(n, segment_ids.device)


# --8<-- [end:packed_causal_mask]
