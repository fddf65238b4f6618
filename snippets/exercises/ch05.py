"""Chapter 5's code exercises; every expected answer comes from PyTorch's own
attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snippets.exercises import Case, Exercise


def _torch_mha(w_in: Tensor, w_out: Tensor, num_heads: int) -> nn.MultiheadAttention:
    """nn.MultiheadAttention without biases, batch first, holding the given weights
    in its own (out, in) layout: w_in (3d, d), w_out (d, d)."""
    d = w_out.size(0)
    m = nn.MultiheadAttention(
        d, num_heads, bias=False, batch_first=True, dtype=torch.float64
    ).eval()
    with torch.no_grad():
        m.in_proj_weight.copy_(w_in)
        m.out_proj.weight.copy_(w_out)
    return m


def _packed_cases() -> list[Case]:
    """Reference: nn.MultiheadAttention with the same packed weights; our masks
    (True = may attend) are handed to it inverted, as its convention wants."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for b, n, d, h, kind in (
        (2, 5, 8, 2, "none"),
        (3, 6, 16, 4, "causal"),
        (2, 7, 12, 3, "causal and padding"),
    ):
        x = torch.randn(b, n, d, generator=g, dtype=torch.float64)
        w_in = torch.randn(3 * d, d, generator=g, dtype=torch.float64) / d**0.5
        w_out = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
        m = _torch_mha(w_in, w_out, h)
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        lengths = torch.tensor([n, n - 3])
        keep = torch.arange(n) < lengths[:, None]  # (B, N), True = a real token
        with torch.no_grad():
            if kind == "none":
                args, ref = (), m(x, x, x, need_weights=False)[0]
            elif kind == "causal":
                args = (causal,)
                ref = m(x, x, x, attn_mask=~causal, need_weights=False)[0]
            else:
                args = (causal & keep[:, None, None, :],)  # (B, 1, N, N)
                ref = m(
                    x,
                    x,
                    x,
                    attn_mask=~causal,
                    key_padding_mask=~keep,
                    need_weights=False,
                )[0]
        inputs = (
            f"x ({b}, {n}, {d}), in_proj_weight ({3 * d}, {d}), out_proj_weight "
            f"({d}, {d}), num_heads={h}, mask: {kind}"
            + (f" (lengths {n} and {n - 3})" if kind.endswith("padding") else "")
        )
        cases.append(Case(inputs, (x, w_in, w_out, h, *args), ref, atol=1e-10))
    return cases


def _circuit_cases() -> list[Case]:
    """Judge, on two random sequences X and nn.MultiheadAttention with the same
    weights: softmax(X QK[h] X^T), built from the answer, must be PyTorch's weights
    of head h (which pins each head to its place), and the sum over heads of those
    weights times X OV[h] must be its output (float64, so 1e-9 is rounding)."""
    g = torch.Generator().manual_seed(1)
    cases = []
    for d, h, n in ((8, 2, 12), (12, 4, 10), (6, 1, 7)):
        w_q, w_k, w_v, w_o = (
            torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
            for _ in range(4)
        )
        # nn.Linear layout: the transposes, W_Q^T, W_K^T, W_V^T stacked
        m = _torch_mha(torch.cat([w_q.T, w_k.T, w_v.T]), w_o.T, h)
        xs = torch.randn(2, n, d, generator=g, dtype=torch.float64)
        with torch.no_grad():
            # (B, N, d) and every head's weights (B, H, N, N)
            ref, ref_weights = m(xs, xs, xs, average_attn_weights=False)

        def judge(
            got: object,
            d: int = d,
            h: int = h,
            xs: Tensor = xs,
            ref: Tensor = ref,
            ref_weights: Tensor = ref_weights,
        ) -> str | None:
            if not isinstance(got, tuple | list) or len(got) != 2:
                return "expected a pair (QK, OV)"
            for name, t in zip(("QK", "OV"), got, strict=True):
                if not isinstance(t, Tensor) or tuple(t.shape) != (h, d, d):
                    shape = tuple(t.shape) if isinstance(t, Tensor) else type(t)
                    return f"{name} should be a ({h}, {d}, {d}) tensor, got {shape}"
            qk, ov = (t.detach().double() for t in got)
            x = xs[:, None]  # (B, 1, N, d): broadcast over the heads
            weights = torch.softmax(x @ qk @ x.transpose(-2, -1), dim=-1)
            error = (weights - ref_weights).abs().amax(dim=(0, 2, 3))  # (H,)
            if not (error <= 1e-9).all():
                head = int(error.argmax())
                return (
                    f"softmax(X QK[{head}] X^T) differs from the weights of head "
                    f"{head} of nn.MultiheadAttention by up to {error.max().item():.3g}"
                )
            rebuilt = (weights @ x @ ov).sum(dim=1)  # (B, N, d)
            error = (rebuilt - ref).abs().max().item()
            if not error <= 1e-9:
                return (
                    "the sum over heads of softmax(X QK[h] X^T) X OV[h] differs "
                    f"from nn.MultiheadAttention's output by up to {error:.3g}"
                )
            return None

        inputs = f"W_Q, W_K, W_V, W_O each ({d}, {d}) as in Q = X W_Q, num_heads={h}"
        cases.append(Case(inputs, (w_q, w_k, w_v, w_o, h), judge=judge))
    return cases


def _gqa_cases() -> list[Case]:
    """Reference: F.scaled_dot_product_attention with enable_gqa=True, which repeats
    each key/value head for H / G consecutive query heads."""
    g = torch.Generator().manual_seed(2)
    cases = []
    for b, n, d, h, groups in ((2, 5, 16, 4, 4), (2, 6, 16, 4, 1), (1, 7, 24, 6, 2)):
        d_head = d // h
        x = torch.randn(b, n, d, generator=g, dtype=torch.float64)
        w_q, w_o = (
            torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
            for _ in range(2)
        )
        w_k, w_v = (
            torch.randn(d, groups * d_head, generator=g, dtype=torch.float64) / d**0.5
            for _ in range(2)
        )
        q = (x @ w_q).view(b, n, h, d_head).transpose(1, 2)
        k = (x @ w_k).view(b, n, groups, d_head).transpose(1, 2)
        v = (x @ w_v).view(b, n, groups, d_head).transpose(1, 2)
        heads = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        ref = heads.transpose(1, 2).reshape(b, n, d) @ w_o
        inputs = (
            f"x ({b}, {n}, {d}), W_Q and W_O ({d}, {d}), W_K and W_V "
            f"({d}, {groups * d_head}), num_heads={h}, so {groups} key/value heads"
        )
        cases.append(Case(inputs, (x, w_q, w_k, w_v, w_o, h), ref, atol=1e-10))
    return cases


EXERCISES = [
    Exercise("5.2", "packed_self_attention", "One packed matrix", _packed_cases),
    Exercise("5.3", "head_circuits", "A head is two matrices", _circuit_cases),
    Exercise("5.4", "grouped_query_attention", "Sharing keys and values", _gqa_cases),
]
