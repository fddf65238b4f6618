"""Chapter 15: patch embedding, the Vision Transformer's shapes and parameter count, and
Swin's shifted-window attention against dense attention under the equivalent mask."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snippets.vit import (
    VARIANTS,
    PatchEmbedding,
    VisionTransformer,
    ViTConfig,
    attention_rollout,
    count_parameters,
    patchify,
    shifted_window_attention,
    weight_decay_groups,
    window_mask,
)

F32 = dict(atol=1e-5, rtol=1e-5)  # float32: a conv and a matmul sum in different orders
F64 = dict(atol=1e-12, rtol=1e-12)

TINY = ViTConfig(
    image_size=8,
    patch_size=2,
    in_channels=1,
    num_classes=10,
    d_model=16,
    depth=2,
    num_heads=4,
    mlp_dim=32,
)


# ------------------------------------------------------------------------ patch embedding


@pytest.mark.parametrize(
    "b, c, h, w, p", [(2, 3, 32, 32, 16), (1, 1, 8, 12, 4), (3, 2, 6, 6, 3)]
)
def test_patchify_matches_unfold(gen, b, c, h, w, p):
    """F.unfold with stride = kernel lists the same patches, flattened in the same order."""
    images = torch.randn(b, c, h, w, generator=gen)
    expected = F.unfold(images, kernel_size=p, stride=p).transpose(1, 2)
    assert torch.equal(patchify(images, p), expected)


@pytest.mark.parametrize(
    "c, size, p, d", [(3, 32, 16, 24), (1, 8, 2, 16), (2, 12, 4, 7)]
)
def test_strided_conv_equals_flatten_then_linear(gen, c, size, p, d):
    torch.manual_seed(0)
    embed = PatchEmbedding(p, c, d)
    images = torch.randn(4, c, size, size, generator=gen)
    by_conv = embed(images)  # (B, N, d)
    by_linear = embed.as_linear()(patchify(images, p))
    assert by_conv.shape == (4, (size // p) ** 2, d)
    torch.testing.assert_close(by_conv, by_linear, **F32)
    # and the same map written out by hand for one patch: W vec(patch) + b
    first = images[0, :, :p, :p].reshape(-1)
    manual = embed.proj.weight.reshape(d, -1) @ first + embed.proj.bias
    torch.testing.assert_close(by_conv[0, 0], manual, **F32)


def test_patchify_rejects_a_partial_patch():
    with pytest.raises(ValueError):
        patchify(torch.zeros(1, 3, 10, 10), 4)


# ------------------------------------------------------------------------ the model


def test_output_and_attention_shapes(gen):
    torch.manual_seed(0)
    model = VisionTransformer(TINY)
    images = torch.randn(5, 1, 8, 8, generator=gen)
    logits = model(images)
    assert logits.shape == (5, TINY.num_classes)
    assert model.tokens(images).shape == (5, TINY.num_patches + 1, TINY.d_model)
    cls = model.cls_attention()
    assert cls.shape == (TINY.depth, 5, TINY.num_heads, TINY.num_patches)
    # the class token's weights over patches plus its weight on itself sum to one
    assert torch.all(cls >= 0) and torch.all(cls.sum(-1) <= 1 + 1e-6)


def test_logits_are_the_head_applied_to_the_class_token_alone(gen):
    """The head reads the encoder's output at position 0 and nothing else; and as the
    encoder has no mask, a change in any patch still reaches that position."""
    torch.manual_seed(0)
    model = VisionTransformer(TINY).eval()
    images = torch.randn(2, 1, 8, 8, generator=gen)
    head_input = []
    model.head.register_forward_hook(
        lambda m, inputs, out: head_input.append(inputs[0])
    )
    logits = model(images)
    encoded = model.encoder(model.tokens(images))  # (B, 1 + N, d), computed separately
    torch.testing.assert_close(head_input[0], encoded[:, 0])
    torch.testing.assert_close(
        logits, encoded[:, 0] @ model.head.weight.T + model.head.bias
    )
    changed = images.clone()
    changed[:, :, 6:, 6:] += 1.0  # one corner patch
    assert not torch.allclose(model(images), model(changed))


def test_weight_decay_spares_biases_norms_positions_and_the_class_token():
    model = VisionTransformer(TINY)
    decay, exempt = weight_decay_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and exempt["weight_decay"] == 0.0
    ids = {id(p) for p in decay["params"]}, {id(p) for p in exempt["params"]}
    assert not ids[0] & ids[1]  # no parameter in both groups ...
    assert len(ids[0]) + len(ids[1]) == len(
        list(model.parameters())
    )  # ... none left out
    for name, p in model.named_parameters():
        expected_exempt = (
            name in ("pos_embed", "cls_token")
            or name.endswith(".bias")
            or isinstance(model.get_submodule(name.rsplit(".", 1)[0]), nn.LayerNorm)
        )
        assert (id(p) in ids[1]) == expected_exempt, name
    with pytest.raises(ValueError, match="weight_decay"):
        weight_decay_groups(model, -0.1)


# ---------------------------------------------------------------------- attention rollout


def _row_stochastic(gen, *shape):
    return torch.softmax(torch.randn(*shape, generator=gen, dtype=torch.float64), -1)


def test_rollout_of_two_layers_matches_a_hand_computation(gen):
    """Abnar and Zuidema's recipe written out entry by entry: average the heads, add the
    identity, renormalise the rows, and multiply the second layer into the first."""
    b, h, n = 2, 3, 4
    w1, w2 = _row_stochastic(gen, b, h, n, n), _row_stochastic(gen, b, h, n, n)

    def layer(w, batch):
        a = [
            [
                sum(float(w[batch, head, i, j]) for head in range(h)) / h
                for j in range(n)
            ]
            for i in range(n)
        ]
        a = [[a[i][j] + (i == j) for j in range(n)] for i in range(n)]
        return [[x / sum(row) for x in row] for row in a]

    rollout = attention_rollout([w1, w2])
    for batch in range(b):
        a1, a2 = layer(w1, batch), layer(w2, batch)
        expected = [
            [sum(a2[i][m] * a1[m][j] for m in range(n)) for j in range(n)]
            for i in range(n)
        ]
        torch.testing.assert_close(
            rollout[batch], torch.tensor(expected, dtype=torch.float64), **F64
        )


def test_rollout_of_one_uniform_layer_is_half_identity_half_uniform():
    n = 5
    uniform = torch.full((1, 2, n, n), 1 / n, dtype=torch.float64)
    expected = 0.5 * torch.eye(n, dtype=torch.float64) + 0.5 / n
    torch.testing.assert_close(attention_rollout([uniform])[0], expected, **F64)


def test_rollout_of_a_vits_attention_has_rows_that_sum_to_one(gen):
    torch.manual_seed(0)
    model = VisionTransformer(TINY).eval()
    model(torch.randn(3, 1, 8, 8, generator=gen))
    rollout = attention_rollout([layer.attn_weights for layer in model.encoder.layers])
    assert rollout.shape == (3, TINY.num_patches + 1, TINY.num_patches + 1)
    assert (rollout >= 0).all()
    torch.testing.assert_close(rollout.sum(-1), torch.ones(3, TINY.num_patches + 1))


def test_rollout_rejects_bad_input():
    with pytest.raises(ValueError, match="weights"):
        attention_rollout([])
    with pytest.raises(ValueError, match="weights"):
        attention_rollout([torch.ones(2, 3, 4, 5)])


def test_encoder_is_pre_ln_with_gelu():
    config = ViTConfig().encoder_config()
    assert config.norm_first and config.activation == "gelu"
    assert config.d_ff == 3072 and config.num_layers == 12


def _closed_form(c: ViTConfig) -> int:
    """Parameter count written out from the architecture, independently of the modules."""
    d, m, n = c.d_model, c.mlp_dim, c.num_patches
    patch = d * c.in_channels * c.patch_size**2 + d  # conv weight + bias
    tokens = d + (n + 1) * d  # class token + position embeddings
    attention = 4 * (d * d + d)  # W_Q, W_K, W_V, W_O with biases
    mlp = d * m + m + m * d + d
    norms = 2 * 2 * d  # two LayerNorms, weight and bias
    head = d * c.num_classes + c.num_classes
    return patch + tokens + c.depth * (attention + mlp + norms) + 2 * d + head


# torchvision's documented num_params, quoted beside the demo's table: the counts of an
# independent implementation of the same architectures.
@pytest.mark.parametrize(
    "config, documented",
    [(config, count) for _, config, count, _ in VARIANTS if count is not None],
    ids=[name for name, _, count, _ in VARIANTS if count is not None],
)
def test_parameter_count_matches_closed_form_and_torchvision(config, documented):
    with torch.device("meta"):  # shapes only: no memory, instant
        model = VisionTransformer(config)
    assert count_parameters(model) == _closed_form(config) == documented


def test_vit_base_without_head_rounds_to_the_papers_86m():
    """Dosovitskiy et al. (2020), Table 1: ViT-Base has 86M parameters."""
    with torch.device("meta"):
        model = VisionTransformer(ViTConfig())
    assert round((count_parameters(model) - count_parameters(model.head)) / 1e6) == 86


def test_small_model_counts_the_same_on_cpu():
    assert count_parameters(VisionTransformer(TINY)) == _closed_form(TINY)


# ------------------------------------------------------------------------ Swin windows


def _dense(q, k, v, mask):
    b, h, w, d = q.shape
    flat = [t.reshape(b, h * w, d) for t in (q, k, v)]
    return F.scaled_dot_product_attention(*flat, attn_mask=mask).reshape(b, h, w, d)


@pytest.mark.parametrize(
    "h, w, window, shift",
    [
        (8, 8, 4, 0),
        (8, 8, 4, 2),
        (12, 8, 4, 2),
        (6, 9, 3, 1),
        (14, 14, 7, 3),
        (4, 4, 2, 1),
    ],
)
def test_shifted_windows_equal_dense_attention_under_the_mask(gen, h, w, window, shift):
    q, k, v = (
        torch.randn(2, h, w, 5, generator=gen, dtype=torch.float64) for _ in range(3)
    )
    expected = _dense(q, k, v, window_mask(h, w, window, shift))
    torch.testing.assert_close(
        shifted_window_attention(q, k, v, window, shift), expected, **F64
    )


def test_window_mask_from_first_principles():
    """Shift 0: tokens share a window iff row // M and column // M agree. Shift s: the same
    with the boundaries moved by s, so the first s rows form a window strip of their own."""
    h = w = 8
    m, s = 4, 2
    r, c = (
        torch.div(torch.arange(h * w), w, rounding_mode="floor"),
        torch.arange(h * w) % w,
    )
    plain = (r[:, None] // m == r[None, :] // m) & (c[:, None] // m == c[None, :] // m)
    assert torch.equal(window_mask(h, w, m), plain)
    rs, cs = (r + m - s) // m, (c + m - s) // m
    shifted = (rs[:, None] == rs[None, :]) & (cs[:, None] == cs[None, :])
    assert torch.equal(window_mask(h, w, m, s), shifted)
    sizes = [a * b for a in (2, 4, 2) for b in (2, 4, 2)]  # tokens per shifted window
    assert window_mask(h, w, m, s).sum() == sum(n * n for n in sizes)


def test_windows_cost_n_m_squared_scores():
    h = w = 8
    assert (
        window_mask(h, w, 4).sum() == h * w * 4 * 4
    )  # each token sees its 16 window-mates
    assert window_mask(h, w, 4).sum() < (h * w) ** 2
