"""Multi-head attention: project, split into heads, attend, concatenate, project.

Batch-first throughout: inputs are (B, N, d_model). Masks are boolean, True = may
attend, broadcastable to the per-head scores (B, H, n_q, n_k); see
`snippets.masks`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from snippets import checks
from snippets.attention import scaled_dot_product_attention


# --8<-- [start:module]
class MultiHeadAttention(nn.Module):
    """H heads of width d_head = d_model / H, each with its own slice of the
    projections W_Q, W_K, W_V; the concatenated heads are mixed by W_O."""

    def __init__(self, d_model: int, num_heads: int, bias: bool = True) -> None:
        super().__init__()
        checks.divisible_by("num_heads", num_heads, d_model=d_model)
        self.d_model, self.num_heads = d_model, num_heads
        self.d_head = d_model // num_heads
        # One (d_model, d_model) matrix per role holds all H heads' slices.
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, N, d_model) -> (B, H, N, d_head); head h gets features
        h * d_head to (h + 1) * d_head - 1."""
        B, N, _ = x.shape
        return x.view(B, N, self.num_heads, self.d_head).transpose(1, 2)

    def merge_heads(self, x: Tensor) -> Tensor:
        """(B, H, N, d_head) -> (B, N, d_model): the heads concatenated."""
        B, H, N, d_head = x.shape
        return x.transpose(1, 2).reshape(B, N, H * d_head)

    def forward(
        self,
        query: Tensor,  # (B, n_q, d_model)
        key: Tensor,  # (B, n_k, d_model)
        value: Tensor,  # (B, n_k, d_model)
        mask: Tensor | None = None,  # bool, broadcastable to (B, H, n_q, n_k)
    ) -> tuple[Tensor, Tensor]:
        """Output (B, n_q, d_model) and every head's weights (B, H, n_q, n_k)."""
        checks.floating("(B, n, d)", query=query, key=key, value=value, d=self.d_model)
        q = self.split_heads(self.w_q(query))  # (B, H, n_q, d_head)
        k = self.split_heads(self.w_k(key))  # (B, H, n_k, d_head)
        v = self.split_heads(self.w_v(value))  # (B, H, n_k, d_head)
        # Every head attends on its own: heads is (B, H, n_q, d_head)
        heads, weights = scaled_dot_product_attention(q, k, v, mask)
        concat = self.merge_heads(heads)  # (B, n_q, d_model)
        return self.w_o(concat), weights  # W_O mixes the heads: (B, n_q, d_model)

    # --8<-- [end:module]

    # --8<-- [start:from_torch]
    @classmethod
    def from_torch(cls, m: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of `m`'s weights. `in_proj_weight` (3 d_model, d_model) stacks
        W_Q^T, W_K^T, W_V^T, each in nn.Linear's (out, in) layout like ours, so
        blocks of its rows are copied unchanged; `out_proj.weight` is W_O^T.

        Dropout is not copied: the two agree when `m.dropout == 0` or in eval
        mode. `batch_first` is not a weight: call the copy with (B, N, d).
        """
        if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
            raise ValueError("needs equal q/k/v widths, no bias_k/v, no zero_attn")
        bias = m.in_proj_bias is not None
        ours = cls(m.embed_dim, m.num_heads, bias=bias)
        ours = ours.to(device=m.in_proj_weight.device, dtype=m.in_proj_weight.dtype)
        d = m.embed_dim
        with torch.no_grad():
            for i, lin in enumerate((ours.w_q, ours.w_k, ours.w_v)):
                lin.weight.copy_(m.in_proj_weight[i * d : (i + 1) * d])
                if bias:
                    lin.bias.copy_(m.in_proj_bias[i * d : (i + 1) * d])
            ours.w_o.weight.copy_(m.out_proj.weight)
            if bias:
                ours.w_o.bias.copy_(m.out_proj.bias)
        return ours

    # --8<-- [end:from_torch]


# --8<-- [start:count]
def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars in `module`."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def expected_parameters(d_model: int, bias: bool = True) -> int:
    """4 d^2 weights (W_Q, W_K, W_V, W_O) plus 4 d biases, whatever H is."""
    return 4 * d_model * d_model + (4 * d_model if bias else 0)


# --8<-- [end:count]


# A module with hand-set projections, for chapter 5's per-head attention maps.
WORDS = ["the", "cat", "saw", "a", "dog", "and", "the", "cat"]


def hand_built_heads() -> tuple[MultiHeadAttention, Tensor]:
    """A 4-head module whose W_Q, W_K are set by hand so that each head looks for one thing.

    Token i is x_i = [one-hot of its position (8) | one-hot of its word (8) | zeros (16)].
    Head h owns rows 8h..8h+7 of the stored weights of w_q and w_k (nn.Linear's
    (out, in) layout: columns 8h..8h+7 of W_Q and W_K in the page's x @ W); a match
    scores s^2 / sqrt(8) = 6 and gets almost all the weight. W_V and W_O keep their
    random initialisation.
    """
    n, d_model, heads = len(WORDS), 32, 4
    vocab = sorted(set(WORDS))
    x = torch.zeros(1, n, d_model)
    for i, word in enumerate(WORDS):
        x[0, i, i] = 1.0  # position
        x[0, i, 8 + vocab.index(word)] = 1.0  # word
    with torch.random.fork_rng():  # the caller's global generator is left as it was
        torch.manual_seed(12)
        mha = MultiHeadAttention(d_model, heads)
    s = math.sqrt(6 * math.sqrt(8))
    wq = torch.zeros(d_model, d_model)  # (out, in): row = head feature, column = input
    wk = torch.zeros(d_model, d_model)
    bq = torch.zeros(d_model)
    for i in range(n):
        wq[0 + i, i] = s  # head 0, previous token: query i looks for key i - 1
        wq[8 + i, i] = s  # head 1, next token: query i looks for key i + 1
    for j in range(n - 1):
        wk[0 + j + 1, j] = s  # key j answers query j + 1 in head 0
        wk[8 + j, j + 1] = s  # key j + 1 answers query j in head 1
    wk[0 + 0, 0] = s  # the first token has no predecessor: it attends to itself
    wk[8 + n - 1, n - 1] = s  # the last has no successor: itself
    for w in range(8):
        wq[16 + w, 8 + w] = s  # head 2, same word: query and key are the word
        wk[16 + w, 8 + w] = s
    bq[24] = s  # head 3, first token: every query (a bias) looks for position 0
    wk[24, 0] = s
    with torch.no_grad():
        mha.w_q.weight.copy_(wq)
        mha.w_k.weight.copy_(wk)
        mha.w_q.bias.copy_(bq)
        mha.w_k.bias.zero_()
    return mha, x
