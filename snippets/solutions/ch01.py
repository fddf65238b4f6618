"""Chapter 1's exercises, solved: the path length of dilated convolutions, and the
gradient norms of a linear recurrence from their closed form."""

from __future__ import annotations

import torch
from torch import Tensor

from snippets import checks


# --8<-- [start:dilated_layers_to_connect]
def dilated_layers_to_connect(n: int, kernel_size: int) -> int:
    """Causal convolutions of kernel k with dilations 1, k, k^2, ... needed before
    output n-1 depends on input 0: the smallest L with k^L >= n.

    L layers reach back k^L - 1 positions. The loop uses integers only: the
    ceiling of math.log(n, k) is off by one when the logarithm of an exact power
    rounds up, as math.log(125, 5) = 3.0000000000000004 does.
    """
    checks.positive_ints(n=n)
    checks.int_between("kernel_size", kernel_size, 2)  # k = 1 never widens
    layers, span = 0, 1  # span = k^layers, the positions that output n-1 sees
    while span < n:
        layers, span = layers + 1, span * kernel_size
    return layers


# --8<-- [end:dilated_layers_to_connect]


# --8<-- [start:linear_recurrence_reach]
def linear_recurrence_reach(w: Tensor, u: Tensor, n: int) -> Tensor:
    """||d h_{n-1} / d x_t||_F for t = 0..n-1, shape (n,), in the linear
    recurrence h_t = W h_{t-1} + U x_t.

    The Jacobian is W^(n-1-t) U: no autograd, only n - 1 products by W, starting
    from distance 0 (t = n-1) and going back one step at a time.
    """
    checks.floating("(d, d)", w=w)
    checks.floating("(d, d_in)", u=u, d=w.size(0))
    checks.positive_ints(n=n)
    jacobian = u  # (d, d_in): the Jacobian at distance 0, t = n-1
    norms = [torch.linalg.matrix_norm(jacobian)]  # Frobenius
    for _ in range(n - 1):
        jacobian = w @ jacobian  # one step further back: W^(distance) U
        norms.append(torch.linalg.matrix_norm(jacobian))
    # (n,): entry k is distance k; flipped, entry t is distance n-1-t
    return torch.stack(norms).flip(0)


# --8<-- [end:linear_recurrence_reach]
