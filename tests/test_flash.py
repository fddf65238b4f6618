"""Chapter 13: the tiled online-softmax attention equals PyTorch's attention, in less memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snippets.flash import online_logsumexp, tiled_attention
from snippets.measure import peak_memory_bytes
from snippets.runtime import device

# float32 matmuls and exps round at ~1e-7 relative; float64 at ~1e-16. Rescaling adds a
# few roundings per tile, well inside these tolerances.
TOL = {
    torch.float32: dict(atol=2e-6, rtol=2e-5),
    torch.float64: dict(atol=1e-12, rtol=1e-12),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    "batch, n, d, d_v, block, query_block",
    [
        ((), 1, 4, 4, 1, None),  # a single position
        ((2,), 37, 8, 5, 10, None),  # n not a multiple of the block
        ((2, 3), 50, 16, 16, 7, 9),  # neither n multiple of the key nor the query block
        ((1, 2), 64, 8, 8, 16, 16),  # exact multiples
        ((3,), 20, 8, 8, 64, None),  # one block larger than the sequence
        ((2,), 33, 4, 6, 1, 5),  # one key per tile
    ],
)
def test_equals_torch_sdpa(gen, dtype, causal, batch, n, d, d_v, block, query_block):
    q = torch.randn(*batch, n, d, generator=gen, dtype=dtype)
    k = torch.randn(*batch, n, d, generator=gen, dtype=dtype)
    v = torch.randn(*batch, n, d_v, generator=gen, dtype=dtype)
    out = tiled_attention(q, k, v, block, causal=causal, query_block_size=query_block)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, **TOL[dtype])


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n_q, n_k", [(5, 23), (23, 5), (17, 17)])
def test_queries_and_keys_of_different_lengths(gen, causal, n_q, n_k):
    """Cross-attention shapes; causal means key j <= query i, as torch's is_causal."""
    q = torch.randn(2, n_q, 8, generator=gen, dtype=torch.float64)
    k = torch.randn(2, n_k, 8, generator=gen, dtype=torch.float64)
    v = torch.randn(2, n_k, 3, generator=gen, dtype=torch.float64)
    out = tiled_attention(q, k, v, 4, causal=causal, query_block_size=3)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(out, expected, **TOL[torch.float64])


def test_large_scores_do_not_overflow(gen):
    """Scores of order 1e4 overflow exp() unless every exponent is relative to a maximum."""
    q = 100 * torch.randn(2, 40, 16, generator=gen)
    k = 100 * torch.randn(2, 40, 16, generator=gen)
    v = torch.randn(2, 40, 8, generator=gen)
    out = tiled_attention(q, k, v, 6)
    assert torch.isfinite(out).all()
    expected = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    torch.testing.assert_close(out, expected.float(), atol=1e-4, rtol=1e-4)


def test_gradients_equal_torch(gen):
    """The loop is ordinary autograd: its gradients equal those of PyTorch's attention."""
    inputs = [
        torch.randn(2, 19, 8, generator=gen, dtype=torch.float64) for _ in range(3)
    ]
    ours = [t.clone().requires_grad_() for t in inputs]
    theirs = [t.clone().requires_grad_() for t in inputs]
    weight = torch.randn(2, 19, 8, generator=gen, dtype=torch.float64)
    (tiled_attention(*ours, 5, causal=True) * weight).sum().backward()
    (F.scaled_dot_product_attention(*theirs, is_causal=True) * weight).sum().backward()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a.grad, b.grad, **TOL[torch.float64])


@pytest.mark.parametrize("block", [1, 7, 100, 1000])
def test_online_logsumexp_equals_torch(gen, block):
    x = torch.randn(4, 3, 100, generator=gen, dtype=torch.float64) * 30
    x[0, 0] += (
        1000.0  # exp(1000) overflows float64: only the running maximum keeps it finite
    )
    torch.testing.assert_close(
        online_logsumexp(x, block), torch.logsumexp(x, dim=-1), rtol=1e-12, atol=1e-12
    )


def _peak(fn, n: int, d: int = 32) -> int:
    g = torch.Generator().manual_seed(n)
    q, k, v = (torch.randn(1, n, d, generator=g).to(device()) for _ in range(3))
    return peak_memory_bytes(lambda: fn(q, k, v))


def test_tiled_memory_grows_linearly_dense_quadratically():
    """Doubling n doubles the tiled peak (score tiles of n x block), but quadruples dense."""
    block = 32

    def tiled(q, k, v):
        return tiled_attention(q, k, v, block)

    def dense(q, k, v):
        return torch.softmax(q @ k.transpose(-2, -1) / 32**0.5, dim=-1) @ v

    t1, t2 = _peak(tiled, 256), _peak(tiled, 512)
    d1, d2 = _peak(dense, 256), _peak(dense, 512)
    assert 1.8 < t2 / t1 < 2.2
    assert 3.6 < d2 / d1 < 4.4
    assert t2 < 12 * 512 * block * 4  # a dozen (n, block) float32 tiles at most
    assert t2 < d2 / 3  # and the gap widens with n


def test_tiles_of_queries_and_keys_bound_the_scores():
    """With query tiles too, no tensor proportional to n x anything but d is created:
    the peak is the output plus a few (query_block x block) tiles."""
    n, d, block = 512, 32, 32
    peak = _peak(
        lambda q, k, v: tiled_attention(q, k, v, block, query_block_size=block), n, d
    )
    output = n * d * 4
    assert peak < output + 16 * block * max(block, d) * 4
