"""Chapter 16, further on: three ideas past the attention of Part I, each small and tested.

- Relative position attention (Music Transformer, Huang et al. 2018): logits that depend on
  the offset j - i between query and key, computed with the memory-saving "skewing" trick.
- Deformable attention in one dimension (Deformable DETR, Zhu et al. 2020): each query reads
  a few learned, fractional positions around a reference point instead of every position.
- A selective state-space model (Mamba, Gu & Dao 2023): a linear recurrence whose
  coefficients depend on the input, computed as a loop, as a parallel scan, and as the
  equivalent lower-triangular "attention" matrix.

Shapes: B batch, H heads, n sequence length, d head width, D channels, N state size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snippets import checks
from snippets.masks import causal_mask


# --8<-- [start:relative]
def relative_logits_direct(q: Tensor, e_rel: Tensor) -> Tensor:
    """S_rel[i, j] = q_i . e_(j-i) for j <= i, gathering one embedding per pair (i, j).

    q: (..., n, d). e_rel: (n, d); row r embeds the distance r - (n - 1), so row
    0 is the farthest past and row n - 1 is distance 0. The future (j > i) is
    set to 0: a decoder masks it. The gathered tensor has n * n * d entries:
    this is what skewing avoids.
    """
    checks.shape("e_rel", e_rel, q.shape[-2:], "(n, d of q)")
    n = q.size(-2)
    i = torch.arange(n, device=q.device)[:, None]  # (n, 1)
    j = torch.arange(n, device=q.device)[None, :]  # (1, n)
    index = (j - i + n - 1).clamp(max=n - 1)  # (n, n): row of e_rel for the pair (i, j)
    gathered = e_rel[index]  # (n, n, d)
    s_rel = torch.einsum("...id,ijd->...ij", q, gathered)  # (..., n, n)
    return s_rel.masked_fill(j > i, 0.0)


def skew(qe: Tensor) -> Tensor:
    """Turn (..., n, n) logits indexed by (query i, distance r) into (query i, key j).

    Pad one zero column on the left, read the (n, n + 1) block as (n + 1, n),
    drop the first row. Entry (i, r) lands in column j = i + r - (n - 1):
    exactly where distance j - i = r - (n - 1) belongs. Entries with j > i are
    left-overs that a causal mask hides.
    """
    *batch, n, _ = qe.shape
    padded = F.pad(qe, (1, 0))  # (..., n, n + 1)
    return padded.reshape(*batch, n + 1, n)[..., 1:, :]  # (..., n, n)


def relative_logits_skewed(q: Tensor, e_rel: Tensor) -> Tensor:
    """The S_rel of `relative_logits_direct`, from one (n, n) product and a reshape."""
    checks.shape("e_rel", e_rel, q.shape[-2:], "(n, d of q)")
    s_rel = skew(q @ e_rel.T)  # (..., n, n); q @ e_rel.T is indexed by distance
    future = ~causal_mask(q.size(-2), q.device)  # j > i
    return s_rel.masked_fill(future, 0.0)


def relative_attention(
    q: Tensor,  # (..., n, d)
    k: Tensor,  # (..., n, d)
    v: Tensor,  # (..., n, d_v)
    e_rel: Tensor,  # (n, d), distances -(n - 1) .. 0
) -> tuple[Tensor, Tensor]:
    """Causal softmax((Q K^T + S_rel) / sqrt(d)) V, the Music Transformer's attention.

    The relative term q_i . e_(j-i) depends on i and j together, so it is not a
    dot product of q_i with one vector per key: chapter 3's function cannot take
    it, and the softmax is written out here.
    """
    checks.self_attention_inputs(q, k, v)  # causal, relative: n_q == n_k
    n, d = q.shape[-2:]
    logits = (q @ k.transpose(-2, -1) + relative_logits_skewed(q, e_rel)) / math.sqrt(d)
    future = ~causal_mask(n, q.device)  # j > i
    weights = torch.softmax(logits.masked_fill(future, float("-inf")), dim=-1)
    return weights @ v, weights  # (..., n, d_v), (..., n, n)


# --8<-- [end:relative]


# --8<-- [start:sample]
def linear_sample(values: Tensor, positions: Tensor) -> Tensor:
    """Read values (B, N, d) at fractional positions (B, M) by linear interpolation.

    A position p between p0 = floor(p) and p0 + 1 gives
    (1 - t) v[p0] + t v[p0 + 1] with t = p - p0, so the result is differentiable
    in p: this is how offsets are learned. Indices outside 0 .. N - 1 read
    zeros, as grid_sample's zero padding does. Returns (B, M, d).
    """
    checks.floating("(B, N, d)", values=values)
    checks.floating("(B, M)", positions=positions)
    n, d = values.shape[1:]
    p0 = positions.floor()
    t = (positions - p0).unsqueeze(-1)  # (B, M, 1), in [0, 1)

    def read(index: Tensor) -> Tensor:  # (B, M) integer indices -> (B, M, d)
        inside = ((index >= 0) & (index <= n - 1)).unsqueeze(-1)
        safe = index.clamp(0, n - 1).unsqueeze(-1).expand(-1, -1, d)
        return values.gather(1, safe) * inside

    p0 = p0.long()
    return (1 - t) * read(p0) + t * read(p0 + 1)


# --8<-- [end:sample]


# --8<-- [start:deformable]
class DeformableAttention1d(nn.Module):
    """Each query reads `num_points` positions per head around its reference point.

    Offsets and weights are linear functions of the query (Deformable DETR, eq.
    2): no query-key dot product is computed, and a query costs num_heads *
    num_points reads, whatever the sequence length.
    """

    def __init__(self, d_model: int, num_heads: int, num_points: int) -> None:
        super().__init__()
        checks.divisible_by("num_heads", num_heads, d_model=d_model)
        checks.positive_ints(num_points=num_points)
        self.h, self.k, self.d_head = num_heads, num_points, d_model // num_heads
        self.offsets = nn.Linear(d_model, num_heads * num_points)  # where to look
        self.weights = nn.Linear(d_model, num_heads * num_points)  # how much to take
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        # As in the paper: offsets start at +-1, +-2, ... (heads alternate directions).
        nn.init.zeros_(self.offsets.weight)
        direction = torch.tensor([(-1.0) ** h for h in range(num_heads)])[:, None]
        start = direction * torch.arange(1.0, num_points + 1)  # (H, K)
        self.offsets.bias.data.copy_(start.flatten())
        nn.init.zeros_(self.weights.weight)
        nn.init.zeros_(self.weights.bias)

    def forward(
        self,
        query: Tensor,  # (B, n_q, d_model)
        reference: Tensor,  # (B, n_q) positions in 0 .. n - 1, fractional allowed
        values: Tensor,  # (B, n, d_model)
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Returns the output (B, n_q, d_model), the sampled positions and their weights
        (both (B, n_q, H, K))."""
        d_model = self.out.in_features
        checks.floating("(B, n, d_model)", query=query, values=values, d_model=d_model)
        checks.shape("reference", reference, query.shape[:-1], "(B, n_q of query)")
        (b, n_q, d_model), n = query.shape, values.size(1)
        offsets = self.offsets(query).view(b, n_q, self.h, self.k)
        weights = self.weights(query).view(b, n_q, self.h, self.k).softmax(dim=-1)
        positions = reference[..., None, None] + offsets  # (B, n_q, H, K)
        v = self.value(values).view(b, n, self.h, self.d_head).transpose(1, 2)
        v = v.reshape(b * self.h, n, self.d_head)  # (B*H, n, d_head)
        where = positions.permute(0, 2, 1, 3).reshape(b * self.h, n_q * self.k)
        read = linear_sample(v, where).view(b, self.h, n_q, self.k, self.d_head)
        w = weights.permute(0, 2, 1, 3).unsqueeze(-1)  # (B, H, n_q, K, 1)
        heads = (w * read).sum(dim=-2)  # (B, H, n_q, d_head)
        out = self.out(heads.transpose(1, 2).reshape(b, n_q, d_model))
        return out, positions, weights


# --8<-- [end:deformable]


# --8<-- [start:ssm]
def ssm_coefficients(
    x: Tensor,  # (batch, n, D) input
    delta: Tensor,  # (batch, n, D) step sizes, > 0, chosen per token: the "selection"
    A: Tensor,  # (D, N) negative: each state decays
    B: Tensor,  # (batch, n, N) input -> state, per token
) -> tuple[Tensor, Tensor]:
    """Discretise: h_t = a_t h_(t-1) + b_t, a_t = exp(delta_t A), b_t = delta_t B_t x_t.

    a = exp(delta A) is the zero-order hold of Mamba's eq. (4); b uses the
    simpler Euler step delta * B, as Mamba's reference code does. Both are
    (batch, n, D, N); 0 < a < 1.
    """
    checks.shape("delta", delta, x.shape, "(batch, n, D of x)")
    a = torch.exp(delta.unsqueeze(-1) * A)  # (batch, n, D, N)
    b = (delta * x).unsqueeze(-1) * B.unsqueeze(-2)  # (batch, n, D, N)
    return a, b


def scan_recurrent(a: Tensor, b: Tensor) -> Tensor:
    """h_t = a_t h_(t-1) + b_t from h_(-1) = 0, one step at a time: n steps in a row."""
    h, states = torch.zeros_like(b[:, 0]), []
    for t in range(b.size(1)):
        h = a[:, t] * h + b[:, t]  # (batch, D, N)
        states.append(h)
    return torch.stack(states, dim=1)  # (batch, n, D, N)


def scan_parallel(a: Tensor, b: Tensor) -> Tensor:
    """The same states in ceil(log2 n) vectorised steps (Hillis-Steele scan).

    Each step composes every prefix with the one `step` positions earlier, using
    that h -> a2 (a1 h + b1) + b2 is again of the form h -> (a1 a2) h + (a2 b1 +
    b2).
    """
    step = 1
    while step < b.size(1):
        b = torch.cat([b[:, :step], a[:, step:] * b[:, :-step] + b[:, step:]], dim=1)
        a = torch.cat([a[:, :step], a[:, step:] * a[:, :-step]], dim=1)
        step *= 2
    return b  # (batch, n, D, N)


def selective_scan(
    x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, scan=scan_parallel
) -> Tensor:
    """y_t = C_t . h_t for every channel: (batch, n, D). C: (batch, n, N)."""
    h = scan(*ssm_coefficients(x, delta, A, B))  # (batch, n, D, N)
    return (h * C.unsqueeze(-2)).sum(dim=-1)


def ssm_matrix(delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """The (B, D, n, n) lower-triangular matrix M with y[..., t] = sum_s M[t, s] x[s].

    Unrolling the recurrence, M[t, s] = C_t . (prod_(r=s+1..t) a_r) B_s delta_s.
    The products are differences of a cumulative sum of log a = delta A, so the
    whole matrix comes from one cumsum: the SSM is causal attention with these
    weights.
    """
    log_a = delta.unsqueeze(-1) * A  # (batch, n, D, N)
    cum = log_a.cumsum(dim=1)
    # (B, t, s, D, N): sum of log a over s < r <= t
    decay = cum[:, :, None] - cum[:, None, :]
    causal = causal_mask(delta.size(1), delta.device)  # s <= t
    decay = decay.masked_fill(~causal[None, :, :, None, None], float("-inf"))
    m = torch.einsum("btn,btsdn,bsn->bdts", C, decay.exp(), B)  # (B, D, t, s)
    return m * delta.transpose(1, 2)[:, :, None, :]  # times delta_s


# --8<-- [end:ssm]


# --8<-- [start:selective]
class SelectiveSSM(nn.Module):
    """The selective SSM of a Mamba block, without the block's gate and convolution.

    delta, B and C are computed from the input token, so the model can choose,
    token by token, what to keep in its state (delta small: a ~ 1, remember) and
    what to let in (delta large: a ~ 0, overwrite). A is fixed per channel;
    S4D-real init A = -(1 .. N).
    """

    def __init__(self, d_model: int, d_state: int) -> None:
        super().__init__()
        checks.positive_ints(d_model=d_model, d_state=d_state)
        self.to_delta = nn.Linear(d_model, d_model)
        self.to_b = nn.Linear(d_model, d_state, bias=False)
        self.to_c = nn.Linear(d_model, d_state, bias=False)
        a = torch.arange(1.0, d_state + 1).repeat(d_model, 1)  # (D, N)
        self.log_neg_a = nn.Parameter(torch.log(a))  # A = -exp(.) stays negative

    def parts(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """delta (B, n, D), A (D, N), B (B, n, N) and C (B, n, N) for x (B, n, D)."""
        delta = F.softplus(self.to_delta(x))
        return delta, -torch.exp(self.log_neg_a), self.to_b(x), self.to_c(x)

    def forward(self, x: Tensor, scan=scan_parallel) -> Tensor:
        """(B, n, D) -> (B, n, D)."""
        checks.floating("(B, n, D)", x=x, D=self.to_delta.in_features)
        delta, A, B, C = self.parts(x)
        return selective_scan(x, delta, A, B, C, scan=scan)


# --8<-- [end:selective]
