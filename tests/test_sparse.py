"""Chapter 10: sparse attention patterns and banded sliding-window attention."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from snippets.attention import scaled_dot_product_attention
from snippets.measure import peak_memory_bytes
from snippets.runtime import device
from snippets.sparse import (
    bigbird_layout,
    bigbird_mask,
    block_sparse_attention,
    dilated_window_mask,
    expand_layout,
    fixed_mask,
    global_tokens_mask,
    mask_density,
    sliding_window_attention,
    sliding_window_mask,
    strided_mask,
)

# float32 matmuls round at ~1e-7 relative; float64 at ~1e-16.
TOL = {
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float64: dict(atol=1e-12, rtol=1e-12),
}


def brute(n: int, allowed) -> torch.Tensor:
    """A mask from a predicate on (i, j), evaluated pair by pair."""
    return torch.tensor([[bool(allowed(i, j)) for j in range(n)] for i in range(n)])


# --- patterns against their definitions ------------------------------------------------------


@pytest.mark.parametrize("n, w", [(1, 0), (10, 0), (13, 2), (8, 20)])
def test_sliding_window_mask_is_the_band(n, w):
    assert torch.equal(
        sliding_window_mask(n, w), brute(n, lambda i, j: abs(i - j) <= w)
    )


def test_global_tokens_attend_and_are_attended_by_all():
    n, w, g = 17, 2, [0, 9]
    expected = brute(n, lambda i, j: abs(i - j) <= w or i in g or j in g)
    assert torch.equal(global_tokens_mask(n, w, g), expected)


@pytest.mark.parametrize("n, stride", [(16, 4), (23, 5)])
def test_strided_mask_follows_child_et_al(n, stride):
    # A1 = {max(0, i - l), ..., i}, A2 = {j <= i : (i - j) mod l = 0}  (section 4.2)
    def allowed(i, j):
        return j <= i and (i - j <= stride or (i - j) % stride == 0)

    assert torch.equal(strided_mask(n, stride), brute(n, allowed))


@pytest.mark.parametrize("n, stride, c", [(16, 4, 1), (21, 5, 2)])
def test_fixed_mask_follows_child_et_al(n, stride, c):
    # A1 = {j : floor(j / l) = floor(i / l)}, A2 = {j : j mod l in {l - c, ..., l - 1}}, j <= i
    def allowed(i, j):
        return j <= i and (j // stride == i // stride or j % stride >= stride - c)

    assert torch.equal(fixed_mask(n, stride, c), brute(n, allowed))


@pytest.mark.parametrize(
    "mask", [strided_mask(64, 8), fixed_mask(64, 8, 1)], ids=["strided", "fixed"]
)
def test_factorised_patterns_reach_every_earlier_position_in_two_steps(mask):
    """Child et al.'s design criterion: any j <= i is reachable from i in at most two hops."""
    m = mask.double()
    two_hops = (m @ m) > 0
    causal = torch.ones(64, 64, dtype=torch.bool).tril()
    assert torch.equal(two_hops | mask, causal)
    assert mask_density(mask) < 0.5 * mask_density(causal)  # while keeping few pairs


def test_bigbird_mask_structure():
    n, block, wb, ng, nr = 70, 5, 3, 2, 3  # 14 blocks, the last one cropped
    mask = bigbird_mask(n, block, wb, ng, nr, torch.Generator().manual_seed(0))
    assert mask.shape == (n, n) and mask.dtype == torch.bool
    nb = math.ceil(n / block)
    # Constant on each (block x block) tile: the pattern is decided per block.
    tiles = mask[::block, ::block]  # (nb, nb): one entry per tile
    expanded = tiles.repeat_interleave(block, 0).repeat_interleave(block, 1)[:n, :n]
    assert torch.equal(mask, expanded)
    # Global blocks see every block and every block sees them.
    assert tiles[:ng].all() and tiles[:, :ng].all()
    for row in range(ng, nb):
        window = {c for c in range(nb) if abs(c - row) <= wb // 2}
        seen = set(tiles[row].nonzero().flatten().tolist())
        assert window | set(range(ng)) <= seen
        # exactly nr random blocks besides window and global ones
        assert len(seen - window - set(range(ng))) == nr


def test_bigbird_random_blocks_depend_only_on_the_generator():
    def make(seed):
        return bigbird_mask(64, 4, 3, 1, 2, torch.Generator().manual_seed(seed))

    assert torch.equal(make(1), make(1))
    assert not torch.equal(make(1), make(2))


def test_window_patterns_keep_a_number_of_pairs_linear_in_n():
    # the band holds n (2w + 1) - w (w + 1) pairs: count it in closed form
    for n in (100, 400):
        assert sliding_window_mask(n, 5).sum().item() == n * 11 - 5 * 6


# --- sliding-window attention against dense attention ---------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    "batch, n, window",
    [
        ((), 1, 0),
        ((), 37, 0),  # only the diagonal
        ((3,), 37, 4),  # n prime: not a multiple of any block
        ((2, 3), 101, 33),  # window not a divisor of n
        ((2,), 129, 64),
        ((1, 2), 50, 49),  # window = n - 1: the full matrix
        ((2,), 20, 1000),  # window much larger than n
    ],
)
def test_sliding_window_attention_equals_dense_with_mask(
    gen, dtype, causal, batch, n, window
):
    q = torch.randn(*batch, n, 16, generator=gen, dtype=dtype)
    k = torch.randn(*batch, n, 16, generator=gen, dtype=dtype)
    v = torch.randn(*batch, n, 5, generator=gen, dtype=dtype)  # d_v != d
    mask = sliding_window_mask(n, window)
    if causal:
        mask &= torch.ones(n, n, dtype=torch.bool).tril()
    out = sliding_window_attention(q, k, v, window, causal=causal)
    expected, _ = scaled_dot_product_attention(q, k, v, mask)
    assert out.shape == (*batch, n, 5) and out.dtype == dtype
    torch.testing.assert_close(out, expected, **TOL[dtype])


def test_sliding_window_attention_equals_torch_sdpa(gen):
    """The same comparison against PyTorch's own fused function, an independent reference."""
    q, k, v = (torch.randn(2, 4, 300, 32, generator=gen) for _ in range(3))
    expected = F.scaled_dot_product_attention(
        q, k, v, attn_mask=sliding_window_mask(300, 17)
    )
    torch.testing.assert_close(
        sliding_window_attention(q, k, v, 17), expected, **TOL[torch.float32]
    )


def test_sliding_window_gradients_equal_dense_gradients(gen):
    n, w = 45, 6
    inputs = [
        torch.randn(2, n, 8, generator=gen, dtype=torch.float64) for _ in range(3)
    ]
    banded = [t.clone().requires_grad_() for t in inputs]
    dense = [t.clone().requires_grad_() for t in inputs]
    sliding_window_attention(*banded, w).square().sum().backward()
    scaled_dot_product_attention(*dense, sliding_window_mask(n, w))[
        0
    ].square().sum().backward()
    for a, b in zip(banded, dense, strict=True):
        torch.testing.assert_close(a.grad, b.grad, **TOL[torch.float64])


def test_causal_window_ignores_the_future(gen):
    q, k, v = (torch.randn(1, 60, 8, generator=gen) for _ in range(3))
    out = sliding_window_attention(q, k, v, 10, causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[:, 30:] = torch.randn(1, 30, 8, generator=gen)  # change only positions >= 30
    v2[:, 30:] = torch.randn(1, 30, 8, generator=gen)
    out2 = sliding_window_attention(q, k2, v2, 10, causal=True)
    assert torch.equal(out[:, :30], out2[:, :30])


def test_peak_memory_grows_linearly_for_a_fixed_window(gen):
    """Quadrupling n quadruples the banded peak memory (dense: x16). Byte counts are exact,
    not timings; the bounds 3..5 leave room for the fixed-size mask and padding."""
    w, d = 32, 16

    def peak(n, fn):
        q, k, v = (torch.randn(1, n, d, generator=gen).to(device()) for _ in range(3))
        return peak_memory_bytes(lambda: fn(q, k, v, n))

    def banded(q, k, v, n):
        return sliding_window_attention(q, k, v, w)

    mask_1k, mask_4k = (
        sliding_window_mask(n, w, device=device()) for n in (1024, 4096)
    )

    def dense(q, k, v, n):
        return scaled_dot_product_attention(q, k, v, mask_1k if n == 1024 else mask_4k)

    banded_ratio = peak(4096, banded) / peak(1024, banded)
    dense_ratio = peak(4096, dense) / peak(1024, dense)
    assert 3 < banded_ratio < 5
    assert 14 < dense_ratio < 18


def test_dilated_window_sees_every_dilation_th_position_within_its_reach():
    n, w, dilation = 40, 3, 2
    mask = dilated_window_mask(n, w, dilation)
    for i in range(n):
        expected = [
            j for j in range(n) if abs(i - j) <= w * dilation and (i - j) % 2 == 0
        ]
        assert mask[i].nonzero().flatten().tolist() == expected
    assert torch.equal(dilated_window_mask(n, w, 1), sliding_window_mask(n, w))


def test_bigbird_mask_is_its_layout_expanded_to_tokens():
    layout = bigbird_layout(6, 3, 1, 2, torch.Generator().manual_seed(0))
    mask = bigbird_mask(23, 4, 3, 1, 2, torch.Generator().manual_seed(0))
    for i in range(23):
        for j in range(23):
            assert mask[i, j] == layout[i // 4, j // 4]


def _qkv(gen, batch, n_q, n_k, d=8, d_v=5, dtype=torch.float64):
    return (
        torch.randn(*batch, n_q, d, generator=gen, dtype=dtype),
        torch.randn(*batch, n_k, d, generator=gen, dtype=dtype),
        torch.randn(*batch, n_k, d_v, generator=gen, dtype=dtype),
    )


@pytest.mark.parametrize(
    "batch, layout_batch, n_q, n_k, b",
    [
        ((2, 3), (2, 1), 37, 37, 8),  # the last block partial; one layout per sequence
        ((2,), (), 50, 23, 7),  # more queries than keys; one layout for the batch
        ((3,), (3,), 5, 64, 16),  # fewer queries than one block
        ((1, 2), (1, 2), 64, 64, 16),  # whole blocks; one layout per head
    ],
)
def test_block_sparse_attention_equals_dense_attention_under_the_expanded_layout(
    gen, batch, layout_batch, n_q, n_k, b
):
    q, k, v = _qkv(gen, batch, n_q, n_k)
    shape = (*layout_batch, math.ceil(n_q / b), math.ceil(n_k / b))
    layout = torch.rand(shape, generator=gen) < 0.4
    layout[..., 0, :] = False  # a query block with no key block: zeros
    out = block_sparse_attention(q, k, v, layout, b)
    expected, _ = scaled_dot_product_attention(
        q, k, v, expand_layout(layout, b, n_q, n_k)
    )
    torch.testing.assert_close(out, expected, **TOL[torch.float64])
    assert not out[..., :b, :].any()  # the empty row of blocks


@pytest.mark.parametrize(
    "name, layout",
    [
        ("window", sliding_window_mask(8, 1)),
        ("global", global_tokens_mask(8, 1, [0, 5])),
        ("bigbird", bigbird_layout(8, 3, 1, 2, torch.Generator().manual_seed(1))),
        ("strided", strided_mask(8, 3)),
        ("fixed", fixed_mask(8, 4, 2)),
        ("dilated", dilated_window_mask(8, 2, 2)),
    ],
)
def test_each_named_pattern_is_a_layout_for_block_sparse_attention(gen, name, layout):
    b = 6
    n = 8 * b - 3  # the last block partial
    q, k, v = _qkv(gen, (2,), n, n)
    expected, _ = scaled_dot_product_attention(q, k, v, expand_layout(layout, b, n, n))
    out = block_sparse_attention(q, k, v, layout, b)
    torch.testing.assert_close(out, expected, **TOL[torch.float64], msg=name)


def test_block_sparse_attention_computes_only_the_listed_tiles(gen):
    """Its multiply-adds are those of the listed (b, b) tiles, counted by PyTorch."""
    n, b, d, d_v = 256, 16, 8, 4
    layout = bigbird_layout(n // b, 3, 1, 2, torch.Generator().manual_seed(0))
    q, k, v = _qkv(gen, (), n, n, d, d_v, torch.float32)
    with FlopCounterMode(display=False) as counter:
        block_sparse_attention(q, k, v, layout, b)
    tiles = int(layout.sum())
    assert counter.get_total_flops() == 2 * tiles * b * b * (d + d_v)
    assert tiles < layout.numel() / 2  # fewer than half the dense work


def test_block_sparse_attention_gradients_equal_dense_gradients(gen):
    q, k, v = (t.requires_grad_() for t in _qkv(gen, (2,), 30, 30))
    layout = torch.rand(4, 4, generator=gen) < 0.5
    upstream = torch.randn(2, 30, 5, generator=gen, dtype=torch.float64)
    ours = torch.autograd.grad(
        block_sparse_attention(q, k, v, layout, 8), (q, k, v), upstream
    )
    dense, _ = scaled_dot_product_attention(q, k, v, expand_layout(layout, 8, 30, 30))
    for got, want in zip(
        ours, torch.autograd.grad(dense, (q, k, v), upstream), strict=True
    ):
        torch.testing.assert_close(got, want, **TOL[torch.float64])


def test_block_sparse_attention_names_a_bad_layout(gen):
    q, k, v = _qkv(gen, (2,), 16, 16)
    with pytest.raises(TypeError, match="layout must be a bool tensor"):
        block_sparse_attention(q, k, v, torch.ones(2, 2), 8)
    with pytest.raises(ValueError, match=r"layout must broadcast .* \(2, 2, 2\)"):
        block_sparse_attention(q, k, v, torch.ones(3, 2, dtype=torch.bool), 8)
    with pytest.raises(ValueError, match="block_size"):
        block_sparse_attention(q, k, v, torch.ones(2, 2, dtype=torch.bool), 0)
