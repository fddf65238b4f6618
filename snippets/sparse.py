"""Sparse attention: which (query, key) pairs are computed, and an implementation that
skips the others.

The pattern builders return boolean masks of shape (n, n) in the course convention
(True = may attend), for drawing and for checking against dense attention.
`sliding_window_attention` computes only the band |i - j| <= window, so its time and
memory grow linearly in n for a fixed window: no (n, n) tensor is ever formed there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from snippets import checks
from snippets.attention import scaled_dot_product_attention


# --8<-- [start:window]
def sliding_window_mask(
    n: int, window: int, device: torch.device | str | None = None
) -> Tensor:
    """Each position attends to the positions at distance <= window
    (Longformer's local part). Returns a bool (n, n) mask, True = may attend.

    Row i has min(i, w) + 1 + min(n - 1 - i, w) True entries: about n (2w + 1)
    of the n^2 pairs in all.
    """
    checks.non_negative_ints(n=n, window=window)
    i = torch.arange(n, device=device)
    return (i[:, None] - i[None, :]).abs() <= window  # (n, n)


def global_tokens_mask(
    n: int,
    window: int,
    global_idx: list[int] | Tensor,
    device: torch.device | str | None = None,
) -> Tensor:
    """Sliding window plus global tokens (Longformer): a global token attends to
    every position, and every position attends to it. Used for [CLS] or question
    tokens."""
    mask = sliding_window_mask(n, window, device)  # (n, n)
    checks.indices("global_idx", global_idx, n)  # -1 would wrap around to n - 1
    idx = torch.as_tensor(global_idx, dtype=torch.long, device=mask.device)
    mask[idx, :] = True  # global rows: the token sees everything
    mask[:, idx] = True  # global columns: everything sees the token
    return mask


# --8<-- [end:window]


# --8<-- [start:bigbird]
def bigbird_mask(
    n: int,
    block: int,
    window_blocks: int,
    num_global_blocks: int,
    num_random_blocks: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """BigBird's pattern: window + global + random, decided per block of tokens.

    The sequence is cut into ceil(n / block) blocks. A query block attends to
    - the `window_blocks` blocks centred on it (odd; BigBird uses 3),
    - the first `num_global_blocks` blocks, which in turn attend to everything,
    - `num_random_blocks` further blocks drawn at random, without repeats, among
      the blocks it does not already see (drawn once: a fixed graph).
    Returns a bool (n, n) mask, True = may attend.
    """
    checks.positive_ints(n=n, block=block, window_blocks=window_blocks)
    checks.non_negative_ints(
        num_global_blocks=num_global_blocks, num_random_blocks=num_random_blocks
    )
    if window_blocks % 2 != 1:
        raise ValueError("window_blocks must be odd: a block and its neighbours")
    nb = math.ceil(n / block)
    blk = torch.arange(nb)
    # (nb, nb): the window, in blocks
    blocks = (blk[:, None] - blk[None, :]).abs() <= window_blocks // 2
    blocks[:num_global_blocks, :] = True  # global blocks see every block
    blocks[:, :num_global_blocks] = True  # ... and every block sees them
    for row in range(num_global_blocks, nb):
        free = (~blocks[row]).nonzero().flatten()  # blocks not yet seen by row
        order = torch.randperm(free.numel(), generator=generator)
        pick = order[:num_random_blocks]
        blocks[row, free[pick]] = True
    # Expand each block entry to a (block x block) tile of tokens; crop to n.
    tokens = blocks.repeat_interleave(block, 0).repeat_interleave(block, 1)
    return tokens[:n, :n]


# --8<-- [end:bigbird]


# --8<-- [start:strided]
def strided_mask(n: int, stride: int) -> Tensor:
    """Sparse Transformer's strided pattern (Child et al. 2019), autoregressive.

    Two heads split the work: one sees the previous `stride` positions
    (i - stride <= j <= i), the other every stride-th position before i
    ((i - j) mod stride == 0). Their union, returned as a bool (n, n) mask, lets
    any position reach any earlier one in two steps. With stride ~ sqrt(n), each
    row has O(sqrt(n)) entries.
    """
    checks.positive_ints(n=n, stride=stride)
    i = torch.arange(n)
    diff = i[:, None] - i[None, :]  # (n, n): i - j
    causal = diff >= 0
    local = causal & (diff <= stride)
    strided = causal & (diff % stride == 0)
    return local | strided


def fixed_mask(n: int, stride: int, c: int = 1) -> Tensor:
    """Sparse Transformer's fixed pattern, autoregressive: a position sees its
    own block of `stride` positions, and the last `c` positions of every block
    (the "summary" cells) that are not in its future. Suited to text, which has
    no period for the strided pattern to follow."""
    checks.positive_ints(n=n, stride=stride)
    checks.int_between("c", c, 1, stride)  # summary cells per block
    i = torch.arange(n)
    causal = i[:, None] >= i[None, :]  # (n, n)
    same_block = (i[:, None] // stride) == (i[None, :] // stride)
    summary = (i[None, :] % stride) >= stride - c  # (1, n): summary columns
    return causal & (same_block | summary)


# --8<-- [end:strided]


# --8<-- [start:sliding]
def sliding_window_attention(
    q: Tensor,  # (..., N, d)
    k: Tensor,  # (..., N, d)
    v: Tensor,  # (..., N, d_v)
    window: int,
    causal: bool = False,
) -> Tensor:
    """Attention restricted to |i - j| <= window (and j <= i if causal), in
    O(N w) time and memory. Returns the output, (..., N, d_v).

    Equal to dense attention with `sliding_window_mask(N, window)`, but the
    (N, N) scores are never formed. Queries are cut into blocks of b positions;
    the queries of one block can only see keys in a span of b + 2w positions, so
    each block does one small (b, b + 2w) attention. `unfold` gives the spans as
    overlapping views of the padded keys: nothing is copied until the product.
    """
    checks.self_attention_inputs(q, k, v)  # one sequence: n_q == n_k
    checks.non_negative_ints(window=window)
    N = q.size(-2)
    w = min(window, N - 1)  # a wider window is the whole sequence
    b = min(max(w, 32), N)  # query block; if b = w, 2w + 1 of 3w keys are used
    nb = math.ceil(N / b)
    pad = nb * b - N  # pad the tail so that the blocks tile the sequence

    q_blk = F.pad(q, (0, 0, 0, pad)).unflatten(-2, (nb, b))  # (..., nb, b, d)
    # Keys/values padded by w on the left, so the span of block i starts at i*b.
    k_pad = F.pad(k, (0, 0, w, w + pad))  # (..., nb*b + 2w, d)
    v_pad = F.pad(v, (0, 0, w, w + pad))  # (..., nb*b + 2w, d_v)
    span = b + 2 * w
    k_blk = k_pad.unfold(-2, span, b).transpose(-1, -2)  # (..., nb, span, d)
    v_blk = v_pad.unfold(-2, span, b).transpose(-1, -2)  # (..., nb, span, d_v)

    # Query r of block i is position i*b + r; key c of its span is i*b + c - w.
    r = torch.arange(b, device=q.device)[:, None]  # (b, 1)
    c = torch.arange(span, device=q.device)[None, :]  # (1, span)
    offset = c - w - r  # j - i, the same for every block
    band = (offset.abs() <= w) & (offset <= 0 if causal else True)  # (b, span)
    blk = torch.arange(nb, device=q.device)[:, None, None]  # (nb, 1, 1)
    pos = blk * b + c - w  # (nb, 1, span): key positions
    mask = band & (pos >= 0) & (pos < N)  # (nb, b, span): no padded keys

    # One small dense attention per block, with chapter 3's function.
    # Output: (..., nb, b, d_v)
    out, _ = scaled_dot_product_attention(q_blk, k_blk, v_blk, mask)
    return out.flatten(-3, -2)[..., :N, :]  # (..., N, d_v)


# --8<-- [end:sliding]


def mask_density(mask: Tensor) -> float:
    """Fraction of the n^2 (query, key) pairs that a pattern computes."""
    return mask.float().mean().item()
