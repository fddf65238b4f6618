"""Reformer: attention restricted to hash buckets, and residual layers that can be run backwards.

Kitaev, Kaiser and Levskaya, *Reformer: The Efficient Transformer* (ICLR 2020,
arXiv:2001.04451).

LSH attention shares one projection for queries and keys, hashes the vectors so that
similar ones tend to land in the same bucket, sorts the sequence by bucket and lets each
position attend only within its chunk of the sorted order and the chunk before it. With a
fixed chunk size the work and memory grow linearly in N. Several hash rounds are combined
so that a pair missed by one round can be caught by another. Shapes: `(..., N, d)`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from snippets import checks

# A position may attend to itself only when no other key is available (paper, section 2.2):
# its score is replaced by this large negative number, finite so that the row never empties.
SELF_SCORE = -1e5


# --8<-- [start:hash]
def random_rotations(
    d: int, num_buckets: int, num_rounds: int, generator: torch.Generator | None = None
) -> Tensor:
    """num_rounds independent Gaussian matrices (d, num_buckets/2): (rounds, d, n_b/2).

    Drawn one round at a time, so that the first r rounds are the same whatever
    num_rounds is.
    """
    checks.positive_ints(d=d, num_buckets=num_buckets, num_rounds=num_rounds)
    if num_buckets % 2:
        raise ValueError(f"num_buckets must be even, got {num_buckets}")
    return torch.stack(
        [
            torch.randn(d, num_buckets // 2, generator=generator, dtype=torch.float64)
            for _ in range(num_rounds)
        ]
    )


def hash_with(x: Tensor, rotations: Tensor) -> Tensor:
    """Bucket of each vector: argmax over [xR, -xR].

    x (..., N, d) -> long (rounds, ..., N).
    """
    checks.floating("(rounds, d, half)", rotations=rotations, d=x.size(-1))
    r = rotations.to(x).reshape(
        rotations.size(0), *([1] * (x.dim() - 2)), *rotations.shape[1:]
    )
    rotated = x.unsqueeze(0) @ r  # (rounds, ..., N, n_b/2)
    return torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)


def lsh_hash(
    x: Tensor,  # (..., N, d)
    num_buckets: int,
    num_rounds: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Angular LSH: bucket ids in [0, num_buckets), long tensor (num_rounds, ..., N).

    The buckets depend only on the direction of x (a positive factor does not change the
    argmax). One bucket (num_buckets=1) puts every position in bucket 0.
    """
    checks.positive_ints(num_buckets=num_buckets, num_rounds=num_rounds)
    if num_buckets == 1:
        return torch.zeros(num_rounds, *x.shape[:-1], dtype=torch.long, device=x.device)
    return hash_with(
        x, random_rotations(x.size(-1), num_buckets, num_rounds, generator)
    )


# --8<-- [end:hash]


# --8<-- [start:sort_chunk]
def _chunked(t: Tensor, chunk_size: int) -> Tensor:
    """(..., N, e) -> (..., N / C, C, e): the sequence cut into chunks of C each."""
    return t.reshape(*t.shape[:-2], t.size(-2) // chunk_size, chunk_size, t.size(-1))


def _look_one_back(x: Tensor) -> Tensor:
    """(..., n_c, C, e) -> (..., n_c, 2C, e): each chunk, preceded by the previous one.

    Chunk 0 gets the last chunk in front (a wrap-around); the caller masks those
    entries.
    """
    return torch.cat([torch.roll(x, 1, dims=-3), x], dim=-2)


def _read(t: Tensor, pos: Tensor) -> Tensor:
    """Values t (n_r, ..., N), one per position, read at pos (n_r, ..., n_c, a, b)."""
    flat = pos.reshape(*t.shape[:-1], -1)  # (n_r, ..., n_c * a * b)
    return t.gather(-1, flat).reshape(pos.shape)


def lsh_attention_with_buckets(
    qk: Tensor,  # (..., N, d): shared queries and keys
    v: Tensor,  # (..., N, d_v)
    buckets: Tensor,  # long (n_r, ..., N): the bucket of each position in each round
    chunk_size: int,
    causal: bool = False,
) -> Tensor:
    """Shared-QK attention restricted, in each round, to keys of the same bucket in the
    own and the previous chunk of the sorted sequence; rounds combined by log-sum-exp.

    Queries are qk, keys are qk scaled to unit length, scores are q.k / sqrt(d). A key
    that several rounds reach is counted once: its score in each round is lowered by
    log(number of rounds that reach it), so the result is exact softmax attention over
    the union of the rounds' key sets.
    """
    checks.attention_inputs(qk, qk, v, same_batch=True)  # qk plays q and k
    n, d = qk.shape[-2:]
    checks.divisible_by("chunk_size", chunk_size, N=n)
    checks.shape("buckets", buckets, (len(buckets), *qk.shape[:-1]), "(n_r, ..., N)")
    rounds = buckets.size(0)
    batch = qk.shape[:-2]
    positions = torch.arange(n, device=qk.device)
    # Sort by bucket, then by position (no ties in the combined key: a stable order).
    order = (buckets * n + positions).argsort(dim=-1)  # (n_r, ..., N), sorted
    rank = order.argsort(dim=-1)  # (n_r, ..., N): sorted index of each position
    chunk_of = rank // chunk_size  # (n_r, ..., N): chunk of each position, per round

    def sort(t: Tensor) -> Tensor:
        """(..., N, e) -> (n_r, ..., N, e): t in each round's sorted order."""
        t = t.expand(rounds, *t.shape)
        return t.gather(-2, order.unsqueeze(-1).expand(*order.shape, t.size(-1)))

    keys = nn.functional.normalize(qk, dim=-1)  # unit length
    q = _chunked(sort(qk), chunk_size)  # (n_r, ..., n_c, C, d)
    k = _look_one_back(_chunked(sort(keys), chunk_size))  # (n_r, ..., n_c, 2C, d)
    vals = _look_one_back(_chunked(sort(v), chunk_size))  # (n_r, ..., n_c, 2C, d_v)
    q_pos = _chunked(order.unsqueeze(-1), chunk_size)  # (n_r, ..., n_c, C, 1)
    k_pos = _look_one_back(q_pos).transpose(-2, -1)  # (n_r, ..., n_c, 1, 2C)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (n_r, ..., n_c, C, 2C)

    def reached(b: Tensor, c: Tensor) -> Tensor:  # bool (n_r, ..., n_c, C, 2C)
        """Is key j in query i's window, for the buckets b and chunks c (n_r, ..., N)
        of a round?"""
        same_bucket = _read(b, q_pos) == _read(b, k_pos)
        cq, ck = _read(c, q_pos), _read(c, k_pos)
        ok = same_bucket & ((ck == cq) | (ck == cq - 1))
        return ok & (k_pos <= q_pos) if causal else ok

    # In the round that built the window; the wrapped-around half of chunk 0 is no key.
    allowed = reached(buckets, chunk_of)
    allowed[..., 0, :, :chunk_size] = False
    # In how many rounds each (query, key) pair meets: at least 1 wherever allowed.
    count = torch.zeros_like(scores)
    for r in range(rounds):
        count += reached(buckets[r].expand_as(buckets), chunk_of[r].expand_as(buckets))
    # Self: a last resort. Duplicates: counted once. Keys outside the window: none.
    scores = torch.where(q_pos == k_pos, SELF_SCORE, scores)
    scores = scores - torch.log(count.clamp_min(1))
    scores = scores.masked_fill(~allowed, float("-inf"))
    lse = scores.logsumexp(dim=-1, keepdim=True)  # (n_r, ..., n_c, C, 1): log mass
    out = torch.exp(scores - lse) @ vals  # (n_r, ..., n_c, C, d_v)

    # Back to the original order, then weight each round by its share of the total mass.
    out = out.reshape(rounds, *batch, n, v.size(-1))
    out = out.gather(-2, rank.unsqueeze(-1).expand_as(out))  # (n_r, ..., N, d_v)
    lse = lse.reshape(rounds, *batch, n).gather(-1, rank)  # (n_r, ..., N)
    weights = torch.softmax(lse, dim=0).unsqueeze(-1)  # (n_r, ..., N, 1)
    return (weights * out).sum(dim=0)


# --8<-- [end:sort_chunk]


# --8<-- [start:lsh]
def lsh_attention(
    qk: Tensor,  # (..., N, d): shared queries and keys
    v: Tensor,  # (..., N, d_v)
    num_buckets: int,
    num_rounds: int,
    chunk_size: int,
    causal: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Reformer's LSH attention: hash, sort, attend in chunks, combine rounds.

    Returns (..., N, d_v).

    The rotations are drawn on the CPU from `generator` and shared by every batch and
    head dimension. N must be a multiple of chunk_size.
    """
    buckets = lsh_hash(qk, num_buckets, num_rounds, generator)  # (n_r, ..., N)
    return lsh_attention_with_buckets(qk, v, buckets, chunk_size, causal)


# --8<-- [end:lsh]


# --8<-- [start:dense]
def shared_qk_attention(qk: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """The dense O(N^2) counterpart: the same scores and self rule, over all keys (or
    those of `mask`).

    mask: bool (..., N, N), True = may attend; the diagonal is always allowed.
    """
    checks.attention_inputs(qk, qk, v, mask)  # qk plays q and k
    keys = nn.functional.normalize(qk, dim=-1)
    scores = qk @ keys.transpose(-2, -1) / math.sqrt(qk.size(-1))  # (..., N, N)
    eye = torch.eye(qk.size(-2), dtype=torch.bool, device=qk.device)
    scores = torch.where(eye, SELF_SCORE, scores)
    if mask is not None:
        scores = scores.masked_fill(~(mask | eye), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def lsh_key_sets(buckets: Tensor, chunk_size: int, causal: bool = False) -> Tensor:
    """Which keys each query reaches in at least one round: bool (..., N, N), dense.

    For figures and checks only: it spends the N^2 memory that LSH attention avoids.
    """
    checks.positive_ints(chunk_size=chunk_size)
    n = buckets.size(-1)
    positions = torch.arange(n, device=buckets.device)
    order = (buckets * n + positions).argsort(-1)  # by bucket, then by position
    chunk = order.argsort(-1) // chunk_size  # (n_r, ..., N): chunk of each position
    same_bucket = buckets.unsqueeze(-1) == buckets.unsqueeze(-2)  # (n_r, ..., N, N)
    c_q, c_k = chunk.unsqueeze(-1), chunk.unsqueeze(-2)
    reach = same_bucket & ((c_k == c_q) | (c_k == c_q - 1))
    if causal:
        reach = reach & (positions.unsqueeze(-1) >= positions)
    return reach.any(dim=0)


# --8<-- [end:dense]


# --8<-- [start:reversible]
class ReversibleBlock(nn.Module):
    """y1 = x1 + f(x2), y2 = x2 + g(y1): a residual block whose outputs give its inputs.

    `inverse` undoes `forward` by subtracting the same terms in reverse order, so a
    stack of such blocks need not keep its activations for the backward pass: they are
    recomputed, one block at a time, from the outputs of the block above.
    """

    def __init__(self, f: nn.Module, g: nn.Module) -> None:
        super().__init__()
        self.f, self.g = f, g

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        y1 = x1 + self.f(x2)
        y2 = x2 + self.g(y1)
        return y1, y2

    def inverse(self, y1: Tensor, y2: Tensor) -> tuple[Tensor, Tensor]:
        x2 = y2 - self.g(y1)
        x1 = y1 - self.f(x2)
        return x1, x2


# --8<-- [end:reversible]


# --8<-- [start:reversible_stack]
class _ReversibleStack(torch.autograd.Function):
    """Forward without storing activations; backward recomputes them block by block."""

    @staticmethod
    def forward(ctx, x1, x2, blocks, *params):
        ctx.blocks = blocks
        with torch.no_grad():
            for block in blocks:
                x1, x2 = block(x1, x2)
        ctx.save_for_backward(x1, x2)  # the only activations kept: the stack's outputs
        return x1, x2

    @staticmethod
    def backward(ctx, dy1, dy2):
        y1, y2 = ctx.saved_tensors
        param_grads: list[Tensor | None] = []
        for block in reversed(ctx.blocks):
            with torch.no_grad():
                x1, x2 = block.inverse(y1, y2)  # this block's inputs, recomputed
            with torch.enable_grad():
                x1, x2 = x1.requires_grad_(), x2.requires_grad_()
                out = block(x1, x2)  # replay the block to get its local graph
                params = list(block.parameters())
                grads = torch.autograd.grad(out, (x1, x2, *params), (dy1, dy2))
            dy1, dy2 = grads[0], grads[1]
            param_grads = [*grads[2:], *param_grads]
            y1, y2 = x1.detach(), x2.detach()
        return dy1, dy2, None, *param_grads


def reversible_stack(
    blocks: list[ReversibleBlock], x1: Tensor, x2: Tensor
) -> tuple[Tensor, Tensor]:
    """Apply the blocks in order; backward memory does not grow with their number."""
    params = [p for block in blocks for p in block.parameters()]
    return _ReversibleStack.apply(x1, x2, blocks, *params)


# --8<-- [end:reversible_stack]
