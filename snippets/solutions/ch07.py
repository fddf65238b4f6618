"""Chapter 7's exercises, solved: a layer's parameters, the LayerNorm Jacobian, and
scoring a target under teacher forcing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from snippets.transformer import Transformer


# --8<-- [start:layer_parameters]
def layer_parameters(d_model: int, d_ff: int, decoder: bool = False) -> int:
    """Parameters of one encoder (or decoder) layer, from the closed form.

    Attention: 4 d^2 weights + 4 d biases, whatever the number of heads.
    Feed-forward: 2 d d_ff weights + d_ff + d biases. LayerNorm: d gains + d biases.
    An encoder layer has one attention and two LayerNorms; a decoder layer has two
    attentions and three LayerNorms.
    """
    d = d_model
    attention = 4 * d * d + 4 * d
    feed_forward = 2 * d * d_ff + d_ff + d
    norm = 2 * d
    if decoder:
        return 2 * attention + feed_forward + 3 * norm
    return attention + feed_forward + 2 * norm


# --8<-- [end:layer_parameters]


# --8<-- [start:layer_norm_jacobian]
def layer_norm_jacobian(x: Tensor, gamma: Tensor, eps: float = 1e-5) -> Tensor:
    """dy/dx of y = gamma * (x - mean) / s over the last axis, s = sqrt(var + eps):

    dy_i/dx_j = gamma_i / s * (delta_ij - 1/d - z_i z_j / d), z = (x - mean) / s.

    x: (..., d), gamma: (d,). Returns (..., d, d), entry [i, j] = dy_i / dx_j.
    """
    d = x.size(-1)
    # (..., 1) each: the mean and s of every token
    mean = x.mean(dim=-1, keepdim=True)
    s = (x.var(dim=-1, unbiased=False, keepdim=True) + eps).sqrt()
    # (..., d)
    z = (x - mean) / s
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    # (..., d, d): I minus the mean direction minus the direction of z
    inner = eye - 1.0 / d - z.unsqueeze(-1) * z.unsqueeze(-2) / d
    return gamma.unsqueeze(-1) * inner / s.unsqueeze(-1)


# --8<-- [end:layer_norm_jacobian]


# --8<-- [start:sequence_log_likelihood]
def sequence_log_likelihood(
    model: Transformer, src: Tensor, tgt: Tensor, bos: int
) -> Tensor:
    """log p(tgt | src) = sum over t of log p(tgt_t | src, tgt_<t), in ONE forward
    pass: the decoder reads the target shifted right (BOS, then all but the last
    token), and the causal mask keeps row t from seeing tgt_t and what follows.

    src: (B, N_s), tgt: (B, N_t) token ids. Returns (B,).
    """
    # (B, 1)
    start = tgt.new_full((tgt.size(0), 1), bos)
    # (B, N_t)
    shifted = torch.cat([start, tgt[:, :-1]], dim=1)
    # (B, N_t, V); forward applies the causal mask by default
    log_p = F.log_softmax(model(src, shifted), dim=-1)
    # (B, N_t): the log-probability of each true token, summed over t
    return log_p.gather(-1, tgt.unsqueeze(-1)).squeeze(-1).sum(dim=-1)


# --8<-- [end:sequence_log_likelihood]
