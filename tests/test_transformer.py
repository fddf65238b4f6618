"""Chapter 7: the Transformer's layers against PyTorch's with copied weights, and its count."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from snippets.masks import causal_mask, combine, padding_mask
from snippets.positional import sinusoidal_encoding
from snippets.transformer import (
    Decoder,
    DecoderLayer,
    Encoder,
    EncoderLayer,
    FeedForward,
    Transformer,
    TransformerConfig,
    count_parameters,
    decoder_layer_from_torch,
    encoder_layer_from_torch,
    label_smoothed_loss,
    paper_optimizer,
    warmup_lr,
)

# float64 everywhere the comparison is with PyTorch: a few hundred products per entry and a
# few LayerNorms round at ~1e-15 relative, so 1e-10 leaves a wide margin; float32 would need ~1e-5.
TOL = dict(atol=1e-10, rtol=1e-10)
SMALL = dict(d_model=32, num_heads=4, d_ff=64, num_layers=2, vocab_size=50, max_len=40)


def _torch_layer(kind: type[nn.Module], c: TransformerConfig) -> nn.Module:
    """PyTorch's nn.TransformerEncoderLayer or DecoderLayer configured like ours, float64."""
    return kind(
        c.d_model,
        c.num_heads,
        c.d_ff,
        dropout=0.0,
        activation=c.activation,
        layer_norm_eps=c.layer_norm_eps,
        batch_first=True,
        norm_first=c.norm_first,
    ).double()


def copy_encoder_layer(ours: EncoderLayer, theirs: nn.TransformerEncoderLayer) -> None:
    """Load theirs into ours in place (for layers inside our stacks)."""
    ours.load_state_dict(encoder_layer_from_torch(theirs).state_dict())


def copy_decoder_layer(ours: DecoderLayer, theirs: nn.TransformerDecoderLayer) -> None:
    ours.load_state_dict(decoder_layer_from_torch(theirs).state_dict())


def _masks(gen, b: int, n: int):
    """A causal mask combined with padding (sequence lengths n and n - 2), both conventions."""
    lengths = torch.tensor([n, n - 2][:b])
    ours = combine(
        causal_mask(n), padding_mask(lengths, n)
    )  # (B, 1, n, n), True = attend
    theirs_attn = ~causal_mask(n)  # (n, n), True = NOT allowed
    theirs_pad = ~padding_mask(lengths, n)[:, 0, 0]  # (B, n), True = padding
    return ours, theirs_attn, theirs_pad


CASES = [
    pytest.param(dict(norm_first=False, activation="relu"), id="post-LN-relu"),
    pytest.param(dict(norm_first=True, activation="relu"), id="pre-LN-relu"),
    pytest.param(dict(norm_first=False, activation="gelu"), id="post-LN-gelu"),
    pytest.param(dict(norm_first=True, activation="gelu"), id="pre-LN-gelu"),
]


# --- single layers against PyTorch --------------------------------------------------------------


@pytest.mark.parametrize("opts", CASES)
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "causal+padding"])
def test_encoder_layer_equals_torch(gen, opts, masked):
    c = TransformerConfig(**SMALL, **opts)
    theirs = _torch_layer(nn.TransformerEncoderLayer, c)
    ours = encoder_layer_from_torch(theirs)
    assert ours.norm_first == c.norm_first and ours.ff.activation is theirs.activation
    x = torch.randn(2, 9, c.d_model, generator=gen, dtype=torch.float64)
    if masked:
        mask, attn, pad = _masks(gen, 2, 9)
        expected = theirs(x, src_mask=attn, src_key_padding_mask=pad)
        got = ours(x, mask)
    else:
        expected, got = theirs(x), ours(x)
    torch.testing.assert_close(got, expected, **TOL)


@pytest.mark.parametrize("opts", CASES)
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "causal+padding"])
def test_decoder_layer_equals_torch(gen, opts, masked):
    c = TransformerConfig(**SMALL, **opts)
    theirs = _torch_layer(nn.TransformerDecoderLayer, c)
    ours = decoder_layer_from_torch(theirs)
    x = torch.randn(2, 7, c.d_model, generator=gen, dtype=torch.float64)
    memory = torch.randn(2, 11, c.d_model, generator=gen, dtype=torch.float64)
    if masked:
        self_mask, attn, tgt_pad = _masks(gen, 2, 7)
        src_lengths = torch.tensor([11, 6])
        memory_mask = padding_mask(src_lengths, 11)  # (B, 1, 1, N_s)
        expected = theirs(
            x,
            memory,
            tgt_mask=attn,
            tgt_key_padding_mask=tgt_pad,
            memory_key_padding_mask=~memory_mask[:, 0, 0],
        )
        got = ours(x, memory, self_mask, memory_mask)
    else:
        expected, got = theirs(x, memory), ours(x, memory)
    torch.testing.assert_close(got, expected, **TOL)


def test_copy_of_a_sequence_first_torch_layer_is_batch_first(gen):
    """batch_first is not a weight: a torch layer reading (N, B, d) copies into ours (B, N, d)."""
    theirs = nn.TransformerEncoderLayer(
        32, 4, 64, dropout=0.0, batch_first=False
    ).double()
    x = torch.randn(2, 9, 32, generator=gen, dtype=torch.float64)  # (B, N, d)
    expected = theirs(x.transpose(0, 1)).transpose(0, 1)
    torch.testing.assert_close(encoder_layer_from_torch(theirs)(x), expected, **TOL)


def test_feed_forward_is_the_paper_formula(gen):
    """FFN(x) = max(0, x W1 + b1) W2 + b2 (equation 2), written out with matrices."""
    ff = FeedForward(8, 32).double()
    x = torch.randn(3, 5, 8, generator=gen, dtype=torch.float64)
    W1, b1 = ff.linear1.weight.T, ff.linear1.bias
    W2, b2 = ff.linear2.weight.T, ff.linear2.bias
    expected = torch.clamp(x @ W1 + b1, min=0) @ W2 + b2
    torch.testing.assert_close(ff(x), expected, **TOL)


def test_feed_forward_acts_on_each_position_alone(gen):
    ff = FeedForward(8, 16, activation="gelu").double()
    x = torch.randn(1, 6, 8, generator=gen, dtype=torch.float64)
    rows = torch.cat([ff(x[:, i : i + 1]) for i in range(6)], dim=1)
    torch.testing.assert_close(ff(x), rows, **TOL)


def test_unknown_activation_and_indivisible_heads_are_refused():
    with pytest.raises(ValueError, match="activation"):
        TransformerConfig(activation="swish")
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(d_model=30, num_heads=4)


# --- stacks and the whole model -----------------------------------------------------------------


def _torch_stacks(c: TransformerConfig):
    norm = (
        (lambda: nn.LayerNorm(c.d_model, eps=c.layer_norm_eps).double())
        if c.norm_first
        else (lambda: None)
    )
    enc = nn.TransformerEncoder(
        _torch_layer(nn.TransformerEncoderLayer, c),
        c.num_layers,
        norm=norm(),
        enable_nested_tensor=False,
    )
    dec = nn.TransformerDecoder(
        _torch_layer(nn.TransformerDecoderLayer, c), c.num_layers, norm=norm()
    )
    for layer in [
        *enc.layers,
        *dec.layers,
    ]:  # the clones share initial weights: re-draw them
        for p in layer.parameters():
            nn.init.normal_(p, std=0.2) if p.dim() > 1 else nn.init.uniform_(
                p, -0.1, 0.1
            )
    return enc, dec


def _copy_stacks(
    model: Transformer, enc: nn.TransformerEncoder, dec: nn.TransformerDecoder
):
    for ours, theirs in zip(model.encoder.layers, enc.layers, strict=True):
        copy_encoder_layer(ours, theirs)
    for ours, theirs in zip(model.decoder.layers, dec.layers, strict=True):
        copy_decoder_layer(ours, theirs)
    if enc.norm is not None:
        model.encoder.norm.load_state_dict(enc.norm.state_dict())
        model.decoder.norm.load_state_dict(dec.norm.state_dict())


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_transformer_equals_torch_stacks_with_tied_embeddings(gen, norm_first):
    """End to end: our model against torch's encoder and decoder stacks, given the same
    embedding E: logits = Dec(E[tgt] sqrt(d) + PE, Enc(E[src] sqrt(d) + PE)) E^T."""
    c = TransformerConfig(**SMALL, norm_first=norm_first)
    model = Transformer(c).double()
    enc, dec = _torch_stacks(c)
    _copy_stacks(model, enc, dec)
    src = torch.randint(0, c.vocab_size, (2, 10), generator=gen)
    tgt = torch.randint(0, c.vocab_size, (2, 6), generator=gen)
    src_len = torch.tensor([10, 7])
    src_mask = padding_mask(src_len, 10)

    E = model.src_embed.weight.detach()
    pe = sinusoidal_encoding(40, c.d_model).double()  # the model keeps a float32 table

    def embed(t):
        return E[t] * math.sqrt(c.d_model) + pe[: t.size(1)]

    pad = ~src_mask[:, 0, 0]
    memory = enc(embed(src), src_key_padding_mask=pad)
    hidden = dec(
        embed(tgt), memory, tgt_mask=~causal_mask(6), memory_key_padding_mask=pad
    )
    expected = hidden @ E.T
    torch.testing.assert_close(model(src, tgt, src_mask), expected, **TOL)


def test_embeddings_are_tied_or_not():
    tied = Transformer(TransformerConfig(**SMALL))
    assert tied.src_embed.weight is tied.tgt_embed.weight is tied.output.weight
    untied = Transformer(TransformerConfig(**{**SMALL, "tie_embeddings": False}))
    ids = {
        id(untied.src_embed.weight),
        id(untied.tgt_embed.weight),
        id(untied.output.weight),
    }
    assert len(ids) == 3
    assert count_parameters(untied) - count_parameters(tied) == 2 * 50 * 32


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_one_seed_gives_one_set_of_weights(tie):
    """Twelve models from seed 0 are identical. The models stay alive so that each lands at
    a new address: an initialisation order taken from a set of modules (ordered by address)
    made untied models differ in about half of such runs."""
    config = TransformerConfig(
        d_model=8,
        num_heads=2,
        d_ff=16,
        num_layers=1,
        vocab_size=13,
        max_len=8,
        tie_embeddings=tie,
    )
    models = []
    for _ in range(12):
        torch.manual_seed(0)
        models.append(Transformer(config))
    first = models[0].state_dict()
    for other in models[1:]:
        for name, value in other.state_dict().items():
            assert torch.equal(value, first[name]), name


def test_decoder_cannot_see_future_target_tokens(gen):
    """Changing target token t changes no logit at positions before t (default causal mask)."""
    model = Transformer(TransformerConfig(**SMALL)).double().eval()
    src = torch.randint(0, 50, (1, 8), generator=gen)
    tgt = torch.randint(0, 50, (1, 6), generator=gen)
    changed = tgt.clone()
    changed[0, 4] = (tgt[0, 4] + 1) % 50
    a, b = model(src, tgt), model(src, changed)
    torch.testing.assert_close(a[:, :4], b[:, :4], **TOL)
    assert (a[:, 4:] - b[:, 4:]).abs().max() > 1e-6


def test_padded_source_tokens_change_nothing(gen):
    model = Transformer(TransformerConfig(**SMALL)).double().eval()
    src = torch.randint(0, 50, (1, 8), generator=gen)
    tgt = torch.randint(0, 50, (1, 5), generator=gen)
    mask = padding_mask(torch.tensor([5]), 8)
    other = src.clone()
    other[0, 5:] = (src[0, 5:] + 7) % 50  # different tokens in the padding
    torch.testing.assert_close(model(src, tgt, mask), model(other, tgt, mask), **TOL)


def test_every_parameter_gets_a_gradient(gen):
    model = Transformer(TransformerConfig(**SMALL, dropout=0.1))
    src = torch.randint(0, 50, (2, 8), generator=gen)
    tgt = torch.randint(0, 50, (2, 6), generator=gen)
    loss = nn.functional.cross_entropy(model(src, tgt).flatten(0, 1), tgt.flatten())
    loss.backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.grad is None or not p.grad.abs().sum()
    ]
    assert not missing


def test_attention_weights_are_kept_for_inspection(gen):
    model = Transformer(TransformerConfig(**SMALL))
    model(
        torch.randint(0, 50, (2, 8), generator=gen),
        torch.randint(0, 50, (2, 5), generator=gen),
    )
    layer = model.decoder.layers[-1]
    assert model.encoder.layers[0].attn_weights.shape == (2, 4, 8, 8)
    assert layer.self_weights.shape == (2, 4, 5, 5)
    assert layer.cross_weights.shape == (2, 4, 5, 8)
    assert torch.equal(layer.self_weights.triu(1), torch.zeros(2, 4, 5, 5))  # causal


def test_sequences_longer_than_max_len_are_refused():
    model = Transformer(TransformerConfig(**SMALL))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 41, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))


# --- parameter counts ------------------------------------------------------------------------------


def _closed_form(d: int, d_ff: int, n: int, vocab: int) -> int:
    """Counted by hand: 4 (d^2 + d) per attention, 2 d d_ff + d_ff + d per FFN, 2 d per LayerNorm."""
    attn, ffn, ln = 4 * (d * d + d), 2 * d * d_ff + d_ff + d, 2 * d
    encoder_layer = attn + ffn + 2 * ln
    decoder_layer = 2 * attn + ffn + 3 * ln
    return n * (encoder_layer + decoder_layer) + vocab * d


def test_base_model_count_matches_the_closed_form():
    with torch.device("meta"):  # no memory is allocated: 63M parameters in milliseconds
        model = Transformer(TransformerConfig())
    assert count_parameters(model) == _closed_form(512, 2048, 6, 37000)


def test_base_model_layers_count_like_torch_transformer():
    """torch.nn.Transformer has the same layers, plus a final LayerNorm after each stack,
    and no embeddings: 2 * 2 * 512 parameters more and 37000 * 512 fewer than ours."""
    with torch.device("meta"):
        ours = Transformer(TransformerConfig())
        theirs = nn.Transformer(512, 8, 6, 6, 2048, batch_first=True)
    theirs_count = sum(p.numel() for p in theirs.parameters())
    assert count_parameters(ours) == theirs_count - 2 * 2 * 512 + 37000 * 512
    assert count_parameters(ours.encoder) == count_parameters(theirs.encoder) - 2 * 512
    pre_ln = Encoder(TransformerConfig(**{**SMALL, "norm_first": True}))
    post_ln = Encoder(TransformerConfig(**SMALL))
    assert count_parameters(pre_ln) - count_parameters(post_ln) == 2 * 32


def test_decoder_stack_alone(gen):
    c = TransformerConfig(**SMALL)
    out = Decoder(c)(
        torch.randn(2, 5, 32, generator=gen), torch.randn(2, 9, 32, generator=gen)
    )
    assert out.shape == (2, 5, 32)


# --- the paper's training recipe (section 5) ---------------------------------------------------


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_dropout_sits_on_each_sublayer_output_and_on_embeddings_plus_pe(
    gen, norm_first
):
    """With p = 1 every dropout outputs zeros. Dropout on each sublayer's output, before the
    residual sum, then leaves a post-LN layer equal to its LayerNorms applied to its input,
    and a pre-LN layer equal to the identity; dropout on the sum of embedding and PE makes
    the embedded input zero."""
    c = TransformerConfig(**{**SMALL, "dropout": 1.0, "norm_first": norm_first})
    x, memory = (
        torch.randn(2, 5, 32, generator=gen),
        torch.randn(2, 7, 32, generator=gen),
    )
    enc, dec = EncoderLayer(c).train(), DecoderLayer(c).train()
    with torch.no_grad():
        for norm in (enc.norm1, enc.norm2, dec.norm1, dec.norm2, dec.norm3):
            norm.weight.uniform_(0.5, 1.5, generator=gen)  # any gain and bias
            norm.bias.uniform_(-1, 1, generator=gen)
        if norm_first:
            expected_enc, expected_dec = x, x
        else:
            expected_enc = enc.norm2(enc.norm1(x))
            expected_dec = dec.norm3(dec.norm2(dec.norm1(x)))
        torch.testing.assert_close(enc(x, causal_mask(5)), expected_enc)
        torch.testing.assert_close(dec(x, memory, causal_mask(5)), expected_dec)
        model = Transformer(c).train()
        tokens = torch.randint(0, 50, (2, 5), generator=gen)
        assert not model.embed(tokens, model.src_embed).any()
        model.eval()  # dropout is off: the scaled embedding plus the encoding
        scaled = model.src_embed(tokens) * math.sqrt(32) + sinusoidal_encoding(5, 32)
        torch.testing.assert_close(model.embed(tokens, model.src_embed), scaled)


def test_warmup_lr_is_linear_then_inverse_square_root_with_its_peak_at_warmup():
    d, warmup = 512, 4000
    rates = [warmup_lr(s, d, warmup) for s in range(1, 3 * warmup + 1)]
    for step in (1, 2, 1000, warmup - 1, warmup, warmup + 1, 3 * warmup):
        if step <= warmup:  # the linear branch: step / (sqrt(d) * warmup^1.5)
            expected = step / (math.sqrt(d) * warmup * math.sqrt(warmup))
        else:  # the decaying branch: 1 / sqrt(d * step)
            expected = 1 / math.sqrt(d * step)
        assert rates[step - 1] == pytest.approx(expected, rel=1e-12)
    assert max(range(len(rates)), key=rates.__getitem__) + 1 == warmup
    assert max(rates) == pytest.approx(1 / math.sqrt(d * warmup), rel=1e-12)
    with pytest.raises(ValueError, match="step"):
        warmup_lr(0)


def test_paper_optimizer_is_adam_with_the_paper_settings_and_schedule(gen):
    model = nn.Linear(4, 3)
    optimizer, schedule = paper_optimizer(model, d_model=64, warmup=3)
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.Adam)
    assert group["betas"] == (0.9, 0.98) and group["eps"] == 1e-9
    for step in range(1, 8):  # the k-th update uses the rate of step k
        assert group["lr"] == pytest.approx(warmup_lr(step, 64, 3), rel=1e-12)
        model(torch.randn(2, 4, generator=gen)).sum().backward()
        optimizer.step()
        schedule.step()


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothed_loss_equals_torch_cross_entropy(gen, eps):
    logits = torch.randn(3, 7, 11, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 11, (3, 7), generator=gen)
    expected = nn.functional.cross_entropy(
        logits.reshape(-1, 11), target.reshape(-1), label_smoothing=eps
    )
    torch.testing.assert_close(label_smoothed_loss(logits, target, eps), expected)
    with pytest.raises(ValueError, match="eps"):
        label_smoothed_loss(logits, target, 1.5)
