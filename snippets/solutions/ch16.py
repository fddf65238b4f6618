"""Chapter 16's exercises, solved: relative logits for every pair of positions with a
skew, and a selective scan that starts from a given state."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from snippets.further import scan_parallel


# --8<-- [start:relative_logits_bidirectional]
def relative_logits_bidirectional(q: Tensor, e_rel: Tensor) -> Tensor:
    """S[i, j] = q_i . e_(j-i) for every pair, past and future: an encoder's
    relative logits, from one product and a reshape, without an n x n x d tensor.

    q: (..., n, d). e_rel: (2n - 1, d); row r embeds the distance r - (n - 1).
    Column r of q e_rel^T holds distance r - (n - 1); key j of query i needs
    column j - i + n - 1, so row i must move left by n - 1 - i places.
    """
    *batch, n, _ = q.shape
    # (..., n, 2n - 1), indexed by distance
    qe = q @ e_rel.T
    # (..., n, 2n): one zero column on the left
    padded = F.pad(qe, (1, 0))
    # Read the n * 2n entries in rows of 2n - 1, from entry n on: each row
    # starts one place further left in its padded row than the row above.
    flat = padded.reshape(*batch, 2 * n * n)[..., n:]
    # (..., n, n): the first n columns are the keys
    return flat.reshape(*batch, n, 2 * n - 1)[..., :n]


# --8<-- [end:relative_logits_bidirectional]


# --8<-- [start:scan_from_state]
def scan_from_state(a: Tensor, b: Tensor, state: Tensor) -> Tensor:
    """The states h_t = a_t h_(t-1) + b_t from h_(-1) = state instead of 0.

    a, b: (batch, n, D, N); state: (batch, D, N), where an earlier call stopped.
    The first step gives a_0 state + b_0, so the state is one more input at
    step 0: fold it into b_0 and run the scan from zero as before.
    Returns (batch, n, D, N).
    """
    b = b.clone()  # the caller's b stays as it was
    b[:, 0] = a[:, 0] * state + b[:, 0]
    return scan_parallel(a, b)


# --8<-- [end:scan_from_state]
