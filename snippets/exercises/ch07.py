"""Chapter 7's code exercises; expected answers come from PyTorch's own layers,
autograd, and a decoder run prefix by prefix."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snippets.exercises import Case, Exercise
from snippets.transformer import Transformer, TransformerConfig


def _parameter_cases() -> list[Case]:
    """Reference: the parameters of PyTorch's nn.TransformerEncoderLayer and
    nn.TransformerDecoderLayer, counted on the meta device (no memory used)."""
    cases = []
    for d, heads, d_ff, decoder in (
        (512, 8, 2048, False),
        (512, 8, 2048, True),
        (48, 4, 100, True),
        (1024, 16, 4096, False),
    ):
        kind = nn.TransformerDecoderLayer if decoder else nn.TransformerEncoderLayer
        layer = kind(d, heads, d_ff, device="meta")
        count = sum(p.numel() for p in layer.parameters())
        name = "decoder" if decoder else "encoder"
        inputs = f"d_model={d}, d_ff={d_ff}, decoder={decoder} (PyTorch's {name} layer)"
        cases.append(Case(inputs, (d, d_ff, decoder), count, atol=0, rtol=0))
    return cases


def _jacobian_cases() -> list[Case]:
    """Reference: torch.autograd.functional.jacobian of F.layer_norm, row by row."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for shape, scale, eps in (
        ((6,), 1.0, 1e-5),
        ((2, 3, 5), 3.0, 1e-5),
        ((4,), 0.5, 1.0),
    ):
        d = shape[-1]
        x = scale * torch.randn(shape, generator=g, dtype=torch.float64) + 2.0
        gamma = 1.0 + torch.randn(d, generator=g, dtype=torch.float64)
        rows = x.reshape(-1, d)

        def norm(r: Tensor, gamma: Tensor = gamma, eps: float = eps) -> Tensor:
            return F.layer_norm(r, (r.size(-1),), weight=gamma, eps=eps)

        jac = torch.stack([torch.autograd.functional.jacobian(norm, r) for r in rows])
        inputs = (
            f"x of shape {shape} (scale {scale:g}, mean 2), random gamma, eps={eps:g}"
        )
        cases.append(Case(inputs, (x, gamma, eps), jac.reshape(*shape, d), atol=1e-10))
    return cases


def _model(norm_first: bool, seed: int) -> Transformer:
    """A small float64 model; the caller's global generator is left as it was."""
    config = TransformerConfig(
        d_model=16,
        num_heads=2,
        d_ff=32,
        num_layers=2,
        vocab_size=11,
        max_len=16,
        norm_first=norm_first,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Transformer(config).double().eval()


def _log_likelihood_cases() -> list[Case]:
    """Reference: each target token scored by its own decoder run on the BOS and
    the tokens before it alone, as generation would score it: nothing after the
    token is ever fed in, so the shift is not taken on trust, and a one-pass answer
    without the causal mask differs (its rows would see later tokens)."""
    g = torch.Generator().manual_seed(1)
    bos = 10
    cases = []
    for b, n_s, n_t, norm_first in (
        (2, 5, 4, False),
        (3, 6, 6, True),
        (2, 3, 1, False),
    ):
        model = _model(norm_first, seed=n_t)
        src = torch.randint(0, 10, (b, n_s), generator=g)
        tgt = torch.randint(0, 10, (b, n_t), generator=g)
        total = torch.zeros(b, dtype=torch.float64)
        with torch.no_grad():
            memory = model.encode(src)
            for t in range(n_t):
                prefix = torch.cat([torch.full((b, 1), bos), tgt[:, :t]], dim=1)
                logits = model.decode(prefix, memory)[:, -1]  # (B, V)
                total += F.log_softmax(logits, dim=-1)[torch.arange(b), tgt[:, t]]
        placement = "pre-LN" if norm_first else "post-LN"
        inputs = (
            f"a small {placement} Transformer (d_model 16, vocabulary 11), "
            f"src ({b}, {n_s}), tgt ({b}, {n_t}), bos={bos}"
        )
        cases.append(Case(inputs, (model, src, tgt, bos), total, atol=1e-10))
    return cases


EXERCISES = [
    Exercise("7.2", "layer_parameters", "One layer's parameters", _parameter_cases),
    Exercise("7.3", "layer_norm_jacobian", "Through a LayerNorm", _jacobian_cases),
    Exercise(
        "7.4",
        "sequence_log_likelihood",
        "Scoring a translation",
        _log_likelihood_cases,
    ),
]
