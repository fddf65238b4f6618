"""Chapter 11's exercises, solved: trigonometric random features, and causal linear
attention as a recurrence that carries its prefix sums."""

from __future__ import annotations

import math

import torch
from torch import Tensor


# --8<-- [start:trig_features]
def trig_features(x: Tensor, projection: Tensor) -> Tensor:
    """Random Fourier features of the softmax kernel: (..., N, 2m) for x (..., N, d).

    phi(x) = exp(|x'|^2 / 2) / sqrt(m) (cos(w_r . x'), sin(w_r . x'))_r with
    x' = x / d^(1/4), so that phi(q) . phi(k) = exp((|q'|^2 + |k'|^2) / 2) times the
    mean of cos(w_r . (q' - k')), whose expectation is exp(q . k / sqrt(d)). Unlike
    the positive features, a product can be negative.
    """
    x = x / x.size(-1) ** 0.25
    m = projection.size(-2)
    # (..., N, m): the angles w_r . x'
    angles = x @ projection.to(x).transpose(-2, -1)
    # (..., N, 1)
    scale = torch.exp(0.5 * (x * x).sum(dim=-1, keepdim=True)) / math.sqrt(m)
    return scale * torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


# --8<-- [end:trig_features]


# --8<-- [start:causal_linear_attention_recurrent]
def causal_linear_attention_recurrent(
    q_feat: Tensor,  # (..., N, m), positive features of the queries
    k_feat: Tensor,  # (..., N, m), positive features of the keys
    v: Tensor,  # (..., N, d_v)
) -> Tensor:
    """Causal linear attention, one position at a time, as a recurrent network would
    run it: o_i = phi(q_i)^T U_i / phi(q_i)^T z_i with U_i = U_{i-1} + phi(k_i) v_i^T
    and z_i = z_{i-1} + phi(k_i). Returns (..., N, d_v).

    Only the state U (..., m, d_v) and z (..., m) is kept, not one per position: the
    memory of generating token by token, O(m d_v) whatever N is.
    """
    batch, m = q_feat.shape[:-2], q_feat.size(-1)
    # (..., m, d_v) and (..., m): the sums over the keys seen so far
    state = q_feat.new_zeros(*batch, m, v.size(-1))
    total = q_feat.new_zeros(*batch, m)
    outputs = []
    for i in range(q_feat.size(-2)):
        q_i, k_i, v_i = q_feat[..., i, :], k_feat[..., i, :], v[..., i, :]
        state = state + k_i.unsqueeze(-1) * v_i.unsqueeze(-2)  # add phi(k_i) v_i^T
        total = total + k_i
        numerator = (q_i.unsqueeze(-2) @ state).squeeze(-2)  # (..., d_v)
        denominator = (q_i * total).sum(dim=-1, keepdim=True)  # (..., 1)
        outputs.append(numerator / denominator)
    return torch.stack(outputs, dim=-2)  # (..., N, d_v)


# --8<-- [end:causal_linear_attention_recurrent]
