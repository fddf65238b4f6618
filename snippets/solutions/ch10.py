"""Chapter 10's exercises, solved: the pairs of a dilated window, the layers a pattern
needs to connect every pair, and a sliding window with global tokens in O(N (w + g))."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from snippets.attention import scaled_dot_product_attention


# --8<-- [start:dilated_pair_count]
def dilated_pair_count(n: int, window: int, dilation: int) -> int:
    """The True entries of dilated_window_mask(n, window, dilation), in closed form.

    Offset k * dilation (0 < k <= window) is missing from the min(k * dilation, n) rows
    whose key would fall past the end, and as many at the start, so the count is
    n (2w + 1) - 2 sum_k min(k dilation, n). The offsets with k dilation <= n add up
    to dilation K (K + 1) / 2, where K = min(w, n // dilation); the others lose n each.
    """
    full = min(window, n // dilation)  # offsets k whose k * dilation <= n
    missing = dilation * full * (full + 1) + 2 * n * (window - full)
    return n * (2 * window + 1) - missing


# --8<-- [end:dilated_pair_count]


# --8<-- [start:pattern_layers_to_connect]
def pattern_layers_to_connect(mask: Tensor, causal: bool = False) -> int:
    """The fewest layers of a pattern after which every query holds information from
    every key that full attention (causal or not) would give it; -1 if never.

    In one layer, query i receives key j if mask[i, j]; the residual stream keeps its
    own position. So L layers connect i to j when the boolean power (I | M)^L is True
    at [i, j]. Once a power stops growing, it never will.
    """
    n = mask.size(-1)
    # (n, n): one layer, with the residual connection
    step = (mask | torch.eye(n, dtype=torch.bool, device=mask.device)).double()
    target = torch.ones(n, n, dtype=torch.bool, device=mask.device)
    if causal:
        target = target.tril()  # query i is owed the keys j <= i only
    reach = step > 0
    for layers in range(1, n + 1):
        if reach[target].all():
            return layers
        grown = (reach.double() @ step) > 0  # one layer more
        if torch.equal(grown, reach):
            return -1
        reach = grown
    return -1


# --8<-- [end:pattern_layers_to_connect]


# --8<-- [start:window_global_attention]
def window_global_attention(
    q: Tensor,  # (..., N, d)
    k: Tensor,  # (..., N, d)
    v: Tensor,  # (..., N, d_v)
    window: int,
    global_idx: list[int],  # distinct positions with global attention
) -> Tensor:
    """Longformer's attention: a sliding window of half-width w plus global tokens,
    equal to dense attention under global_tokens_mask, in O(N (w + g)) scores.

    A query scores its 2w + 1 window keys and the g global keys, gathered into one
    list per query; a global key inside the window is kept once, from the global part.
    A global query attends to every key: g dense rows, computed apart.
    """
    n, d = q.shape[-2:]
    glob = torch.as_tensor(global_idx, dtype=torch.long, device=q.device)
    is_global = torch.zeros(n, dtype=torch.bool, device=q.device)
    is_global[glob] = True
    offsets = torch.arange(-window, window + 1, device=q.device)
    pos = torch.arange(n, device=q.device)[:, None] + offsets  # (N, 2w + 1)
    in_seq = (pos >= 0) & (pos < n)
    pos = pos.clamp(0, n - 1)
    # (N, 2w + 1 + g): each query's keys, the window's first, then the global ones
    idx = torch.cat([pos, glob.expand(n, -1)], dim=-1)
    # (N, 2w + 1 + g): no key outside the sequence, no global key twice
    keep = torch.cat([in_seq & ~is_global[pos], is_global[glob].expand(n, -1)], dim=-1)
    # (..., N, 2w + 1 + g, d) and (..., N, 2w + 1 + g, d_v): gathered, not (N, N)
    k_sel, v_sel = k[..., idx, :], v[..., idx, :]
    scores = (q.unsqueeze(-2) @ k_sel.transpose(-2, -1)).squeeze(-2) / math.sqrt(d)
    weights = torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1)
    out = (weights.unsqueeze(-2) @ v_sel).squeeze(-2)  # (..., N, d_v)
    # global queries see every key: (..., g, d_v)
    out[..., glob, :] = scaled_dot_product_attention(q[..., glob, :], k, v)[0]
    return out


# --8<-- [end:window_global_attention]
