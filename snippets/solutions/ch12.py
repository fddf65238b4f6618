"""Chapter 12's exercises, solved: collision rates of angular LSH, several hash rounds
combined with each key counted once, and the backward pass of a reversible block."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from snippets.reformer import hash_with


# --8<-- [start:collision_rate]
def collision_rate(
    theta: float,
    d: int,
    num_buckets: int,
    num_samples: int,
    generator: torch.Generator,
) -> float:
    """The share of num_samples random rotations under which two unit vectors at angle
    theta share a bucket. A Gaussian R looks the same in every orthonormal basis, so
    the pair can lie in the plane of the first two axes."""
    x = torch.zeros(2, d, dtype=torch.float64)
    x[0, 0] = 1.0
    x[1, 0], x[1, 1] = math.cos(theta), math.sin(theta)
    # (num_samples, d, num_buckets / 2): one Gaussian rotation per sample
    shape = (num_samples, d, num_buckets // 2)
    rotations = torch.randn(shape, generator=generator, dtype=torch.float64)
    # (num_samples, 2): the bucket of each vector under each rotation
    buckets = hash_with(x, rotations)
    return (buckets[:, 0] == buckets[:, 1]).double().mean().item()


# --8<-- [end:collision_rate]


# --8<-- [start:combine_rounds]
def combine_rounds(s: Tensor, v: Tensor, reached: Tensor) -> Tensor:
    """Attention over the union of the rounds' key sets, computed round by round.

    s: scores (..., N, M); v: values (..., M, d_v); reached: bool (n_r, ..., N, M),
    True where round r lets query i reach key j (at least one key per round and query).
    Each round attends over its own keys with e^{s_ij} / c_ij, c_ij the number of
    rounds that reach the pair; the rounds are then weighted by their total mass.
    """
    # (..., N, M): in how many rounds each query reaches each key
    count = reached.sum(dim=0).to(s.dtype)
    # (n_r, ..., N, M): a pair reached c times contributes 1/c of its mass per round
    scores = s - count.clamp_min(1).log()
    scores = scores.masked_fill(~reached, float("-inf"))
    # (n_r, ..., N, 1): the log of each round's normaliser, lambda
    lam = scores.logsumexp(dim=-1, keepdim=True)
    # (n_r, ..., N, d_v): each round's output, normalised over its own keys
    out = torch.exp(scores - lam) @ v
    return (torch.softmax(lam, dim=0) * out).sum(dim=0)


# --8<-- [end:combine_rounds]


# --8<-- [start:reversible_backward]
def reversible_backward(
    y1: Tensor,
    y2: Tensor,
    dy1: Tensor,
    dy2: Tensor,
    f: Callable[[Tensor], Tensor],
    g: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Inputs and input gradients of y1 = x1 + f(x2), y2 = x2 + g(y1), from the outputs
    and their gradients alone: (x1, x2, dx1, dx2). Each of f and g runs once, and the
    same evaluation serves to recover an input and to back-propagate through it."""
    y1 = y1.detach().requires_grad_()
    g_y1 = g(y1)
    # y1 reaches the loss directly and through y2 = x2 + g(y1)
    dy1_total = dy1 + torch.autograd.grad(g_y1, y1, dy2)[0]
    x2 = (y2 - g_y1).detach().requires_grad_()
    f_x2 = f(x2)
    # x2 reaches the loss through y2 directly and through y1 = x1 + f(x2)
    dx2 = dy2 + torch.autograd.grad(f_x2, x2, dy1_total)[0]
    x1 = y1.detach() - f_x2.detach()
    return x1, x2.detach(), dy1_total, dx2


# --8<-- [end:reversible_backward]
