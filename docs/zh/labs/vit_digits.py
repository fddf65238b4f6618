# %% [markdown]
# # 15b. 实验：一个微型视觉 Transformer
#
# [第 15 章](../../chapters/15-vision-transformer/)用本课程自己的组件构建了视觉 Transformer。本实验训练一个这样的模型，它小到可以在构建本站期间用构建机器的 CPU 训练完成：数据是 scikit-learn 自带的 8 x 8 手写数字图像，切成 2 x 2 的图像块（patch）。下面的每个数字都由计算它的那个单元格打印出来。
#
# 计划如下：
#
# 1. 数据：scikit-learn 的灰度数字图像，一次性划分为训练集和测试集；
# 2. 一个来自 `snippets/vit.py` 的微型 `VisionTransformer`，用 AdamW 训练；
# 3. 它的训练曲线和测试准确率；
# 4. 类别词元（class token）关注什么：画在数字图像上，再用注意力展开（attention rollout）逐层追踪；以及位置嵌入学到了什么；
# 5. 作为对比，一个规模大致相同的小型 MLP 和一个小型 CNN，用同样的方式训练。
#
# 要自己运行，请下载笔记本或在 Colab 中打开它（页面顶部的按钮）；它的第一个单元格会在无法导入 `snippets` 的环境中安装本课程的代码。

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
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from snippets.measure import describe_steps, step_clock
from snippets.plotting import COLORS, figure, show_figure
from snippets.runtime import device, device_description, seed_everything
from snippets.vit import (
    VisionTransformer,
    ViTConfig,
    attention_rollout,
    count_parameters,
    weight_decay_groups,
)

# Every figure is shown by show_figure: an SVG for each of the site's palettes, with alt
# text and a caption.

# The models are tiny: on a CPU, one thread avoids the cost of synchronising several
# threads at every small operation, and keeps the time predictable on a shared machine.
torch.set_num_threads(1)
seed_everything(0)
DEVICE = device()
clock, CLOCK = step_clock()  # CPU time on the CPU; wall-clock time on a GPU
print(f"torch {torch.__version__} on {device_description()}")

# %% [markdown]
# ## 数据
#
# `load_digits` 返回 8 x 8 的图像，有 17 个灰度级（0 到 16）。我们留出其中的五分之一，并按类别分层划分，使每个数字在两部分中的占比相同；然后把像素缩放到 [0, 1]，并用训练集的均值和标准差进行标准化。使用 2 x 2 的图像块时，一幅图像就变成一个由 16 个词元组成的序列，外加类别词元。

# %%
images, labels = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(
    images, labels, test_size=0.2, stratify=labels, random_state=0
)


def as_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0  # (B, 1, 8, 8)


x_train, x_test = as_tensor(x_train), as_tensor(x_test)
mean, std = x_train.mean(), x_train.std()
x_train, x_test = ((x - mean) / std for x in (x_train, x_test))
y_train, y_test = torch.tensor(y_train), torch.tensor(y_test)
x_train, x_test, y_train, y_test = (
    t.to(DEVICE) for t in (x_train, x_test, y_train, y_test)
)
PATCH = 2
print(f"{len(x_train)} training and {len(x_test)} test images of 8 x 8 pixels")
print(f"{(8 // PATCH) ** 2} patches of {PATCH} x {PATCH} pixels per image")

fig, axes = figure(ncols=8, width=8, height=1.3)
for ax, img, label in zip(axes, x_train[:8].cpu(), y_train[:8].cpu(), strict=True):
    ax.imshow(img[0], cmap="gray_r")
    ax.set_xticks(np.arange(-0.5, 8, PATCH), labels=[])
    ax.set_yticks(np.arange(-0.5, 8, PATCH), labels=[])
    ax.tick_params(length=0)
    ax.grid(True, color=COLORS[0], linewidth=0.8)
    ax.set_title(str(int(label)))
side = 8 // PATCH  # patches per row and per column
show_figure(
    fig,
    alt=f"Eight handwritten digits, each 8 by 8 grey pixels, with grid lines cutting each "
    f"into {side} by {side} patches of {PATCH} by {PATCH} pixels; the label above each.",
    caption=f"The first eight training images, standardised, with labels "
    f"{', '.join(str(int(y)) for y in y_train[:8].tolist())}. The grid marks the "
    f"{side * side} patches that become the tokens.",
)

# %% [markdown]
# ## 模型
#
# 宽度 48，三个 pre-LN 编码器层，每层四个头，MLP 宽度为 96，dropout 为 0.1：训练集像上面这样小，这种规模的模型如果不加一些正则化，很快就会过拟合。配置和参数量如下：

# %%
config = ViTConfig(
    image_size=8,
    patch_size=PATCH,
    in_channels=1,
    num_classes=10,
    d_model=48,
    depth=3,
    num_heads=4,
    mlp_dim=96,
    dropout=0.1,
)
seed_everything(0)
vit = VisionTransformer(config).to(DEVICE)
initial_pos = vit.pos_embed[0, 1:].detach().cpu().clone()  # for a comparison at the end
print(config)
print(f"{count_parameters(vit):,} parameters")

# %% [markdown]
# ## 训练
#
# 本实验的每个模型都由同一个函数训练，以保证最后的比较是公平的：相同顺序的相同批量、AdamW，以及单周期（one-cycle）学习率调度（学习率在前 15% 的步数中上升，然后沿余弦曲线衰减）。每一轮（epoch）结束后，它记录平均训练损失和测试准确率。
#
# 权重衰减（0.05）只作用于权重矩阵和卷积核。`snippets/vit.py` 中的 `weight_decay_groups` 豁免了所有偏置和 LayerNorm 参数，以及 ViT 的位置嵌入和类别词元，这与 ViT 训练代码的做法一致（timm 的 `VisionTransformer.no_weight_decay` 列出的也是这两者）。权重衰减把参数拉向零，这对权重矩阵是一个合理的先验，但对位置嵌入则不然，因为位置嵌入的作用恰恰是彼此不同。

# %%
EPOCHS, BATCH, LR = 25, 128, 5e-3


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=-1) == y).float().mean().item()


def train(model: nn.Module) -> dict[str, list[float] | float]:
    """Train `model` on (x_train, y_train); the history of loss and test accuracy."""
    order = torch.Generator().manual_seed(0)  # the same batches for every model
    opt = torch.optim.AdamW(weight_decay_groups(model, 0.05), lr=LR)
    steps_per_epoch = -(-len(x_train) // BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=LR, total_steps=EPOCHS * steps_per_epoch, pct_start=0.15
    )
    history: dict[str, list[float] | float] = {
        "loss": [],
        "test_acc": [],
        "epoch_s": [],
    }
    start = time.perf_counter()
    for _ in range(EPOCHS):
        tick = clock()
        model.train()
        losses = []
        for idx in torch.randperm(len(x_train), generator=order).split(BATCH):
            idx = idx.to(DEVICE)
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            losses.append(loss.item())
        history["epoch_s"].append(clock() - tick)  # training, not testing
        history["loss"].append(sum(losses) / len(losses))
        history["test_acc"].append(accuracy(model, x_test, y_test))
    history["seconds"] = time.perf_counter() - start
    return history


vit_history = train(vit)
vit_acc = vit_history["test_acc"][-1]
print(f"trained on {DEVICE}: {describe_steps(vit_history['epoch_s'], 'epoch', CLOCK)}")
print(f"test accuracy: {vit_acc:.1%} ({round(vit_acc * len(y_test))} of {len(y_test)})")
assert vit_acc >= 0.95, "the tiny ViT should reach 95% test accuracy"
# The lab's budget, on the median epoch (a moment of load on the machine does not move it):
budget = statistics.median(vit_history["epoch_s"]) * EPOCHS
assert budget < 60, f"the lab's budget: training in under a minute, not {budget:.0f} s"

# %% [markdown]
# 最后一行是一个检查：如果对课程代码的某次修改使这个模型达不到 95%，本站就无法构建。

# %%
fig, (ax_loss, ax_acc) = figure(ncols=2, width=8, height=3)
epochs = range(1, EPOCHS + 1)
ax_loss.plot(epochs, vit_history["loss"], color=COLORS[0])
ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="loss")
ax_acc.plot(epochs, vit_history["test_acc"], color=COLORS[1])
ax_acc.axhline(0.95, color=COLORS[3], linestyle=":", label="95%")
ax_acc.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1), title="test accuracy")
ax_acc.legend(loc="lower right")
show_figure(
    fig,
    alt="Two line plots against the epoch. Left: the mean training loss, on a logarithmic "
    "axis. Right: the test accuracy on an axis from 0 to 1, with a dotted horizontal line "
    f"at 95%; it starts at {vit_history['test_acc'][0]:.0%} after the first epoch and ends "
    f"at {vit_acc:.0%}.",
    caption=f"Training the tiny ViT for {EPOCHS} epochs: mean training loss per epoch (left, "
    f"log scale; last {vit_history['loss'][-1]:.3f}) and test accuracy after each epoch "
    f"(right; last {vit_acc:.1%}). The dotted line is the 95% that the build requires.",
)

# %% [markdown]
# ## 类别词元关注什么
#
# 类别词元是分类头读取的唯一词元，因此它在最后一层的注意力显示了决策依赖于哪些图像块词元。`VisionTransformer.cls_attention()` 在一次前向传播之后，返回每一层从类别词元到 16 个图像块的权重；我们对最后一层的四个头取平均，把得到的 4 x 4 结果画在每个数字的下方，并在上面叠加数字的轮廓。一行中的权重在各图像块上之和不为一：其余的权重落在类别词元自身上。

# %%
vit.eval()
shown = x_test[:10]
with torch.no_grad():
    predicted = vit(shown).argmax(dim=-1)
attention = vit.cls_attention()[-1].mean(dim=1)  # last layer, mean of heads: (10, 16)
grid = attention.view(-1, 8 // PATCH, 8 // PATCH).cpu()

fig, axes = figure(ncols=10, nrows=2, width=10, height=2.4)
for i in range(10):
    digit = shown[i, 0].cpu()
    axes[0, i].imshow(digit, cmap="gray_r")
    axes[0, i].set_title(f"{int(predicted[i])}", fontsize=9)
    # the 4 x 4 weights stretched over the 8 x 8 pixels, the digit's outline on top
    axes[1, i].imshow(grid[i], cmap="magma", extent=(-0.5, 7.5, 7.5, -0.5))
    axes[1, i].contour(
        digit, levels=[digit.mean().item()], colors=COLORS[5], linestyles="solid"
    )
    for ax in axes[:, i]:
        ax.set_axis_off()
fig.suptitle(
    "test digits (predicted class above) and the class token's attention below"
)
show_figure(
    fig,
    alt=f"Two rows of ten small images. Top: ten test digits, the predicted class above "
    f"each. Bottom: under each digit, a {side} by {side} heat map of the class token's "
    "attention to the patches, with the digit's outline drawn over it.",
    caption=f"The class token's attention to the {side * side} patches in the last layer, "
    f"mean of the {config.num_heads} heads, for the first ten test images; each map has its "
    f"own colour scale, dark for low weights and bright for high. Predicted classes: "
    f"{', '.join(str(int(c)) for c in predicted.tolist())}; true classes: "
    f"{', '.join(str(int(c)) for c in y_test[:10].tolist())}.",
)
print(
    "largest patch weight in each image:",
    [f"{w:.2f}" for w in attention.max(dim=-1).values.tolist()],
)

# %% [markdown]
# 注意力图只是线索，而不是解释：类别词元还会通过更早的层读取图像块，而在那些层中，每个图像块词元都已经混入了其他图像块的信息。在所有测试图像上，每一层中类别词元对每个图像块的注意力的平均值，显示了它平均而言在看哪里（从左到右：第 1 层到第 3 层）：

# %%
with torch.no_grad():
    vit(x_test)
mean_maps = vit.cls_attention().mean(dim=(1, 2)).view(-1, 8 // PATCH, 8 // PATCH).cpu()
fig, axes = figure(ncols=config.depth, width=6, height=2.2)
for layer, ax in enumerate(axes):
    image = ax.imshow(mean_maps[layer], cmap="magma", vmin=0)
    ax.set_title(f"layer {layer + 1}")
    ax.set_axis_off()
    fig.colorbar(image, ax=ax, shrink=0.8)
spread = (mean_maps.amax(dim=(1, 2)) / mean_maps.amin(dim=(1, 2))).tolist()
show_figure(
    fig,
    alt=f"{config.depth} heat maps of {side} by {side} cells, one per layer, each with its "
    "own colour bar starting at 0: the class token's attention to each patch, averaged "
    f"over the heads and over the {len(x_test)} test images.",
    caption="The class token's mean attention to each patch, layers 1 to "
    f"{config.depth} from left to right, over all test images. Largest mean weight over "
    f"smallest, layer by layer: {', '.join(f'{r:.1f}' for r in spread)}.",
)

# %% [markdown]
# ## 注意力展开
#
# 在这些图中，最后一层的图是最难解读的：到那时，每个图像块词元都已经携带了多个图像块的混合信息，因此落在某个图像块*词元*上的权重并不等于落在该图像块像素上的权重。*注意力展开*（attention rollout；Abnar 和 Zuidema，2020）则沿着各层把注意力向回追溯。在每一层中，它对各个头取平均，为残差连接加上单位矩阵（一个词元也会保留它原有的内容），并对各行重新归一化；然后把各层相乘，*R* = *A*<sub>3</sub>*A*<sub>2</sub>*A*<sub>1</sub>。*R* 的第 0 行估计了类别词元的最终向量中有多少来自每个输入图像块。`snippets/vit.py` 中的 `attention_rollout` 实现了这一计算；测试套件在两层的情形下，把它与逐个元素算出的结果进行了核对。
#
# 它是一种已明确指出盲点的估计：它忽略了值、MLP 和 LayerNorm，而注意力与残差之间的平均分配是一个假设。下面的两种图都在 16 个图像块上做了归一化，以便相互比较；每个图像块都是 1/16 的图就是平坦的。

# %%
with torch.no_grad():
    vit(x_test)  # every test image; the figure shows the first ten, as above
rollout = attention_rollout([layer.attn_weights for layer in vit.encoder.layers])
maps = {
    "last layer": vit.cls_attention()[-1].mean(dim=1),  # (360, 16), as above
    "rollout": rollout[:, 0, 1:],  # (360, 16): the class token's row, over the patches
}
maps = {name: (m / m.sum(dim=-1, keepdim=True)).cpu() for name, m in maps.items()}

fig, axes = figure(ncols=10, nrows=3, width=10, height=3.4)
for i in range(10):
    digit = shown[i, 0].cpu()
    axes[0, i].imshow(digit, cmap="gray_r")
    for row, m in enumerate(maps.values(), start=1):
        axes[row, i].imshow(
            m[i].view(8 // PATCH, 8 // PATCH),
            cmap="magma",
            vmin=0,
            extent=(-0.5, 7.5, 7.5, -0.5),
        )
        axes[row, i].contour(
            digit, levels=[digit.mean().item()], colors=COLORS[5], linestyles="solid"
        )
    for ax in axes[:, i]:
        ax.set_axis_off()
fig.suptitle("test digits; the class token's last-layer attention; attention rollout")

# How much ink each patch holds: its mean grey level, back on the 0..1 scale.
ink = F.avg_pool2d(x_test * std + mean, PATCH).flatten(1).cpu()  # (360, 16)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row of a with the same row of b."""
    a, b = a - a.mean(dim=-1, keepdim=True), b - b.mean(dim=-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


follows, peaks = {}, {}
for name, m in maps.items():
    follows[name] = correlation(m, ink).mean().item()
    peaks[name] = (m.max(dim=-1).values * m.size(-1)).mean().item()
    print(
        f"{name}: correlation with the ink per patch {follows[name]:+.2f}, "
        f"largest patch share {peaks[name]:.2f} times a flat 1/16 (means over the test "
        "images)"
    )
if follows["rollout"] > follows["last layer"]:
    print("rollout follows the strokes more closely than the last layer's attention")
else:
    print("rollout does not follow the strokes more closely than the last layer")
show_figure(
    fig,
    alt="Three rows of ten small images. Top: the ten test digits. Middle: under each, a "
    f"{side} by {side} heat map of the class token's last-layer attention. Bottom: the "
    "attention rollout of the same image. Each map has its own colour scale from 0, and "
    "the digit's outline is drawn over it.",
    caption="The class token's last-layer attention (middle row) and attention rollout "
    f"(bottom row) for the first ten test images, each normalised over the {side * side} "
    f"patches. Over all {len(x_test)} test images, the correlation with the ink per patch "
    f"is {follows['last layer']:+.2f} for the last layer and {follows['rollout']:+.2f} for "
    f"rollout; the largest patch share is {peaks['last layer']:.2f} and "
    f"{peaks['rollout']:.2f} times a flat 1/{side * side}.",
)

# %% [markdown]
# 相关系数衡量的是一张图是否把权重放在数字笔画所在的位置；最大份额衡量的是它是否有明显的峰值。注意力展开不一定会让图更尖锐：乘积中的每个因子都会把一个词元的份额分散到该层所关注的那些词元上，因此更早各层的混合也被平均了进来（单位矩阵的作用则相反，它把每个份额的一部分保留在原处）。它能做到的是把权重放到正确的图像块上：更早的层把一些内容移入了类别词元最后读取的那些词元，而它把这些内容记到各个图像块名下。

# %% [markdown]
# ## 位置嵌入学到了什么
#
# 模型一开始的位置嵌入是随机的，也没有任何东西告诉它哪些图像块彼此相邻。如果训练让它学到了图像的二维布局，那么相邻图像块的嵌入应该比相距较远的图像块的嵌入更相似；ViT 论文（图 7 中间）显示，ViT-L/32 在大型数据集上预训练之后清楚地呈现出这一点。下面每张小图对应一个图像块位置；它的 4 x 4 个格子是与 16 个位置的余弦相似度。对于这个由 8 x 8 图像构成的小数据集，促使模型找出布局的压力要小得多，因此在从图中读出任何结论之前，该单元格先比较这两个平均值，并给出训练起点处随机嵌入的同样两个平均值。

# %%
# (16, d): the position embeddings of the patches, without the class token's
pos = vit.pos_embed[0, 1:].detach().cpu()
similarity = F.cosine_similarity(pos[:, None], pos[None, :], dim=-1)  # (16, 16)
side = 8 // PATCH
fig, axes = figure(ncols=side, nrows=side, width=4.2, height=4.2)
for index, ax in enumerate(axes.flat):
    ax.imshow(similarity[index].view(side, side), cmap="viridis", vmin=-1, vmax=1)
    ax.set_axis_off()
fig.suptitle("cosine similarity of position embeddings")
row, col = np.divmod(np.arange(side * side), side)
distance = np.hypot(row[:, None] - row[None, :], col[:, None] - col[None, :])
near, far = similarity.numpy()[distance == 1], similarity.numpy()[distance >= 2]
print(f"mean similarity of adjacent patches: {near.mean():+.2f}")
print(f"mean similarity of patches two or more apart: {far.mean():+.2f}")
show_figure(
    fig,
    alt=f"A {side} by {side} arrangement of small {side} by {side} heat maps, one per patch "
    "position in reading order. In each, a cell shows the cosine similarity between that "
    "position's embedding and the embedding of the position where the cell sits, on a "
    "colour scale from -1 to 1; each small map is brightest at its own position.",
    caption="Cosine similarity of the learned position embeddings after training: small "
    "map i, cell j, compares positions i and j. Mean similarity of adjacent positions: "
    f"{near.mean():+.2f}; of positions two or more apart: {far.mean():+.2f}.",
)
before = F.cosine_similarity(initial_pos[:, None], initial_pos[None, :], dim=-1).numpy()
steps = EPOCHS * -(-len(x_train) // BATCH)
print(
    f"{steps} optimiser steps changed the {side * side} embeddings of width {pos.size(1)}"
)
print(
    f"before training: {before[distance == 1].mean():+.2f} (adjacent), "
    f"{before[distance >= 2].mean():+.2f} (two or more apart)"
)
if near.mean() > far.mean():
    print("adjacent patches are more alike on average: some of the layout was learned")
else:
    print("adjacent patches are not more alike on average: no 2-D layout was learned")
# Chapter 15 says that this tiny model does not reproduce the paper's finding; if a
# change ever made it learn the layout, the site would not build until the text is fixed.
assert near.mean() <= far.mean(), "chapter 15 says the tiny ViT learns no 2-D layout"

# %% [markdown]
# 在这个规模下，论文的发现没有重现。本实验没有检验其原因，但与论文设置之间的两个差异是可能的解释。其一，训练很短：只有上面打印出的几百步优化器迭代，而论文在数百万幅图像上进行预训练。其二，数字图像都经过居中和缩放，因此每个位置看到的都是它自己的典型内容：没有任何东西会在不同位置之间移动，而可能出现在任何地方的物体会促使模型以相似的方式对待相邻的位置。（全局注意力并不是差异所在：在论文的模型中，同样是每个词元在每一层中都关注所有其他词元。）与上面打印出的随机起点相比，这里相邻的图像块最终甚至比相距较远的图像块*更不*相似；一种可能的解读是：相邻图像块的像素往往相似，它们恰恰是模型最需要区分开的图像块。论文本身也指出，它所展示的相似度模式取决于训练的超参数（见其附录 D.4）。

# %% [markdown]
# ## 与 MLP 和 CNN 的比较
#
# 对于 8 x 8 的图像，注意力是合适的工具吗？这里有两个参数量大致相同、由同一个函数训练的基线：一个作用于 64 个像素的 MLP，以及一个小型 CNN，它的卷积内置了 ViT 必须自己学到的东西，即邻近的像素属于一体。

# %%
mlp = nn.Sequential(
    nn.Flatten(),
    nn.Linear(64, 256),
    nn.GELU(),
    nn.Dropout(0.1),
    nn.Linear(256, 128),
    nn.GELU(),
    nn.Dropout(0.1),
    nn.Linear(128, 10),
)
cnn = nn.Sequential(
    nn.Conv2d(1, 16, kernel_size=3, padding=1),
    nn.GELU(),
    nn.Conv2d(16, 32, kernel_size=3, padding=1),
    nn.GELU(),
    nn.MaxPool2d(2),  # (32, 4, 4)
    nn.Flatten(),
    nn.Dropout(0.1),
    nn.Linear(32 * 4 * 4, 96),
    nn.GELU(),
    nn.Linear(96, 10),
)
results = {"tiny ViT": (vit, vit_history)}
for name, model in (("MLP", mlp), ("CNN", cnn)):
    seed_everything(0)
    for module in model.modules():  # the same initial weights whenever the cell runs
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    model.to(DEVICE)
    results[name] = (model, train(model))

rows = [
    f"| model | parameters | test accuracy | ms of {CLOCK} per epoch ({DEVICE.type}), "
    "median [middle half] |"
]
rows.append("| --- | ---: | ---: | ---: |")
for name, (model, history) in results.items():
    q1, q2, q3 = (
        statistics.quantiles(history["epoch_s"], n=4)[i] * 1e3 for i in range(3)
    )
    rows.append(
        f"| {name} | {count_parameters(model):,} | {history['test_acc'][-1]:.1%} "
        f"| {q2:.0f} [{q1:.0f}–{q3:.0f}] |"
    )
display(Markdown("\n".join(rows)))

fig, ax = figure(width=6, height=3)
for (name, (_, history)), colour in zip(results.items(), COLORS, strict=False):
    ax.plot(epochs, history["test_acc"], color=colour, label=name)
ax.set(
    xlabel="epoch",
    ylabel="test accuracy",
    ylim=(0, 1),
    title="same training, three models",
)
ax.legend(loc="lower right")
final = {name: history["test_acc"][-1] for name, (_, history) in results.items()}
show_figure(
    fig,
    alt=f"{len(results)} lines of test accuracy against the epoch, 1 to {EPOCHS}, one per "
    f"model ({', '.join(results)}), on a vertical axis from 0 to 1.",
    caption="Test accuracy after each epoch of the three models, trained by the same "
    "function on the same batches in the same order. After the last epoch: "
    f"{'; '.join(f'{name} {acc:.1%}' for name, acc in final.items())}.",
)

# %% [markdown]
# 请按构建过程打印的原样来解读这张表。三个模型是一个接一个训练的，而不是以交替轮次进行的，因此它们的时间描述的是每个模型在这里的开销，并不能用来给它们排名（第 14 章解释了本课程如何比较速度）。在这么小的数据集上，这个比较对大图像几乎说明不了什么：ViT 论文的观点是，有了足够的数据（它在 ImageNet-21k 的 1400 万幅图像和 JFT-300M 的 3 亿幅图像上预训练），缺少归纳偏置就不再要紧，而在小数据集上，卷积具有优势。本实验所展示的东西范围更窄，但可以验证：第一部分的编码器在输入图像块而不是单词时，能够学会对图像进行分类，并且其类别词元的注意力可以读出来，画在输入之上。

# %% [markdown]
# ## 动手试一试
#
# 在训练好的模型上做三个实验，请自己运行：打开笔记本（页面顶部的按钮），修改一个值，再次运行该单元格。构建过程按原样运行了每个单元格；这里的输出就是它打印的内容。运行之前请先做预测。
#
# **画一个数字。** `DRAWING` 的每一行是由 8 个像素组成的一行：`#` 表示墨迹，`.` 表示纸面。该单元格对画出的图像进行缩放和标准化，方式与训练图像完全相同，并打印出 ViT 认为最可能的三个类别。

# %%
DRAWING = """
..####..
.#....#.
......#.
.....#..
....#...
...#....
..#.....
.######.
"""
rows = DRAWING.split()
assert len(rows) == 8 and all(len(r) == 8 for r in rows), "8 rows of 8 pixels"
ink = torch.tensor([[16.0 if c == "#" else 0.0 for c in r] for r in rows])
drawn = ((as_tensor(ink.numpy()) - mean) / std).to(DEVICE)  # (1, 1, 8, 8)
vit.eval()
with torch.no_grad():
    probs = vit(drawn).softmax(dim=-1)[0]
top = probs.topk(3)
print(", ".join(f"{int(c)}: {p:.1%}" for p, c in zip(*top, strict=True)))

# %% [markdown]
# **把图像移动一个像素。** 卷积在每个位置应用相同的滤波器；而 ViT 的图像块网格不会随图像移动，它的位置嵌入也是针对一种摆放位置学到的。当每幅测试图像都向右移动一个像素时（最后一列绕回到第一列，而数字在那里几乎没有墨迹），哪个模型的准确率下降最多？

# %%
moved = x_test.roll(1, dims=-1)
for name, (trained, _) in results.items():
    before, after = accuracy(trained, x_test, y_test), accuracy(trained, moved, y_test)
    print(f"{name:>9}: {before:.1%} -> {after:.1%}")

# %% [markdown]
# **遮住一个图像块。** 把每幅测试图像的 16 个图像块之一替换为纸面，再次测量 ViT 的准确率：下面的表格中每个图像块对应一个格子，排列方式与图像块在图像中的位置相同。这个模型需要 8 × 8 数字图像的哪一部分？

# %%
paper = (0.0 - mean) / std  # a blank pixel, standardised
table = torch.zeros(side, side)
for r in range(side):
    for c in range(side):
        hidden = x_test.clone()
        hidden[:, :, r * PATCH : (r + 1) * PATCH, c * PATCH : (c + 1) * PATCH] = paper
        table[r, c] = accuracy(vit, hidden, y_test)
print(f"accuracy with no patch hidden: {accuracy(vit, x_test, y_test):.1%}")
for row in table:
    print("  ".join(f"{a:.0%}".rjust(4) for a in row.tolist()))
