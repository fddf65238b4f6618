"""Chapter 4: causal and padding masks against PyTorch's own conventions and brute force."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snippets.attention import scaled_dot_product_attention
from snippets.masks import (
    causal_mask,
    combine,
    naive_attention,
    padding_mask,
    prefix_by_prefix,
    to_key_padding_mask,
    to_torch_attn_mask,
)

# float32 matmuls round at ~1e-7 relative; sums over a few dozen terms stay well below 1e-5.
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_causal_mask_is_lower_triangle_of_ones(n):
    m = causal_mask(n)
    assert m.dtype == torch.bool and m.shape == (n, n)
    assert torch.equal(m, torch.tril(torch.ones(n, n)).bool())
    # nn.Transformer's float mask: 0 where allowed, -inf above the diagonal
    assert torch.equal(m, nn.Transformer.generate_square_subsequent_mask(n) == 0)


def test_causal_mask_matches_torch_is_causal(gen):
    q, k, v = (torch.randn(2, 3, 6, 8, generator=gen) for _ in range(3))
    ours, _ = scaled_dot_product_attention(q, k, v, causal_mask(6))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(ours, expected, **TOL)


def test_padding_mask_shape_and_values():
    m = padding_mask(torch.tensor([3, 0, 5]), 5)
    assert m.dtype == torch.bool and m.shape == (3, 1, 1, 5)
    expected = torch.tensor(
        [[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool
    )
    assert torch.equal(m[:, 0, 0], expected)


def test_padding_mask_equals_truncating_the_keys(gen):
    """Masking keys j >= length gives what attention over the first `length` keys alone gives."""
    lengths = torch.tensor([2, 5, 4])
    q = torch.randn(3, 2, 4, 8, generator=gen)  # (B, H, n_q, d)
    k, v = (torch.randn(3, 2, 5, 8, generator=gen) for _ in range(2))
    out, weights = scaled_dot_product_attention(q, k, v, padding_mask(lengths, 5))
    for b, length in enumerate(lengths.tolist()):
        ref, _ = naive_attention(q[b], k[b, :, :length], v[b, :, :length])
        torch.testing.assert_close(out[b], ref, **TOL)
        assert torch.equal(
            weights[b, ..., length:], torch.zeros_like(weights[b, ..., length:])
        )


def test_combine_is_logical_and_with_broadcasting():
    c = combine(causal_mask(4), padding_mask(torch.tensor([4, 2]), 4), None)
    assert c.shape == (2, 1, 4, 4)
    for b, length in enumerate((4, 2)):
        i, j = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
        assert torch.equal(c[b, 0], (j <= i) & (j < length))
    assert combine(None) is None


def test_key_padding_mask_conversion_matches_nn_multihead_attention(gen):
    """nn.MultiheadAttention's key_padding_mask means True = ignore: the negation of ours.

    Reference: each sequence run alone through the same module with its padded keys cut off.
    """
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(3, 5, 8, generator=gen)
    lengths = torch.tensor([5, 2, 3])
    kpm = to_key_padding_mask(padding_mask(lengths, 5))
    assert kpm.shape == (3, 5)
    out, _ = mha(x, x, x, key_padding_mask=kpm)
    for b, length in enumerate(lengths.tolist()):
        ref, _ = mha(x[b : b + 1], x[b : b + 1, :length], x[b : b + 1, :length])
        torch.testing.assert_close(out[b : b + 1], ref, **TOL)


def test_attn_mask_conversion_matches_nn_multihead_attention(gen):
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(2, 6, 8, generator=gen)
    out, _ = mha(x, x, x, attn_mask=to_torch_attn_mask(causal_mask(6)))
    expected, _ = mha(x, x, x, attn_mask=causal_mask(6), is_causal=False)
    # Passing OUR mask unconverted means the opposite: rows 0-4 then attend to the future
    # only and differ; row 5 may attend to nothing and is NaN, so it is left out.
    assert torch.isfinite(expected[:, :5]).all()
    assert not torch.allclose(out[:, :5], expected[:, :5], atol=1e-3)
    # reference: output i from the module run on the prefix 0..i only
    ref = prefix_by_prefix(lambda p: mha(p, p, p)[0], x)
    torch.testing.assert_close(out, ref, **TOL)


def test_causal_output_at_i_ignores_inputs_after_i(gen):
    """Teacher forcing is sound: changing tokens after position i leaves outputs 0..i unchanged."""
    w = torch.randn(3, 8, 8, generator=gen) / 8**0.5  # W_Q, W_K, W_V

    def layer(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return scaled_dot_product_attention(x @ w[0], x @ w[1], x @ w[2], mask)[0]

    x = torch.randn(2, 7, 8, generator=gen)
    for i in range(7):
        changed = x.clone()
        changed[:, i + 1 :] = torch.randn(2, 6 - i, 8, generator=gen)
        before, after = layer(x, causal_mask(7)), layer(changed, causal_mask(7))
        assert torch.equal(before[:, : i + 1], after[:, : i + 1])  # bit-identical
        if i < 6:  # without the mask, the future leaks into position i
            leaky = layer(x, None)[:, i] - layer(changed, None)[:, i]
            assert leaky.abs().max() > 1e-3


def test_one_causal_pass_equals_prefix_by_prefix(gen):
    w = torch.randn(3, 8, 8, generator=gen) / 8**0.5

    def layer(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return scaled_dot_product_attention(x @ w[0], x @ w[1], x @ w[2], mask)[0]

    x = torch.randn(2, 9, 8, generator=gen)
    torch.testing.assert_close(
        layer(x, causal_mask(9)), prefix_by_prefix(layer, x), **TOL
    )


def test_naive_softmax_gives_nan_on_an_empty_row_ours_gives_zeros(gen):
    q, k, v = (torch.randn(4, 8, generator=gen) for _ in range(3))
    mask = causal_mask(4).clone()
    mask[2] = False  # query 2 may attend to nothing
    naive_out, naive_w = naive_attention(q, k, v, mask)
    assert torch.isnan(naive_w[2]).all() and torch.isnan(naive_out[2]).all()
    out, w = scaled_dot_product_attention(q, k, v, mask)
    assert torch.equal(w[2], torch.zeros(4)) and torch.equal(out[2], torch.zeros(8))
    # on every other row the two agree, and -inf masking equals renormalising after softmax
    rows = [0, 1, 3]
    torch.testing.assert_close(naive_out[rows], out[rows], **TOL)
    p = torch.softmax(q @ k.T / 8**0.5, dim=-1) * mask
    torch.testing.assert_close(w[rows], (p / p.sum(-1, keepdim=True))[rows], **TOL)


def test_masks_follow_the_device_of_their_inputs():
    assert causal_mask(3, device="cpu").device.type == "cpu"
    assert padding_mask(torch.tensor([1, 2]), 3).device == torch.device("cpu")
