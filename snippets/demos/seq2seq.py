"""Chapter 7, a trained encoder-decoder: training, held-out accuracy, the learned
cross-attention, and the cost per token of decoding with and without a key/value cache.

Every demo here is timed (@measured): they share one training run, which reports its
time, and the timed demos run together, after the others."""

from __future__ import annotations

import functools
import statistics

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from snippets.bilingual import same, say
from snippets.measure import (
    Timings,
    check_ratio,
    compare,
    cpu_threads,
    describe_steps,
    fmt_ratio,
    timing_device,
)
from snippets.plotting import Figure, figure, markdown_table, significant
from snippets.runtime import measured
from snippets.seq2seq import (
    BOS,
    EOS,
    SRC0,
    TGT0,
    Run,
    exact_match,
    small_config,
    train,
    translation_pair,
)
from snippets.transformer import (
    Transformer,
    TransformerConfig,
    count_parameters,
    greedy_decode,
)

_LENGTH = 10  # digits per source
_STEPS = 450
_BATCH = 64
_WARMUP = 200
_N_TEST = 1000  # held-out sources
_MIN_ACCURACY = 0.99  # the build stops below this
_TAIL = 50  # steps whose mean loss is reported
_N_ALIGN = 200  # held-out sources whose cross-attention is measured
# the special tokens' names, shown as they are in both editions
_BOS, _EOS = same("BOS"), same("EOS")
_WEIGHT = say("attention weight", "注意力权重")


@functools.cache
def _trained() -> tuple[Transformer, Run, torch.Tensor, float]:
    """The model, its training run, the held-out digits and the exact-match accuracy."""
    test = torch.randint(
        0, 10, (_N_TEST, _LENGTH), generator=torch.Generator().manual_seed(1)
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the weights depend on this seed alone
        model = Transformer(small_config(_LENGTH))
    with cpu_threads(1):  # CPU time per step is then the work done
        run = train(
            model,
            _STEPS,
            _BATCH,
            _LENGTH,
            test,
            torch.Generator().manual_seed(2),
            _WARMUP,
        )
    accuracy = exact_match(model, test)
    if accuracy < _MIN_ACCURACY:
        raise ArithmeticError(
            f"the encoder-decoder reached {accuracy:.1%} exact-sequence accuracy on held-out "
            f"sources, under the {_MIN_ACCURACY:.0%} that chapter 7 states"
        )
    return model, run, test, accuracy


def _loss_floor(eps: float, vocab: int) -> float:
    """The least label-smoothed loss: the entropy of the smoothed target, reached when the
    model predicts that target exactly (1 - eps + eps/V on the true token, eps/V else)."""
    true, other = 1 - eps + eps / vocab, eps / vocab
    return -(true * np.log(true) + (vocab - 1) * other * np.log(other))


def _time(run: Run) -> str:
    with cpu_threads(1):  # as training ran: the description names the thread count
        return describe_steps(run.step_seconds, unit=say("step", "步"), clock=run.clock)


@measured
def training_numbers() -> dict[str, str]:
    model, run, _, accuracy = _trained()
    tail = run.loss[-_TAIL:]
    c = model.config
    return {
        "length": str(_LENGTH),
        "layers": str(c.num_layers),
        "d_model": str(c.d_model),
        "heads": str(c.num_heads),
        "tail": str(_TAIL),
        "min_accuracy": f"{_MIN_ACCURACY:.0%}",
        "steps": str(_STEPS),
        "batch": str(_BATCH),
        "warmup": str(_WARMUP),
        "examples": f"{_STEPS * _BATCH:,}",
        "parameters": f"{count_parameters(model):,}",
        "n_test": f"{_N_TEST:,}",
        "accuracy": f"{100 * accuracy:.1f}%",
        "first_loss": f"{run.loss[0]:.2f}",
        "floor": f"{_loss_floor(0.1, c.vocab_size):.3f}",
        "last_loss": f"{statistics.mean(tail):.3f}",
        "time": _time(run),
        "seconds": f"{sum(run.step_seconds):.0f}",
    }


@measured
def cross_attention_figure() -> Figure:
    """Every head's cross-attention, in both decoder layers, on one held-out source."""
    model, _, test, _ = _trained()
    src, tgt = translation_pair(test[:1])
    out = greedy_decode(model, src, tgt.size(1), BOS, EOS)
    model.decode(
        torch.cat([torch.full((1, 1), BOS), out[:, :-1]], dim=1), model.encode(src)
    )
    layers = model.decoder.layers
    heads = model.config.num_heads
    fig, axes = figure(ncols=heads, nrows=len(layers), width=9.6, height=5.6)
    src_labels = [f"s{d - SRC0}" for d in src[0].tolist()]
    out_labels = [f"t{d - TGT0}" if d != EOS else _EOS for d in out[0].tolist()]
    for row, layer in enumerate(layers):
        weights = layer.cross_weights[0]  # (H, N_t, N_s)
        for h in range(heads):
            ax = axes[row, h]
            image = ax.imshow(weights[h], vmin=0, vmax=1, cmap="viridis")
            ax.set_title(
                say(f"layer {row + 1}, head {h + 1}", f"第 {row + 1} 层，头 {h + 1}")
            )
            ax.set_xticks(range(len(src_labels)), src_labels, rotation=90)
            ax.set_yticks(range(len(out_labels)), out_labels)
            ax.grid(False)
    for ax in axes[-1]:
        ax.set_xlabel(say("source token", "源词元"))
    for ax in axes[:, 0]:
        ax.set_ylabel(say("generated token", "生成的词元"))
    fig.colorbar(image, ax=axes, shrink=0.6, label=_WEIGHT)
    return fig


@measured
def self_attention_figure() -> Figure:
    """Encoder and decoder self-attention of the trained model, averaged over the heads,
    on the held-out source of the cross-attention figure."""
    model, _, test, _ = _trained()
    src, tgt = translation_pair(test[:1])
    out = greedy_decode(model, src, tgt.size(1), BOS, EOS)
    dec_in = torch.cat([torch.full((1, 1), BOS), out[:, :-1]], dim=1)
    with torch.no_grad():
        model.decode(dec_in, model.encode(src))
    src_labels = [f"s{d - SRC0}" for d in src[0].tolist()]
    in_labels = [_BOS] + [f"t{d - TGT0}" for d in out[0, :-1].tolist()]
    fig, axes = figure(ncols=2, nrows=2, width=7.2, height=7.0)
    rows = [
        (
            say("encoder", "编码器"),
            [layer.attn_weights for layer in model.encoder.layers],
            src_labels,
        ),
        (
            say("decoder", "解码器"),
            [layer.self_weights for layer in model.decoder.layers],
            in_labels,
        ),
    ]
    for r, (name, maps, labels) in enumerate(rows):
        for c, weights in enumerate(maps):
            ax = axes[r, c]
            image = ax.imshow(weights[0].mean(dim=0), vmin=0, vmax=1, cmap="viridis")
            ax.set_title(name + say(f", layer {c + 1}", f"，第 {c + 1} 层"))
            ax.set_xticks(range(len(labels)), labels, rotation=90)
            ax.set_yticks(range(len(labels)), labels)
            ax.grid(False)
        axes[r, 0].set_ylabel(say("query token", "查询词元"))
    for ax in axes[-1]:
        ax.set_xlabel(say("key token", "键词元"))
    mean = say(", mean of the heads", "（各头的平均）")
    fig.colorbar(image, ax=axes, shrink=0.6, label=_WEIGHT + mean)
    return fig


@measured
def alignment_numbers() -> dict[str, str]:
    """How much of each layer's cross-attention falls on the source token that the
    generated token translates (the anti-diagonal), over the held-out sources."""
    model, _, test, _ = _trained()
    src, tgt = translation_pair(test[:_N_ALIGN])
    bos = torch.full((src.size(0), 1), BOS)
    with torch.no_grad():
        model.eval()
        model(src, torch.cat([bos, tgt[:, :-1]], dim=1))
    out = {}
    for i, layer in enumerate(model.decoder.layers, start=1):
        w = layer.cross_weights[:, :, :_LENGTH, :]  # the digits, not EOS: (B, H, L, L)
        mirror = w.flip(-1).diagonal(dim1=-2, dim2=-1).mean(dim=(0, 2))  # (H,)
        best = int(mirror.argmax())
        out[f"layer{i}_best_head"] = str(best + 1)
        out[f"layer{i}_best"] = f"{mirror[best].item():.2f}"
        out[f"layer{i}_mean"] = f"{mirror.mean().item():.2f}"
    out["uniform"] = f"{1 / _LENGTH:.2f}"
    out["n"] = str(_N_ALIGN)
    # self-attention on the same pass, averaged over the heads
    for i, layer in enumerate(model.encoder.layers, start=1):
        rows = layer.attn_weights.mean(dim=1)  # (B, L, L)
        out[f"enc{i}_max"] = f"{rows.amax(dim=-1).mean().item():.2f}"
    first = model.decoder.layers[0].self_weights.mean(dim=1)  # (B, L + 1, L + 1)
    out["dec1_bos"] = f"{first[:, 1:, 0].mean().item():.2f}"  # rows after BOS's own
    out["dec1_self"] = f"{first.diagonal(dim1=-2, dim2=-1)[:, 1:].mean().item():.2f}"
    return out


# Decoding cost: a larger, untrained model (its weights do not change the arithmetic).
_DECODE_CONFIG = TransformerConfig(
    d_model=128, num_heads=4, d_ff=512, num_layers=2, vocab_size=256, max_len=160
)
_DECODE_SRC = 32
_DECODE_NS = [24, 96]
_DECODE_ROUNDS = 6


@functools.cache
def _decode_setup() -> tuple[Transformer, torch.Tensor]:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Transformer(_DECODE_CONFIG)
    src = torch.randint(
        3, 256, (1, _DECODE_SRC), generator=torch.Generator().manual_seed(3)
    )
    return model, src


@functools.cache
def _multiply_adds(n: int, use_cache: bool) -> int:
    """Multiply-adds of generating n tokens, counted by PyTorch's FlopCounterMode."""
    model, src = _decode_setup()
    with FlopCounterMode(display=False) as counter:
        greedy_decode(model, src, n, BOS, None, use_cache=use_cache)
    return counter.get_total_flops() // 2


@functools.cache
def _decode_timings() -> dict[int, Timings]:
    model, src = _decode_setup()
    out = {}
    for n in _DECODE_NS:
        calls = {
            mode: functools.partial(
                greedy_decode, model, src, n, BOS, None, use_cache=cache
            )
            for mode, cache in (("cached", True), ("recomputed", False))
        }
        out[n] = compare(calls, rounds=_DECODE_ROUNDS)
    return out


def _cost_model() -> tuple[float, float]:
    """Seconds per decoding step and per multiply-add, t = steps * a + multiply_adds * r,
    solved from the two shortest runs (with and without the cache): the longer runs then
    test it."""
    n = min(_DECODE_NS)
    t = _decode_timings()[n]
    rows = [[n, _multiply_adds(n, cache)] for cache in (True, False)]
    times = [t.median(mode) for mode in ("cached", "recomputed")]
    a, r = np.linalg.solve(np.array(rows, float), np.array(times))
    if a <= 0 or r <= 0:
        raise ArithmeticError(
            f"chapter 7's decoding cost model has no positive solution (a = {a:.3g} s per "
            f"step, r = {r:.3g} s per multiply-add) from the times {times}"
        )
    return float(a), float(r)


@measured
def decode_table() -> str:
    rows = []
    for n, t in _decode_timings().items():
        ratio = t.ratio("recomputed", "cached")
        macs = {cache: _multiply_adds(n, cache) for cache in (True, False)}
        rows.append(
            [
                f"{n:,}",
                significant(t.median("cached") / n * 1e3),
                significant(t.median("recomputed") / n * 1e3),
                f"{fmt_ratio(ratio.estimate)}× [{ratio.interval()}]",
                significant(macs[True] / n / 1e6),
                significant(macs[False] / n / 1e6),
            ]
        )
    header = [
        say("tokens generated", "生成的词元数"),
        say("cached (ms per token)", "使用缓存（每词元 ms）"),
        say("recomputed (ms per token)", "重新计算（每词元 ms）"),
        say("recomputed ÷ cached [95%]", "重新计算 ÷ 使用缓存 [95%]"),
        say("cached (M multiply-adds per token)", "使用缓存（每词元百万次乘加）"),
        say("recomputed (M multiply-adds per token)", "重新计算（每词元百万次乘加）"),
    ]
    return markdown_table(header, rows, "r" * len(header))


@measured
def decode_numbers() -> dict[str, str]:
    n = max(_DECODE_NS)
    t = _decode_timings()[n]
    a, r = _cost_model()
    macs = {cache: _multiply_adds(n, cache) for cache in (True, False)}
    predicted = (n * a + macs[False] * r) / (n * a + macs[True] * r)
    ratio = t.ratio("recomputed", "cached")
    check_ratio("chapter 7, decoding without vs with the cache", ratio, predicted)
    c = _DECODE_CONFIG
    return {
        "model": say(
            f"$d_\\text{{model}} = {c.d_model}$, {c.num_heads} heads, "
            f"$d_{{ff}} = {c.d_ff}$, {c.num_layers} + {c.num_layers} layers, "
            f"{c.vocab_size} tokens",
            f"$d_\\text{{model}} = {c.d_model}$，{c.num_heads} 个头，"
            f"$d_{{ff}} = {c.d_ff}$，编码器和解码器各 {c.num_layers} 层，"
            f"词表含 {c.vocab_size} 个词元",
        ),
        "src": str(_DECODE_SRC),
        "n": f"{n:,}",
        "rounds": str(_DECODE_ROUNDS),
        "verdict": t.verdict(
            "cached",
            "recomputed",
            {
                "cached": say("decoding with the cache", "使用缓存的解码"),
                "recomputed": say("decoding without it", "不使用缓存的解码"),
            },
        ),
        "macs_ratio": fmt_ratio(macs[False] / macs[True]),
        "step_us": f"{a * 1e6:,.0f}",
        "gflops": f"{1 / r / 1e9:.1f}",
        "n_fit": f"{min(_DECODE_NS):,}",
        "measured": say(
            f"{fmt_ratio(ratio.estimate)}× (95% interval {ratio.interval()})",
            f"{fmt_ratio(ratio.estimate)}×，95% 置信区间为 {ratio.interval()}",
        ),
        "predicted": f"{fmt_ratio(predicted)}×",
        "device": timing_device(),
    }
