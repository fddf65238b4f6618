"""Chapter 8 (the mini-Transformer lab): data, metric, loss, training step, model properties.

References are independent of the code under test: Python loops over lists, `int()` of a
digit string, PyTorch's `log_softmax`, the course's own MultiHeadAttention for the corrected
NanoTransformer, and properties (causality, order blindness) that hold for any weights.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from snippets import lab
from snippets.masks import causal_mask
from snippets.multihead import MultiHeadAttention
from snippets.transformer import TransformerConfig

# float32 forward passes of a few dozen operations agree to ~1e-6; 1e-5 leaves margin.
TOL = dict(atol=1e-5, rtol=1e-5)


def tiny_config(length: int = 4) -> TransformerConfig:
    return TransformerConfig(
        d_model=16,
        num_heads=2,
        d_ff=32,
        num_layers=2,
        vocab_size=lab.VOCAB_SIZE,
        max_len=2 * length + 1,
        norm_first=True,
    )


# ------------------------------------------------------------------------------- data


def test_random_digits_shape_range_and_uniformity(gen):
    digits = lab.random_digits(4000, 5, gen)
    assert digits.shape == (4000, 5) and digits.dtype == torch.int64
    assert digits.min() >= 0 and digits.max() <= 9
    # 20000 draws: each digit's count is Binomial(20000, 0.1), mean 2000, sd sqrt(1800) ~ 42.
    counts = torch.bincount(digits.flatten(), minlength=10).float()
    assert (counts - 2000).abs().max() < 5 * math.sqrt(20000 * 0.1 * 0.9)


def test_reversal_examples_match_brute_force(gen):
    digits = lab.random_digits(50, 7, gen)
    examples = lab.reversal_examples(digits)
    for row, d in zip(examples.tolist(), digits.tolist(), strict=True):
        assert row == [*d, lab.SEP, *reversed(d)]


def test_sequence_ids_are_the_base_10_numbers(gen):
    digits = lab.random_digits(200, 9, gen)
    expected = [int("".join(map(str, row))) for row in digits.tolist()]
    assert lab.sequence_ids(digits).tolist() == expected


def test_training_batch_never_contains_a_held_out_prompt(gen):
    # Length 2 has only 100 prompts: hold out half of them so that clashes are frequent.
    held_out = torch.tensor(
        [[a, b] for a in range(10) for b in range(10) if (a + b) % 2]
    )
    banned = {tuple(r) for r in held_out.tolist()}
    batch = lab.training_batch(400, 2, lab.sequence_ids(held_out), gen)
    prompts = [tuple(r[:2]) for r in batch.tolist()]
    assert 100 < len(prompts) < 400  # about half survive (sd ~ 10)
    assert not banned & set(prompts)
    assert len(set(prompts)) == 50  # every allowed prompt still occurs


# ------------------------------------------------------------------------------ metric


def test_exact_match_and_token_accuracy_against_brute_force(gen):
    target = torch.randint(0, 10, (300, 6), generator=gen)
    predicted = target.clone()
    flip = torch.rand(300, 6, generator=gen) < 0.05  # ~26% of the rows get an error
    predicted[flip] = (predicted[flip] + 1) % 10
    rows_right = sum(
        p == t for p, t in zip(predicted.tolist(), target.tolist(), strict=True)
    )
    tokens_right = sum(
        p == t
        for pr, tr in zip(predicted.tolist(), target.tolist(), strict=True)
        for p, t in zip(pr, tr, strict=True)
    )
    assert 0 < rows_right < 300
    assert lab.exact_match(predicted, target) == pytest.approx(rows_right / 300)
    assert lab.token_accuracy(predicted, target) == pytest.approx(tokens_right / 1800)


def test_position_accuracy_and_share_in_prompt_against_brute_force(gen):
    digits = lab.random_digits(200, 6, gen)
    predicted = torch.randint(0, 10, (200, 6), generator=gen)
    target = digits.flip(1)
    rows = list(zip(predicted.tolist(), target.tolist(), digits.tolist(), strict=True))
    per_position = [sum(p[i] == t[i] for p, t, _ in rows) / 200 for i in range(6)]
    in_prompt = sum(x in d for p, _, d in rows for x in p) / (200 * 6)
    assert lab.position_accuracy(predicted, target).tolist() == pytest.approx(
        per_position
    )
    assert lab.share_in_prompt(predicted, digits) == pytest.approx(in_prompt)
    assert lab.share_in_prompt(target, digits) == 1.0


def test_copying_accuracy_against_brute_force_and_its_expectation(gen):
    digits = lab.random_digits(50, 5, gen)
    # Brute force: for each answer digit, the chance that a random prompt position holds it.
    expected = sum(
        row.count(a) / 5 for row in digits.tolist() for a in reversed(row)
    ) / (50 * 5)
    assert lab.copying_accuracy(digits) == pytest.approx(expected)
    # 1/L + (1 - 1/L)/10 for uniform digits; over 20000 prompts of 10 digits the
    # estimate's standard deviation is below 0.001.
    many = lab.random_digits(20000, 10, gen)
    assert lab.copying_accuracy(many) == pytest.approx(0.1 + 0.9 * 0.1, abs=0.005)


def test_shuffle_span_permutes_only_the_span_within_each_row(gen):
    tokens = torch.randint(0, 10, (100, 9), generator=gen)
    shuffled = lab.shuffle_span(tokens, 2, 7, gen)
    assert torch.equal(shuffled[:, :2], tokens[:, :2])
    assert torch.equal(shuffled[:, 7:], tokens[:, 7:])
    assert torch.equal(shuffled[:, 2:7].sort(1).values, tokens[:, 2:7].sort(1).values)
    assert (shuffled != tokens).any(dim=1).sum() > 50  # most rows changed order
    with pytest.raises(ValueError, match="start"):
        lab.shuffle_span(tokens, 5, 5, gen)


def test_answer_loss_scores_only_the_answer_tokens(gen):
    length = 4
    model = lab.MiniTransformer(tiny_config(length))
    examples = lab.reversal_examples(lab.random_digits(8, length, gen))
    logp = F.log_softmax(model(examples[:, :-1]), dim=-1)  # (B, 2L, V)
    # Brute force: position t predicts token t + 1; the answer is tokens L+1 .. 2L.
    terms = [
        -logp[b, t - 1, examples[b, t]]
        for b in range(8)
        for t in range(length + 1, 2 * length + 1)
    ]
    expected = torch.stack(terms).mean()
    torch.testing.assert_close(lab.answer_loss(model, examples), expected, **TOL)


# ---------------------------------------------------------------------------- training


def test_one_training_step_lowers_the_loss(gen):
    torch.manual_seed(0)
    model = lab.MiniTransformer(tiny_config())
    examples = lab.reversal_examples(lab.random_digits(16, 4, gen))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = lab.train_step(model, optimizer, examples)
    with torch.no_grad():
        after = lab.answer_loss(model, examples).item()
    # A small gradient step on the same batch must lower its loss (first-order decrease).
    assert after < before


def test_train_records_one_loss_per_step_and_the_evaluations(gen):
    torch.manual_seed(0)
    model = lab.MiniTransformer(tiny_config())
    held_out = lab.random_digits(10, 4, gen)
    history = lab.train(
        model, 5, 8, 4, held_out, gen, on_eval=lambda: 1.0, eval_every=2
    )
    assert len(history.loss) == 5 and all(math.isfinite(x) for x in history.loss)
    assert history.eval_step == [0, 2, 4] and history.eval_loss == [1.0] * 3
    assert history.seconds > 0


# ------------------------------------------------------------------- model properties


def test_mini_transformer_is_causal(gen):
    model = lab.MiniTransformer(tiny_config()).eval()
    tokens = torch.randint(0, lab.VOCAB_SIZE, (3, 9), generator=gen)
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % lab.VOCAB_SIZE  # change positions 5..8
    out, out_changed = model(tokens), model(changed)
    torch.testing.assert_close(out[:, :5], out_changed[:, :5], **TOL)  # past unaffected
    assert (out[:, 5:] - out_changed[:, 5:]).abs().max() > 1e-3


def test_mini_transformer_without_mask_sees_the_future(gen):
    model = lab.MiniTransformer(tiny_config(), causal=False).eval()
    tokens = torch.randint(0, lab.VOCAB_SIZE, (3, 9), generator=gen)
    changed = tokens.clone()
    changed[:, -1] = (changed[:, -1] + 1) % lab.VOCAB_SIZE
    assert (model(tokens)[:, 0] - model(changed)[:, 0]).abs().max() > 1e-3


def test_mini_transformer_without_positions_or_mask_is_permutation_equivariant(gen):
    # Without positions and mask, every layer treats its input as a set: permuting the
    # tokens permutes the outputs, whatever the weights (chapter 6).
    tokens = torch.randint(0, lab.VOCAB_SIZE, (2, 8), generator=gen)
    perm = torch.randperm(8, generator=gen)
    torch.manual_seed(0)
    blind = lab.MiniTransformer(tiny_config(), use_positions=False, causal=False).eval()
    torch.testing.assert_close(blind(tokens[:, perm]), blind(tokens)[:, perm], **TOL)
    sighted = lab.MiniTransformer(tiny_config(), causal=False).eval()
    sighted.load_state_dict(blind.state_dict())
    diff = sighted(tokens[:, perm]) - sighted(tokens)[:, perm]
    assert diff.abs().max() > 1e-3


def test_causal_mask_alone_lets_a_two_layer_model_see_order(gen):
    # Without positions, the last row of ONE causal layer sees the set of earlier tokens;
    # from the second layer on, the earlier rows carry prefix-dependent values, so order
    # leaks in. This is why the lab's no-positions ablation learns a little.
    tokens = torch.randint(0, lab.VOCAB_SIZE, (2, 8), generator=gen)
    swapped = torch.cat([tokens[:, :-1].flip(1), tokens[:, -1:]], dim=1)
    torch.manual_seed(0)
    one = lab.MiniTransformer(
        dataclasses.replace(tiny_config(), num_layers=1), use_positions=False
    ).eval()
    torch.testing.assert_close(one(tokens)[:, -1], one(swapped)[:, -1], **TOL)
    two = lab.MiniTransformer(tiny_config(), use_positions=False).eval()
    assert (two(tokens)[:, -1] - two(swapped)[:, -1]).abs().max() > 1e-3


def test_generate_agrees_with_one_teacher_forced_pass(gen):
    # Greedy decoding one token at a time must produce the tokens that a single pass over
    # prompt + generated tokens scores highest: the causal mask makes the two identical.
    model = lab.MiniTransformer(tiny_config())
    prompt = lab.reversal_examples(lab.random_digits(5, 4, gen))[:, :5]
    new = lab.generate(model, prompt, 4)
    assert new.shape == (5, 4)
    logits = model(torch.cat([prompt, new[:, :-1]], dim=1))  # (5, 8, V)
    assert torch.equal(logits[:, 4:].argmax(-1), new)


def test_attention_maps_shape_rows_sum_to_one_and_are_causal(gen):
    model = lab.MiniTransformer(tiny_config()).eval()
    model(torch.randint(0, lab.VOCAB_SIZE, (2, 7), generator=gen))
    maps = model.attention_maps()
    assert maps.shape == (2, 2, 2, 7, 7)  # (layers, B, H, N, N)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 2, 7), **TOL)
    assert (maps.triu(diagonal=1) == 0).all()


# ----------------------------------------------------------------- the NanoTransformer


def test_corrected_nano_equals_course_attention_with_causal_mask(gen):
    # Independent reference: the course's MultiHeadAttention with a copy of the weights
    # and the course's mask convention (True = may attend).
    torch.manual_seed(0)
    nano = lab.NanoTransformer(lab.VOCAB_SIZE, 16).eval()
    tokens = torch.randint(0, lab.VOCAB_SIZE, (3, 6), generator=gen)
    x = nano.embed(tokens) + nano.pe[:6]
    ours = MultiHeadAttention.from_torch(nano.attention)
    attended, _ = ours(x, x, x, causal_mask(6))
    torch.testing.assert_close(nano(tokens), nano.readout(attended), **TOL)


def _nano(**faults: bool) -> lab.NanoTransformer:
    torch.manual_seed(0)
    return lab.NanoTransformer(lab.VOCAB_SIZE, 16, **faults).eval()


def test_nano_without_batch_first_mixes_examples_of_a_batch():
    a = torch.tensor([[1, 5, 9], [2, 3, 4]])
    b = torch.tensor([[7, 7, 7], [2, 3, 4]])  # example 2 unchanged
    faulty, fixed = _nano(batch_first=False, causal=False), _nano(causal=False)
    assert (faulty(a)[1] - faulty(b)[1]).abs().max() > 1e-3
    torch.testing.assert_close(fixed(a)[1], fixed(b)[1], **TOL)


def test_nano_without_batch_first_is_a_bigram_model_for_a_batch_of_one():
    a, b = torch.tensor([[1, 5, 9]]), torch.tensor([[6, 5, 9]])
    faulty = _nano(batch_first=False)
    torch.testing.assert_close(faulty(a)[0, -1], faulty(b)[0, -1], **TOL)
    assert (_nano()(a)[0, -1] - _nano()(b)[0, -1]).abs().max() > 1e-3


def test_nano_without_positions_ignores_order_and_without_mask_leaks():
    a, swapped, future = (
        torch.tensor([[1, 5, 9]]),
        torch.tensor([[5, 1, 9]]),
        torch.tensor([[1, 5, 2]]),
    )
    blind = _nano(positions=False)
    torch.testing.assert_close(blind(a)[0, -1], blind(swapped)[0, -1], **TOL)
    leaky, fixed = _nano(causal=False), _nano()
    assert (leaky(a)[0, 0] - leaky(future)[0, 0]).abs().max() > 1e-3
    torch.testing.assert_close(fixed(a)[0, 0], fixed(future)[0, 0], **TOL)
