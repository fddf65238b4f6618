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


def dilated_window_mask(
    n: int, window: int, dilation: int, device: torch.device | str | None = None
) -> Tensor:
    """Longformer's dilated sliding window: each position attends to the positions
    i + k * dilation for |k| <= window, a receptive field of 2 * window * dilation + 1
    positions for the cost of 2 * window + 1. Returns a bool (n, n) mask."""
    checks.non_negative_ints(n=n, window=window)
    checks.positive_ints(dilation=dilation)
    i = torch.arange(n, device=device)
    offset = i[:, None] - i[None, :]  # (n, n): i - j
    return (offset.abs() <= window * dilation) & (offset % dilation == 0)


# --8<-- [end:window]


# --8<-- [start:bigbird]
def bigbird_layout(
    num_blocks: int,
    window_blocks: int,
    num_global_blocks: int,
    num_random_blocks: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """BigBird's pattern on blocks: a bool (num_blocks, num_blocks) layout, True where a
    query block attends to a key block. A query block attends to
    - the `window_blocks` blocks centred on it (odd; BigBird uses 3),
    - the first `num_global_blocks` blocks, which in turn attend to everything,
    - `num_random_blocks` further blocks drawn at random, without repeats, among
      the blocks it does not already see (drawn once: a fixed graph).
    """
    checks.positive_ints(num_blocks=num_blocks, window_blocks=window_blocks)
    checks.non_negative_ints(
        num_global_blocks=num_global_blocks, num_random_blocks=num_random_blocks
    )
    if window_blocks % 2 != 1:
        raise ValueError("window_blocks must be odd: a block and its neighbours")
    blk = torch.arange(num_blocks)
    # (nb, nb): the window, in blocks
    blocks = (blk[:, None] - blk[None, :]).abs() <= window_blocks // 2
    blocks[:num_global_blocks, :] = True  # global blocks see every block
    blocks[:, :num_global_blocks] = True  # ... and every block sees them
    for row in range(num_global_blocks, num_blocks):
        free = (~blocks[row]).nonzero().flatten()  # blocks not yet seen by row
        order = torch.randperm(free.numel(), generator=generator)
        pick = order[:num_random_blocks]
        blocks[row, free[pick]] = True
    return blocks


def bigbird_mask(
    n: int,
    block: int,
    window_blocks: int,
    num_global_blocks: int,
    num_random_blocks: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """BigBird's pattern for n tokens cut into ceil(n / block) blocks (see
    bigbird_layout), as a bool (n, n) mask, True = may attend."""
    checks.positive_ints(n=n, block=block)
    layout = bigbird_layout(
        math.ceil(n / block),
        window_blocks,
        num_global_blocks,
        num_random_blocks,
        generator,
    )
    return expand_layout(layout, block, n, n)


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


# --8<-- [start:block_sparse]
def block_sparse_attention(
    q: Tensor,  # (..., N_q, d)
    k: Tensor,  # (..., N_k, d)
    v: Tensor,  # (..., N_k, d_v)
    # bool (..., ceil(N_q / b), ceil(N_k / b)): the key blocks of each query block
    layout: Tensor,
    block_size: int,  # b, positions per block
) -> Tensor:
    """softmax(q k^T / sqrt(d)) v over the listed blocks only: (..., N_q, d_v).

    Query block i attends to the keys of block j where layout[..., i, j] is True, and
    only those tiles are computed: the listed (query block, key block) pairs are
    gathered, each tile of scores is a (b, b) product, and the softmax of a query row is
    assembled across its tiles from its maximum and its sum (two passes: the maximum
    over all the row's tiles first). A query block with no listed block gets zeros, as a
    fully masked row does in snippets.attention. Equal to dense attention under the
    layout expanded to positions.
    """
    checks.attention_inputs(q, k, v, same_batch=True)
    checks.positive_ints(block_size=block_size)
    b, (n_q, d), n_k = block_size, q.shape[-2:], k.size(-2)
    nq, nk = math.ceil(n_q / b), math.ceil(n_k / b)
    batch = q.shape[:-2]
    checks.bool_mask(layout, (*batch, nq, nk), name="layout")  # True = computed
    layout = layout.to(q.device)
    # Blocks: pad the sequences to whole blocks, one flat batch dimension B.
    q_blk = F.pad(q, (0, 0, 0, nq * b - n_q)).reshape(-1, nq, b, d)  # (B, nq, b, d)
    k_blk = F.pad(k, (0, 0, 0, nk * b - n_k)).reshape(-1, nk, b, d)  # (B, nk, b, d)
    v_blk = F.pad(v, (0, 0, 0, nk * b - n_k)).reshape(-1, nk, b, v.size(-1))
    pairs = layout.expand(*batch, nq, nk).reshape(-1, nq, nk)  # (B, nq, nk)
    bi, qi, kj = pairs.nonzero(as_tuple=True)  # the P listed tiles
    # (P, b, b): the only scores computed
    s = q_blk[bi, qi] @ k_blk[bi, kj].transpose(-2, -1) / math.sqrt(d)
    key_pos = kj[:, None] * b + torch.arange(b, device=q.device)  # (P, b)
    s = s.masked_fill((key_pos >= n_k)[:, None, :], float("-inf"))  # padded keys
    row = bi * nq + qi  # (P,): the query block of each tile, in the flat batch
    m = q.new_full((pairs.size(0) * nq, b), float("-inf"))  # (B * nq, b) row maxima
    m = m.scatter_reduce(0, row[:, None].expand(-1, b), s.amax(-1), "amax")
    p = torch.exp(s - m[row][..., None])  # (P, b, b), entries in [0, 1]
    ell = q.new_zeros(m.shape).index_add(0, row, p.sum(-1))  # (B * nq, b)
    out = q.new_zeros(*m.shape, v.size(-1)).index_add(0, row, p @ v_blk[bi, kj])
    # a query block with no tile has ell = 0 and out = 0: 0 / tiny = 0
    out = out / ell.clamp_min(torch.finfo(q.dtype).tiny)[..., None]  # (B * nq, b, d_v)
    return out.reshape(*batch, nq * b, v.size(-1))[..., :n_q, :]


def expand_layout(layout: Tensor, block_size: int, n_q: int, n_k: int) -> Tensor:
    """A block layout (..., nq, nk) as the bool mask (..., n_q, n_k) it stands for."""
    checks.positive_ints(block_size=block_size, n_q=n_q, n_k=n_k)
    tokens = layout.repeat_interleave(block_size, -2).repeat_interleave(block_size, -1)
    return tokens[..., :n_q, :n_k]


# --8<-- [end:block_sparse]
