"""A trained encoder-decoder (chapter 7): the course's Transformer learns to translate.

The task is made to need cross-attention. A source of `length` digits, written with the
source vocabulary, must be translated into the target vocabulary in reverse order:

    source  3 1 4 1 5     (tokens s3 s1 s4 s1 s5)
    target  5 1 4 1 3     (tokens t5 t1 t4 t1 t3, then EOS)

Target token i is the translation of source token L - 1 - i, so a decoder that has learned
the task must look, at step i, at that one source position: its cross-attention should
draw an anti-diagonal. The two vocabularies share no token, so nothing can be copied.

The recipe is the paper's, scaled down: Adam with the warm-up schedule (`paper_optimizer`)
and label smoothing 0.1 (`label_smoothed_loss`), teacher forcing, greedy decoding.
Shapes: token ids (B, N), logits (B, N, V).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from snippets import checks
from snippets.lab import sequence_ids  # a row of digits read as one number
from snippets.measure import step_clock
from snippets.transformer import (
    Transformer,
    TransformerConfig,
    greedy_decode,
    label_smoothed_loss,
    paper_optimizer,
)

# --8<-- [start:task]
# special tokens; all sources are L long, so PAD only fills short outputs
PAD, BOS, EOS = 0, 1, 2
SRC0, TGT0 = 3, 13  # digit k is token SRC0 + k in the source, TGT0 + k in the target
VOCAB_SIZE = 23


def translation_pair(digits: Tensor) -> tuple[Tensor, Tensor]:
    """(n, L) digits -> source (n, L) and target (n, L + 1) token ids: the digits in the
    source vocabulary, and reversed in the target vocabulary, followed by EOS."""
    checks.integer("(n, L)", digits=digits)
    eos = torch.full((digits.size(0), 1), EOS, dtype=digits.dtype)
    return digits + SRC0, torch.cat([digits.flip(1) + TGT0, eos], dim=1)


def training_digits(
    n: int, length: int, held_out: Tensor, generator: torch.Generator
) -> Tensor:
    """(<= n, length) random digits, none of them a row of `held_out` (m, length)."""
    checks.positive_ints(n=n, length=length)
    digits = torch.randint(0, 10, (n, length), generator=generator)
    return digits[~torch.isin(sequence_ids(digits), sequence_ids(held_out))]


# --8<-- [end:task]


# --8<-- [start:train]
@dataclass
class Run:
    """What training leaves behind."""

    loss: list[float] = field(default_factory=list)  # one per step
    step_seconds: list[float] = field(default_factory=list)
    clock: str = "CPU time"
    seconds: float = 0.0  # wall-clock time of the whole loop


def train(
    model: Transformer,
    steps: int,
    batch_size: int,
    length: int,
    held_out: Tensor,  # (m, length) digits that training never shows
    generator: torch.Generator,
    warmup: int = 200,
    smoothing: float = 0.1,
) -> Run:
    """The paper's recipe, scaled down: Adam with the warm-up schedule, label smoothing,
    teacher forcing (the decoder reads the true target, shifted right by BOS)."""
    checks.positive_ints(steps=steps, batch_size=batch_size, warmup=warmup)
    optimizer, schedule = paper_optimizer(model, model.config.d_model, warmup)
    clock, clock_name = step_clock()
    run = Run(clock=clock_name)
    start = time.perf_counter()
    model.train()
    for _ in range(steps):
        tick = clock()
        src, tgt = translation_pair(
            training_digits(batch_size, length, held_out, generator)
        )
        bos = torch.full((tgt.size(0), 1), BOS)
        logits = model(src, torch.cat([bos, tgt[:, :-1]], dim=1))  # (B, L + 1, V)
        loss = label_smoothed_loss(logits, tgt, smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        run.loss.append(loss.item())
        run.step_seconds.append(clock() - tick)
    run.seconds = time.perf_counter() - start
    return run


def exact_match(model: Transformer, digits: Tensor) -> float:
    """The share of sources whose whole target, EOS included, greedy decoding gets
    right."""
    src, tgt = translation_pair(digits)
    out = greedy_decode(model, src, tgt.size(1), BOS, EOS)  # may stop early: pad it
    out = F.pad(out, (0, tgt.size(1) - out.size(1)), value=PAD)
    return (out == tgt).all(dim=1).float().mean().item()


# --8<-- [end:train]


def small_config(length: int) -> TransformerConfig:
    """Two encoder and two decoder layers of width 64: enough for the task."""
    return TransformerConfig(
        d_model=64,
        num_heads=4,
        d_ff=128,
        num_layers=2,
        vocab_size=VOCAB_SIZE,
        max_len=length + 2,
        norm_first=True,
    )
