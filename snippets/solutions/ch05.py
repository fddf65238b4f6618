"""Chapter 5's exercises, solved: packed projections, QK and OV circuits, shared
keys."""

from __future__ import annotations

import math

from torch import Tensor

from snippets.attention import scaled_dot_product_attention


# --8<-- [start:packed_self_attention]
def packed_self_attention(
    x: Tensor,
    in_proj_weight: Tensor,
    out_proj_weight: Tensor,
    num_heads: int,
    mask: Tensor | None = None,
) -> Tensor:
    """Multi-head self-attention from PyTorch's packed weights, without biases.

    x is (B, N, d). in_proj_weight (3d, d) stacks W_Q^T, W_K^T, W_V^T and
    out_proj_weight (d, d) is W_O^T, both in nn.Linear's (out, in) layout, so
    they multiply transposed. One product computes every role of every head.
    mask: bool, True = may attend, broadcastable to (B, H, N, N).
    """
    B, N, d = x.shape
    d_head = d // num_heads
    # (B, N, 3d): queries, then keys, then values, each split into H heads
    qkv = x @ in_proj_weight.T
    # (B, N, 3, H, d_head) -> (3, B, H, N, d_head)
    q, k, v = qkv.view(B, N, 3, num_heads, d_head).permute(2, 0, 3, 1, 4)
    heads, _ = scaled_dot_product_attention(q, k, v, mask)
    # (B, H, N, d_head) -> (B, N, d): the heads side by side
    concat = heads.transpose(1, 2).reshape(B, N, d)
    return concat @ out_proj_weight.T


# --8<-- [end:packed_self_attention]


# --8<-- [start:head_circuits]
def head_circuits(
    w_q: Tensor, w_k: Tensor, w_v: Tensor, w_o: Tensor, num_heads: int
) -> tuple[Tensor, Tensor]:
    """Each head's QK matrix W_Q^(h) W_K^(h)T / sqrt(d_h) and OV matrix
    W_V^(h) W_O^(h), both (H, d, d), from the (d, d) weights of the page (Q = X W_Q).

    Head h scores rows x_i, x_j of X with x_i QK[h] x_j^T and adds its weights
    times X OV[h] to the output: the module is the sum over heads of what these
    two d x d matrices compute.
    """
    d = w_q.size(0)
    d_head = d // num_heads
    # head h owns columns h d_h .. (h+1) d_h - 1 of W_Q, W_K and W_V
    # (d, d) -> (H, d, d_head)
    q_h, k_h, v_h = (
        w.view(d, num_heads, d_head).transpose(0, 1) for w in (w_q, w_k, w_v)
    )
    # and rows h d_head .. (h+1) d_head - 1 of W_O: (H, d_head, d)
    o_h = w_o.view(num_heads, d_head, d)
    qk = q_h @ k_h.transpose(-2, -1) / math.sqrt(d_head)
    return qk, v_h @ o_h


# --8<-- [end:head_circuits]


# --8<-- [start:grouped_query_attention]
def grouped_query_attention(
    x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, w_o: Tensor, num_heads: int
) -> Tensor:
    """Self-attention whose H query heads share G key/value heads, without biases.

    x is (B, N, d); w_q and w_o are (d, d), w_k and w_v (d, G d_h), all in the
    page's convention (Q = X W_Q). Query head h reads key/value head h // (H / G):
    G = H is multi-head attention, G = 1 multi-query attention.
    """
    B, N, d = x.shape
    d_head = d // num_heads
    groups = w_k.size(1) // d_head

    def split(t: Tensor, heads: int) -> Tensor:
        # (B, N, heads d_head) -> (B, heads, N, d_head)
        return t.view(B, N, heads, d_head).transpose(1, 2)

    q = split(x @ w_q, num_heads)
    k, v = split(x @ w_k, groups), split(x @ w_v, groups)
    # each group's keys and values, repeated for its H / G query heads
    k = k.repeat_interleave(num_heads // groups, dim=1)
    v = v.repeat_interleave(num_heads // groups, dim=1)
    # (B, H, N, d_head)
    heads, _ = scaled_dot_product_attention(q, k, v)
    return heads.transpose(1, 2).reshape(B, N, d) @ w_o


# --8<-- [end:grouped_query_attention]
