"""Bad input fails at once, with a message that names the argument (snippets/checks.py).

A wrong value, size or shape raises ValueError; a wrong type or dtype raises TypeError.
Each message says what was expected and what was given. Valid input is untouched: the
other test files check the numbers.
"""

from __future__ import annotations

import pytest
import torch

from snippets import (
    attention,
    families,
    flash,
    further,
    lab,
    masks,
    multihead,
    performer,
    positional,
    qkv,
    reformer,
    sequence_models,
    sparse,
    transformer,
    vit,
)
from snippets.attention import scaled_dot_product_attention
from snippets.flash import tiled_attention
from snippets.multihead import MultiHeadAttention
from snippets.performer import favor_attention


def _qkv(n_q: int = 4, n_k: int = 5, d: int = 8, d_v: int = 8, batch=(2,)):
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(*batch, n_q, d, generator=g),
        torch.randn(*batch, n_k, d, generator=g),
        torch.randn(*batch, n_k, d_v, generator=g),
    )


# ------------------------------------------------------------- the required cases


def test_a_negative_key_block_size_is_refused_naming_block_size():
    """It used to return zeros: range() with a negative step runs no tile at all."""
    with pytest.raises(ValueError, match=r"block_size must be a positive int, got -1"):
        tiled_attention(*_qkv(), block_size=-1)


def test_a_negative_query_block_size_is_refused_naming_query_block_size():
    """It used to return uninitialised memory: no query tile was ever written."""
    with pytest.raises(ValueError, match=r"query_block_size must be a positive int"):
        tiled_attention(*_qkv(), block_size=2, query_block_size=-1)


def test_a_zero_query_block_size_is_refused_rather_than_read_as_all():
    with pytest.raises(ValueError, match=r"query_block_size .* got 0"):
        tiled_attention(*_qkv(), block_size=2, query_block_size=0)


def test_zero_heads_is_a_value_error_not_a_zero_division():
    with pytest.raises(ValueError, match=r"num_heads must be a positive int, got 0"):
        MultiHeadAttention(8, 0)


def test_a_negative_number_of_heads_is_refused():
    with pytest.raises(ValueError, match=r"num_heads must be a positive int, got -2"):
        MultiHeadAttention(8, -2)


def test_a_width_that_the_heads_do_not_divide_is_refused():
    with pytest.raises(ValueError, match=r"d_model must be divisible by num_heads"):
        MultiHeadAttention(10, 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.uint8])
def test_a_mask_that_is_not_bool_is_refused_naming_the_mask(dtype):
    """float, int and uint8 masks used to fail inside torch (or flip bits with ~)."""
    q, k, v = _qkv()
    mask = torch.ones(4, 5, dtype=dtype)
    with pytest.raises(TypeError, match=r"mask must be a bool tensor \(True = may"):
        scaled_dot_product_attention(q, k, v, mask)


def test_a_mask_that_would_enlarge_the_scores_is_refused_with_both_shapes():
    """(2, 1, 4, 5) against scores (2, 4, 5) used to give a (2, 2, 4, 8) output."""
    q, k, v = _qkv()
    mask = torch.ones(2, 1, 4, 5, dtype=torch.bool)
    expected = r"mask must broadcast to .* \(2, 4, 5\) .* got \(2, 1, 4, 5\)"
    with pytest.raises(ValueError, match=expected):
        scaled_dot_product_attention(q, k, v, mask)


def test_a_mask_that_does_not_broadcast_is_refused_naming_the_mask():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"mask must broadcast"):
        scaled_dot_product_attention(q, k, v, torch.ones(4, 4, dtype=torch.bool))


@pytest.mark.parametrize(
    "shape", [(4, 5), (1, 5), (2, 1, 5), (2, 4, 5), (), (5,)], ids=str
)
def test_a_mask_that_broadcasts_without_enlarging_is_accepted(shape):
    q, k, v = _qkv()
    out, weights = scaled_dot_product_attention(
        q, k, v, torch.ones(shape, dtype=torch.bool)
    )
    assert out.shape == (2, 4, 8) and weights.shape == (2, 4, 5)


def test_zero_random_features_is_a_value_error_not_an_index_error():
    with pytest.raises(ValueError, match=r"num_features must be a positive int"):
        favor_attention(*_qkv(n_q=5), num_features=0)


def test_queries_and_keys_of_different_widths_are_refused_naming_q_and_k():
    q, _, v = _qkv()
    k = torch.randn(2, 5, 6)
    with pytest.raises(ValueError, match=r"q and k must have the same last dimension"):
        scaled_dot_product_attention(q, k, v)


def test_keys_and_values_of_different_lengths_are_refused_naming_k_and_v():
    q, k, _ = _qkv()
    v = torch.randn(2, 6, 8)
    with pytest.raises(ValueError, match=r"k and v must have the same number of keys"):
        scaled_dot_product_attention(q, k, v)


def test_integer_queries_are_refused_naming_q_and_the_dtype():
    q, k, v = _qkv()
    with pytest.raises(
        TypeError, match=r"q must have a floating dtype, got torch.int64"
    ):
        scaled_dot_product_attention(q.long(), k, v)


def test_a_query_without_a_sequence_dimension_is_refused_naming_q():
    _, k, v = _qkv(batch=())
    with pytest.raises(ValueError, match=r"q must have shape \(\.\.\., n_q, d_k\)"):
        scaled_dot_product_attention(torch.randn(8), k, v)


def test_batch_dimensions_that_do_not_broadcast_are_refused():
    q, _, _ = _qkv()  # batch (2,)
    k, v = torch.randn(3, 5, 8), torch.randn(3, 5, 8)  # batch (3,)
    with pytest.raises(ValueError, match=r"batch dimensions .* of q, k and v"):
        scaled_dot_product_attention(q, k, v)


def test_a_list_is_not_a_tensor():
    _, k, v = _qkv()
    with pytest.raises(TypeError, match=r"q must be a torch.Tensor, got list"):
        scaled_dot_product_attention([[1.0] * 8], k, v)


def test_a_bool_is_not_a_size():
    with pytest.raises(TypeError, match=r"block_size must be a positive int, got bool"):
        tiled_attention(*_qkv(), block_size=True)


# ------------------------------------------- self-attention: one sequence, one batch


def test_sliding_window_attention_refuses_more_keys_than_queries():
    """q of 40 positions and k, v of 50 used to return (40, d), ignoring keys 40-49."""
    q, k, v = _qkv(n_q=40, n_k=50)
    with pytest.raises(ValueError, match=r"q and k must have the same length"):
        sparse.sliding_window_attention(q, k, v, 3)


CAUSAL = {
    "favor_attention causal": lambda q, k, v: favor_attention(q, k, v, 4, causal=True),
    "causal_linear_attention": lambda q, k, v: performer.causal_linear_attention(
        q.exp(), k, v
    ),
    "causal_linear_attention_prefix": (
        lambda q, k, v: performer.causal_linear_attention_prefix(q.exp(), k.exp(), v)
    ),
    "relative_attention": lambda q, k, v: further.relative_attention(
        q, k, v, torch.randn(q.shape[-2:])
    ),
}


@pytest.mark.parametrize("n_q, n_k", [(4, 5), (5, 4)], ids=["shorter", "longer"])
@pytest.mark.parametrize("call", CAUSAL.values(), ids=CAUSAL.keys())
def test_causal_attention_refuses_queries_and_keys_of_different_lengths(call, n_q, n_k):
    """causal_linear_attention with fewer queries used to drop the later keys."""
    with pytest.raises(ValueError, match=r"q and k must have the same length"):
        call(*_qkv(n_q=n_q, n_k=n_k))


def test_non_causal_linear_attention_still_takes_different_lengths():
    q, k, v = _qkv(n_q=4, n_k=5)
    assert favor_attention(q, k, v, 4).shape == (2, 4, 8)
    assert performer.linear_attention(q.exp(), k.exp(), v).shape == (2, 4, 8)


def test_causal_linear_attention_still_broadcasts_batched_features():
    """FAVOR+ with a batch of projections gives features (P, N, m) for values (N, d_v)."""
    q, k, v = _qkv(n_q=5, n_k=5, batch=())
    out = performer.causal_linear_attention(q.expand(3, 5, 8).exp(), k, v)
    assert out.shape == (3, 5, 8)


BATCHED = {
    "tiled_attention": lambda q, k, v: flash.tiled_attention(q, k, v, 2),
    "local_attention": lambda q, k, v: families.local_attention(
        q, k, v, torch.zeros(q.shape[:-1]), 1
    ),
    "lsh_attention_with_buckets": lambda q, k, v: reformer.lsh_attention_with_buckets(
        q, v, torch.zeros(1, *q.shape[:-1], dtype=torch.long), 2
    ),
}


@pytest.mark.parametrize(
    "q_batch, kv_batch", [((1,), (2,)), ((2,), (1,)), ((2,), (3, 2))], ids=str
)
@pytest.mark.parametrize("call", BATCHED.values(), ids=BATCHED.keys())
def test_batch_dimensions_that_merely_broadcast_are_refused_where_indexed(
    call, q_batch, kv_batch
):
    """They used to fail inside torch (expand, gather), or, for LSH attention with
    qk (1, N, d) and v (2, N, d_v), to return (1, N, d_v) from v[0] alone."""
    q = _qkv(n_q=4, n_k=4, batch=q_batch)[0]
    _, k, v = _qkv(n_q=4, n_k=4, batch=kv_batch)
    with pytest.raises(ValueError, match=r"batch dimensions .* of q, k and v must be"):
        call(q, k, v)


def test_lsh_attention_refuses_buckets_of_another_batch():
    qk, _, v = _qkv(n_q=4, n_k=4)
    buckets = torch.zeros(2, 1, 4, dtype=torch.long)  # (n_r, 1, N) for qk (2, 4, d)
    with pytest.raises(ValueError, match=r"buckets must have shape \(2, 2, 4\)"):
        reformer.lsh_attention_with_buckets(qk, v, buckets, 2)


def test_shifted_window_attention_refuses_values_of_another_width():
    q, k = torch.randn(2, 1, 4, 4, 8)
    with pytest.raises(ValueError, match=r"v must have the shape of q"):
        vit.shifted_window_attention(q, k, torch.randn(1, 4, 4, 6), 2)


# ------------------------------------------------------- sizes of the mask builders


@pytest.mark.parametrize("arg", ["num_global_blocks", "num_random_blocks"])
def test_bigbird_refuses_a_negative_number_of_blocks(arg):
    sizes = {"num_global_blocks": 1, "num_random_blocks": 1, arg: -1}
    with pytest.raises(ValueError, match=rf"{arg} must be a non-negative int, got -1"):
        sparse.bigbird_mask(16, 4, 3, **sizes)


@pytest.mark.parametrize("c", [0, 5])
def test_fixed_mask_refuses_summary_cells_outside_one_to_stride(c):
    with pytest.raises(ValueError, match=rf"c must be an int in \[1, 4\], got {c}"):
        sparse.fixed_mask(8, 4, c)


@pytest.mark.parametrize("idx", [[0, -1], [8], torch.tensor([3, -2])], ids=str)
def test_global_tokens_must_be_positions_in_the_sequence(idx):
    """-1 used to wrap around silently to position n - 1."""
    with pytest.raises(
        ValueError, match=r"global_idx\[\d\] must be an int in \[0, 7\]"
    ):
        sparse.global_tokens_mask(8, 1, idx)


def test_global_tokens_may_be_given_as_a_tensor_or_one_int():
    by_list = sparse.global_tokens_mask(8, 1, [0, 7])
    assert torch.equal(sparse.global_tokens_mask(8, 1, torch.tensor([0, 7])), by_list)
    assert torch.equal(
        sparse.global_tokens_mask(8, 1, 3), sparse.global_tokens_mask(8, 1, [3])
    )


# ------------------------------------------------------------ sequence-model layers


@pytest.mark.parametrize(
    "call",
    [
        lambda: sequence_models.multiply_adds("transformer", 10, 4),
        lambda: sequence_models.sequential_steps("transformer", 10),
        lambda: sequence_models.layers_to_connect("transformer", 10),
        lambda: sequence_models.path_length("transformer", 10),
    ],
    ids=["multiply_adds", "sequential_steps", "layers_to_connect", "path_length"],
)
def test_every_count_refuses_an_unknown_kind(call):
    with pytest.raises(ValueError, match=r"kind must be one of \('recurrent', "):
        call()


def test_the_kernel_size_matters_only_for_a_convolution():
    """path_length("self-attention", 10, 1) used to raise about the kernel."""
    assert sequence_models.path_length("self-attention", 10, 1) == 1
    assert sequence_models.layers_to_connect("recurrent", 10, 1) == 1
    with pytest.raises(ValueError, match=r"kernel_size must be an int >= 2, got 1"):
        sequence_models.path_length("convolution", 10, 1)


@pytest.mark.parametrize(
    "layer", [sequence_models.SelfAttention(4), sequence_models.Convolution(4)]
)
@pytest.mark.parametrize("x", [torch.randn(5, 4), torch.randn(2, 5, 3)], ids=str)
def test_the_layers_refuse_x_that_is_not_b_n_d(layer, x):
    with pytest.raises(ValueError, match=r"x must have shape \(B, N, d\), d=4"):
        layer(x)


# ------------------------------------------------------------------- the Transformer


def test_a_target_without_a_batch_dimension_is_refused_naming_tgt():
    """It used to raise IndexError inside causal_mask."""
    with pytest.raises(ValueError, match=r"tgt must have shape \(B, N_t\), got \(6,\)"):
        transformer.Transformer(TINY)(TOKENS, TOKENS[0])


def test_a_float_target_is_refused_naming_tgt():
    with pytest.raises(TypeError, match=r"tgt must have an integer dtype"):
        transformer.Transformer(TINY)(TOKENS, TOKENS.float())


def test_label_smoothing_refuses_a_float_target():
    with pytest.raises(TypeError, match=r"target must have an integer dtype"):
        transformer.label_smoothed_loss(torch.randn(3, 7), torch.zeros(3))


# ------------------------------------------------------------------------- RoPE


def test_rope_refuses_integer_x():
    """An int x used to return garbage silently."""
    x = torch.ones(4, 8, dtype=torch.long)
    with pytest.raises(TypeError, match=r"x must have a floating dtype"):
        positional.apply_rope(x, torch.arange(4))


def test_rope_refuses_an_odd_width_naming_x():
    """It used to say "d_model must be even", an argument apply_rope does not have."""
    with pytest.raises(ValueError, match=r"x's last dimension d must be even, got 7"):
        positional.apply_rope(torch.randn(4, 7), torch.arange(4))


# ------------------------------------------------------------------------ masks


def test_padding_mask_refuses_a_negative_length():
    with pytest.raises(ValueError, match=r"n must be a non-negative int, got -1"):
        masks.padding_mask(torch.tensor([2, 3]), -1)


def test_to_key_padding_mask_refuses_no_mask():
    with pytest.raises(TypeError, match=r"mask must be a torch.Tensor, got NoneType"):
        masks.to_key_padding_mask(None)


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 3), (2, 2, 1, 3), (2, 1, 3, 3)])
def test_to_key_padding_mask_refuses_a_mask_that_is_not_b_1_1_n(shape):
    """(B, H, n_q, n) masks used to be cut silently to their first head and query."""
    mask = torch.ones(shape, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"mask must have shape \(B, 1, 1, n\)"):
        masks.to_key_padding_mask(mask)


# --------------------------------------------------------- messages and patterns


def test_a_shape_message_names_whose_sizes_it_expects():
    expected = r"^centres must have shape \(2, 4\) \(\.\.\., n_q of q\), got \(2, 5\)$"
    with pytest.raises(ValueError, match=expected):
        families.local_attention(Q, K, V, torch.zeros(2, 5), 1)


def test_multi_head_attention_takes_keys_of_another_length():
    """The pattern (B, n, d) matches n within each tensor: n_q need not equal n_k."""
    out, weights = MultiHeadAttention(8, 2)(Q, K, V)
    assert out.shape == (2, 4, 8) and weights.shape == (2, 2, 4, 5)


def test_hand_built_heads_leaves_the_callers_generator_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    multihead.hand_built_heads()
    assert torch.equal(torch.rand(3), expected)


def test_hand_built_heads_are_the_same_on_every_call():
    first, _ = multihead.hand_built_heads()
    torch.rand(10)  # the global generator moves on
    second, _ = multihead.hand_built_heads()
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_soft_lookup_refuses_a_temperature_that_is_not_positive(temperature):
    q, k, v = torch.randn(4), torch.randn(3, 4), torch.randn(3, 2)
    with pytest.raises(ValueError, match=r"temperature must be a positive number"):
        qkv.soft_lookup(q, k, v, temperature)


def test_soft_lookup_refuses_a_temperature_that_is_not_a_number():
    q, k, v = torch.randn(4), torch.randn(3, 4), torch.randn(3, 2)
    with pytest.raises(TypeError, match=r"temperature must be a positive number"):
        qkv.soft_lookup(q, k, v, "1")


def test_deformable_attention_names_d_model_in_its_pattern():
    module = further.DeformableAttention1d(8, 2, 2)
    expected = r"values must have shape \(B, n, d_model\), d_model=8, got \(2, 5, 6\)"
    with pytest.raises(ValueError, match=expected):
        module(Q, torch.rand(2, 4), K[..., :6])


# ------------------------------------------------------------------------ images


@pytest.mark.parametrize("shape", [(1, 8, 8), (8, 8), (1, 1, 1, 8, 8)], ids=str)
def test_patchify_refuses_images_that_are_not_b_c_h_w(shape):
    with pytest.raises(ValueError, match=r"images must have shape \(B, C, H, W\)"):
        vit.patchify(torch.randn(shape), 4)


def test_patchify_still_moves_integer_pixels():
    images = torch.arange(64, dtype=torch.uint8).reshape(1, 1, 8, 8)
    assert vit.patchify(images, 4).shape == (1, 4, 16)


def test_patch_embedding_refuses_images_of_another_channel_count():
    embed = vit.PatchEmbedding(4, 3, 8)
    with pytest.raises(ValueError, match=r"images must have shape \(B, C, H, W\), C=3"):
        embed(torch.randn(1, 1, 8, 8))


def test_patch_embedding_refuses_a_partial_patch_rather_than_dropping_it():
    embed = vit.PatchEmbedding(4, 1, 8)
    with pytest.raises(ValueError, match=r"W must be divisible by patch_size"):
        embed(torch.randn(1, 1, 8, 10))


def test_predictive_alignment_refuses_states_of_another_width_naming_h():
    align = families.PredictiveAlignment(8, 4)
    with pytest.raises(ValueError, match=r"h must have shape \(\.\.\., n_q, d\), d=8"):
        align(Q[..., :6], 5)


def test_predictive_alignment_refuses_no_keys():
    with pytest.raises(ValueError, match=r"n_k must be a positive int, got 0"):
        families.PredictiveAlignment(8, 4)(Q, 0)


# ------------------------------------------------- every other checked entry point

G = torch.Generator().manual_seed(0)
Q, K, V = _qkv()
TINY = transformer.TransformerConfig(
    d_model=8, num_heads=2, d_ff=16, num_layers=1, vocab_size=11, max_len=16
)
TINY_VIT = vit.ViTConfig(8, 4, in_channels=1, d_model=8, depth=1, num_heads=2)
FLOAT_MASK = torch.ones(4, 5)
TOKENS = torch.randint(0, 11, (2, 6))

CASES = {
    # attention.py
    "dot_product_samples d_k": (
        lambda: attention.dot_product_samples(0, 10, G),
        ValueError,
        r"d_k must be",
    ),
    "softmax_statistics n_keys": (
        lambda: attention.softmax_statistics(4, 0, 3, True, G),
        ValueError,
        r"n_keys must be a positive int, got 0",
    ),
    # flash.py
    "online_logsumexp block_size": (
        lambda: flash.online_logsumexp(torch.randn(3, 10), 0),
        ValueError,
        r"block_size must be a positive int, got 0",
    ),
    "tiled_attention float block_size": (
        lambda: flash.tiled_attention(Q, K, V, 2.5),
        TypeError,
        r"block_size must be a positive int, got float 2.5",
    ),
    "tiled_attention integer v": (
        lambda: flash.tiled_attention(Q, K, V.long(), 2),
        TypeError,
        r"v must have a floating dtype",
    ),
    # masks.py
    "causal_mask n": (lambda: masks.causal_mask(-1), ValueError, r"n must be a non"),
    "padding_mask float lengths": (
        lambda: masks.padding_mask(torch.tensor([2.0, 3.0]), 4),
        TypeError,
        r"lengths must have an integer dtype",
    ),
    "padding_mask 2-D lengths": (
        lambda: masks.padding_mask(torch.tensor([[2, 3]]), 4),
        ValueError,
        r"lengths must have shape \(B,\), got \(1, 2\)",
    ),
    "to_torch_attn_mask float": (
        lambda: masks.to_torch_attn_mask(torch.ones(3, 3)),
        TypeError,
        r"mask must be",
    ),
    "to_key_padding_mask uint8": (
        lambda: masks.to_key_padding_mask(torch.ones(2, 1, 1, 3, dtype=torch.uint8)),
        TypeError,
        r"mask must have a bool dtype, got torch.uint8",
    ),
    "naive_attention float mask": (
        lambda: masks.naive_attention(Q, K, V, FLOAT_MASK),
        TypeError,
        r"mask must",
    ),
    "prefix_by_prefix 2-D x": (
        lambda: masks.prefix_by_prefix(lambda x: x, torch.randn(4, 8)),
        ValueError,
        r"x must have shape \(B, n, d\)",
    ),
    # multihead.py
    "MultiHeadAttention query width": (
        lambda: MultiHeadAttention(8, 2)(Q[..., :6], K, V),
        ValueError,
        r"query must have shape \(B, n, d\), d=8, got \(2, 4, 6\)",
    ),
    "MultiHeadAttention mask": (
        lambda: MultiHeadAttention(8, 2)(Q, K, V, torch.ones(3, 1, 4, 5).bool()),
        ValueError,
        r"mask must broadcast",
    ),
    # families.py
    "softmax_attend int mask": (
        lambda: families.softmax_attend(Q @ K.mT, V, FLOAT_MASK.long()),
        TypeError,
        r"mask must be a bool",
    ),
    "AdditiveAttention d_key": (
        lambda: families.AdditiveAttention(4, 0, 8),
        ValueError,
        r"d_key must be",
    ),
    "DotProductAttention d_query": (
        lambda: families.DotProductAttention(-1, 4, 8),
        ValueError,
        r"d_query must",
    ),
    "topk_attention top_k": (
        lambda: families.topk_attention(Q, K, V, 6),
        ValueError,
        r"top_k must be an int in \[1, 5\], got 6",
    ),
    "PredictiveAlignment d_model": (
        lambda: families.PredictiveAlignment(0, 4),
        ValueError,
        r"d_model must be",
    ),
    # further.py
    "relative_logits_direct e_rel": (
        lambda: further.relative_logits_direct(Q, torch.randn(5, 8)),
        ValueError,
        r"e_rel must have shape \(4, 8\) \(n, d of q\), got \(5, 8\)",
    ),
    "relative_logits_skewed e_rel": (
        lambda: further.relative_logits_skewed(Q, torch.randn(4, 6)),
        ValueError,
        r"e_rel must have shape \(4, 8\)",
    ),
    "relative_attention k width": (
        lambda: further.relative_attention(Q, Q[..., :4], Q, torch.randn(4, 8)),
        ValueError,
        r"q and k must",
    ),
    "linear_sample positions": (
        lambda: further.linear_sample(torch.randn(2, 6, 3), torch.rand(2, 4, 1)),
        ValueError,
        r"positions must have shape \(B, M\)",
    ),
    "DeformableAttention1d heads": (
        lambda: further.DeformableAttention1d(10, 3, 2),
        ValueError,
        r"d_model must be divisible by num_heads",
    ),
    "DeformableAttention1d num_points": (
        lambda: further.DeformableAttention1d(8, 2, 0),
        ValueError,
        r"num_points",
    ),
    "DeformableAttention1d reference": (
        lambda: further.DeformableAttention1d(8, 2, 2)(Q, torch.rand(2, 3), K),
        ValueError,
        r"reference must have shape \(2, 4\)",
    ),
    "ssm_coefficients delta": (
        lambda: further.ssm_coefficients(
            torch.randn(2, 5, 3), torch.rand(2, 5, 1), -torch.rand(3, 4), Q
        ),
        ValueError,
        r"delta must have shape \(2, 5, 3\)",
    ),
    "SelectiveSSM d_state": (
        lambda: further.SelectiveSSM(4, 0),
        ValueError,
        r"d_state must be",
    ),
    "SelectiveSSM x width": (
        lambda: further.SelectiveSSM(4, 2)(torch.randn(2, 5, 3)),
        ValueError,
        r"x must have shape \(B, n, D\), D=4",
    ),
    # performer.py
    "gaussian_random_features m": (
        lambda: performer.gaussian_random_features(0, 4),
        ValueError,
        r"m must be",
    ),
    "orthogonal_random_features d": (
        lambda: performer.orthogonal_random_features(4, 0),
        ValueError,
        r"d must be",
    ),
    "softmax_features projection width": (
        lambda: performer.softmax_features(Q, torch.randn(16, 4)),
        ValueError,
        r"projection must have shape \(\.\.\., m, d\), d=8",
    ),
    "linear_attention widths": (
        lambda: performer.linear_attention(Q, Q[..., :6], V),
        ValueError,
        r"q and k",
    ),
    "causal_linear_attention chunk_size": (
        lambda: performer.causal_linear_attention(Q, Q, Q, chunk_size=0),
        ValueError,
        r"chunk_size must be a positive int",
    ),
    "kernel_estimates num_features": (
        lambda: performer.kernel_estimates(Q[0, 0], K[0, 0], 0, 3, True),
        ValueError,
        r"num_features must be",
    ),
    # positional.py
    "self_attention integer x": (
        lambda: positional.self_attention(TOKENS, *torch.randn(3, 8, 8)),
        TypeError,
        r"x must have a floating dtype",
    ),
    "inverse_frequencies d_model": (
        lambda: positional.inverse_frequencies(-2),
        ValueError,
        r"d_model must be",
    ),
    "sinusoidal_encoding n_positions": (
        lambda: positional.sinusoidal_encoding(-1, 8),
        ValueError,
        r"n_positions",
    ),
    "LearnedPositionalEmbedding max_len": (
        lambda: positional.LearnedPositionalEmbedding(0, 8),
        ValueError,
        r"max_len",
    ),
    "LearnedPositionalEmbedding x width": (
        lambda: positional.LearnedPositionalEmbedding(8, 8)(Q[..., :6]),
        ValueError,
        r"x must have shape \(\.\.\., N, d\), d=8",
    ),
    "apply_rope positions": (
        lambda: positional.apply_rope(Q, torch.arange(5)),
        ValueError,
        r"positions must have shape \(4,\) \(N of x\), got \(5,\)",
    ),
    # qkv.py
    "project w_q rows": (
        lambda: qkv.project(Q, torch.randn(5, 2), torch.randn(8, 2), torch.randn(8, 2)),
        ValueError,
        r"w_q must have shape \(d_model, d\), d_model=8, got \(5, 2\)",
    ),
    "self_attention mask": (
        lambda: qkv.self_attention(Q, *torch.randn(3, 8, 8), mask=FLOAT_MASK),
        TypeError,
        r"mask must be a bool",
    ),
    # reformer.py
    "random_rotations num_buckets": (
        lambda: reformer.random_rotations(4, 0, 1),
        ValueError,
        r"num_buckets",
    ),
    "hash_with rotations": (
        lambda: reformer.hash_with(Q, torch.randn(2, 6, 2)),
        ValueError,
        r"rotations must have shape \(rounds, d, half\), d=8",
    ),
    "lsh_hash num_rounds": (
        lambda: reformer.lsh_hash(Q, 4, 0),
        ValueError,
        r"num_rounds must be",
    ),
    "lsh_attention_with_buckets length": (
        lambda: reformer.lsh_attention_with_buckets(
            Q, Q, torch.zeros(1, 2, 4, dtype=torch.long), 3
        ),
        ValueError,
        r"N must be divisible by chunk_size, got N=4 and chunk_size=3",
    ),
    "lsh_attention chunk_size": (
        lambda: reformer.lsh_attention(Q, Q, 2, 1, 0, generator=G),
        ValueError,
        r"chunk_size must be a positive int",
    ),
    "shared_qk_attention mask": (
        lambda: reformer.shared_qk_attention(Q, Q, torch.ones(4, 4)),
        TypeError,
        r"mask must be a bool",
    ),
    "lsh_key_sets chunk_size": (
        lambda: reformer.lsh_key_sets(torch.zeros(1, 4, dtype=torch.long), 0),
        ValueError,
        r"chunk_size",
    ),
    # sequence_models.py
    "tanh_rnn 2-D x": (
        lambda: sequence_models.tanh_rnn(
            torch.randn(5, 3), *torch.randn(2, 3, 3), 0, 0
        ),
        ValueError,
        r"x must have shape \(B, N, d_in\)",
    ),
    "Convolution kernel_size": (
        lambda: sequence_models.Convolution(4, 0),
        ValueError,
        r"kernel_size must",
    ),
    "SelfAttention d": (
        lambda: sequence_models.SelfAttention(0),
        ValueError,
        r"d must be",
    ),
    "make_layer kind": (
        lambda: sequence_models.make_layer("transformer", 4),
        ValueError,
        r"kind must be one of \('recurrent', 'convolution', 'self-attention'\)",
    ),
    "layers_to_connect kernel_size": (
        lambda: sequence_models.layers_to_connect("convolution", 5, 1),
        ValueError,
        r"kernel_size must be an int >= 2, got 1",
    ),
    "gradient_reach 3-D x": (
        lambda: sequence_models.gradient_reach(lambda x: x, Q),
        ValueError,
        r"x must have shape \(N, d_in\)",
    ),
    # sparse.py
    "sliding_window_mask window": (
        lambda: sparse.sliding_window_mask(5, -1),
        ValueError,
        r"window must be",
    ),
    "bigbird_mask block": (
        lambda: sparse.bigbird_mask(16, 0, 3, 1, 1),
        ValueError,
        r"block must be",
    ),
    "strided_mask stride": (
        lambda: sparse.strided_mask(8, 0),
        ValueError,
        r"stride must be",
    ),
    "fixed_mask stride": (lambda: sparse.fixed_mask(8, 0), ValueError, r"stride"),
    "sliding_window_attention window": (
        lambda: sparse.sliding_window_attention(Q, Q, Q, -1),
        ValueError,
        r"window must be a non-negative int, got -1",
    ),
    # transformer.py
    "TransformerConfig num_heads": (
        lambda: transformer.TransformerConfig(num_heads=0),
        ValueError,
        r"num_heads",
    ),
    "FeedForward activation": (
        lambda: transformer.FeedForward(8, 16, activation="swish"),
        ValueError,
        r"activation must be one of \('relu', 'gelu'\), got 'swish'",
    ),
    "Transformer float src": (
        lambda: transformer.Transformer(TINY)(TOKENS.float(), TOKENS),
        TypeError,
        r"src must have an integer dtype",
    ),
    "Transformer memory mask": (
        lambda: transformer.Transformer(TINY)(TOKENS, TOKENS, FLOAT_MASK.bool()),
        ValueError,
        r"mask must broadcast",
    ),
    "warmup_lr d_model": (
        lambda: transformer.warmup_lr(1, d_model=0),
        ValueError,
        r"d_model must be",
    ),
    "label_smoothed_loss target": (
        lambda: transformer.label_smoothed_loss(
            torch.randn(3, 7), torch.zeros(4, dtype=torch.long)
        ),
        ValueError,
        r"target must have shape \(3,\) \(logits' shape without V\), got \(4,\)",
    ),
    # vit.py
    "patchify patch_size": (
        lambda: vit.patchify(torch.randn(1, 1, 8, 8), 0),
        ValueError,
        r"patch_size",
    ),
    "ViTConfig image_size": (
        lambda: vit.ViTConfig(image_size=30, patch_size=4),
        ValueError,
        r"image_size must be divisible by patch_size",
    ),
    "VisionTransformer image size": (
        lambda: vit.VisionTransformer(TINY_VIT)(torch.randn(2, 1, 8, 12)),
        ValueError,
        r"images must have shape \(B, C, S, S\), S=8, got \(2, 1, 8, 12\)",
    ),
    "window_groups window": (
        lambda: vit.window_groups(4, 4, 0),
        ValueError,
        r"window must be",
    ),
    "shifted_window_attention grid": (
        lambda: vit.shifted_window_attention(*torch.randn(3, 1, 6, 6, 4), 4),
        ValueError,
        r"H must be divisible by window, got H=6 and window=4",
    ),
    # lab.py
    "training_batch batch_size": (
        lambda: lab.training_batch(0, 3, torch.tensor([1]), G),
        ValueError,
        r"batch_size must be",
    ),
    "MiniTransformer float tokens": (
        lambda: lab.MiniTransformer(TINY)(TOKENS.float()),
        TypeError,
        r"tokens must have an integer dtype",
    ),
    "train steps": (
        lambda: lab.train(lab.MiniTransformer(TINY), 0, 8, 3, TOKENS[:, :3], G),
        ValueError,
        r"steps must be a positive int, got 0",
    ),
    "exact_match shapes": (
        lambda: lab.exact_match(TOKENS[:, :3], TOKENS),
        ValueError,
        r"predicted must have shape \(2, 6\)",
    ),
    "token_accuracy shapes": (
        lambda: lab.token_accuracy(TOKENS[:1], TOKENS),
        ValueError,
        r"predicted",
    ),
    "position_accuracy shapes": (
        lambda: lab.position_accuracy(TOKENS[:1], TOKENS),
        ValueError,
        r"predicted",
    ),
}


@pytest.mark.parametrize("call, error, message", CASES.values(), ids=CASES.keys())
def test_each_checked_entry_point_names_the_bad_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
