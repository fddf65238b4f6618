"""Chapter 4's code exercises; the expected masks come from loops over every query and
key position."""

from __future__ import annotations

import torch

from snippets.exercises import Case, Exercise


def _left_padding_by_loop(lengths: list[int], n: int) -> torch.Tensor:
    """Brute force: sequence b's real tokens are its last lengths[b] positions."""
    mask = torch.zeros(len(lengths), 1, 1, n, dtype=torch.bool)
    for b, length in enumerate(lengths):
        for j in range(n):
            mask[b, 0, 0, j] = j >= n - length
    return mask


def _left_padding_cases() -> list[Case]:
    """A full, a shorter and an empty sequence; int32 lengths; one sequence."""
    cases = []
    for lengths, n, dtype in (
        ([5, 3, 0], 5, torch.int64),
        ([1, 4], 4, torch.int32),
        ([2], 6, torch.int64),
    ):
        inputs = f"lengths={lengths} ({str(dtype).removeprefix('torch.')}), n={n}"
        args = (torch.tensor(lengths, dtype=dtype), n)
        cases.append(Case(inputs, args, _left_padding_by_loop(lengths, n)))
    return cases


def _packed_by_loop(segment_ids: list[list[int]]) -> torch.Tensor:
    """Brute force: allowed when the key is not after the query and both tokens
    carry the same document id."""
    batch, n = len(segment_ids), len(segment_ids[0])
    mask = torch.zeros(batch, 1, n, n, dtype=torch.bool)
    for b, ids in enumerate(segment_ids):
        for i in range(n):
            for j in range(i + 1):
                mask[b, 0, i, j] = ids[i] == ids[j]
    return mask


def _packed_cases() -> list[Case]:
    """Three documents in one row; two rows with different layouts, one with a
    document of a single token; ids that do not start at 0, padding as id -1."""
    cases = []
    for ids in (
        [[0, 0, 0, 1, 1, 2]],
        [[0, 0, 1, 1, 1, 1], [0, 1, 2, 2, 2, 3]],
        [[7, 7, 7, 3, 3, -1, -1]],
    ):
        inputs = f"segment_ids={ids} (document ids, (B, n) int64)"
        cases.append(Case(inputs, (torch.tensor(ids),), _packed_by_loop(ids)))
    return cases


EXERCISES = [
    Exercise("4.3", "left_padding_mask", "Left padding", _left_padding_cases),
    Exercise("4.4", "packed_causal_mask", "Packed documents", _packed_cases),
]
