"""Claims often made about attention, recomputed: the evidence behind the appendix's verdicts.

Each function re-derives, from the claim's own inputs, the number that settles it. The
claimed values are quoted data; everything else is computed.
"""

from __future__ import annotations

import torch
from torch import Tensor

# --8<-- [start:worked-example-data]
# A widely copied 3x3 example: three token embeddings X, and projections W_Q = W_V = X.
X = torch.tensor(
    [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]], dtype=torch.float64
)
W_Q = X.clone()
W_K = torch.tensor(
    [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6], [0.3, 0.5, 0.7]], dtype=torch.float64
)
W_V = X.clone()
# What the example states it obtained:
CLAIMED_Q = torch.tensor(
    [[0.14, 0.32, 0.5], [0.32, 0.77, 1.22], [0.5, 1.22, 1.94]], dtype=torch.float64
)
CLAIMED_K = torch.tensor(
    [[0.26, 0.44, 0.62], [0.62, 1.07, 1.52], [0.98, 1.7, 2.42]], dtype=torch.float64
)
CLAIMED_V = CLAIMED_Q.clone()  # stated identical to Q
CLAIMED_A = torch.tensor(
    [[0.2, 0.3, 0.5], [0.1, 0.7, 0.2], [0.4, 0.4, 0.2]], dtype=torch.float64
)
CLAIMED_Z = torch.tensor(
    [[0.342, 0.81, 1.278], [0.21, 0.658, 1.106], [0.256, 0.612, 0.968]],
    dtype=torch.float64,
)
# --8<-- [end:worked-example-data]


# --8<-- [start:worked-example-check]
def worked_example_check() -> dict[str, Tensor]:
    """Recompute each step of the claimed example from its own X and W matrices."""
    Q, K, V = X @ W_Q, X @ W_K, X @ W_V
    weights = torch.softmax(Q @ K.T / K.shape[-1] ** 0.5, dim=-1)
    return {
        "Q": Q,  # what Q = X W_Q really is
        "K": K,
        "X_XT": X @ X.T,  # what the claimed "Q" actually equals
        "A": weights,  # the weights its own Q and K give
        "Z": weights @ V,  # the correct output
        # The example's later steps, from its own earlier numbers:
        "softmax_of_claimed_scores": torch.softmax(
            CLAIMED_Q @ CLAIMED_K.T / CLAIMED_K.shape[-1] ** 0.5, dim=-1
        ),
        "claimed_A_times_claimed_V": CLAIMED_A
        @ CLAIMED_V,  # should equal the claimed Z
    }


# --8<-- [end:worked-example-check]


def max_abs(a: Tensor, b: Tensor) -> float:
    """Largest entry-wise difference between two matrices."""
    return (a - b).abs().max().item()
