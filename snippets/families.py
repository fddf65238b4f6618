"""Attention families: how a score is computed (additive or dot product), how the
weights are spread (soft over every key, or hard over the top k) and which keys are
candidates (all of them, or a local window), with what each costs.

Shapes follow the course convention `(..., N, d)`; masks are boolean, True = may attend.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from snippets import checks
from snippets.attention import scaled_dot_product_attention


def softmax_attend(
    scores: Tensor,  # (..., n_q, n_k)
    v: Tensor,  # (..., n_k, d_v)
    mask: Tensor | None = None,  # bool, broadcastable to scores; True = may attend
) -> tuple[Tensor, Tensor]:
    """The step every soft attention shares, whatever its score: softmax over the keys,
    then the weighted average of the values. Returns the output (..., n_q, d_v) and the
    weights (..., n_q, n_k)."""
    checks.bool_mask(mask, scores.shape)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # empty row: 0
    return weights @ v, weights


# --8<-- [start:additive]
class AdditiveAttention(nn.Module):
    """Bahdanau et al. (2014): score(q, k) = v^T tanh(W_q q + W_k k).

    A one-hidden-layer network scores each (query, key) pair, so queries and keys
    may have different widths. The price: a (n_q, n_k, d_hidden) tensor of tanh
    inputs.
    """

    def __init__(self, d_query: int, d_key: int, d_hidden: int) -> None:
        super().__init__()
        checks.positive_ints(d_query=d_query, d_key=d_key, d_hidden=d_hidden)
        self.W_q = nn.Linear(d_query, d_hidden, bias=False)
        self.W_k = nn.Linear(d_key, d_hidden, bias=False)
        self.v = nn.Linear(d_hidden, 1, bias=False)

    def scores(self, q: Tensor, k: Tensor) -> Tensor:
        hq = self.W_q(q).unsqueeze(-2)  # (..., n_q, 1, h)
        hk = self.W_k(k).unsqueeze(-3)  # (..., 1, n_k, h)
        hidden = torch.tanh(hq + hk)  # (..., n_q, n_k, h): every pair
        return self.v(hidden).squeeze(-1)  # (..., n_q, n_k)

    def forward(
        self,
        q: Tensor,  # (..., n_q, d_query)
        k: Tensor,  # (..., n_k, d_key)
        v: Tensor,  # (..., n_k, d_v)
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        return softmax_attend(self.scores(q, k), v, mask)


# --8<-- [end:additive]


# --8<-- [start:dot]
class DotProductAttention(nn.Module):
    """Luong et al. (2015), scaled as in Vaswani et al. (2017):
    score(q, k) = (W_q q) . (W_k k) / sqrt(d_hidden).

    Projecting both sides to d_hidden lets queries and keys of different widths
    meet, as in the additive module; the scores are then one matrix product,
    (n_q, n_k), with no (n_q, n_k, d_hidden) intermediate.
    """

    def __init__(self, d_query: int, d_key: int, d_hidden: int) -> None:
        super().__init__()
        checks.positive_ints(d_query=d_query, d_key=d_key, d_hidden=d_hidden)
        self.W_q = nn.Linear(d_query, d_hidden, bias=False)
        self.W_k = nn.Linear(d_key, d_hidden, bias=False)

    def forward(
        self,
        q: Tensor,  # (..., n_q, d_query)
        k: Tensor,  # (..., n_k, d_key)
        v: Tensor,  # (..., n_k, d_v)
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        return scaled_dot_product_attention(self.W_q(q), self.W_k(k), v, mask)


# --8<-- [end:dot]


# --8<-- [start:topk]
def topk_attention(
    q: Tensor,  # (..., n_q, d)
    k: Tensor,  # (..., n_k, d)
    v: Tensor,  # (..., n_k, d_v)
    top_k: int,
) -> tuple[Tensor, Tensor]:
    """Hard attention, deterministic form: each query keeps its top_k
    best-scoring keys, renormalises the softmax over them and averages only
    their values.

    Returns the output (..., n_q, d_v) and the dense weights (..., n_q, n_k),
    with exactly top_k non-zeros per row, summing to 1. If top_k = n_k, this is
    soft attention.
    """
    checks.attention_inputs(q, k, v)
    checks.int_between("top_k", top_k, 1, k.size(-2))
    # 1. Score: every key is still scored, n_k * d multiply-adds per query.
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., n_q, n_k)
    # 2. Select: finding the k largest means looking at all n_k scores.
    top, idx = scores.topk(top_k, dim=-1)  # (..., n_q, top_k)
    w = torch.softmax(top, dim=-1)  # (..., n_q, top_k), sums to 1
    # 3. Sum: the only cheaper step, top_k * d_v multiply-adds per query.
    # (..., n_q, n_k, d_v)
    rows = v.unsqueeze(-3).expand(*idx.shape[:-1], *v.shape[-2:])
    chosen = rows.gather(-2, idx.unsqueeze(-1).expand(*idx.shape, v.size(-1)))
    # (..., n_q, 1, top_k) @ (..., top_k, d_v)
    out = (w.unsqueeze(-2) @ chosen).squeeze(-2)
    weights = torch.zeros_like(scores).scatter(-1, idx, w)  # (..., n_q, n_k)
    return out, weights


# --8<-- [end:topk]


# --8<-- [start:local]
def local_attention(
    q: Tensor,  # (..., n_q, d_k)
    k: Tensor,  # (..., n_k, d_k)
    v: Tensor,  # (..., n_k, d_v)
    centres: Tensor,  # (..., n_q): the aligned source position p_t of each query
    window: int,  # w: the window is round(p_t) - w, ..., round(p_t) + w
    gaussian: bool = True,
) -> tuple[Tensor, Tensor]:
    """Local attention (Luong et al., 2015, section 3.2).

    Query t gathers only the 2w + 1 keys around round(p_t), dropping those
    outside 0..n_k - 1, and takes the softmax of their scores. With `gaussian`
    (local-p) the weights are then multiplied by exp(-(s - p_t)^2 / (2 sigma^2)),
    sigma = w / 2, and not renormalised, as in the paper. Local-m is
    centres = t, gaussian=False. Cost per query: (2w + 1)(d_k + d_v)
    multiply-adds, whatever n_k is.

    Returns the output (..., n_q, d_v) and the weights spread back over all keys
    (..., n_q, n_k), zero outside the window.
    """
    checks.attention_inputs(q, k, v, same_batch=True)  # keys gathered per query
    checks.int_between("window", window, int(gaussian))  # sigma = window / 2 > 0
    checks.shape("centres", centres, q.shape[:-1], "(..., n_q of q)")
    n_k = k.size(-2)
    offsets = torch.arange(-window, window + 1, device=q.device)
    pos = centres.round().long().unsqueeze(-1) + offsets  # (..., n_q, 2w + 1)
    inside = (pos >= 0) & (pos < n_k)
    idx = pos.clamp(0, n_k - 1)  # outside keys: any index, masked below

    def window_rows(x: Tensor) -> Tensor:  # (..., n_k, e) -> (..., n_q, 2w + 1, e)
        rows = x.unsqueeze(-3).expand(*idx.shape[:-1], *x.shape[-2:])
        return rows.gather(-2, idx.unsqueeze(-1).expand(*idx.shape, x.size(-1)))

    k_win, v_win = window_rows(k), window_rows(v)
    scores = (q.unsqueeze(-2) @ k_win.transpose(-2, -1)).squeeze(-2)  # (.., n_q, 2w+1)
    scores = (scores / math.sqrt(q.size(-1))).masked_fill(~inside, float("-inf"))
    w = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # a window off the source: 0
    if gaussian:
        sigma = window / 2
        w = w * torch.exp(-((pos - centres.unsqueeze(-1)) ** 2) / (2 * sigma**2))
    out = (w.unsqueeze(-2) @ v_win).squeeze(-2)  # (..., n_q, d_v)
    weights = q.new_zeros(*q.shape[:-1], n_k).scatter_add(-1, idx, w)
    return out, weights


class PredictiveAlignment(nn.Module):
    """Luong et al.'s local-p centre: p_t = n_k * sigmoid(v_p^T tanh(W_p h_t)),
    a learned position in [0, n_k] for each decoder state h_t."""

    def __init__(self, d_model: int, d_hidden: int) -> None:
        super().__init__()
        checks.positive_ints(d_model=d_model, d_hidden=d_hidden)
        self.W_p = nn.Linear(d_model, d_hidden, bias=False)
        self.v_p = nn.Linear(d_hidden, 1, bias=False)

    def forward(self, h: Tensor, n_k: int) -> Tensor:  # (..., n_q, d) -> (..., n_q)
        checks.floating("(..., n_q, d)", h=h, d=self.W_p.in_features)
        checks.positive_ints(n_k=n_k)
        return n_k * torch.sigmoid(self.v_p(torch.tanh(self.W_p(h)))).squeeze(-1)


# --8<-- [end:local]


# --8<-- [start:count]
def counted_multiply_adds(fn: Callable[[], object]) -> int:
    """Multiply-adds of the matrix products that `fn()` runs, counted by PyTorch.

    FlopCounterMode intercepts every aten operator while `fn` runs and counts 2
    FLOPs per multiply-add of mm, bmm, matmul and friends. It does not count exp,
    comparisons or gathers: the selection step of top-k shows in time, not here.
    """
    # Imported here, not at the top: the import takes a second.
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() // 2


# --8<-- [end:count]
