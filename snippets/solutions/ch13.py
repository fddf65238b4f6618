"""Chapter 13's exercises, solved: merging two online-softmax states, attention over
keys split into independent parts, and the HBM traffic of the queries-outside order."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from snippets.flash import tiled_attention_lse


# --8<-- [start:merge_blocks]
def merge_blocks(
    m1: Tensor, ell1: Tensor, acc1: Tensor, m2: Tensor, ell2: Tensor, acc2: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The online-softmax state of two blocks of keys together, from each block's
    state: running maximum m (..., 1), sum ell = sum exp(s - m) (..., 1) and
    unnormalised output acc = sum exp(s - m) v (..., d_v). Each block's sums are
    re-expressed relative to the larger maximum, then added; no exponent is positive."""
    m = torch.maximum(m1, m2)
    # (..., 1): the factors that move each block's sums to the common maximum
    alpha1, alpha2 = torch.exp(m1 - m), torch.exp(m2 - m)
    return m, alpha1 * ell1 + alpha2 * ell2, alpha1 * acc1 + alpha2 * acc2


# --8<-- [end:merge_blocks]


# --8<-- [start:split_kv_attention]
def split_kv_attention(q: Tensor, k: Tensor, v: Tensor, num_splits: int) -> Tensor:
    """softmax(q k^T / sqrt(d)) v, with the keys cut into num_splits parts that are
    attended to independently (in parallel, on a GPU) and merged at the end by their
    log-sum-exps: o = sum_s exp(L_s - L) o_s with L = log sum_s exp(L_s).

    q (..., n_q, d), k (..., n_k, d), v (..., n_k, d_v), 1 <= num_splits <= n_k.
    """
    outs, lses = [], []
    k_parts = k.tensor_split(num_splits, dim=-2)
    v_parts = v.tensor_split(num_splits, dim=-2)
    for k_s, v_s in zip(k_parts, v_parts, strict=True):
        # (..., n_q, d_v) normalised over this part's keys, and (..., n_q, 1)
        out, lse = tiled_attention_lse(q, k_s, v_s, block_size=64)
        outs.append(out)
        lses.append(lse)
    # (num_splits, ..., n_q, 1): each part's share of the total mass
    weights = torch.softmax(torch.stack(lses), dim=0)
    return (weights * torch.stack(outs)).sum(dim=0)


# --8<-- [end:split_kv_attention]


# --8<-- [start:queries_outside_io]
def queries_outside_io(n: int, d: int, sram: int) -> int:
    """Numbers read from and written to HBM by the forward pass with the query loop
    outside (FlashAttention-2's order): Q_i is loaded once, every K_j and V_j once per
    query block, and O_i with its log-sum-exps written once, at the end. Blocks of
    ceil(sram / 4d) rows, so that Q_i, O_i, K_j and V_j fit on chip together."""
    block = math.ceil(sram / (4 * d))  # rows per block, queries and keys alike
    accesses = 0
    for i in range(0, n, block):
        rows = min(block, n - i)
        accesses += rows * d  # load Q_i
        for j in range(0, n, block):
            accesses += 2 * min(block, n - j) * d  # load K_j and V_j
        accesses += rows * d + rows  # write O_i and L_i
    return accesses


# --8<-- [end:queries_outside_io]
