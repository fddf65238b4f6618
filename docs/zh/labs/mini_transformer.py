# %% [markdown]
# # 8. 实验：训练一个迷你 Transformer
#
# 前面几章构建了 Transformer 的每一个部件，并把每个部件都与 PyTorch 对照做了测试。本实验让它们派上用场：用这些部件组装一个小型的仅解码器模型，在本页的构建机器上训练它，并检查它学到了什么。下面的一切都是在构建本站时执行的；每个数字都来自某个单元格的输出，所以你读到的就是构建过程得到的结果，所用的机器注明在第一个输出中。
#
# 计划如下：
#
# 1. 一个成败一目了然的任务：**反转一个由十个数字组成的序列**；
# 2. 一个由课程模块构成的模型：[第 6 章](../../chapters/06-positional-encoding/)的正弦编码、[第 4 章](../../chapters/04-masks/)的因果掩码，以及[第 7 章](../../chapters/07-transformer/)的 pre-LN 编码器层（其内部是[第 5 章](../../chapters/05-multi-head-attention/)的多头注意力）；
# 3. 训练、损失曲线、在模型从未见过的提示词上的整序列准确率，以及对训练后模型注意力图的考察；
# 4. 两个消融实验，分别去掉位置编码和因果掩码；
# 5. 流行文章中流传的“NanoTransformer”的修正版本、对其三个缺陷的逐一测量，以及在该任务上训练修正后的模型。
#
# 本笔记本调用的代码位于 `snippets/lab.py`；各单元格会打印出其中重要的部分，`tests/test_lab.py` 测试了数据生成器、各项指标、模型的因果性以及 NanoTransformer 的缺陷。如果要自己运行，请下载笔记本或在 Colab 中打开它（页面顶部的按钮）；它的第一个单元格会在无法导入 `snippets` 的环境中安装课程的代码。

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
# ## 任务：反转十个数字
#
# 每个样本依次是：一个由 *L* = 10 个随机数字组成的提示词、一个分隔词元（打印为 `|`），以及答案，即逆序排列的同样这些数字。词表有十一个词元：数字 `0`-`9` 和分隔符。可能的提示词共有 10<sup>10</sup> 个，所以模型无法把它们背下来；它必须学会规则。
#
# 模型将作为这些由 21 个词元组成的字符串的*语言模型*来训练：每个位置预测下一个词元。损失中只计入十个答案词元，因为提示词中的数字是随机的，关于它们没有什么可学的。测试时，模型得到提示词和分隔符，必须逐个词元地*生成*答案，每个新词元都以它之前生成的词元为条件。
#
# 首先抽取一组固定的测试提示词。训练时每一步都抽取一个新的批量，并丢弃其中属于测试集的提示词，所以最后报告的准确率是在模型从未见过的提示词上测得的。

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
# ## 模型
#
# 仅解码器的 Transformer（即 GPT 的结构）不需要新的部件：一个自注意力受因果掩码限制的编码器层*就是*一个仅解码器块，因为没有第二个输入，交叉注意力也就没有可以关注的对象。模型把词元嵌入与正弦位置表相加，在因果掩码下运行两个这样的层，然后在每个位置为十一个词元各读出一个评分。
#
# 对于这么小的模型，有两处细节很重要。各层采用 pre-LN（`norm_first=True`），已知这种结构只需很短的学习率预热就能可靠地训练（Xiong 等，2020）。而且词元嵌入保留 PyTorch 的默认初始化，其元素大小约为 1，与正弦表中元素的大小相同；如果像论文对其初始化方式不同的嵌入所做的那样，把它们乘以 √*d*<sub>model</sub>，它们就会比这个任务所依赖的位置信号大这么多倍。读出层是一个单独的线性层，不与嵌入共享权重。

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
# ## 训练
#
# 损失是*强制教学*（teacher forcing）下答案词元的交叉熵：模型在每个位置之前看到的都是真实的词元，所有位置在一遍计算中同时得到评估，而因果掩码保证位置 *t* 无法偷看词元 *t* + 1。AdamW 配合单周期（one-cycle）学习率调度（先短暂预热，然后余弦衰减），共训练 300 步，每步 128 个新样本。每隔 25 步，还会在留出的提示词上测量损失。

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
# 虚线是均匀猜测数字的模型的损失，即 ln 10。损失从它附近开始，一旦注意力学会了该看*哪里*，就下降好几个数量级。留出的提示词上的点紧随训练曲线：每一步都用新的批量，没有什么可以过拟合的。

# %% [markdown]
# ## 在留出的提示词上的准确率
#
# 测试是严格的。模型只接收提示词和分隔符，贪心地生成十个词元（总是选择最可能的下一个词元），只有十个数字全部正确，答案才算正确。

# %%
show(lab.generate, lab.exact_match)

# %%
predicted = lab.generate(model, test_prompts, LENGTH)  # (N_TEST, LENGTH)
accuracy = lab.exact_match(predicted, test_answers)
print(f"exact-sequence accuracy on {N_TEST} held-out prompts: {accuracy:.2%}")
print(f"digit accuracy: {lab.token_accuracy(predicted, test_answers):.2%}")
assert accuracy >= 0.99, "the lab promises at least 99%: the build stops here if not"

# %% [markdown]
# 下面是其中几个，完全正确的答案标有 `✓`；如果留出的提示词中有答错的，也会一并显示：

# %%
wrong = (predicted != test_answers).any(dim=1).nonzero().flatten().tolist()
for i in [0, 1, 2, 3, 4, *wrong[:3]]:
    mark = "✓" if i not in wrong else "✗"
    prompt = as_text(test_prompts[i])
    print(f"{prompt}  ->  {as_text(predicted[i])}  {mark}")
print(f"{len(wrong)} wrong answers out of {N_TEST}")

# %% [markdown]
# ## 注意力学到了什么
#
# 模型记录了每一层中每个头的权重。下面是一个留出的样本在以强制教学方式读完整个字符串之后的注意力图：第 *t* 行是位置 *t* 上的查询，第 *s* 列是键，由于因果掩码，对角线以上全部为零。从分隔符开始的各行是产生答案的行：分隔符所在的行预测提示词的最后一个数字，下一行预测倒数第二个数字，依此类推。

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
# 一张图只是一个样本；下面的数字是在整个留出集上的平均。对每个头，*镜像权重*是预测第 *i* 个答案数字的那一行放在保存该数字的提示词位置（即位置 *L* − 1 − *i*）上的平均权重。执行反转的头会把大部分权重放在那里，在图中表现为左下块中的一条反对角线。

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
# 无论这次运行中各头和各层如何分工，模式都是一样的：模型通过**查找一个位置**而不是查找内容来解决这个任务。答案第 *i* 步的查询知道自己的位置（来自正弦编码），必须找到位置 *L* − 1 − *i* 上的键。这个查询位于位置 *L* + *i*，所以这两个位置之和总是 2*L* − 1，而它们之间的偏移量逐步变化：所需的映射不是平移（第 6 章表明，平移是对编码中每一对 (sin, cos) 的固定旋转），而是反射。同样的和角公式给出了这个映射：对每个频率 *ω*，当 *c* = 2*L* − 1 固定时，数对 (sin *ω*(*c* − *t*), cos *ω*(*c* − *t*)) 是 (sin *ωt*, cos *ωt*) 的固定线性函数。因此，一对投影 *W*<sub>Q</sub>、*W*<sub>K</sub> 就能把“我的位置”变成“我需要的位置”。各层之间也可以分工：一个头可以先沿着答案复制信息（例如从前一个答案词元复制），再由后面的头来使用它。

# %% [markdown]
# ## 消融实验：去掉位置，去掉因果掩码
#
# 两个小实验表明，流行文章遗漏的这两个要素并非无关紧要的细节。
#
# **没有位置编码时**，自注意力看到的是一个词元集合，而不是一个序列（第 6 章）。同样的模型和同样的训练方案，只是去掉了正弦表：

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
# 它失败了，但并非完全失败，而且拿猜中一个数字的 10% 来衡量它的逐位准确率并不合适。模型用提示词中的数字作答，而从提示词中随机挑一个数字照抄，答对的次数就已经更多了：每 *L* 次中有一次挑中正确的位置，否则，挑中的数字也有十分之一的机会碰巧等于正确的数字。下一个单元格测量这两者，然后测量每个答案位置上的准确率：分别是生成时的，以及给定真实的前面答案数字（强制教学）时的。其最后两行分别是：预测每个答案数字的查询放在保存该数字的提示词位置上的权重（最后一层各头的平均），以及位置 *t* 上的查询在它能看到的 *t* + 1 个键上均匀分配时的权重 1/(*t* + 1)。

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
# 它写下的每个数字（或几乎每个数字）都来自提示词，而且它的逐位准确率高于复制基线，而不只是高于猜测。准确率呈 U 形：在第一个和最后一个答案数字上较高，在两者之间则降向复制基线。两种机制分别解释了两端，而两者都不需要位置编码。
#
# - **第一个答案数字**是提示词的最后一个数字，即分隔符的邻居。因果模型对顺序并非完全一无所知，因为因果掩码本身就携带了一些顺序信息：位置 *t* 上的查询恰好在 *t* + 1 个键上取平均，模型可以学会从中读出类似位置的东西（Haviv 等（2022）发现，没有位置编码的因果语言模型仍能学到位置信息，并把这归因于掩码的这一作用）。分隔符的查询找到了它的邻居：放在邻居上的权重是均匀权重的好几倍（见表格的最后两行）。对于离分隔符更远的数字，模型所缺少的正是精确*寻址*位置 *L* − 1 − *i* 的能力。
# - **最后一个答案数字**是剩下的那一个。轮到它时，提示词中的十个数字已经写出了九个，缺的那个可以用排除法找到：它就是在提示词中比在目前已写出的答案中多出现一次的数字，这是一个关于计数的问题，不需要位置。当上下文中有前面九个真实数字时（强制教学），模型答对最后一个数字的频率远高于生成时，因为生成时它自己先前的错误会破坏计数。把这些数字打乱（除了它的查询所读取的那一个），计数不变，只改变顺序，而该准确率保持不变：重要的是写出了哪些数字，而不是写在哪里。查询放在提示词第一个位置上的权重也高于均匀权重，因果掩码使这个位置成为唯一一个只能看到自身的位置；但这样的查找并不依赖于前面的答案数字是否正确。
#
# **没有因果掩码时**，每个位置都能看到它被要求预测的词元。这样训练出来的模型学会的是复制下一个输入词元，而不是反转提示词。它的训练损失下降得很快；用三分之一的步数就足以说明这一点：

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
# 这么低的训练损失看起来像是成功了，但在生成时，它学会复制的那个词元还不存在：模型必须自己产生它。只有在因果掩码下，强制教学才是正当的，因为因果掩码使一次处理所有位置的训练等价于逐个词元的生成（第 4 章）。

# %% [markdown]
# ## 修正后的 NanoTransformer
#
# 一篇流行文章给出了一个用于预测下一个词的“20 行迷你 Transformer”：一个嵌入层、一个带两个头的 `torch.nn.MultiheadAttention` 和一个线性读出层，作用于形状为 `(batch, seq)` 的词元 id。它有三个缺陷。
#
# 1. **批量维和序列维颠倒了。** 除非构造时指定 `batch_first=True`，否则 `nn.MultiheadAttention` 期望的输入形状是 `(seq, batch, d)`。给它 `(batch, seq, d)` 时，它运行起来不会报错，但会在每个位置上分别*在批量中的各个样本之间*计算注意力。像文章的例子那样批量大小为 1 时，每个词元都只关注自己，模型就成了一个二元语法模型：一个词之后的预测忽略了所有更早的词。
# 2. **没有位置信息。** 没有位置信息，预测就无法依赖于词序。
# 3. **没有因果掩码。** 没有因果掩码而用下一个词元预测来训练时，每个位置都能读到它应当预测的词元，正如上面的消融实验所示。
#
# 下面这个修正后的类保留了文章的架构，并修正了全部三个缺陷；每项修正都有一个开关，以便逐一测量各个缺陷。注意途中的第四个陷阱：`nn.MultiheadAttention` 把布尔型 `attn_mask` 中的 True 解读为*不允许*，这与本课程的约定（以及 `torch.nn.functional.scaled_dot_product_attention` 的约定）相反，因此需要用 `to_torch_attn_mask` 进行转换。

# %%
show(lab.NanoTransformer)

# %% [markdown]
# 下面的每个探针改变一个输入词元，并在这一改动必须传到或不得传到的某处测量 logit 的最大变化。每个变体都与修正后的模型具有相同的权重：只有开关不同。

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
# 逐行阅读这张表。在修正后的模型*不得*有反应的地方（样本 1 与样本 2 毫不相干；预测不得依赖于未来），它的变化为零，而有缺陷的变体则不为零。在修正后的模型*必须*有反应的地方（第一个词对最后的预测有影响；词的顺序也是如此），它的变化明显不为零，而有缺陷的变体的变化为零，或者在浮点舍入误差范围内为零。
#
# 在文章实际使用的配置中，即三个缺陷同时存在时，同样的探针给出：

# %%
published = variant(batch_first=False, positions=False, causal=False)
reacts = []
for text, _, (a, b, where), _ in probes:
    reacts.append(change(published, a, b, where))
    print(f"{text:76} {reacts[-1]:9.2e}")
assert reacts[0] > 1e-3 and max(reacts[1:]) < 1e-5  # as the text below says

# %% [markdown]
# 只有第一个探针有反应。在批量大小为 1 时，文章的模型让每个词元只关注它自己，所以它既不能利用顺序，也不能读到未来：缺失的掩码和位置被颠倒的轴掩盖了，模型退化成一个忽略所有更早的词的二元语法模型。在更大的批量中，它转而关注其他样本。只修正 `batch_first` 会暴露出另外两个缺陷，这就是为什么修正后的类需要全部三项修正。

# %% [markdown]
# ### 训练修正后的 NanoTransformer
#
# 探针表明了信息可以在哪里流动；训练则表明修正后的模型能够利用这些信息。它使用与 MiniTransformer 相同的任务、数据、损失和训练循环，并从与被探测模型相同的初始权重出发。它要小得多（一个注意力层，没有前馈网络，没有 LayerNorm），使用更高的峰值学习率，一半的步数就足够了：

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
# 一个注意力层就能学会反转。每个答案数字只需要一次查找，即查找它的镜像位置，而一对投影就能完成这次查找：镜像位置的编码是查询自身位置编码的固定线性函数（即上面结合注意力图所描述的反射）。

# %% [markdown]
# ## 要点
#
# - 仅解码器的 Transformer 就是第 7 章的编码器层加上第 4 章的因果掩码，再加上嵌入、位置和读出层：课程的部件原封不动，在构建机器上（在第一个输出所注明的设备上：它的 CPU，或者在有 GPU 时用它的 GPU）经过训练来反转由十个数字组成的序列，在留出的提示词上达到了上面打印的整序列准确率。
# - 注意力图揭示了其中的机制：答案位置查找提示词中的镜像位置，这是一种按位置的寻址，需要位置编码。
# - 没有位置时，同样的方案就会失败。它仍然胜过从提示词中随机复制一个数字（而不只是胜过猜测的 10%），在答案的两端尤其如此：在分隔符旁边（因果掩码让它能找到这个位置），以及在最后一个数字上（靠排除法）。没有因果掩码时，训练损失看起来完美无缺，而生成却失败了。这一切都已在上面测量过。
# - 流行的 NanoTransformer 有三个缺陷（由于 `nn.MultiheadAttention` 的默认值 `batch_first=False` 而颠倒了批量维和序列维、没有位置、没有因果掩码）；每个缺陷都表现为某个 logit 在不应有反应的地方有反应，或在必须有反应的地方没有反应。修正之后，它唯一的注意力层就能学会反转任务。
#
# ## 参考文献
#
# - A. Vaswani 等. *Attention Is All You Need.* NeurIPS 2017.
#   [arXiv:1706.03762](https://arxiv.org/abs/1706.03762)
# - A. Radford, K. Narasimhan, T. Salimans, I. Sutskever. *Improving Language Understanding
#   by Generative Pre-Training.* OpenAI, 2018（仅解码器的 Transformer）。
# - R. Xiong 等. *On Layer Normalization in the Transformer Architecture.* ICML 2020（pre-LN 无需长时间预热即可训练）。[arXiv:2002.04745](https://arxiv.org/abs/2002.04745)
# - A. Haviv, O. Ram, O. Press, P. Izsak, O. Levy. *Transformer Language Models without
#   Positional Encodings Still Learn Positional Information.* Findings of EMNLP 2022.
#   [arXiv:2203.16634](https://arxiv.org/abs/2203.16634)
# - PyTorch 中 `torch.nn.MultiheadAttention` 的文档（`batch_first`、`attn_mask`）。

# %% [markdown]
# ## 动手试一试
#
# 在训练好的模型上做三个实验，请自己动手运行：打开笔记本（页面顶部的按钮），改变一个值，再次运行该单元格。构建过程按原样运行了每个单元格；输出就是它打印的结果。运行之前先做预测。
#
# **你自己的提示词。** 输入十个数字；模型会在分隔符之后作答。

# %%
MY_DIGITS = "3141592653"  # ten digits of your choice
assert len(MY_DIGITS) == LENGTH and MY_DIGITS.isdigit(), f"{LENGTH} digits"
prompt = torch.tensor([[*map(int, MY_DIGITS), lab.SEP]], device=DEVICE)
answer = "".join(str(int(t)) for t in lab.generate(model, prompt, LENGTH)[0])
verdict = "reversed" if answer == MY_DIGITS[::-1] else "not the reversal"
print(f"{MY_DIGITS} | {answer}  ({verdict})")

# %% [markdown]
# **与训练数据不同的提示词。** 每个训练提示词都是十个独立的随机数字，所以由同一个数字重复组成的提示词，或按顺序排列的一串数字，在训练提示词中很少见。模型还能反转它们吗？

# %%
for text in ("0000000000", "9999999999", "0123456789", "1111111112", "5050505050"):
    p = torch.tensor([[*map(int, text), lab.SEP]], device=DEVICE)
    out = "".join(str(int(t)) for t in lab.generate(model, p, LENGTH)[0])
    verdict = "reversed" if out == text[::-1] else "not the reversal"
    print(f"{text} | {out}  ({verdict})")

# %% [markdown]
# **哪个答案数字读取哪个提示词数字？** 每次改变提示词中的一个数字，看看哪些答案位置会改变。一个会反转的模型每次都必须恰好改变一个位置，即镜像位置。

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
