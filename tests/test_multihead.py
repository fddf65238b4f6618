"""Chapter 5: multi-head attention from scratch against torch.nn.MultiheadAttention."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snippets.attention import scaled_dot_product_attention
from snippets.masks import causal_mask, padding_mask, to_key_padding_mask
from snippets.multihead import (
    MultiHeadAttention,
    count_parameters,
    expected_parameters,
)

# float32, d_model <= 16: a handful of matmuls, each rounding at ~1e-7 relative.
TOL = dict(atol=1e-5, rtol=1e-5)


def _torch_call(m: nn.MultiheadAttention, q, k, v, **kw):
    """Call `m` with batch-first tensors whatever its batch_first, return batch-first output."""
    if not m.batch_first:  # the default layout is (N, B, d)
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
    out, w = m(q, k, v, **kw)
    return (out if m.batch_first else out.transpose(0, 1)), w


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masking", ["none", "causal", "padding", "both"])
def test_equals_torch_multihead_attention(gen, batch_first, bias, masking):
    B, n, d, H = 3, 6, 16, 4
    m = nn.MultiheadAttention(d, H, bias=bias, batch_first=batch_first)
    if bias:  # torch initialises biases to 0; make them count
        with torch.no_grad():
            m.in_proj_bias.normal_(generator=gen)
            m.out_proj.bias.normal_(generator=gen)
    ours = MultiHeadAttention.from_torch(m)
    x = torch.randn(B, n, d, generator=gen)
    lengths = torch.tensor([6, 3, 1])
    mask, kw = None, {}
    if masking in ("causal", "both"):
        mask = causal_mask(n)
        kw["attn_mask"] = ~mask  # nn.MultiheadAttention: True = NOT allowed
    if masking in ("padding", "both"):
        pad = padding_mask(lengths, n)
        mask = pad if mask is None else mask & pad
        kw["key_padding_mask"] = to_key_padding_mask(pad)
    out, weights = ours(x, x, x, mask)
    ref_out, ref_w = _torch_call(m, x, x, x, **kw)  # ref_w is averaged over heads
    torch.testing.assert_close(out, ref_out, **TOL)
    torch.testing.assert_close(weights.mean(dim=1), ref_w, **TOL)
    _, ref_per_head = _torch_call(m, x, x, x, average_attn_weights=False, **kw)
    torch.testing.assert_close(weights, ref_per_head, **TOL)


@pytest.mark.parametrize("batch_first", [True, False])
def test_cross_attention_with_different_lengths(gen, batch_first):
    m = nn.MultiheadAttention(12, 3, batch_first=batch_first)
    ours = MultiHeadAttention.from_torch(m)
    q = torch.randn(2, 4, 12, generator=gen)
    kv = torch.randn(2, 7, 12, generator=gen)
    out, weights = ours(q, kv, kv)
    assert out.shape == (2, 4, 12) and weights.shape == (2, 3, 4, 7)
    ref_out, ref_w = _torch_call(m, q, kv, kv)
    torch.testing.assert_close(out, ref_out, **TOL)
    torch.testing.assert_close(weights.mean(1), ref_w, **TOL)


def test_float64_copy_keeps_dtype(gen):
    m = nn.MultiheadAttention(8, 2, batch_first=True, dtype=torch.float64)
    ours = MultiHeadAttention.from_torch(m)
    assert ours.w_q.weight.dtype == torch.float64
    x = torch.randn(2, 5, 8, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(ours(x, x, x)[0], m(x, x, x)[0], atol=1e-12, rtol=1e-12)


def test_from_torch_rejects_what_it_cannot_copy():
    with pytest.raises(ValueError):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, kdim=4, vdim=4))
    with pytest.raises(ValueError):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, add_bias_kv=True))
    with pytest.raises(ValueError):
        MultiHeadAttention(10, 3)


def test_heads_are_independent_attentions_on_slices(gen):
    """Brute force: head h is plain attention on columns h*d_h:(h+1)*d_h of the projections,
    and concat(heads) W_O^T + b equals the sum over heads of head_h times its block of W_O."""
    d, H = 12, 3
    d_h = d // H
    mha = MultiHeadAttention(d, H)
    x = torch.randn(2, 5, d, generator=gen)
    out, weights = mha(x, x, x)
    q, k, v = mha.w_q(x), mha.w_k(x), mha.w_v(x)
    total = mha.w_o.bias.expand(2, 5, d).clone()
    for h in range(H):
        cols = slice(h * d_h, (h + 1) * d_h)
        head, w = scaled_dot_product_attention(q[..., cols], k[..., cols], v[..., cols])
        torch.testing.assert_close(weights[:, h], w, **TOL)
        total += head @ mha.w_o.weight[:, cols].T  # W_O's block for head h
    torch.testing.assert_close(out, total, **TOL)


def test_split_then_merge_is_identity(gen):
    mha = MultiHeadAttention(12, 4)
    x = torch.randn(2, 5, 12, generator=gen)
    s = mha.split_heads(x)
    assert s.shape == (2, 4, 5, 3)
    assert torch.equal(s[:, 1, :, :], x[..., 3:6])
    assert torch.equal(mha.merge_heads(s), x)


@pytest.mark.parametrize("d_model, heads", [(8, 1), (8, 2), (8, 8), (512, 8)])
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_count_does_not_depend_on_heads(d_model, heads, bias):
    ours = MultiHeadAttention(d_model, heads, bias=bias)
    theirs = nn.MultiheadAttention(d_model, heads, bias=bias)
    assert count_parameters(ours) == count_parameters(theirs)
    assert count_parameters(ours) == expected_parameters(d_model, bias)
    assert count_parameters(ours) == count_parameters(
        MultiHeadAttention(d_model, 1, bias)
    )


def test_batch_first_false_with_batch_first_input_mixes_the_batch(gen):
    """The pitfall: (B, N, d) into a default module runs silently and mixes sequences."""
    m = nn.MultiheadAttention(8, 2)  # batch_first=False
    x = torch.randn(3, 5, 8, generator=gen)  # (B, N, d)
    wrong, _ = m(x, x, x)  # read as N=3 positions of 5 sequences
    assert wrong.shape == x.shape  # no error to warn anybody
    right, _ = _torch_call(m, x, x, x)
    assert (wrong - right).abs().max() > 1e-2
    x2 = x.clone()
    x2[1] += 1.0  # change sequence 1 only
    assert not torch.allclose(m(x2, x2, x2)[0][0], wrong[0])  # sequence 0 changed too
    torch.testing.assert_close(_torch_call(m, x2, x2, x2)[0][0], right[0], **TOL)


def test_gradients_flow_to_every_projection(gen):
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 4, 8, generator=gen)
    mha(x, x, x, causal_mask(4))[0].square().sum().backward()
    for lin in (mha.w_q, mha.w_k, mha.w_v, mha.w_o):
        assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_hand_built_heads_attend_where_the_page_says():
    """The figure's caption: previous token, next token, same word, first token."""
    from snippets.multihead import WORDS, hand_built_heads

    mha, x = hand_built_heads()
    with torch.no_grad():
        _, w = mha(x, x, x)
    n = len(WORDS)
    top = w[0].argmax(dim=-1)  # (H, n)
    assert top[0].tolist() == [0, *range(n - 1)]
    assert top[1].tolist() == [*range(1, n), n - 1]
    assert top[3].tolist() == [0] * n
    for i, word in enumerate(WORDS):  # head 2 splits its weight over the same word
        same = torch.tensor([w_ == word for w_ in WORDS])
        assert w[0, 2, i, same].sum() > 0.95


def test_one_wide_head_scores_half_the_sum_of_four_heads_scaled_scores(gen):
    """Same weights, H = 1 instead of 4: the score divides the summed products by sqrt(d),
    not sqrt(d / 4), so it is sqrt(d_head / d) = 1/2 times the heads' summed scores."""
    d, heads = 32, 4
    four = MultiHeadAttention(d, heads).double()
    one = MultiHeadAttention(d, 1).double()
    one.load_state_dict(four.state_dict())
    x = torch.randn(2, 6, d, generator=gen, dtype=torch.float64)
    # Plain matmuls on the stored (out, in) weights: the page's W_Q is weight.T.
    q = x @ four.w_q.weight.T + four.w_q.bias
    k = x @ four.w_k.weight.T + four.w_k.bias
    d_head = d // heads
    head_scores = sum(
        q[..., h * d_head : (h + 1) * d_head]
        @ k[..., h * d_head : (h + 1) * d_head].transpose(-2, -1)
        / d_head**0.5
        for h in range(heads)
    )
    _, weights = one(x, x, x)
    expected = torch.softmax(0.5 * head_scores, dim=-1)
    torch.testing.assert_close(weights[:, 0], expected, atol=1e-12, rtol=1e-12)
