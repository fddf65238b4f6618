"""Chapter 9's exercises, solved: local-p attention written densely, and a knockout
tournament that finds the top k with few comparisons."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


# --8<-- [start:local_p_attention]
def local_p_attention(
    q: Tensor,  # (..., n_q, d_k)
    k: Tensor,  # (..., n_k, d_k)
    v: Tensor,  # (..., n_k, d_v)
    centres: Tensor,  # (..., n_q): p_t, real numbers in [0, n_k]
    window: int,  # w >= 1: the window is round(p_t) - w, ..., round(p_t) + w
) -> Tensor:
    """Luong et al.'s local-p attention, written as dense attention with a mask.

    Every key is scored, the keys outside the window get -inf, the softmax runs over
    the window, and the weights are multiplied by exp(-(s - p_t)^2 / (2 sigma^2)) with
    sigma = w / 2, without renormalising. Same output as the gathering version, at the
    dense price: (n_q, n_k) scores instead of (n_q, 2w + 1).
    """
    # (n_k,): the source positions s
    s = torch.arange(k.size(-2), device=q.device, dtype=q.dtype)
    # (..., n_q, 1)
    p = centres.to(q.dtype).unsqueeze(-1)
    # (..., n_q, n_k): True inside the window, found from the rounded centre
    inside = (s - p.round()).abs() <= window
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    weights = torch.softmax(scores.masked_fill(~inside, float("-inf")), dim=-1)
    # the Gaussian uses the real centre p_t: that is where its gradient comes from
    sigma = window / 2
    weights = weights * torch.exp(-((s - p) ** 2) / (2 * sigma**2))
    return weights @ v  # (..., n_q, d_v)


# --8<-- [end:local_p_attention]


# --8<-- [start:tournament_top_k]
def tournament_top_k(items: Sequence[Any], k: int) -> list[int]:
    """The indices of the k largest items, largest first, by a knockout tournament.

    Building the tree plays n - 1 matches. After a winner is taken, only the matches
    on its path from leaf to root are replayed, at most ceil(log2 n) of them; so the
    whole selection makes at most n - 1 + (k - 1) ceil(log2 n) comparisons.
    """
    n = len(items)
    size = 1 << (n - 1).bit_length()  # leaves: the smallest power of two >= n
    # node i has children 2i and 2i + 1; leaves size..2 size - 1 hold the indices
    tree: list[int | None] = [None] * size + list(range(n)) + [None] * (size - n)

    def play(node: int) -> None:
        a, b = tree[2 * node], tree[2 * node + 1]
        if a is None or b is None:  # a bye: no comparison
            tree[node] = b if a is None else a
        else:
            tree[node] = a if items[b] < items[a] else b

    for node in range(size - 1, 0, -1):
        play(node)
    top = [tree[1]]
    while len(top) < k:
        node = size + top[-1]
        tree[node] = None  # remove the last winner, then replay its path only
        while node > 1:
            node //= 2
            play(node)
        top.append(tree[1])
    return top


# --8<-- [end:tournament_top_k]
