# %% [markdown]
# # 8. Lab: train a mini Transformer
#
# The previous chapters built every part of a Transformer and tested each one against
# PyTorch. This lab puts them to work: it assembles a small decoder-only model from those
# parts, trains it on this page's build machine, and checks what it learned. Everything
# below was executed when the site was built; every number comes out of a cell's output,
# so what you read is what the build obtained, on the machine named in the first output.
#
# The plan:
#
# 1. a task whose success is unambiguous: **reverse a sequence of ten digits**;
# 2. a model made of the course's modules: the sinusoidal encoding of
#    [chapter 6](../../chapters/06-positional-encoding/), the causal mask of
#    [chapter 4](../../chapters/04-masks/), and the pre-LN encoder layer of
#    [chapter 7](../../chapters/07-transformer/) (with the multi-head attention of
#    [chapter 5](../../chapters/05-multi-head-attention/) inside);
# 3. training, the loss curve, the exact-sequence accuracy on prompts the model never saw,
#    and a look at the attention maps of the trained model;
# 4. two ablations that remove the positional encoding and the causal mask;
# 5. a corrected version of the "NanoTransformer" that circulates in popular articles, a
#    measurement of each of its three faults, and the corrected model trained on the task.
#
# The code this notebook calls lives in `snippets/lab.py`; the cells print the parts that
# matter, and `tests/test_lab.py` tests the data generator, the metrics, the model's
# causality and the faults of the NanoTransformer. To run it yourself, download the
# notebook or open it in Colab (the buttons at the top of the page); its first cell installs
# the course's code where `snippets` cannot be imported.

# %%
# In Colab, or wherever the course's code is not installed, install it first (Colab already
# has PyTorch, NumPy, matplotlib and scikit-learn, so nothing else is fetched).
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("snippets") is None:
    REPO = "https://github.com/attention-executed/attention-executed"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run([*pip, f"git+{REPO}"], check=True)

# %%
import inspect
import statistics

import torch
from IPython.display import display
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from snippets import lab
from snippets.measure import describe_steps
from snippets.plotting import COLORS, figure, show_figure
from snippets.runtime import device, device_description, seed_everything
from snippets.transformer import TransformerConfig, count_parameters

# Every figure is shown by show_figure: an SVG for each of the site's palettes, with alt
# text and a caption.


def show(*objects: object) -> None:
    """Display the source code of functions or classes of snippets/lab.py.

    As HTML in the style of this page's code cells, with the plain text as a fallback.
    """
    code = "\n\n".join(inspect.getsource(o).rstrip() for o in objects)
    spans = highlight(code, PythonLexer(), HtmlFormatter(nowrap=True))
    html = f'<div class="highlight-ipynb hl-python"><pre>{spans}</pre></div>'
    display({"text/html": html, "text/plain": code}, raw=True)


seed_everything(0)
DEVICE = device()
# One thread: training times below are CPU time per step, which then equals the work done,
# whatever else the machine runs on its other cores.
torch.set_num_threads(1)
print(f"torch {torch.__version__} on {device_description()}")

# %% [markdown]
# ## The task: reverse ten digits
#
# Each example is a prompt of *L* = 10 random digits, a separator token (printed as `|`),
# and the answer, the same digits in reverse order. The vocabulary has eleven tokens: the
# digits `0`-`9` and the separator. There are 10<sup>10</sup> possible prompts, so the model cannot
# memorise them; it has to learn the rule.
#
# The model will be trained as a *language model* of these 21-token strings: each position
# predicts the next token. Only the ten answer tokens count in the loss, because the prompt
# digits are random and there is nothing to learn about them. At test time the model gets
# the prompt and the separator and must *generate* the answer one token at a time, each new
# token conditioned on the ones it produced before.
#
# A fixed set of test prompts is drawn first. Training draws a fresh batch at every step
# and drops any prompt that belongs to the test set, so the accuracy reported at the end is
# measured on prompts the model has never seen.

# %%
show(lab.random_digits, lab.reversal_examples, lab.sequence_ids, lab.training_batch)

# %%
LENGTH = 10  # digits per prompt
N_TEST = 2000  # held-out prompts

test_digits = lab.random_digits(N_TEST, LENGTH, torch.Generator().manual_seed(1))
test_examples = lab.reversal_examples(test_digits)  # (N_TEST, 2 * LENGTH + 1)
test_prompts = test_examples[:, : LENGTH + 1].to(DEVICE)  # the digits and the separator
test_answers = test_examples[:, LENGTH + 1 :].to(DEVICE)  # what the model must produce


def as_text(tokens: torch.Tensor) -> str:
    return " ".join("|" if t == lab.SEP else str(int(t)) for t in tokens)


for row in test_examples[:3]:
    print(as_text(row))

# %% [markdown]
# ## The model
#
# A decoder-only Transformer (the shape of GPT) needs no new part: an encoder layer whose
# self-attention is restricted by the causal mask *is* a decoder-only block, because without
# a second input there is nothing for cross-attention to attend to. The model adds token
# embeddings to the sinusoidal position table, runs two such layers under the causal mask,
# and reads out a score for each of the eleven tokens at every position.
#
# Two details matter for such a small model. The layers are pre-LN
# (`norm_first=True`), which is known to train reliably with only a short warm-up of the
# learning rate (Xiong et al., 2020). And the token embeddings keep PyTorch's default
# initialisation, entries of size about 1, the same size as the entries of the sinusoidal
# table; scaling them by √*d*<sub>model</sub>, as the paper does for its differently
# initialised embeddings, would make them that many times larger than the position signal
# this task depends on. The read-out is a separate linear layer, not tied to the
# embeddings.

# %%
show(lab.MiniTransformer)

# %%
config = TransformerConfig(
    d_model=64,
    num_heads=4,
    d_ff=128,
    num_layers=2,
    vocab_size=lab.VOCAB_SIZE,
    max_len=2 * LENGTH + 1,
    dropout=0.0,
    norm_first=True,
    tie_embeddings=False,  # MiniTransformer has its own read-out layer
)
torch.manual_seed(0)
model = lab.MiniTransformer(config).to(DEVICE)
print(config)
print(f"{count_parameters(model):,} trainable parameters")

# %% [markdown]
# ## Training
#
# The loss is the cross-entropy of the answer tokens under *teacher forcing*: the model
# sees the true tokens before each position, all positions are scored in one pass, and the
# causal mask guarantees that position *t* cannot peek at token *t* + 1. AdamW with a one-cycle
# learning-rate schedule (a short warm-up, then a cosine decay) takes 300 steps of 128
# fresh examples each. Every 25 steps the loss is also measured on the held-out prompts.

# %%
show(lab.answer_loss, lab.train_step, lab.train)

# %%
STEPS, BATCH_SIZE, LR = 300, 128, 3e-3


@torch.no_grad()
def held_out_loss(m: torch.nn.Module, n: int = 500) -> float:
    m.eval()
    return lab.answer_loss(m, test_examples[:n].to(DEVICE)).item()


history = lab.train(
    model,
    steps=STEPS,
    batch_size=BATCH_SIZE,
    length=LENGTH,
    held_out=test_digits,
    generator=torch.Generator().manual_seed(2),
    lr=LR,
    on_eval=lambda: held_out_loss(model),
)
print(
    f"trained on batches of {BATCH_SIZE}: {describe_steps(history.step_seconds, clock=history.clock)}"
)
print(
    f"final training loss {history.loss[-1]:.4f}, "
    f"held-out loss {history.eval_loss[-1]:.4f}"
)
# The lab's budget, on the median step (a moment of load on the machine does not move it):
budget = statistics.median(history.step_seconds) * STEPS
assert budget < 60, f"the lab's budget: training in under a minute, not {budget:.0f} s"

# %%
fig, ax = figure(width=6.4, height=3.4)
ax.plot(history.loss, color=COLORS[0], lw=1.2, label="training batch")
ax.plot(
    history.eval_step,
    history.eval_loss,
    "o",
    color=COLORS[1],
    ms=4,
    label="held-out prompts",
)
ax.axhline(torch.log(torch.tensor(10.0)).item(), color="#808080", ls=":", lw=1)
ax.text(STEPS, 2.4, "guessing a digit: ln 10", ha="right", va="bottom", fontsize=8)
ax.set_yscale("log")
ax.set_xlabel("training step")
ax.set_ylabel("cross-entropy of the answer (nats)")
ax.legend()
show_figure(
    fig,
    alt="Line plot, logarithmic vertical axis, of the loss against the training step: a "
    "line for the training batches and dots for the held-out prompts, starting near a "
    "dotted horizontal line at ln 10, then falling by orders of magnitude.",
    caption=f"Cross-entropy of the answer tokens during training: every step's batch "
    f"(line) and 500 held-out prompts every 25 steps (dots), on a log scale. The dotted "
    f"line is ln 10 = {torch.log(torch.tensor(10.0)).item():.2f} nats, the loss of "
    f"guessing digits uniformly. Final: {history.loss[-1]:.4f} on the last batch, "
    f"{history.eval_loss[-1]:.4f} on the held-out prompts.",
)

# %% [markdown]
# The dotted line is the loss of a model that guesses digits uniformly, ln 10. The loss
# starts near it, then falls by orders of magnitude once attention has learned *where*
# to look. The held-out points follow the training curve: with fresh batches every step
# there is nothing to overfit.

# %% [markdown]
# ## Accuracy on held-out prompts
#
# The test is strict. The model receives only the prompt and the separator, generates ten
# tokens greedily (always the most likely next token), and an answer counts as correct only
# if all ten digits are right.

# %%
show(lab.generate, lab.exact_match)

# %%
predicted = lab.generate(model, test_prompts, LENGTH)  # (N_TEST, LENGTH)
accuracy = lab.exact_match(predicted, test_answers)
print(f"exact-sequence accuracy on {N_TEST} held-out prompts: {accuracy:.2%}")
print(f"digit accuracy: {lab.token_accuracy(predicted, test_answers):.2%}")
assert accuracy >= 0.99, "the lab promises at least 99%: the build stops here if not"

# %% [markdown]
# A few of them, with `✓` for a fully correct answer; any wrong answer among the held-out
# prompts is shown as well, if there is one:

# %%
wrong = (predicted != test_answers).any(dim=1).nonzero().flatten().tolist()
for i in [0, 1, 2, 3, 4, *wrong[:3]]:
    mark = "✓" if i not in wrong else "✗"
    prompt = as_text(test_prompts[i])
    print(f"{prompt}  ->  {as_text(predicted[i])}  {mark}")
print(f"{len(wrong)} wrong answers out of {N_TEST}")

# %% [markdown]
# ## What the attention learned
#
# The model records the weights of every head in every layer. Below, the maps of one
# held-out example, after teacher-forced reading of the whole string: row *t* is the query
# at position *t*, column *s* the key, and by the causal mask everything above the diagonal
# is zero. The rows from the separator on are the ones that produce the answer: the row at
# the separator predicts the last prompt digit, the next row the one before it, and so on.

# %%
example = test_examples[:1, :-1].to(DEVICE)  # (1, 2L): the input of the last prediction
with torch.no_grad():
    model.eval()
    model(example)
maps = model.attention_maps()[:, 0].cpu()  # (layers, H, N, N)
labels = as_text(example[0]).split()

fig, axes = figure(
    ncols=config.num_heads, nrows=config.num_layers, width=10, height=5.6
)
for layer in range(config.num_layers):
    for head in range(config.num_heads):
        ax = axes[layer, head]
        im = ax.imshow(maps[layer, head], vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=9)
        ax.set_xticks(range(len(labels)), labels, fontsize=5)
        ax.set_yticks(range(len(labels)), labels, fontsize=5)
        ax.grid(False)
fig.colorbar(im, ax=axes, shrink=0.6, label="attention weight")
show_figure(
    fig,
    alt=f"A grid of {config.num_layers * config.num_heads} heat maps, one per head "
    f"({config.num_layers} layers of {config.num_heads} heads), of the attention "
    f"weights over the {len(labels)} tokens of one held-out example, each labelled with "
    "the tokens on both axes; all are zero above the diagonal.",
    caption=f"Attention weights of every head of the trained model on the held-out "
    f"example {' '.join(labels)}, read with teacher forcing. Row t is the query at "
    f"position t, column s the key at position s; colours run from 0 (dark) to 1 "
    f"(bright). The causal mask leaves everything above the diagonal at zero.",
)

# %% [markdown]
# A map is one example; the numbers below average over the held-out set. For each head, the
# *mirror weight* is the mean weight that a row predicting answer digit *i* puts on the
# prompt position that holds that digit, position *L* − 1 − *i*. A head that does the
# reversal puts most of its weight there, which appears in the map as an anti-diagonal in
# the lower-left block.

# %%
with torch.no_grad():
    model(test_examples[:, :-1].to(DEVICE))
weights = model.attention_maps().cpu()  # (layers, N_TEST, H, 2L, 2L)
rows = torch.arange(LENGTH, 2 * LENGTH)  # query rows that predict answer digits 0..L-1
mirror = torch.arange(LENGTH - 1, -1, -1)  # the prompt position each of them needs
mirror_weight = weights[:, :, :, rows, mirror].mean(dim=(1, 3))  # (layers, H)
for layer in range(config.num_layers):
    cells = "  ".join(
        f"head {h + 1}: {mirror_weight[layer, h]:.2f}" for h in range(config.num_heads)
    )
    print(f"layer {layer + 1}  {cells}")
assert mirror_weight.max() > 0.5, "the text below relies on a head that looks it up"

# %% [markdown]
# Whatever the split between heads and layers in this run, the pattern is the same: the
# model solves the task by **looking up a position**, not a content. The query at answer
# step *i* knows its own position (from the sinusoidal encoding) and must find the key at
# position *L* − 1 − *i*. That query sits at position *L* + *i*, so the two positions
# always add up to 2*L* − 1 and their offset changes from step to step: the map needed is
# not a shift, which chapter 6 showed to be a fixed rotation of each (sin, cos) pair of the
# encoding, but a reflection. The same addition formulas give it: for each frequency *ω*,
# the pair (sin *ω*(*c* − *t*), cos *ω*(*c* − *t*)) is a fixed linear function of
# (sin *ωt*, cos *ωt*) when *c* = 2*L* − 1 is fixed. So a pair of projections
# *W*<sub>Q</sub>, *W*<sub>K</sub> can turn "my position" into "the position I need".
# Layers can also divide the work: a head may first copy information along the answer
# (for example, from the previous answer token) and a later head may use it.

# %% [markdown]
# ## Ablations: without positions, without the causal mask
#
# Two small experiments show that the two ingredients the popular articles leave out are
# not details.
#
# **Without a positional encoding**, self-attention sees a set of tokens, not a sequence
# (chapter 6). The same model and the same training recipe, minus the sinusoidal table:

# %%
torch.manual_seed(0)
no_positions = lab.MiniTransformer(config, use_positions=False).to(DEVICE)
h_nopos = lab.train(
    no_positions,
    STEPS,
    BATCH_SIZE,
    LENGTH,
    test_digits,
    torch.Generator().manual_seed(2),
    lr=LR,
)
pred_nopos = lab.generate(no_positions, test_prompts, LENGTH)
acc_nopos = lab.exact_match(pred_nopos, test_answers)
digits_nopos = lab.token_accuracy(pred_nopos, test_answers)
print(
    f"no positional encoding, {STEPS} steps: "
    f"final training loss {h_nopos.loss[-1]:.3f}, "
    f"exact-sequence accuracy {acc_nopos:.2%}, digit accuracy {digits_nopos:.2%}"
)
# The text below describes this outcome; the build stops if a change of code makes it false.
assert acc_nopos < 0.5 and 0.1 < digits_nopos < 0.9

# %% [markdown]
# It fails, but not completely, and the 10% of guessing a digit is the wrong yardstick for
# its digit accuracy. The model answers with digits of the prompt, and copying a prompt
# digit picked at random is already right more often: one time in *L* it picks the right
# position, and otherwise the digit it picks equals the right one by chance, one time in
# ten. The next cell measures both, then the accuracy at each answer position: in
# generation, and with the true earlier answer digits given (teacher forcing). Its last two
# rows are the weight that the query predicting each answer digit puts on the prompt
# position that holds it (mean of the last layer's heads), and the 1/(*t* + 1) of a
# uniform spread over the *t* + 1 keys that the query at position *t* can see.

# %%
show(lab.position_accuracy, lab.share_in_prompt, lab.copying_accuracy)

# %%
copying = lab.copying_accuracy(test_digits)
print(
    f"predicted digits that occur in their prompt: "
    f"{lab.share_in_prompt(pred_nopos, test_digits.to(DEVICE)):.2%}"
)
print(
    f"copying a random prompt digit: {copying:.2%} on these prompts; "
    f"1/L + (1 - 1/L)/10 = {1 / LENGTH + (1 - 1 / LENGTH) / 10:.2%} in expectation"
)
with torch.no_grad():
    no_positions.eval()
    forced_nopos = no_positions(test_examples[:, :-1].to(DEVICE))[:, LENGTH:].argmax(-1)
    last_layer = no_positions.attention_maps()[-1].cpu()  # (N_TEST, H, 2L, 2L)
    # The earlier answer digits in another order; the query's own token (the last) stays.
    shuffled = lab.shuffle_span(
        test_examples[:, :-1],
        LENGTH + 1,
        2 * LENGTH - 1,
        torch.Generator().manual_seed(3),
    )
    last_shuffled = no_positions(shuffled.to(DEVICE))[:, -1].argmax(-1)
by_position = {
    "accuracy, generated": lab.position_accuracy(pred_nopos, test_answers).cpu(),
    "accuracy, true earlier digits": lab.position_accuracy(
        forced_nopos, test_answers
    ).cpu(),
    "weight on the mirror position": last_layer[:, :, rows, mirror].mean(dim=(0, 1)),
    "uniform weight, 1/(t + 1)": 1 / (rows + 1),
}
print(f"{'answer digit':30}" + "".join(f"{i + 1:6d}" for i in range(LENGTH)))
for name, values in by_position.items():
    print(f"{name:30}" + "".join(f"{v:6.2f}" for v in values.tolist()))
last_in_order = by_position["accuracy, true earlier digits"][-1].item()
last_reordered = (last_shuffled == test_answers[:, -1]).float().mean().item()
print(
    f"last digit with the true earlier digits: {last_in_order:.2%} in their order, "
    f"{last_reordered:.2%} shuffled"
)
# What the text below says; the build stops if a change of code makes it false.
generated, mirror_nopos = (
    by_position["accuracy, generated"],
    by_position["weight on the mirror position"],
)
assert lab.share_in_prompt(pred_nopos, test_digits.to(DEVICE)) > 0.99
assert abs(copying - 0.19) < 0.01 and digits_nopos > copying + 0.05
middle = generated[2:-2].min().item()
assert generated.min().item() > copying  # above the copying baseline at every digit
assert middle < copying + 0.15 and min(generated[0], generated[-1]) > middle + 0.15
assert mirror_nopos[0] > 3 / (LENGTH + 1) and mirror_nopos[0] == mirror_nopos.max()
assert last_in_order > 0.85 and last_in_order > generated[-1] + 0.1
assert abs(last_reordered - last_in_order) < 0.03

fig, ax = figure(width=6.4, height=3.2)
answer_digit = range(1, LENGTH + 1)
for (name, values), color in zip(
    list(by_position.items())[:2], COLORS[:2], strict=True
):
    ax.plot(answer_digit, values, "o-", color=color, ms=4, label=name)
ax.axhline(copying, color="#808080", ls="--", lw=1)
ax.axhline(0.1, color="#808080", ls=":", lw=1)
ax.text(
    LENGTH,
    copying,
    "copying a random prompt digit",
    ha="right",
    va="bottom",
    fontsize=8,
)
ax.text(LENGTH, 0.1, "guessing a digit", ha="right", va="bottom", fontsize=8)
ax.set(xlabel="answer digit", ylabel="accuracy", xticks=list(answer_digit), ylim=(0, 1))
ax.legend(loc="upper center")
show_figure(
    fig,
    alt="Two lines of accuracy against the answer digit, 1 to 10, for the model trained "
    "without positions, above two horizontal reference lines: both curves are high at "
    "the first digit, dip in the middle and rise again at the last digit, the curve with "
    "the true earlier digits given rising highest.",
    caption=f"The model without positional encoding, digit by digit. Generated (its own "
    f"earlier digits in the context): {generated[0]:.2f} at the first answer digit, "
    f"{middle:.2f} at the lowest, {generated[-1]:.2f} at the last. With the true earlier "
    f"digits given: {last_in_order:.2f} at the last. Dashed: copying a random prompt digit "
    f"({copying:.2f}); dotted: guessing a digit (0.10).",
)

# %% [markdown]
# Every digit it writes, or nearly every, comes from the prompt, and its digit accuracy is
# above the copying baseline, not only above guessing. The accuracy is U-shaped: high at
# the first and the last answer digit, down toward the copying baseline in between. Two
# mechanisms account for the two ends, and neither needs a positional encoding.
#
# - **The first answer digit** is the last prompt digit, the separator's neighbour. A causal
#   model is not entirely blind to order, because the causal mask itself carries some: the
#   query at position *t* averages over exactly *t* + 1 keys, and the model can learn to
#   read something like a position from that (Haviv et al., 2022, find that causal
#   language models without positional encodings still learn positional information,
#   and attribute it to this effect of the mask). The
#   separator's query finds its neighbour: it puts several times the uniform weight on it
#   (the table's last two rows). For the digits further back, the ability to *address*
#   position *L* − 1 − *i* precisely is what the model lacks.
# - **The last answer digit** is the one left over. When it is due, nine of the ten prompt
#   digits have been written, and the missing one can be found by elimination: it is the
#   digit that the prompt holds once more than the answer so far, a question about counts
#   that needs no positions. With the true nine earlier digits in its context (teacher
#   forcing), the model gets the last digit right far more often than in generation,
#   where its own earlier mistakes spoil the count. Shuffling those digits (all but the
#   one its query reads), which keeps the counts and changes only the order, leaves that
#   accuracy where it was: what matters is which digits have been written, not where.
#   The query also puts more than the uniform weight on the first prompt position, which
#   the causal mask singles out as the only one that sees nothing but itself; but such a
#   lookup would not depend on the earlier answer digits being right.
#
# **Without the causal mask**, each position can see the token it is asked to predict. A
# model trained that way learns to copy the next input token rather than to reverse the
# prompt. Its training loss falls quickly; a third of the steps is enough to show it:

# %%
torch.manual_seed(0)
no_mask = lab.MiniTransformer(config, causal=False).to(DEVICE)
h_nomask = lab.train(
    no_mask,
    STEPS // 3,
    BATCH_SIZE,
    LENGTH,
    test_digits,
    torch.Generator().manual_seed(2),
    lr=LR,
)
pred_nomask = lab.generate(no_mask, test_prompts, LENGTH)
acc_nomask = lab.exact_match(pred_nomask, test_answers)
print(
    f"no causal mask, {STEPS // 3} steps: "
    f"final training loss {h_nomask.loss[-1]:.4f}, "
    f"exact-sequence accuracy {acc_nomask:.2%}, "
    f"digit accuracy {lab.token_accuracy(pred_nomask, test_answers):.2%}"
)
assert h_nomask.loss[-1] < 0.1 and acc_nomask < 0.05  # as the text below says

# %% [markdown]
# A training loss this low would look like success, but at generation time the token it
# learned to copy does not exist yet: the model has to produce it. Teacher forcing is only
# legitimate under the causal mask, which makes the all-positions-at-once training equal to
# the one-token-at-a-time generation (chapter 4).

# %% [markdown]
# ## The NanoTransformer, corrected
#
# A popular article presents a "20-line mini Transformer" for next-word prediction: an
# embedding, one `torch.nn.MultiheadAttention` with two heads, and a linear read-out,
# applied to token ids of shape `(batch, seq)`. It has three faults.
#
# 1. **Batch and sequence are swapped.** `nn.MultiheadAttention` expects
#    `(seq, batch, d)` unless it is built with `batch_first=True`. Given `(batch, seq, d)`
#    it runs without error, but attends *across the examples of the batch*, at each
#    position separately. With a batch of one, as in the article's example, every token
#    attends only to itself and the model is a bigram model: the prediction after a word
#    ignores all earlier words.
# 2. **No positional information.** Without it the prediction cannot depend on word order.
# 3. **No causal mask.** Trained for next-token prediction without it, each position can
#    read the token it should predict, as the ablation above showed.
#
# The corrected class below keeps the article's architecture and fixes all three; each fix
# has a switch so that the faults can be measured one at a time. Note a fourth trap on the
# way: `nn.MultiheadAttention` reads a boolean `attn_mask` as True = *not allowed*, the
# opposite of this course's convention (and of
# `torch.nn.functional.scaled_dot_product_attention`), hence the conversion by
# `to_torch_attn_mask`.

# %%
show(lab.NanoTransformer)

# %% [markdown]
# Each probe below changes one input token and measures the largest change in the logits
# somewhere it must or must not reach. Every variant has the same weights as the corrected
# model: only the switch differs.

# %%
torch.manual_seed(0)
fixed = lab.NanoTransformer(lab.VOCAB_SIZE, d_model=32).eval()


def variant(**faults: bool) -> lab.NanoTransformer:
    m = lab.NanoTransformer(lab.VOCAB_SIZE, d_model=32, **faults)
    m.load_state_dict(fixed.state_dict())
    return m.eval()


@torch.no_grad()
def change(m: torch.nn.Module, a: list, b: list, where) -> float:
    """Largest |logit change| at `where` when the input goes from batch a to batch b."""
    out_a, out_b = m(torch.tensor(a)), m(torch.tensor(b))
    return (out_a[where] - out_b[where]).abs().max().item()


probes = [
    (
        "batch_first=False: does example 1 change example 2's logits?",
        dict(batch_first=False),
        ([[1, 5, 9], [2, 3, 4]], [[7, 7, 7], [2, 3, 4]], (1,)),
        False,  # must the corrected model react?
    ),
    (
        "batch_first=False, batch of one: does token 1 reach the last prediction?",
        dict(batch_first=False),
        ([[1, 5, 9]], [[6, 5, 9]], (0, -1)),
        True,  # must the corrected model react?
    ),
    (
        "positions=False: does swapping tokens 1 and 2 change the last prediction?",
        dict(positions=False),
        ([[1, 5, 9]], [[5, 1, 9]], (0, -1)),
        True,  # must the corrected model react?
    ),
    (
        "causal=False: does the last token reach the first prediction?",
        dict(causal=False),
        ([[1, 5, 9]], [[1, 5, 2]], (0, 0)),
        False,  # must the corrected model react?
    ),
]
print(f"{'probe':76} {'faulty':>9} {'corrected':>10}")
for text, fault, (a, b, where), must_react in probes:
    faulty_change, fixed_change = (
        change(variant(**fault), a, b, where),
        change(fixed, a, b, where),
    )
    print(f"{text:76} {faulty_change:9.2e} {fixed_change:10.2e}")
    # As the text below says: one of the two does not react at all, the other clearly does.
    quiet, loud = sorted((fixed_change, faulty_change))
    assert quiet < 1e-5 and loud > 1e-3 and (loud == fixed_change) == must_react, text

# %% [markdown]
# Read the table row by row. Where the corrected model must *not* react (example 1 is none
# of example 2's business; a prediction must not depend on the future), its change is zero
# and the faulty variant's is not. Where the corrected model *must* react (the first word
# matters for the last prediction; so does the order of the words), its change is clearly
# non-zero and the faulty variant's is zero, or zero up to floating-point rounding.
#
# In the configuration the article actually used, all three faults at once, the same
# probes give:

# %%
published = variant(batch_first=False, positions=False, causal=False)
reacts = []
for text, _, (a, b, where), _ in probes:
    reacts.append(change(published, a, b, where))
    print(f"{text:76} {reacts[-1]:9.2e}")
assert reacts[0] > 1e-3 and max(reacts[1:]) < 1e-5  # as the text below says

# %% [markdown]
# Only the first probe reacts. In a batch of one, the article's model attends from each
# token to that token alone, so it can neither use order nor read the future: the missing
# mask and positions are hidden by the swapped axes, and the model reduces to a bigram
# model that ignores every earlier word. In a larger batch it attends to the other examples
# instead. Fixing `batch_first` alone would uncover the other two faults, which is why the
# corrected class needs all three fixes.

# %% [markdown]
# ### The corrected NanoTransformer, trained
#
# The probes show where information can flow; training shows that the corrected model can
# use it. It gets the same task, data, loss and training loop as the MiniTransformer, from
# the same initial weights as the probed model. It is much smaller (one attention layer,
# no feed-forward network, no LayerNorm), and with a higher peak learning rate half the
# steps are enough:

# %%
NANO_STEPS, NANO_LR = STEPS // 2, 1e-2
torch.manual_seed(0)  # as for `fixed` above: the same initial weights
nano = lab.NanoTransformer(lab.VOCAB_SIZE, d_model=32).to(DEVICE)
h_nano = lab.train(
    nano,
    NANO_STEPS,
    BATCH_SIZE,
    LENGTH,
    test_digits,
    torch.Generator().manual_seed(2),
    lr=NANO_LR,
)
pred_nano = lab.generate(nano, test_prompts, LENGTH)
acc_nano = lab.exact_match(pred_nano, test_answers)
print(
    f"corrected NanoTransformer, {count_parameters(nano):,} parameters, "
    f"{NANO_STEPS} steps: final training loss {h_nano.loss[-1]:.4f}, "
    f"exact-sequence accuracy {acc_nano:.2%}, "
    f"digit accuracy {lab.token_accuracy(pred_nano, test_answers):.2%}"
)
assert acc_nano > 0.95, "the text below says that it learns the task"

# %% [markdown]
# One attention layer learns the reversal. Each answer digit needs a single lookup, of its
# mirror position, and one pair of projections can compute that lookup: the mirror
# position's encoding is a fixed linear function of the query's own (the reflection
# described with the attention maps above).

# %% [markdown]
# ## Key takeaways
#
# - A decoder-only Transformer is the encoder layer of chapter 7 under the causal mask of
#   chapter 4, plus embeddings, positions and a read-out: the course's parts, unchanged,
#   trained to reverse ten-digit sequences on the build machine (on the device that the
#   first output names: its CPU, or its GPU when it has one), reach the exact-sequence
#   accuracy printed above on held-out prompts.
# - The attention maps show how: answer positions look up the mirror position in the
#   prompt, an addressing by position that needs the positional encoding.
# - Without positions the same recipe fails. It still beats copying a random prompt digit
#   (not only the 10% of guessing), most of all at the two ends of the answer: next to
#   the separator, which the causal mask lets it find, and at the last digit, by
#   elimination. Without the causal mask the training loss looks perfect while generation
#   fails. All of it is measured above.
# - The popular NanoTransformer has three faults (batch and sequence swapped by
#   `nn.MultiheadAttention`'s `batch_first=False` default, no positions, no causal mask);
#   each one is visible as a logit that reacts where it must not, or does not react where
#   it must. Corrected, its single attention layer learns the reversal task.
#
# ## References
#
# - A. Vaswani et al. *Attention Is All You Need.* NeurIPS 2017.
#   [arXiv:1706.03762](https://arxiv.org/abs/1706.03762)
# - A. Radford, K. Narasimhan, T. Salimans, I. Sutskever. *Improving Language Understanding
#   by Generative Pre-Training.* OpenAI, 2018 (the decoder-only Transformer).
# - R. Xiong et al. *On Layer Normalization in the Transformer Architecture.* ICML 2020
#   (pre-LN trains without a long warm-up).
#   [arXiv:2002.04745](https://arxiv.org/abs/2002.04745)
# - A. Haviv, O. Ram, O. Press, P. Izsak, O. Levy. *Transformer Language Models without
#   Positional Encodings Still Learn Positional Information.* Findings of EMNLP 2022.
#   [arXiv:2203.16634](https://arxiv.org/abs/2203.16634)
# - PyTorch documentation of `torch.nn.MultiheadAttention` (`batch_first`, `attn_mask`).

# %% [markdown]
# ## Try this
#
# Three experiments on the trained model, to run yourself: open the notebook (the buttons
# at the top of the page), change a value, run the cell again. The build ran each cell as
# it stands; the outputs are what it printed. Predict before you run.
#
# **Your own prompt.** Type ten digits; the model answers after the separator.

# %%
MY_DIGITS = "3141592653"  # ten digits of your choice
assert len(MY_DIGITS) == LENGTH and MY_DIGITS.isdigit(), f"{LENGTH} digits"
prompt = torch.tensor([[*map(int, MY_DIGITS), lab.SEP]], device=DEVICE)
answer = "".join(str(int(t)) for t in lab.generate(model, prompt, LENGTH)[0])
verdict = "reversed" if answer == MY_DIGITS[::-1] else "not the reversal"
print(f"{MY_DIGITS} | {answer}  ({verdict})")

# %% [markdown]
# **Prompts unlike the training data.** Every training prompt was ten independent random
# digits, so a prompt of one digit repeated, or a run in order, is rare among them. Does
# the model still reverse it?

# %%
for text in ("0000000000", "9999999999", "0123456789", "1111111112", "5050505050"):
    p = torch.tensor([[*map(int, text), lab.SEP]], device=DEVICE)
    out = "".join(str(int(t)) for t in lab.generate(model, p, LENGTH)[0])
    verdict = "reversed" if out == text[::-1] else "not the reversal"
    print(f"{text} | {out}  ({verdict})")

# %% [markdown]
# **Which answer digit reads which prompt digit?** Change one prompt digit at a time and
# see which answer positions change. A model that reverses must change exactly one, the
# mirror position, every time.

# %%
base = [*map(int, MY_DIGITS)]
before = lab.generate(model, torch.tensor([[*base, lab.SEP]], device=DEVICE), LENGTH)[0]
for i in range(LENGTH):
    changed = base.copy()
    changed[i] = (changed[i] + 5) % 10
    p = torch.tensor([[*changed, lab.SEP]], device=DEVICE)
    after = lab.generate(model, p, LENGTH)[0]
    moved = (after != before).nonzero().flatten().tolist()
    print(f"prompt digit {i} changed: answer positions {moved} changed")
