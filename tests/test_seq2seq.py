"""Chapter 7: the translation task, training, and greedy decoding with and without a cache."""

from __future__ import annotations

import pytest
import torch

from snippets.lab import sequence_ids
from snippets.masks import padding_mask
from snippets.seq2seq import (
    EOS,
    SRC0,
    TGT0,
    small_config,
    train,
    training_digits,
    translation_pair,
)
from snippets.transformer import KVCache, Transformer, TransformerConfig, greedy_decode


def test_translation_pair_reverses_into_the_target_vocabulary():
    src, tgt = translation_pair(torch.tensor([[3, 1, 4], [0, 9, 2]]))
    assert src.tolist() == [[SRC0 + 3, SRC0 + 1, SRC0 + 4], [SRC0, SRC0 + 9, SRC0 + 2]]
    assert tgt.tolist() == [
        [TGT0 + 4, TGT0 + 1, TGT0 + 3, EOS],
        [TGT0 + 2, TGT0 + 9, TGT0, EOS],
    ]


def test_training_never_shows_a_held_out_source():
    held_out = torch.tensor([[1, 2], [3, 4], [0, 0]])
    seen = training_digits(2000, 2, held_out, torch.Generator().manual_seed(0))
    assert len(seen) > 1900  # 3 of 100 sources are banned
    assert not torch.isin(sequence_ids(seen), sequence_ids(held_out)).any()
    assert sequence_ids(torch.tensor([[1, 2, 3]])).item() == 123


def _model(norm_first: bool) -> Transformer:
    torch.manual_seed(0)
    config = TransformerConfig(
        d_model=32, num_heads=4, d_ff=64, num_layers=2, vocab_size=30, max_len=40,
        norm_first=norm_first,
    )  # fmt: skip
    return Transformer(config).double()


@pytest.mark.parametrize("norm_first", [False, True])
def test_the_cache_gives_the_tokens_and_logits_of_recomputing_the_prefix(norm_first):
    model = _model(norm_first)
    src = torch.randint(3, 30, (4, 9), generator=torch.Generator().manual_seed(1))
    mask = padding_mask(torch.tensor([9, 5, 7, 1]), 9)  # (B, 1, 1, N_s)
    cached = greedy_decode(model, src, 20, 1, None, mask, use_cache=True)
    recomputed = greedy_decode(model, src, 20, 1, None, mask, use_cache=False)
    assert cached.shape == (4, 20) and torch.equal(cached, recomputed)
    memory = model.encode(src, mask)
    cache = KVCache(model, memory)
    ys = torch.cat([torch.ones(4, 1, dtype=torch.long), cached], dim=1)
    for t in range(ys.size(1)):
        step = cache.next_logits(ys[:, t : t + 1], mask)
        full = model.decode(ys[:, : t + 1], memory, mask)[:, -1]
        torch.testing.assert_close(step, full, atol=1e-12, rtol=1e-12)


def test_every_generated_token_is_the_most_likely_given_the_prefix():
    model = _model(True)
    src = torch.randint(3, 30, (3, 6), generator=torch.Generator().manual_seed(2))
    out = greedy_decode(model, src, 8, 1, None)
    ys = torch.cat([torch.ones(3, 1, dtype=torch.long), out], dim=1)
    with torch.no_grad():
        logits = model(src, ys[:, :-1])  # teacher forcing on the generated tokens
    assert torch.equal(logits.argmax(-1), out)


def test_a_row_stops_at_its_end_token_and_repeats_it():
    model = _model(False)
    src = torch.randint(3, 30, (2, 6), generator=torch.Generator().manual_seed(3))
    free = greedy_decode(model, src, 12, 1, None)
    eos = int(free[0, 0])  # the token row 0 produces first: make it the end token
    out = greedy_decode(model, src, 12, 1, eos)
    assert (out[0] == eos).all()
    after = (free[1] == eos).nonzero()
    if len(
        after
    ):  # row 1 ends where it first produces it; generation stops when all have
        first = int(after[0])
        assert torch.equal(out[1, : first + 1], free[1, : first + 1])
        assert (out[1, first:] == eos).all() and out.size(1) == first + 1
    else:
        assert torch.equal(out[1], free[1])


def test_greedy_decode_names_a_bad_argument():
    model = _model(False)
    src = torch.randint(3, 30, (1, 4))
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode(model, src, 0, 1, 2)
    with pytest.raises(TypeError, match="src"):
        greedy_decode(model, src.float(), 5, 1, 2)


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    model = Transformer(small_config(4))
    held_out = torch.zeros(1, 4, dtype=torch.long)
    run = train(model, 60, 32, 4, held_out, torch.Generator().manual_seed(0), warmup=20)
    assert len(run.loss) == 60 and len(run.step_seconds) == 60
    assert sum(run.loss[-10:]) / 10 < 0.6 * run.loss[0]


def test_the_cache_refuses_a_position_past_max_len():
    model = _model(False)  # max_len 40
    src = torch.randint(3, 30, (1, 4))
    with pytest.raises(ValueError, match="max_len is 40"):
        greedy_decode(model, src, 45, 1, None)
