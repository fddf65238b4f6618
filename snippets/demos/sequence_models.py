"""Chapter 1, why attention: cost, sequential steps and gradient reach, measured."""

from __future__ import annotations

import functools

import torch

from snippets.bilingual import join, say, zh
from snippets.measure import (
    ScalingCheck,
    Timings,
    check_scaling,
    compare,
    cpu_threads,
    fault_evidence,
    timing_device,
)
from snippets.plotting import COLORS, Figure, figure, markdown_table
from snippets.runtime import device, measured
from snippets.sequence_models import (
    KINDS,
    LSTM,
    Recurrent,
    SelfAttention,
    forget_bias,
    gradient_reach,
    layers_to_connect,
    make_layer,
    multiply_adds,
    orthogonal_recurrence,
    path_length,
    sequential_steps,
)

_WIDTH = 64  # d of the timed layers
_KERNEL = 3
_ROUNDS = 6  # interleaved rounds per length, after one warm-up round
_REACH_N, _REACH_D, _REACH_SEEDS = 256, 16, 5
_REACH_AT = 200  # the distance the unsourced "20% after 200 words" claim talks about
_NAMES = {
    "recurrent": "tanh RNN",
    "convolution": say("1-D convolution (k = 3)", "一维卷积（k = 3）"),
    "self-attention": say("self-attention", "自注意力"),
}


# sequences per forward pass: one (a recurrence's worst case) and eight
_BATCH_ONE, _BATCH_MANY = 1, 8
_BATCHES = (_BATCH_ONE, _BATCH_MANY)
_TIME_LENGTHS = [16, 32, 64, 128, 256, 512, 1024]


@functools.cache
def _timings() -> dict[int, dict[int, Timings]]:
    """batch -> length -> the three layers timed in interleaved rounds at that size."""
    g = torch.Generator().manual_seed(0)
    out: dict[int, dict[int, Timings]] = {}
    with torch.inference_mode():
        torch.manual_seed(0)
        layers = {k: make_layer(k, _WIDTH, _KERNEL).to(device()) for k in KINDS}
        for batch in _BATCHES:
            out[batch] = {}
            for n in _TIME_LENGTHS:
                x = torch.randn(batch, n, _WIDTH, generator=g).to(device())
                calls = {k: (lambda f=f, x=x: f(x)) for k, f in layers.items()}
                out[batch][n] = compare(calls, rounds=_ROUNDS, warmup=1)
    return out


@measured
def timing_figure() -> Figure:
    t = _timings()
    fig, axes = figure(ncols=len(_BATCHES), width=7.0, height=3.4, sharey=True)
    for ax, batch in zip(axes, _BATCHES, strict=True):
        for kind, color, marker in zip(KINDS, COLORS, "os^", strict=False):
            ms = [t[batch][n].median(kind) * 1e3 for n in _TIME_LENGTHS]
            ax.plot(_TIME_LENGTHS, ms, marker=marker, color=color, label=_NAMES[kind])
        ax.set(
            xscale="log",
            yscale="log",
            xlabel=say("sequence length $n$", "序列长度 $n$"),
        )
        ax.set_title(
            say(
                f"batch of {batch} sequence{'s' if batch > 1 else ''}",
                f"{batch} 个序列的批量",
            )
        )
        ax.set_xticks(_TIME_LENGTHS[::2], [str(n) for n in _TIME_LENGTHS[::2]])
        ax.minorticks_off()
    axes[0].set_ylabel(
        say("ms per forward pass (median)", "每次前向传播耗时（ms，中位数）")
    )
    axes[0].legend()
    return fig


def _check(batch: int, kind: str) -> ScalingCheck:
    """Measured growth exponent against a fixed cost plus the multiply-adds.

    Attention's (batch, n, n) buffers can be fresh memory at every call; when their
    page faults say so, that is the evidence for a gap from the count.
    """
    t = _timings()[batch]
    n = max(_TIME_LENGTHS)
    why = ""
    if kind == "self-attention":
        faults = t[n].page_faults(kind)
        seconds = t[n].median(kind)
        name = say(
            f"self-attention on {batch} sequences", f"自注意力在 {batch} 个序列上"
        )
        why = fault_evidence(name, faults, n, seconds)
    return check_scaling(
        f"chapter 1, {kind}, batch {batch}",
        _TIME_LENGTHS,
        [t[n].seconds[kind] for n in _TIME_LENGTHS],
        [multiply_adds(kind, m, _WIDTH, _KERNEL) for m in _TIME_LENGTHS],
        why=why,
    )


def _and(items: list[str]) -> str:
    """a, b and c: in each language."""
    if len(items) == 1:
        return items[0]
    return say(
        ", ".join(items[:-1]) + " and " + items[-1],
        "、".join(items[:-1]) + " 和 " + items[-1],
    )


def _crossover(batch: int) -> str:
    """At which lengths attention took more or less time than the recurrence, in words."""
    verdicts = {"slower": [], "faster": [], "indistinguishable": []}
    for n in _TIME_LENGTHS:
        r = _timings()[batch][n].ratio("self-attention", "recurrent")
        key = (
            "indistinguishable"
            if not r.distinguishable
            else "slower"
            if r.estimate > 1
            else "faster"
        )
        verdicts[key].append(n)
    parts = []
    for key, words in (
        ("faster", say("took less time than the recurrent one", "用时比循环层少")),
        ("slower", say("took longer than the recurrent one", "用时比循环层长")),
        (
            "indistinguishable",
            say("could not be told apart from it", "与循环层分不出快慢"),
        ),
    ):
        if verdicts[key]:
            where = _and([f"{n:,}" for n in verdicts[key]])
            parts.append(
                say(f"{words} at $n$ = {where}", f"在 $n$ = {zh(where)} 时{zh(words)}")
            )
    return say("the attention layer ", "注意力层") + join(say("; it ", "，"), parts)


@measured
def timing_table() -> str:
    """Time at the longest length and growth exponents, measured and predicted."""
    n = max(_TIME_LENGTHS)
    rows = []
    for batch in _BATCHES:
        for kind in KINDS:
            c = _check(batch, kind)
            rows.append(
                [
                    _NAMES[kind],
                    batch,
                    f"{_timings()[batch][n].median(kind) * 1e3:.2f}",
                    f"{c.fit.exponent:.2f} [{c.fit.low:.2f}, {c.fit.high:.2f}]",
                    say(
                        f"{min(c.sizes):,} to {max(c.sizes):,}",
                        f"{min(c.sizes):,} 到 {max(c.sizes):,}",
                    ),
                    f"{c.predicted:.2f}",
                ]
            )
    return markdown_table(
        [
            say("layer", "层"),
            say("batch", "批量"),
            say(f"ms at $n = {n:,}$", f"$n = {n:,}$ 时的 ms"),
            say(
                "exponent $p$ of time $\\propto n^p$, measured [95%]",
                "时间 $\\propto n^p$ 的指数 $p$，实测 [95%]",
            ),
            say("over $n =$", "拟合所用的 $n =$"),
            say("$p$ of the model", "模型的 $p$"),
        ],
        rows,
        "lrrrrr",
    )


def _fit_note() -> str:
    """Which measured exponents exclude the model's, in words (the band still holds)."""
    outside, explained = [], []
    for batch in _BATCHES:
        for kind in KINDS:
            c = _check(batch, kind)
            if not c.fit.low <= c.predicted <= c.fit.high:
                faster = c.fit.exponent > c.predicted
                how = "faster" if faster else "more slowly"
                name = _NAMES[kind]
                outside.append(
                    say(
                        f"the {name} with batch {batch} (its time grew {how})",
                        f"{zh(name)}，批量 {batch}"
                        f"（时间增长得{'更快' if faster else '更慢'}）",
                    )
                )
            if c.evidence:  # beyond the band, excused by measured evidence
                explained.append(c.evidence)
    if not outside:
        return say(
            "Every model exponent lies inside the measured interval.",
            "模型的每个指数都落在实测区间之内。",
        )
    note = (
        say(
            "The model's exponent lies outside the measured interval for ",
            "以下各项的模型指数落在实测区间之外：",
        )
        + join(say(", ", "；"), outside)
        + say(".", "。")
    )
    if explained:
        return note + say(
            f" Beyond the band the build allows, it explains why: {explained[0]}.",
            f"其中超出构建过程所允许范围的偏差，原因如下：{zh(explained[0])}。",
        )
    return note + say(
        " All lie within the band the build allows.",
        "所有实测指数与模型指数之差都在构建过程所允许的范围之内。",
    )


@measured
def timing_numbers() -> dict[str, str]:
    t = _timings()
    n = max(_TIME_LENGTHS)
    return {
        "where": timing_device(),
        "fit_note": _fit_note(),
        "crossover_1": _crossover(_BATCH_ONE),
        "crossover_b": _crossover(_BATCH_MANY),
        "batch": str(_BATCH_MANY),
        "n_min": str(min(_TIME_LENGTHS)),
        "n_max": f"{n:,}",
        "d": str(_WIDTH),
        "k": str(_KERNEL),
        "rounds": str(_ROUNDS),
        "rnn_us_per_step": f"{t[_BATCH_ONE][n].median('recurrent') / n * 1e6:.1f}",
        "rnn_us_per_step_b": f"{t[_BATCH_MANY][n].median('recurrent') / n * 1e6:.1f}",
        "rnn_batch_growth": f"{t[_BATCH_MANY][n].median('recurrent') / t[_BATCH_ONE][n].median('recurrent'):.1f}",
    }


def cost_table() -> str:
    """Multiply-adds, sequential steps, layers needed to connect the ends and the steps of
    the path between them, from the formulas."""
    n, d, k = max(_TIME_LENGTHS), _WIDTH, _KERNEL
    ceil = r"$\lceil (n-1)/(k-1) \rceil$"
    formulas = {
        "recurrent": ("$2nd^2$", "$n$", "$1$", "$n-1$"),
        "convolution": ("$knd^2$", "$1$", ceil, ceil),
        "self-attention": ("$4nd^2 + 2n^2d$", "$1$", "$1$", "$1$"),
    }
    rows = []
    for kind in KINDS:
        f_ops, f_seq, f_layers, f_path = formulas[kind]
        rows.append(
            [
                _NAMES[kind],
                f"{f_ops} $=$ {multiply_adds(kind, n, d, k):,}",
                f"{f_seq} $=$ {sequential_steps(kind, n):,}",
                f"{f_layers} $=$ {layers_to_connect(kind, n, k):,}",
                f"{f_path} $=$ {path_length(kind, n, k):,}",
            ]
        )
    return markdown_table(
        [
            say(
                f"layer ($n = {n}$, $d = {d}$, $k = {k}$)",
                f"层（$n = {n}$，$d = {d}$，$k = {k}$）",
            ),
            say("multiply-adds", "乘加次数"),
            say("sequential steps", "顺序步数"),
            say(
                "layers until position $n-1$ sees position $0$",
                "位置 $n-1$ 看到位置 $0$ 所需的层数",
            ),
            say(
                "steps on the path from position $0$ to $n-1$",
                "从位置 $0$ 到 $n-1$ 的路径步数",
            ),
        ],
        rows,
        "lrrrr",
    )


_RNN = say("tanh RNN, PyTorch default init", "tanh RNN，PyTorch 默认初始化")
_ATTENTION = say("self-attention (causal)", "自注意力（因果）")
_RNN_ORTHOGONAL = say("tanh RNN, orthogonal $W_{hh}$", "tanh RNN，正交 $W_{hh}$")
_LSTM = say("LSTM, PyTorch default init", "LSTM，PyTorch 默认初始化")
_LSTM_F1 = say("LSTM, forget-gate bias 1", "LSTM，遗忘门偏置为 1")
# model -> the key of its numbers in `reach_numbers`, and its line style and colour
_REACH_KEYS = {
    _RNN: "rnn",
    _RNN_ORTHOGONAL: "rnn_orth",
    _LSTM: "lstm",
    _LSTM_F1: "lstm_f1",
    _ATTENTION: "attn",
}
_REACH_STYLES = {
    _RNN: ("-", COLORS[3]),
    _RNN_ORTHOGONAL: ("--", COLORS[3]),
    _LSTM: ("-", COLORS[0]),
    _LSTM_F1: ("--", COLORS[0]),
    _ATTENTION: ("-", COLORS[2]),
}


def _reach_models(seed: int) -> dict[str, torch.nn.Module]:
    # PyTorch's default initialisation draws from the global RNG
    torch.manual_seed(seed)
    d = _REACH_D
    return {
        _RNN: Recurrent(d),
        _RNN_ORTHOGONAL: orthogonal_recurrence(Recurrent(d)),
        _LSTM: LSTM(d),
        _LSTM_F1: forget_bias(LSTM(d), 1.0),
        _ATTENTION: SelfAttention(d),
    }


@functools.cache
def _reach() -> dict[str, torch.Tensor]:
    """Gradient reach against distance, per model: (seeds, N) in float64 on the CPU.

    float64 because the recurrent curves fall below float32's smallest number; the CPU
    because this is about what the layers compute, not how fast.
    """
    g = torch.Generator().manual_seed(1)
    runs: dict[str, list[torch.Tensor]] = {}
    with cpu_threads(1):
        for seed in range(_REACH_SEEDS):
            x = torch.randn(_REACH_N, _REACH_D, generator=g, dtype=torch.float64)
            for name, model in _reach_models(seed).items():
                reach = gradient_reach(model.double(), x)  # index t = position
                runs.setdefault(name, []).append(reach.flip(0))  # index = distance
    return {name: torch.stack(r) for name, r in runs.items()}


def _geometric_mean(r: torch.Tensor) -> torch.Tensor:
    """Geometric mean over the seeds (dim 0): values spanning tens of orders of magnitude
    would make an arithmetic mean the largest one divided by the number of seeds."""
    return r.log().mean(0).exp()


def reach_figure() -> Figure:
    reach = _reach()
    fig, ax = figure(width=6.4, height=3.9)
    distance = torch.arange(_REACH_N)
    for name, r in reach.items():
        style, color = _REACH_STYLES[name]
        low, high, mean = r.min(0).values, r.max(0).values, _geometric_mean(r)
        ax.fill_between(
            distance.numpy(), low.numpy(), high.numpy(), color=color, alpha=0.15, lw=0
        )
        ax.plot(distance.numpy(), mean.numpy(), style, color=color, label=name)
    ax.axvline(_REACH_AT, color=COLORS[1], linestyle=":", lw=1.2)
    ax.set(
        yscale="log",
        xlabel=say(
            "distance $n-1-t$ between the last output and input $t$",
            "最后一个输出与输入 $t$ 之间的距离 $n-1-t$",
        ),
        ylabel=r"$\|\partial y_{n-1} / \partial x_t\|_F$",
        xlim=(0, _REACH_N - 1),
    )
    ax.legend(fontsize=8, loc="lower left")
    return fig


def _sci(x: float) -> str:
    """1.2e-40 as LaTeX, $1.2 \\times 10^{-40}$; numbers between 0.01 and 100 as they are."""
    if 0.01 <= abs(x) < 100:
        return f"${x:.2g}$"
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"${mantissa} \\times 10^{{{int(exponent)}}}$"


def reach_numbers() -> dict[str, str]:
    reach = _reach()
    out = {
        "n": str(_REACH_N),
        "d": str(_REACH_D),
        "seeds": str(_REACH_SEEDS),
        "at": str(_REACH_AT),
    }
    for name, r in reach.items():
        key = _REACH_KEYS[name]
        mean = _geometric_mean(r)
        out[f"{key}_1"] = _sci(mean[1].item())
        out[f"{key}_at"] = _sci(mean[_REACH_AT].item())
        out[f"{key}_ratio"] = _sci((mean[_REACH_AT] / mean[1]).item())
    at = reach[_RNN][:, _REACH_AT]  # one value per seed
    out["rnn_seed_orders"] = f"{(at.max() / at.min()).log10().item():.0f}"
    attn = _geometric_mean(reach[_ATTENTION])[1:]
    out["attn_spread"] = f"{(attn.max() / attn.min()).item():.1f}"
    # The trend: a least-squares line through log(norm) against distance 1..n-1, and the
    # factor by which that line changes over the whole range.
    distance = torch.arange(1, _REACH_N, dtype=torch.float64)
    design = torch.stack([torch.ones_like(distance), distance], dim=1)
    slope = torch.linalg.lstsq(design, attn.log()[:, None]).solution[1, 0]
    out["attn_trend"] = f"{(slope * (distance[-1] - distance[0])).exp().item():.2f}"
    return out
