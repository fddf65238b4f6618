"""Chapter 1, why attention: cost, sequential steps and gradient reach, measured."""

from __future__ import annotations

import functools

import torch

from snippets.measure import median_seconds, one_cpu_thread, timing_device
from snippets.plotting import COLORS, figure
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
    sequential_steps,
)

WIDTH = 64  # d of the timed layers
KERNEL = 3
LENGTHS = [16, 32, 64, 128, 256, 512, 1024, 2048]
REPEATS = 5  # timings are medians of this many runs, after one warm-up
REACH_N, REACH_D, REACH_SEEDS = 256, 16, 5
REACH_AT = 200  # the distance the unsourced "20% after 200 words" claim talks about
NAMES = {"recurrent": "tanh RNN", "convolution": "1-D convolution (k = 3)"}
NAMES["self-attention"] = "self-attention"


@functools.cache
def _timings() -> dict[str, list[float]]:
    """Median seconds of one forward pass per layer kind and length, batch of one sequence."""
    g = torch.Generator().manual_seed(0)
    out: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with one_cpu_thread(), torch.inference_mode():
        torch.manual_seed(0)
        layers = {k: make_layer(k, WIDTH, KERNEL).to(device()) for k in KINDS}
        for n in LENGTHS:
            x = torch.randn(1, n, WIDTH, generator=g).to(device())
            for kind, layer in layers.items():
                out[kind].append(
                    median_seconds(lambda f=layer, x=x: f(x), repeats=REPEATS)
                )
    return out


@measured
def timing_figure():
    t = _timings()
    fig, ax = figure(width=5.8, height=3.7)
    for kind, color, marker in zip(KINDS, COLORS, "os^", strict=False):
        ax.plot(
            LENGTHS,
            [s * 1e3 for s in t[kind]],
            marker=marker,
            color=color,
            label=NAMES[kind],
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="sequence length $n$",
        ylabel="milliseconds per forward pass",
        title=f"width $d$ = {WIDTH}, one sequence; {timing_device()}",
    )
    ax.set_xticks(LENGTHS, [str(n) for n in LENGTHS])
    ax.title.set_fontsize(8.5)
    ax.legend()
    return fig


def _lengths(js: list[int]) -> str:
    """'$n$ = 16, 32 and 64' for the lengths at the given indices."""
    ns = [f"{LENGTHS[j]:,}" for j in js]
    return "$n$ = " + (", ".join(ns[:-1]) + " and " + ns[-1] if len(ns) > 1 else ns[0])


def _crossover(attention: list[float], recurrent: list[float]) -> str:
    """Where attention was slower than the recurrence, in words, from every length measured."""
    slower = [
        j for j, (a, r) in enumerate(zip(attention, recurrent, strict=True)) if a > r
    ]
    faster = [j for j in range(len(LENGTHS)) if j not in slower]
    if not slower:
        return "the attention layer was faster than the recurrent one at every length measured"
    if not faster:
        return "the attention layer took longer than the recurrent one at every length measured"
    if slower == list(range(slower[0], len(LENGTHS))):
        return (
            f"from $n = {LENGTHS[slower[0]]:,}$ on, the attention layer took longer than "
            "the recurrent one"
        )
    return (
        f"the attention layer took longer than the recurrent one at {_lengths(slower)}, "
        f"and less time at {_lengths(faster)}"
    )


@measured
def timing_numbers() -> dict[str, str]:
    t = _timings()
    i, j = len(LENGTHS) - 1, len(LENGTHS) - 4  # growth from LENGTHS[j] to the longest
    factor = LENGTHS[i] // LENGTHS[j]

    def growth(kind: str) -> float:
        return t[kind][i] / t[kind][j]

    return {
        "where": timing_device(),
        "crossover": _crossover(t["self-attention"], t["recurrent"]),
        "n_min": str(LENGTHS[0]),
        "n_max": str(LENGTHS[-1]),
        "d": str(WIDTH),
        "k": str(KERNEL),
        "repeats": str(REPEATS),
        "n_from": str(LENGTHS[j]),
        "factor": str(factor),
        "factor_squared": str(factor**2),
        "rnn_ms": f"{t['recurrent'][i] * 1e3:.2f}",
        "conv_ms": f"{t['convolution'][i] * 1e3:.2f}",
        "attn_ms": f"{t['self-attention'][i] * 1e3:.2f}",
        "rnn_us_per_step": f"{t['recurrent'][i] / LENGTHS[-1] * 1e6:.1f}",
        "rnn_growth": f"{growth('recurrent'):.0f}",
        "conv_growth": f"{growth('convolution'):.0f}",
        "attn_growth": f"{growth('self-attention'):.0f}",
        "attn_vs_quadratic": f"{growth('self-attention') / factor**2:.1f}",
    }


def cost_table() -> str:
    """Multiply-adds, sequential steps and layers needed to connect the ends, from the formulas."""
    n, d, k = LENGTHS[-1], WIDTH, KERNEL
    formulas = {
        "recurrent": ("$2nd^2$", "$n$", "$1$"),
        "convolution": ("$knd^2$", "$1$", r"$\lceil (n-1)/(k-1) \rceil$"),
        "self-attention": ("$4nd^2 + 2n^2d$", "$1$", "$1$"),
    }
    lines = [
        f"| layer ($n = {n}$, $d = {d}$, $k = {k}$) | multiply-adds "
        "| sequential steps | layers until position $n-1$ sees position $0$ |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind in KINDS:
        f_ops, f_seq, f_layers = formulas[kind]
        lines.append(
            f"| {NAMES[kind]} | {f_ops} $=$ {multiply_adds(kind, n, d, k):,} "
            f"| {f_seq} $=$ {sequential_steps(kind, n):,} "
            f"| {f_layers} $=$ {layers_to_connect(kind, n, k):,} |"
        )
    return "\n".join(lines)


def _reach_models(seed: int) -> dict[str, torch.nn.Module]:
    torch.manual_seed(
        seed
    )  # PyTorch's default initialisation draws from the global RNG
    d = REACH_D
    return {
        "tanh RNN, PyTorch default init": Recurrent(d),
        "tanh RNN, orthogonal $W_{hh}$": orthogonal_recurrence(Recurrent(d)),
        "LSTM, PyTorch default init": LSTM(d),
        "LSTM, forget-gate bias 1": forget_bias(LSTM(d), 1.0),
        "self-attention (causal)": SelfAttention(d),
    }


@functools.cache
def _reach() -> dict[str, torch.Tensor]:
    """Gradient reach against distance, per model: (seeds, N) in float64 on the CPU.

    float64 because the recurrent curves fall below float32's smallest number; the CPU
    because this is about what the layers compute, not how fast.
    """
    g = torch.Generator().manual_seed(1)
    runs: dict[str, list[torch.Tensor]] = {}
    with one_cpu_thread():
        for seed in range(REACH_SEEDS):
            x = torch.randn(REACH_N, REACH_D, generator=g, dtype=torch.float64)
            for name, model in _reach_models(seed).items():
                reach = gradient_reach(model.double(), x)  # index t = position
                runs.setdefault(name, []).append(reach.flip(0))  # index = distance
    return {name: torch.stack(r) for name, r in runs.items()}


def reach_figure():
    reach = _reach()
    fig, ax = figure(width=6.4, height=3.9)
    distance = torch.arange(REACH_N)
    styles = ["-", "--", "-", "--", "-"]
    colors = [COLORS[3], COLORS[3], COLORS[0], COLORS[0], COLORS[2]]
    for (name, r), style, color in zip(reach.items(), styles, colors, strict=True):
        low, high, mean = r.min(0).values, r.max(0).values, r.mean(0)
        ax.fill_between(
            distance.numpy(), low.numpy(), high.numpy(), color=color, alpha=0.15, lw=0
        )
        ax.plot(distance.numpy(), mean.numpy(), style, color=color, label=name)
    ax.axvline(REACH_AT, color=COLORS[1], linestyle=":", lw=1.2)
    ax.set(
        yscale="log",
        xlabel="distance $n-1-t$ between the last output and input $t$",
        ylabel=r"$\|\partial y_{n-1} / \partial x_t\|_F$",
        xlim=(0, REACH_N - 1),
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
    keys = ["rnn", "rnn_orth", "lstm", "lstm_f1", "attn"]
    out = {
        "n": str(REACH_N),
        "d": str(REACH_D),
        "seeds": str(REACH_SEEDS),
        "at": str(REACH_AT),
    }
    for key, r in zip(keys, reach.values(), strict=True):
        mean = r.mean(0)
        out[f"{key}_1"] = _sci(mean[1].item())
        out[f"{key}_at"] = _sci(mean[REACH_AT].item())
        out[f"{key}_ratio"] = _sci((mean[REACH_AT] / mean[1]).item())
    attn = reach["self-attention (causal)"].mean(0)[1:]
    out["attn_spread"] = f"{(attn.max() / attn.min()).item():.1f}"
    return out
