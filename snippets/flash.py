"""FlashAttention's algorithm in plain PyTorch: exact attention computed tile by tile.

The point of the algorithm (Dao et al., 2022) is that softmax attention can be computed
without ever holding the n x n matrix of scores: queries are combined with one block of
keys and values at a time, and three running quantities per query (the largest score so
far, the sum of exponentials so far, and the weighted sum of values so far) are rescaled
whenever a larger score turns up. The result is exactly softmax(q k^T / sqrt(d)) v, up to
rounding, while the extra memory grows like n times the block size instead of n^2.

This file is a readable model of the recurrence. A real FlashAttention kernel runs the same
recurrence inside one fused GPU kernel with the tiles held in on-chip SRAM; a Python loop
over tiles keeps the memory saving but not the speed.

Shapes follow the course convention `(..., N, d)`, where `...` is any batch and head
dimensions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from snippets import checks


# --8<-- [start:online_lse]
def online_logsumexp(x: Tensor, block_size: int) -> Tensor:
    """log(sum_j exp(x_j)) over the last dimension, reading x one block at a time.

    Only a running maximum m and a running sum ell = sum exp(x_j - m) are kept. When a
    block brings a larger maximum m', the old sum is rescaled by exp(m - m'), so that it
    stays a sum of exponentials relative to the current maximum. One pass, O(1) state
    per row, and no exponential ever exceeds 1.
    """
    checks.positive_ints(block_size=block_size)
    m = x.new_full(x.shape[:-1], float("-inf"))  # (...,) running maximum
    ell = x.new_zeros(x.shape[:-1])  # (...,) running sum of exp(x - m)
    for start in range(0, x.size(-1), block_size):
        block = x[..., start : start + block_size]  # (..., B)
        m_new = torch.maximum(m, block.amax(dim=-1))
        block_sum = torch.exp(block - m_new.unsqueeze(-1)).sum(-1)  # (...,)
        ell = ell * torch.exp(m - m_new) + block_sum
        m = m_new
    return m + torch.log(ell)


# --8<-- [end:online_lse]


# --8<-- [start:tiled]
def tiled_attention(
    q: Tensor,  # (..., n_q, d)
    k: Tensor,  # (..., n_k, d)
    v: Tensor,  # (..., n_k, d_v)
    block_size: int,  # keys and values per tile
    causal: bool = False,  # query i may attend to keys j <= i (as torch's is_causal)
    query_block_size: int | None = None,  # queries per tile; None = all at once
) -> Tensor:
    """softmax(q k^T / sqrt(d)) v by the online-softmax recurrence: (..., n_q, d_v).

    The largest score tensor ever held is one tile, (..., query_block_size, block_size).
    A query that may attend to nothing gets a zero output, as in snippets.attention.
    """
    return tiled_attention_lse(q, k, v, block_size, causal, query_block_size)[0]


def tiled_attention_lse(
    q: Tensor,  # (..., n_q, d)
    k: Tensor,  # (..., n_k, d)
    v: Tensor,  # (..., n_k, d_v)
    block_size: int,
    causal: bool = False,
    query_block_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """The output (..., n_q, d_v) and each query's log-sum-exp of its scaled scores,
    L_i = log sum_j exp(q_i . k_j / sqrt(d)), (..., n_q, 1): +inf for a query that may
    attend to nothing, so that exp(s - L) is 0 for it."""
    checks.attention_inputs(q, k, v, same_batch=True)  # out is allocated from q
    checks.positive_ints(block_size=block_size, query_block_size=query_block_size)
    n_q, n_k, d = q.size(-2), k.size(-2), q.size(-1)
    bq = query_block_size or n_q
    lowest = torch.finfo(q.dtype).min  # a finite stand-in for -inf in the running max
    out = q.new_empty(*q.shape[:-1], v.size(-1))  # (..., n_q, d_v)
    lse = q.new_empty(*q.shape[:-1], 1)  # (..., n_q, 1)
    for i in range(0, n_q, bq):
        q_i = q[..., i : i + bq, :] / math.sqrt(d)  # (..., Bq, d)
        rows = i + torch.arange(q_i.size(-2), device=q.device)  # query positions
        m = q.new_full((*q_i.shape[:-1], 1), lowest)  # (..., Bq, 1) running max
        ell = q.new_zeros((*q_i.shape[:-1], 1))  # (..., Bq, 1) running sum of exp
        acc = q.new_zeros((*q_i.shape[:-1], v.size(-1)))  # (..., Bq, d_v)
        # With a causal mask, key blocks after the block's last query are skipped.
        n_keys = min(n_k, i + q_i.size(-2)) if causal else n_k
        for j in range(0, n_keys, block_size):
            k_j = k[..., j : j + block_size, :]  # (..., Bk, d)
            v_j = v[..., j : j + block_size, :]  # (..., Bk, d_v)
            s = q_i @ k_j.transpose(-2, -1)  # (..., Bq, Bk): the only scores in memory
            if causal and j + k_j.size(-2) - 1 > i:  # this tile crosses the diagonal
                cols = j + torch.arange(k_j.size(-2), device=q.device)
                s = s.masked_fill(cols > rows.unsqueeze(-1), float("-inf"))
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            p = torch.exp(s - m_new)  # (..., Bq, Bk), entries in [0, 1]
            alpha = torch.exp(m - m_new)  # rescales what was summed under the old max
            ell = alpha * ell + p.sum(dim=-1, keepdim=True)
            acc = alpha * acc + p @ v_j
            m = m_new
        # ell = 0 only for a query with no visible key; its acc is 0 too: 0 / tiny = 0.
        out[..., i : i + bq, :] = acc / ell.clamp_min(torch.finfo(q.dtype).tiny)
        lse[..., i : i + bq, :] = torch.where(ell > 0, m + ell.log(), math.inf)
    return out, lse


# --8<-- [end:tiled]


# --8<-- [start:flash]
class FlashAttention(torch.autograd.Function):
    """Exact attention that keeps O(N d) numbers for its backward pass, not O(N^2).

    The forward pass saves q, k, v, the output and each query's log-sum-exp L. The
    backward pass rebuilds each tile of probabilities from them, P = exp(S - L), instead
    of reading an N x N matrix kept by autograd: the recomputation of Dao et al. (2022),
    in the loop order of Dao (2023), Algorithm 2 (keys outside, queries inside).
    """

    @staticmethod
    def forward(ctx, q, k, v, causal: bool, block_size: int) -> Tensor:
        out, lse = tiled_attention_lse(q, k, v, block_size, causal, block_size)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.block_size = causal, block_size
        return out

    @staticmethod
    def backward(ctx, d_out: Tensor):
        q, k, v, out, lse = ctx.saved_tensors
        b, scale = ctx.block_size, 1 / math.sqrt(q.size(-1))
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        # D_i = sum_j P_ij dP_ij = dO_i . O_i: one number per query, (..., n_q, 1)
        delta = (d_out * out).sum(dim=-1, keepdim=True)
        for j in range(0, k.size(-2), b):
            k_j, v_j = k[..., j : j + b, :], v[..., j : j + b, :]  # (..., Bk, d)
            cols = j + torch.arange(k_j.size(-2), device=q.device)
            # with a causal mask, queries before j see none of these keys
            for i in range(j if ctx.causal else 0, q.size(-2), b):
                q_i, do_i = q[..., i : i + b, :], d_out[..., i : i + b, :]
                s = scale * q_i @ k_j.transpose(-2, -1)  # (..., Bq, Bk), recomputed
                if ctx.causal:
                    rows = i + torch.arange(q_i.size(-2), device=q.device)
                    s = s.masked_fill(cols > rows.unsqueeze(-1), float("-inf"))
                p = torch.exp(s - lse[..., i : i + b, :])  # the tile of softmax(S)
                dv[..., j : j + b, :] += p.transpose(-2, -1) @ do_i
                dp = do_i @ v_j.transpose(-2, -1)  # (..., Bq, Bk)
                ds = p * (dp - delta[..., i : i + b, :])  # the softmax's backward
                dq[..., i : i + b, :] += scale * ds @ k_j
                dk[..., j : j + b, :] += scale * ds.transpose(-2, -1) @ q_i
        return dq, dk, dv, None, None


def flash_attention(
    q: Tensor,  # (..., n_q, d)
    k: Tensor,  # (..., n_k, d)
    v: Tensor,  # (..., n_k, d_v)
    causal: bool = False,  # query i may attend to keys j <= i (as torch's is_causal)
    block_size: int = 64,  # queries and keys per tile
) -> Tensor:
    """softmax(q k^T / sqrt(d)) v, (..., n_q, d_v), differentiable in q, k and v with
    FlashAttention's backward pass. q, k and v share their batch dimensions."""
    checks.attention_inputs(q, k, v, same_batch=True)
    checks.positive_ints(block_size=block_size)
    return FlashAttention.apply(q, k, v, causal, block_size)


# --8<-- [end:flash]


# --8<-- [start:io]
def standard_attention_io(n: int, d: int) -> int:
    """Numbers standard attention reads from and writes to HBM (the paper's
    Algorithm 0): S = QK^T is written out, read back for the softmax, P written, then
    read with V."""
    checks.positive_ints(n=n, d=d)
    accesses = 2 * n * d + n * n  # read Q and K, write S
    accesses += n * n + n * n  # read S, write P = softmax(S)
    accesses += n * n + n * d + n * d  # read P and V, write O = PV
    return accesses


def flash_attention_io(n: int, d: int, sram: int) -> int:
    """Numbers FlashAttention's forward pass (the paper's Algorithm 1) reads from and
    writes to HBM with an on-chip memory of `sram` numbers, counted loop by loop."""
    checks.positive_ints(n=n, d=d, sram=sram)
    b_c = math.ceil(sram / (4 * d))  # keys per block: K_j, V_j, Q_i, O_i fill the chip
    b_r = min(b_c, d)  # queries per block
    accesses = n * d + 2 * n  # O, ell and m initialised in HBM
    for j in range(0, n, b_c):
        accesses += 2 * min(b_c, n - j) * d  # load K_j and V_j
        for i in range(0, n, b_r):
            rows = min(b_r, n - i)
            accesses += 2 * rows * d + 2 * rows  # load Q_i, O_i, ell_i and m_i
            accesses += rows * d + 2 * rows  # write them back updated (not Q_i)
    return accesses


# --8<-- [end:io]
