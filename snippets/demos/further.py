"""Chapter 16, further on: the skewing trick, learned deformable offsets, and a selective SSM."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from snippets.attention import scaled_dot_product_attention
from snippets.bilingual import same, say
from snippets.further import (
    DeformableAttention1d,
    SelectiveSSM,
    linear_sample,
    relative_attention,
    relative_logits_direct,
    relative_logits_skewed,
    scan_parallel,
    scan_recurrent,
    skew,
    ssm_matrix,
)
from snippets.masks import causal_mask
from snippets.measure import (
    Timings,
    check_scaling,
    compare,
    cpu_threads,
    fault_evidence,
)
from snippets.plotting import COLORS, Figure, figure, markdown_table
from snippets.runtime import device, measured

# ---------------------------------------------------------------------------------------------
# Relative position attention
# ---------------------------------------------------------------------------------------------


def _err(x: float) -> str:
    """A largest absolute difference for the page: exact zeros are said as such."""
    return say("0 (bit for bit)", "0（逐位相同）") if x == 0 else f"{x:.1e}"


def _annotated(ax, grid: np.ndarray, title: str, xlabel: str, ylabel: str) -> None:
    """Draw an integer grid with its values written in the cells; NaN cells stay empty."""
    # blank cells: masked explicitly, over finite data
    shown = np.ma.masked_array(np.nan_to_num(grid), mask=~np.isfinite(grid))
    ax.imshow(shown, cmap="viridis", vmin=-4, vmax=0)
    for (r, c), value in np.ndenumerate(grid):
        if not np.isnan(value):
            colour = "#000000" if value > -2.5 else "#ffffff"
            ax.text(c, r, f"{value:.0f}", ha="center", va="center", color=colour)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.set_xticks(range(grid.shape[1]))
    ax.set_yticks(range(grid.shape[0]))
    ax.grid(False)


def skew_figure() -> Figure:
    """The skewing trick on distances themselves: q = 1 and e_r = r - (n - 1)."""
    n = 5
    q = torch.ones(n, 1)
    e_rel = torch.arange(-(n - 1), 1.0).unsqueeze(-1)  # (n, 1): distances -4 .. 0
    by_distance = (q @ e_rel.T).numpy()  # (n, n), entry (i, r) = r - (n - 1)
    # the same steps as `skew`, padding with NaN so that the padding shows as empty cells
    padded = F.pad(q @ e_rel.T, (1, 0), value=float("nan")).reshape(n + 1, n)
    padded = padded.numpy().copy()
    padded[0] = np.nan  # the row that is dropped
    result = skew(q @ e_rel.T).numpy().copy()
    result[~causal_mask(n).numpy()] = np.nan  # the future: masked
    fig, axes = figure(ncols=3, width=9.6, height=3.4)
    query = say("query i", "查询 i")
    _annotated(
        axes[0],
        by_distance,
        r"1. $Q E_r^\top$",
        say("column r (distance r - 4)", "第 r 列（距离 r - 4）"),
        query,
    )
    _annotated(
        axes[1],
        padded,
        say("2. pad, read as (n+1) × n", "2. 填充，按 (n+1) × n 读取"),
        "",
        say("row", "行"),
    )
    axes[1].axhline(0.5, color=COLORS[3], linewidth=2)
    dropped = say("dropped", "丢弃")
    axes[1].text(n / 2 - 0.5, 0, dropped, ha="center", va="center", color=COLORS[3])
    _annotated(
        axes[2],
        result,
        say(
            r"3. $S^{rel}$: entry (i, j) = j - i",
            r"3. $S^{rel}$：元素 $(i, j) = j - i$",
        ),
        say("key j", "键 j"),
        query,
    )
    return fig


def relative_checks() -> dict[str, str]:
    """Skewed vs gathered logits, and relative attention vs PyTorch with an additive bias."""
    g = torch.Generator().manual_seed(3)
    n, d = 64, 16
    q, k, v = (torch.randn(2, 4, n, d, generator=g) for _ in range(3))
    e_rel = torch.randn(n, d, generator=g)
    direct = relative_logits_direct(q, e_rel)
    skewed = relative_logits_skewed(q, e_rel)
    out, _ = relative_attention(q, k, v, e_rel)
    future = ~causal_mask(n)
    bias = (direct / d**0.5).masked_fill(future, float("-inf"))
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    return {
        "n": str(n),
        "d": str(d),
        "skew_err": _err((direct - skewed).abs().max().item()),
        "attn_err": _err((out - expected).abs().max().item()),
    }


def relative_memory_table() -> str:
    """Numbers held by the extra intermediate of each way of computing S_rel, float32."""
    d = 64
    rows = []
    for n in (512, 1024, 2048):
        direct, skewed = n * n * d, n * (n + 1)
        direct_mib, skewed_mib = (
            f"{4 * direct / 2**20:,.0f} MiB",
            f"{4 * skewed / 2**20:,.1f} MiB",
        )
        rows.append(
            [
                f"{n:,}",
                say(f"{direct:,} ({direct_mib})", f"{direct:,}（{direct_mib}）"),
                say(f"{skewed:,} ({skewed_mib})", f"{skewed:,}（{skewed_mib}）"),
                f"{direct / skewed:.0f}",
            ]
        )
    return markdown_table(
        [
            "$n$",
            say(
                f"gathered $e_{{j-i}}$, $n^2 d_k$ ($d_k = {d}$)",
                f"收集得到的 $e_{{j-i}}$，$n^2 d_k$（$d_k = {d}$）",
            ),
            say("skewing, $n(n+1)$", "倾斜技巧，$n(n+1)$"),
            say("ratio", "比值"),
        ],
        rows,
        "rrrr",
    )


# ---------------------------------------------------------------------------------------------
# Deformable attention
# ---------------------------------------------------------------------------------------------

# The toy task: output the signal 5.5 positions to the right of the reference.
_SHIFT = 5.5
_N_SIGNAL = 64


def _smooth_signals(batch: int, g: torch.Generator) -> torch.Tensor:
    """Random smooth 1-D signals (batch, _N_SIGNAL, 1): white noise blurred by a Gaussian."""
    noise = torch.randn(batch, 1, _N_SIGNAL + 24, generator=g)
    x = torch.arange(-12, 13.0)
    kernel = torch.exp(-(x**2) / (2 * 3.0**2))
    return F.conv1d(noise, (kernel / kernel.norm()).view(1, 1, -1)).transpose(1, 2)


@functools.cache
def _train_deformable() -> tuple[
    DeformableAttention1d, list[torch.Tensor], list[float]
]:
    """Train one head with 4 points to output the signal _SHIFT positions right of its reference."""
    g = torch.Generator().manual_seed(4)
    torch.manual_seed(4)
    model = DeformableAttention1d(d_model=1, num_heads=1, num_points=4)
    opt = torch.optim.Adam(model.parameters(), lr=0.08)
    reference = torch.arange(8, _N_SIGNAL - 16.0).expand(16, -1)  # (16, n_q)
    query = torch.ones(16, reference.size(1), 1)  # the same question everywhere
    history, losses = [], []
    with cpu_threads(1):
        for _ in range(120):
            v = _smooth_signals(16, g)
            target = linear_sample(v, reference + _SHIFT)
            out, positions, _ = model(query, reference, v)
            loss = F.mse_loss(out, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append((positions[0, 0, 0] - reference[0, 0]).detach())
            losses.append(loss.item())
    return model, history, losses


def _probe(model: DeformableAttention1d) -> tuple[torch.Tensor, ...]:
    """One fresh signal read by the trained head at reference 24: the signal (1, n, 1), the
    reference (1, 1), and where (1, 1, H, K) and how much (1, 1, H, K) the head reads."""
    v = _smooth_signals(1, torch.Generator().manual_seed(5))
    reference = torch.tensor([[24.0]])
    with torch.no_grad():  # the query is all ones, as in training
        _, positions, weights = model(torch.ones(1, 1, 1), reference, v)
    return v, reference, positions, weights


def deformable_figure() -> Figure:
    """Learned offsets move towards the position the task needs; weights pick the best."""
    model, history, _ = _train_deformable()
    fig, axes = figure(ncols=2, width=9.6, height=3.4)
    offsets = torch.stack(history).numpy()  # (steps, K)
    for k in range(offsets.shape[1]):
        point = say(f"point {k + 1}", f"点 {k + 1}")
        axes[0].plot(offsets[:, k], color=COLORS[k], label=point)
    needed = say("needed offset", "所需偏移量")
    axes[0].axhline(_SHIFT, color=COLORS[3], linestyle="--", label=needed)
    axes[0].set(
        xlabel=say("training step", "训练步数"),
        ylabel=say("offset from reference", "相对参考点的偏移量"),
        title=say("offsets", "偏移量"),
    )
    below = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.22), "fontsize": 8}
    axes[0].legend(ncols=3, **below)  # under the panel: inside, it covers a curve
    v, ref, positions, weights = _probe(model)
    axes[1].plot(
        v[0, :, 0].numpy(),
        "o-",
        color=COLORS[5],
        markersize=3,
        label=say("signal", "信号"),
    )
    axes[1].axvline(
        ref.item(), color=COLORS[1], linestyle=":", label=say("reference", "参考点")
    )
    axes[1].axvline(
        ref.item() + _SHIFT,
        color=COLORS[3],
        linestyle="--",
        label=say("target", "目标"),
    )
    pos, w = positions[0, 0, 0].numpy(), weights[0, 0, 0].numpy()
    sampled = linear_sample(v, positions[0, 0]).detach()[0, :, 0].numpy()
    axes[1].scatter(
        pos,
        sampled,
        s=300 * w + 10,
        color=COLORS[2],
        zorder=3,
        label=say("reads (size = weight)", "读取（大小 = 权重）"),
    )
    axes[1].set(
        xlim=(14, 38),
        xlabel=say("position", "位置"),
        title=say("one query after training", "训练后的一个查询"),
    )
    axes[1].legend(ncols=2, **below)  # inside, it crosses the vertical lines
    return fig


def deformable_numbers() -> dict[str, str]:
    """The trained head's read positions and weights, from a forward pass as it is now."""
    model, _, losses = _train_deformable()
    _, reference, positions, weights = _probe(model)
    offsets, w = positions[0, 0, 0] - reference[0, 0], weights[0, 0, 0]  # (K,), (K,)
    top = int(w.argmax())
    return {
        "first_loss": f"{losses[0]:.2f}",
        "last_loss": f"{sum(losses[-10:]) / 10:.1e}",
        "top_offset": f"{offsets[top].item():.2f}",
        "top_weight": f"{w[top].item():.2f}",
        "steps": str(len(losses)),
        "shift": f"{_SHIFT:g}",
        "reference": f"{reference.item():g}",
        "target": f"{reference.item() + _SHIFT:g}",
    }


# ---------------------------------------------------------------------------------------------
# Selective state-space model
# ---------------------------------------------------------------------------------------------


def ssm_checks() -> dict[str, str]:
    """The loop, the parallel scan and the matrix form of one random selective SSM agree."""
    g = torch.Generator().manual_seed(6)
    torch.manual_seed(6)
    model = SelectiveSSM(d_model=8, d_state=4).double()
    x = torch.randn(2, 50, 8, generator=g, dtype=torch.float64)
    with torch.no_grad():
        loop = model(x, scan=scan_recurrent)
        parallel = model(x, scan=scan_parallel)
        m = ssm_matrix(*model.parts(x))  # (B, D, n, n)
        matrix = torch.einsum("bdts,bsd->btd", m, x)
    return {
        "n": "50",
        "steps": str(int(np.ceil(np.log2(50)))),
        "parallel_err": _err((loop - parallel).abs().max().item()),
        "matrix_err": _err((loop - matrix).abs().max().item()),
    }


def ssm_matrix_figure() -> Figure:
    """The implicit attention matrix of a one-channel SSM, without and with selection."""
    n = 48
    A = torch.tensor([[-1.0]])  # (D, N) = (1, 1)
    ones = torch.ones(1, n, 1)
    steady = torch.full((1, n, 1), 0.15)
    selective = steady.clone()
    selective[0, [12, 30], 0] = 4.0  # two tokens with a large step: a ~ exp(-4), reset
    fig, axes = figure(ncols=2, width=8.4, height=3.8)
    for ax, delta, title in (
        (
            axes[0],
            steady,
            say(
                r"constant $\Delta = 0.15$: a fixed decay",
                r"$\Delta = 0.15$ 恒定：固定的衰减",
            ),
        ),
        (
            axes[1],
            selective,
            say(
                r"$\Delta = 4$ at tokens 12 and 30: resets",
                r"词元 12 和 30 处 $\Delta = 4$：重置",
            ),
        ),
    ):
        m = ssm_matrix(delta, A, ones, ones)[0, 0].numpy()  # (n, n)
        shown = np.ma.masked_where(~causal_mask(n).numpy(), m)  # the future: blank
        image = ax.imshow(shown, cmap="viridis", vmin=0, vmax=0.3)
        ax.set(
            title=title,
            xlabel=say("input token s", "输入词元 s"),
            ylabel=say("output token t", "输出词元 t"),
        )
        ax.grid(False)
    clipped = say("M[t, s] (clipped at 0.3)", "M[t, s]（截断于 0.3）")
    fig.colorbar(image, ax=axes, shrink=0.8, label=clipped)
    return fig


_COST_LENGTHS = [64, 128, 256, 512, 1024, 2048]
_COST_ROUNDS = 8
# channels and state size of the SSM; head width of attention
_COST_D, _COST_STATE = 16, 16
_SSM = same("SSM")  # the name, as Chinese writing keeps it too
_COST_LABELS = {
    "loop": _SSM + say(", recurrent loop", "，循环"),
    "scan": _SSM + say(", parallel scan", "，并行扫描"),
    "attn": say("softmax attention (ours)", "softmax 注意力（我们的实现）"),
    "fused": say(
        "softmax attention, PyTorch fused", "softmax 注意力，PyTorch 融合函数"
    ),
}


def _count(key: str, n: int) -> float:
    """What each is predicted to cost: n sequential steps for the loop (each a fixed-cost
    step on a D x N state), n log2 n state updates for the scan, 2 n^2 d for attention."""
    if key == "loop":
        return n
    if key == "scan":
        return n * math.log2(n) * _COST_D * _COST_STATE
    return 2 * n * n * _COST_D


@functools.cache
def _cost() -> dict[int, Timings]:
    """n -> the four calls timed together in interleaved rounds, on the course's device."""
    dev = device()
    g = torch.Generator().manual_seed(7)
    out = {}
    for n in _COST_LENGTHS:
        a = torch.rand(1, n, _COST_D, _COST_STATE, generator=g).to(dev)
        b = torch.randn(1, n, _COST_D, _COST_STATE, generator=g).to(dev)
        q, k, v = (torch.randn(1, n, _COST_D, generator=g).to(dev) for _ in range(3))
        calls = {
            "loop": lambda a=a, b=b: scan_recurrent(a, b),
            "scan": lambda a=a, b=b: scan_parallel(a, b),
            "attn": lambda q=q, k=k, v=v: scaled_dot_product_attention(q, k, v),
            "fused": lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v),
        }
        with torch.no_grad():
            out[n] = compare(calls, rounds=_COST_ROUNDS, warmup=1)
    return out


@measured
def ssm_cost_figure() -> Figure:
    """Wall time against n: recurrent loop, parallel scan, and softmax attention."""
    t = _cost()
    fig, ax = figure(width=6.0, height=3.8)
    for (key, label), colour in zip(_COST_LABELS.items(), COLORS, strict=False):
        ax.plot(
            _COST_LENGTHS,
            [t[n].median(key) * 1e3 for n in _COST_LENGTHS],
            "o-",
            color=colour,
            label=label,
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=say("sequence length $n$", "序列长度 $n$"),
        ylabel=say("median time (ms)", "中位时间（ms）"),
    )
    ax.set_xticks(_COST_LENGTHS, [str(n) for n in _COST_LENGTHS])
    ax.minorticks_off()
    ax.legend()
    return fig


@measured
def ssm_cost_table() -> str:
    """Median times, and growth exponents measured against those the counts predict."""
    t = _cost()
    header = [say("median time (ms), $n$ =", "中位时间（ms），$n$ =")]
    header += [f"{n:,}" for n in _COST_LENGTHS]
    header.append(
        say("exponent $p$ of time $\\propto n^p$", "时间 $\\propto n^p$ 的指数 $p$")
    )
    rows = []
    n_max = max(_COST_LENGTHS)
    faults = t[n_max].page_faults("attn")
    for key, label in _COST_LABELS.items():
        times = [f"{t[n].median(key) * 1e3:.2f}" for n in _COST_LENGTHS]
        why = (
            fault_evidence(
                say("our attention", "我们的注意力"),
                faults,
                n_max,
                t[n_max].median("attn"),
            )
            if key == "attn"
            else ""
        )
        check = check_scaling(
            f"chapter 16, {key}",
            _COST_LENGTHS,
            [t[n].seconds[key] for n in _COST_LENGTHS],
            [_count(key, n) for n in _COST_LENGTHS],
            why=why,
        )
        rows.append([label, *times, check])
    return markdown_table(header, rows, "l" + "r" * (len(header) - 1))
