"""Chapter 13: the tiled online-softmax attention equals PyTorch's attention, in less memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snippets.flash import (
    flash_attention,
    flash_attention_io,
    online_logsumexp,
    standard_attention_io,
    tiled_attention,
)
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


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    "batch, n_q, n_k, d, d_v, block",
    [
        ((2, 3), 37, 37, 8, 5, 10),  # n not a multiple of the block
        ((2,), 5, 23, 4, 3, 4),  # fewer queries than keys
        ((2,), 23, 5, 4, 6, 7),  # more queries than keys
        ((), 1, 1, 2, 2, 64),  # one position, a block longer than the sequence
        ((1, 2), 64, 64, 16, 16, 16),  # exact multiples
    ],
)
def test_flash_attention_gradients_equal_autograd_through_dense_attention(
    gen, causal, batch, n_q, n_k, d, d_v, block
):
    """The recomputing backward pass gives autograd's gradients of exact attention."""

    def inputs(*shape):
        return torch.randn(
            *shape, generator=gen, dtype=torch.float64, requires_grad=True
        )

    q, k, v = inputs(*batch, n_q, d), inputs(*batch, n_k, d), inputs(*batch, n_k, d_v)
    upstream = torch.randn(*batch, n_q, d_v, generator=gen, dtype=torch.float64)
    out = flash_attention(q, k, v, causal=causal, block_size=block)
    grads = torch.autograd.grad(out, (q, k, v), upstream)
    expected_out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    expected = torch.autograd.grad(expected_out, (q, k, v), upstream)
    torch.testing.assert_close(out, expected_out, **TOL[torch.float64])
    for name, got, want in zip("qkv", grads, expected, strict=True):
        torch.testing.assert_close(got, want, **TOL[torch.float64], msg=name)


def test_flash_attention_passes_gradcheck(gen):
    q, k, v = (
        torch.randn(1, 9, 3, generator=gen, dtype=torch.float64, requires_grad=True)
        for _ in range(3)
    )
    assert torch.autograd.gradcheck(
        lambda q, k, v: flash_attention(q, k, v, causal=True, block_size=4), (q, k, v)
    )


def saved_numels(fn) -> list[int]:
    """The sizes of the tensors autograd keeps for the backward pass of fn()."""
    sizes = []

    def pack(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sizes


@pytest.mark.parametrize("causal", [False, True])
def test_flash_attention_saves_o_n_d_numbers_never_an_n_by_n_matrix(gen, causal):
    n, d = 128, 8
    q, k, v = (
        torch.randn(2, n, d, generator=gen, requires_grad=True) for _ in range(3)
    )
    saved = saved_numels(lambda: flash_attention(q, k, v, causal, block_size=16))
    # q, k, v, the output and one log-sum-exp per query
    assert sorted(saved) == sorted([2 * n * d] * 4 + [2 * n])
    # the check can fail: autograd through dense attention keeps an n x n matrix
    dense = saved_numels(lambda: F.scaled_dot_product_attention(q, k, v))
    assert max(dense) >= 2 * n * n


def test_flash_attention_names_a_bad_argument(gen):
    q = torch.randn(4, 8, generator=gen)
    with pytest.raises(ValueError, match="block_size"):
        flash_attention(q, q, q, block_size=0)
    with pytest.raises(ValueError, match="batch dimensions"):
        flash_attention(q.expand(2, 4, 8), q, q)


def test_standard_attention_moves_the_n_by_n_matrix_four_times():
    # Q, K, V read and O written: 4Nd; S written and read, P written and read: 4N^2
    for n, d in [(1, 1), (7, 3), (1024, 64)]:
        assert standard_attention_io(n, d) == 4 * n * d + 4 * n * n


@pytest.mark.parametrize(
    "n, d, sram", [(4096, 64, 98_304), (1000, 64, 20_000), (37, 8, 100)]
)
def test_flash_attention_io_matches_the_closed_form_of_algorithm_1(n, d, sram):
    """Outer loop over T_c = ceil(N / B_c) key blocks: K and V read once (2Nd); per key
    block, every query block read (Q, O, l, m) and written (O, l, m): N(3d + 4); plus O,
    l and m initialised (Nd + 2N). Theorem 2: Theta(N^2 d^2 / M)."""
    b_c = -(-sram // (4 * d))
    t_c = -(-n // b_c)
    assert flash_attention_io(n, d, sram) == n * d + 2 * n + 2 * n * d + t_c * n * (
        3 * d + 4
    )


def test_flash_attention_io_falls_like_one_over_the_on_chip_memory():
    n, d = 8192, 64
    small, large = (flash_attention_io(n, d, m) for m in (4 * d * 64, 4 * d * 128))
    base = 3 * n * d + 2 * n  # what no on-chip memory saves: read K, V; initialise O
    assert (small - base) / (large - base) == pytest.approx(2)
    assert large < standard_attention_io(n, d) / 2
