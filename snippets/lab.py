"""The mini-Transformer lab (chapter 8): a task, a model made of the course's parts, training.

The task is sequence reversal. A prompt of `length` random digits followed by a separator
token must be continued with the same digits in reverse order:

    3 1 4 1 5 9 2 6 5 3 | 3 5 6 2 9 5 1 4 1 3

Success is measurable without judgement: a generated answer is right or wrong, and the
exact-sequence accuracy on held-out prompts says how often the model gets all digits right.

The model is decoder-only (as in GPT): token embeddings plus the sinusoidal encoding of
chapter 6, a stack of the encoder layers of chapter 7 run under the causal mask of chapter 4
(an encoder layer with a causal mask is exactly a decoder-only block), a final LayerNorm and
a linear read-out. `NanoTransformer` is a corrected version of a one-layer model that
circulates in popular articles, with a switch for each of its three original faults.

Shapes: token ids (B, N), activations (B, N, d), logits (B, N, V), attention (B, H, N, N).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snippets import checks
from snippets.masks import causal_mask, to_torch_attn_mask
from snippets.measure import step_clock
from snippets.positional import sinusoidal_encoding
from snippets.transformer import Encoder, TransformerConfig

NUM_DIGITS = 10  # tokens 0..9 are digits
SEP = 10  # the separator between the prompt and the answer
VOCAB_SIZE = 11


# --8<-- [start:data]
def random_digits(n: int, length: int, generator: torch.Generator) -> Tensor:
    """(n, length) int64: independent digits, uniform over 0..9."""
    return torch.randint(0, NUM_DIGITS, (n, length), generator=generator)


def reversal_examples(digits: Tensor) -> Tensor:
    """(n, L) digits -> (n, 2L + 1) token ids: the digits, SEP, the digits reversed."""
    sep = torch.full((digits.size(0), 1), SEP, dtype=digits.dtype)
    return torch.cat([digits, sep, digits.flip(1)], dim=1)


def sequence_ids(digits: Tensor) -> Tensor:
    """(n, L) digits -> (n,) int64: each row read as a base-10 number, a unique id."""
    powers = NUM_DIGITS ** torch.arange(digits.size(1) - 1, -1, -1)  # (L,)
    return (digits * powers).sum(dim=1)


def training_batch(
    batch_size: int, length: int, held_out: Tensor, generator: torch.Generator
) -> Tensor:
    """(<= batch_size, 2L + 1) fresh examples, no prompt among the `held_out` ids.

    There are 10^L possible prompts, so a clash is rare; removing clashes makes
    "held out" a guarantee rather than a likelihood.
    """
    checks.positive_ints(batch_size=batch_size, length=length)
    digits = random_digits(batch_size, length, generator)
    keep = ~torch.isin(sequence_ids(digits), held_out)  # (batch_size,)
    return reversal_examples(digits[keep])


# --8<-- [end:data]


# --8<-- [start:model]
class MiniTransformer(nn.Module):
    """Decoder-only Transformer: embeddings + positions, causal encoder layers, readout.

    The two switches exist for the lab's ablations: `use_positions=False` drops the
    sinusoidal encoding, `causal=False` drops the causal mask.
    """

    def __init__(
        self, config: TransformerConfig, use_positions: bool = True, causal: bool = True
    ) -> None:
        super().__init__()
        self.config, self.use_positions, self.causal = config, use_positions, causal
        # entries ~ N(0, 1)
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        pe = sinusoidal_encoding(config.max_len, config.d_model)  # entries in [-1, 1]
        self.register_buffer("pe", pe, persistent=False)  # (max_len, d)
        self.encoder = Encoder(config)  # num_layers EncoderLayers + a final LayerNorm
        self.readout = nn.Linear(config.d_model, config.vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:  # (B, N) -> logits (B, N, V)
        checks.integer("(B, N)", tokens=tokens)
        n = tokens.size(1)
        x = self.embed(tokens)  # (B, N, d)
        if self.use_positions:
            x = x + self.pe[:n]  # (N, d) broadcasts over the batch
        mask = causal_mask(n, device=tokens.device) if self.causal else None  # (N, N)
        return self.readout(self.encoder(x, mask))  # row t predicts token t + 1

    def attention_maps(self) -> Tensor:
        """(num_layers, B, H, N, N): each layer's weights from the last forward pass."""
        return torch.stack([layer.attn_weights for layer in self.encoder.layers])


# --8<-- [end:model]


# --8<-- [start:train]
@dataclass
class History:
    """What training leaves behind: every step's loss, the held-out losses, the time."""

    loss: list[float] = field(default_factory=list)  # one per step
    eval_step: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0  # wall-clock time of the whole loop
    step_seconds: list[float] = field(default_factory=list)  # each step, by `clock`
    clock: str = ""  # what step_seconds measure: CPU time, or wall-clock on a GPU


def answer_loss(model: nn.Module, examples: Tensor) -> Tensor:
    """Mean cross-entropy of the answer tokens, predicted with teacher forcing.

    examples (B, 2L + 1): the input is every token but the last, the target every
    token but the first (each position predicts the next token). Only the L answer
    tokens are scored: the prompt digits are random, so predicting them teaches
    nothing.
    """
    length = (examples.size(1) - 1) // 2
    logits = model(examples[:, :-1])  # (B, 2L, V)
    answer = logits[:, length:]  # (B, L, V): rows at SEP and after predict the answer
    return F.cross_entropy(
        answer.reshape(-1, answer.size(-1)), examples[:, length + 1 :].reshape(-1)
    )


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, examples: Tensor
) -> float:
    """One gradient step on one batch; returns the batch's loss before the step."""
    model.train()
    loss = answer_loss(model, examples)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def train(
    model: nn.Module,
    steps: int,
    batch_size: int,
    length: int,
    held_out: Tensor,  # (n_test, L) digits that training must never show
    generator: torch.Generator,
    lr: float = 3e-3,
    on_eval: Callable[[], float] | None = None,  # returns a held-out loss
    eval_every: int = 25,
) -> History:
    """AdamW with a one-cycle schedule (a short warm-up, then cosine decay to ~0).

    Every step draws a fresh batch, so the model never sees the same example twice.
    """
    checks.positive_ints(steps=steps, batch_size=batch_size, eval_every=eval_every)
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.1
    )
    banned = sequence_ids(held_out)
    clock, clock_name = step_clock()
    history = History(clock=clock_name)
    start = time.perf_counter()
    for step in range(steps):
        tick = clock()
        examples = training_batch(batch_size, length, banned, generator).to(device)
        history.loss.append(train_step(model, optimizer, examples))
        schedule.step()
        history.step_seconds.append(clock() - tick)
        if on_eval is not None and (step % eval_every == 0 or step == steps - 1):
            history.eval_step.append(step)
            history.eval_loss.append(on_eval())
    history.seconds = time.perf_counter() - start
    return history


# --8<-- [end:train]


# --8<-- [start:evaluate]
@torch.no_grad()
def generate(model: nn.Module, prompt: Tensor, n_new: int) -> Tensor:
    """Greedy decoding: append the most likely next token n_new times.

    (B, P) -> (B, n_new).

    The model never sees the answer: every token after the prompt is one it produced.
    """
    model.eval()
    tokens = prompt
    for _ in range(n_new):
        next_token = model(tokens)[:, -1].argmax(dim=-1, keepdim=True)  # (B, 1)
        tokens = torch.cat([tokens, next_token], dim=1)
    return tokens[:, prompt.size(1) :]


def exact_match(predicted: Tensor, target: Tensor) -> float:
    """Fraction of rows in which every token of `predicted` equals `target`'s.

    Both are (B, L).
    """
    checks.shape("predicted", predicted, target.shape, "(B, L of target)")
    return (predicted == target).all(dim=1).float().mean().item()


def token_accuracy(predicted: Tensor, target: Tensor) -> float:
    """Fraction of single tokens that are right, whatever the rest of their row."""
    checks.shape("predicted", predicted, target.shape, "(B, L of target)")
    return (predicted == target).float().mean().item()


# --8<-- [end:evaluate]


# --8<-- [start:analysis]
def position_accuracy(predicted: Tensor, target: Tensor) -> Tensor:
    """(L,): the fraction of rows whose token at each position is right; (B, L) each."""
    checks.shape("predicted", predicted, target.shape, "(B, L of target)")
    return (predicted == target).float().mean(dim=0)


def share_in_prompt(predicted: Tensor, digits: Tensor) -> float:
    """Fraction of predicted tokens that occur anywhere in their row's prompt digits."""
    found = predicted.unsqueeze(-1) == digits.unsqueeze(1)  # (B, L_pred, L)
    return found.any(dim=-1).float().mean().item()


def copying_accuracy(digits: Tensor) -> float:
    """Expected digit accuracy of answering every position with a prompt digit drawn at
    random: for each answer digit, the fraction of prompt positions holding that digit.

    The answer holds the prompt's digits in another order, so this is the mean of
    [d_i == d_j] over all pairs of positions i, j. For uniform digits its expectation
    is 1/L + (1 - 1/L)/10: the right position, or another that holds the same digit by
    chance.
    """
    same = digits.unsqueeze(2) == digits.unsqueeze(1)  # (n, L, L)
    return same.float().mean().item()


def shuffle_span(
    tokens: Tensor, start: int, stop: int, generator: torch.Generator
) -> Tensor:
    """A copy of tokens (B, N) with each row's tokens[start:stop] permuted at random."""
    if not 0 <= start < stop <= tokens.size(1):
        raise ValueError(
            f"need 0 <= start < stop <= {tokens.size(1)}, got {start}, {stop}"
        )
    order = torch.rand(tokens.size(0), stop - start, generator=generator).argsort(dim=1)
    out = tokens.clone()
    out[:, start:stop] = tokens[:, start:stop].gather(1, order.to(tokens.device))
    return out


# --8<-- [end:analysis]


# --8<-- [start:nano]
class NanoTransformer(nn.Module):
    """A one-layer next-token model: embedding, one multi-head self-attention, read-out.

    The three switches are the popular version's three faults, each fixed by default:

    - batch_first: `nn.MultiheadAttention` expects (N, B, d) unless told
      batch_first=True; given (B, N, d) without it, it attends across the batch
      instead of along the sequence.
    - positions: without a positional encoding, attention sees the prompt as a bag
      of tokens.
    - causal: a next-token model trained without the causal mask can read the token
      it is asked to predict.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        num_heads: int = 2,
        max_len: int = 64,
        *,
        batch_first: bool = True,
        positions: bool = True,
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.batch_first, self.positions, self.causal = batch_first, positions, causal
        self.embed = nn.Embedding(vocab_size, d_model)
        pe = sinusoidal_encoding(max_len, d_model)  # (max_len, d)
        self.register_buffer("pe", pe, persistent=False)
        self.attention = nn.MultiheadAttention(
            d_model, num_heads, batch_first=batch_first
        )
        self.readout = nn.Linear(d_model, vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:  # (B, N) -> logits (B, N, V)
        x = self.embed(tokens)  # (B, N, d)
        if self.positions:
            x = x + self.pe[: tokens.size(1)]  # (N, d) broadcasts over the batch
        mask = None
        if self.causal:
            # The axis nn.MultiheadAttention attends along: with batch_first=False it is
            # axis 0, which here holds the batch. That is the fault, not a fix of it.
            n = x.size(1 if self.batch_first else 0)
            # nn.MultiheadAttention reads a boolean attn_mask as True = NOT allowed.
            mask = to_torch_attn_mask(causal_mask(n, device=tokens.device))
        x, _ = self.attention(x, x, x, attn_mask=mask, need_weights=False)
        return self.readout(x)  # (B, N, V)


# --8<-- [end:nano]
