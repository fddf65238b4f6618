"""Chapter 13, FlashAttention: exactness, peak memory and speed of the tiled recurrence."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from snippets.attention import scaled_dot_product_attention
from snippets.flash import tiled_attention
from snippets.measure import (
    Timings,
    check_ratio,
    compare,
    fault_evidence,
    fmt_ratio,
    peak_memory_bytes,
    timing_device,
)
from snippets.plotting import COLORS, figure
from snippets.runtime import device, device_description, measured

D = 64  # head width, as in GPT-2 and the FlashAttention paper's benchmarks
BLOCK = 256  # keys per tile (and queries per tile for the two-level variant)
NS = [256, 512, 1024, 2048, 4096]  # sequence lengths of the memory sweep
N_SPEED = 2048  # the sequence length of the speed comparison
SPEED_ROUNDS = 8
N_TRAIN = [1024, 2048]  # forward + backward memory


def _qkv(n: int, seed: int, requires_grad: bool = False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(1, 1, n, D, generator=g).to(device()).requires_grad_(requires_grad)
        for _ in range(3)
    ]


def _implementations() -> dict[str, object]:
    """name -> attention(q, k, v) for the four ways of computing the same output."""
    return {
        "dense (ours, full n×n)": lambda q, k, v: scaled_dot_product_attention(q, k, v)[
            0
        ],
        f"tiled, key blocks of {BLOCK}": lambda q, k, v: tiled_attention(
            q, k, v, BLOCK
        ),
        f"tiled, {BLOCK}×{BLOCK} tiles": lambda q, k, v: tiled_attention(
            q, k, v, BLOCK, query_block_size=BLOCK
        ),
        "PyTorch fused": F.scaled_dot_product_attention,
    }


def agreement_table() -> str:
    """Largest difference from PyTorch's attention, for sizes that are not block multiples."""
    g = torch.Generator().manual_seed(3)
    lines = [
        "| dtype | causal | $N$ | key block | query block | largest difference |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for dtype in (torch.float32, torch.float64):
        q, k, v = (
            torch.randn(1, 2, 1000, 32, generator=g, dtype=dtype).to(device())
            for _ in range(3)
        )
        for causal in (False, True):
            for block, qblock in ((128, None), (96, 100)):
                ours = tiled_attention(q, k, v, block, causal, qblock)
                ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                err = (ours - ref).abs().max().item()
                lines.append(
                    f"| {str(dtype).removeprefix('torch.')} | {'yes' if causal else 'no'} "
                    f"| 1000 | {block} | {qblock or 'all'} | {err:.1e} |"
                )
    return "\n".join(lines)


@functools.cache
def _memory_sweep() -> dict[str, list[int]]:
    """Peak bytes of tensors allocated by one forward call, per implementation and n."""
    peaks: dict[str, list[int]] = {name: [] for name in _implementations()}
    for n in NS:
        q, k, v = _qkv(n, seed=n)
        with torch.no_grad():
            for name, fn in _implementations().items():
                peaks[name].append(peak_memory_bytes(functools.partial(fn, q, k, v)))
    return peaks


@measured
def memory_figure():
    peaks = _memory_sweep()
    fig, ax = figure(width=6.0, height=3.8)
    mib = 2**20
    ax.plot(
        NS,
        [4 * n * n / mib for n in NS],
        color=COLORS[1],
        linestyle="--",
        label=r"one $N\times N$ float32 matrix",
    )
    for (name, values), color, marker in zip(
        peaks.items(), [COLORS[3], COLORS[0], COLORS[2], COLORS[4]], "os^D", strict=True
    ):
        ax.plot(NS, [b / mib for b in values], marker=marker, color=color, label=name)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="sequence length $N$",
        ylabel="peak memory (MiB)",
        title=f"one head, $d_k = {D}$, float32, forward pass",
    )
    ax.set_xticks(NS, [str(n) for n in NS])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return fig


@measured
def memory_numbers() -> dict[str, str]:
    peaks = _memory_sweep()
    names = list(peaks)
    dense, keys, tiles, fused = (peaks[name][-1] for name in names)
    mib = 2**20
    return {
        "n_max": f"{NS[-1]:,}",
        "block": str(BLOCK),
        "dense_mib": f"{dense / mib:.0f}",
        "keys_mib": f"{keys / mib:.1f}",
        "tiles_mib": f"{tiles / mib:.1f}",
        "fused_mib": f"{fused / mib:.1f}",
        "matrix_mib": f"{4 * NS[-1] ** 2 / mib:.0f}",
        "ratio_keys": f"{dense / keys:.0f}",
        "ratio_tiles": f"{dense / tiles:.0f}",
        "growth_dense": f"{peaks[names[0]][-1] / peaks[names[0]][-2]:.1f}",
        "growth_tiles": f"{peaks[names[2]][-1] / peaks[names[2]][-2]:.1f}",
    }


def _ops_run_by_sdpa(dtype: torch.dtype) -> list[str]:
    """The ATen operators that one call of F.scaled_dot_product_attention dispatches to."""
    q, k, v = (t.to(dtype) for t in _qkv(256, seed=0))
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities) as prof:
        F.scaled_dot_product_attention(q, k, v)
    names = {e.name for e in prof.events()}
    keep = ("attention", "flash", "efficient", "cudnn", "math", "softmax", "bmm")
    return sorted(
        n
        for n in names
        if any(w in n for w in keep) and n != "aten::scaled_dot_product_attention"
    )


def backends() -> str:
    """What PyTorch's fused attention can use on the build machine, and what it used."""
    cuda = torch.backends.cuda
    flags = {
        "flash_sdp_enabled()": cuda.flash_sdp_enabled(),
        "mem_efficient_sdp_enabled()": cuda.mem_efficient_sdp_enabled(),
        "cudnn_sdp_enabled()": cuda.cudnn_sdp_enabled(),
        "math_sdp_enabled()": cuda.math_sdp_enabled(),
        "is_flash_attention_available()": cuda.is_flash_attention_available(),
    }
    lines = [
        f"- **Device:** {device_description()}; PyTorch {torch.__version__}; "
        f"`torch.cuda.is_available()` is `{torch.cuda.is_available()}`.",
        "- **Flags in `torch.backends.cuda`:** "
        + ", ".join(f"`{k}` = `{v}`" for k, v in flags.items())
        + ".",
    ]
    dtypes = [torch.float32] + ([torch.float16] if device().type == "cuda" else [])
    for dtype in dtypes:
        ops = _ops_run_by_sdpa(dtype)
        shown = ", ".join(f"`{op}`" for op in ops) or "no attention-specific operator"
        lines.append(
            f"- **What one call ran** ({str(dtype).removeprefix('torch.')}, "
            f"`{device()}`, 1 × 1 × 256 × {D}): {shown}."
        )
    return "\n".join(lines)


@functools.cache
def _speed() -> Timings:
    q, k, v = _qkv(N_SPEED, seed=1)
    calls = {
        name: functools.partial(fn, q, k, v) for name, fn in _implementations().items()
    }
    with torch.no_grad():
        return compare(calls, rounds=SPEED_ROUNDS, warmup=1)


def _operators(fn: object) -> int:
    """How many PyTorch operators one call dispatches (each reads and writes memory)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
        fn()  # type: ignore[operator]
    return sum(1 for e in p.events() if e.name.startswith("aten::"))


@measured
def speed_table() -> str:
    t = _speed()
    fused = "PyTorch fused"
    lines = [
        "| implementation | median time (ms) | ÷ PyTorch fused [95%] | operators per call |",
        "| --- | ---: | ---: | ---: |",
    ]
    q, k, v = _qkv(N_SPEED, seed=1)
    with torch.no_grad():
        for name, fn in _implementations().items():
            r = t.ratio(name, fused)
            ops = _operators(functools.partial(fn, q, k, v))
            lines.append(
                f"| {name} | {t.median(name) * 1e3:.1f} | {fmt_ratio(r.estimate)} "
                f"[{r.interval()}] | {ops:,} |"
            )
    return "\n".join(lines)


@measured
def speed_numbers() -> dict[str, str]:
    """Ratios to the fused function, which does the same arithmetic: the count predicts 1."""
    t = _speed()
    dense, keys, tiles, fused = t.seconds
    why = fault_evidence(
        "the dense function", t.page_faults(dense), N_SPEED, t.median(dense)
    )
    for name, w in ((keys, ""), (tiles, ""), (dense, why)):
        check_ratio(f"chapter 13, {name} vs fused", t.ratio(name, fused), 1.0, why=w)
    return {
        "n": f"{N_SPEED:,}",
        "rounds": str(SPEED_ROUNDS),
        "device": timing_device(),
        "keys_vs_fused": t.verdict(
            keys,
            fused,
            {keys: "the tiled loop with key blocks", fused: "PyTorch's fused function"},
        ),
        "tiles_vs_fused": t.verdict(
            tiles,
            fused,
            {tiles: "the loop with square tiles", fused: "the fused function"},
        ),
        "dense_vs_fused": t.verdict(
            dense,
            fused,
            {dense: "the dense function of chapter 3", fused: "the fused function"},
        ),
        "dense_gap": (
            f"a gap of memory, not arithmetic ({why})"
            if why
            else "with no excess of page faults to explain a gap"
        ),
    }


@functools.cache
def _training_memory() -> dict[str, list[int]]:
    """Peak bytes of forward + backward, where autograd keeps what the backward needs."""
    names = list(_implementations())
    chosen = [names[0], names[2], names[3]]
    peaks: dict[str, list[int]] = {name: [] for name in chosen}
    for n in N_TRAIN:
        for name in chosen:
            q, k, v = _qkv(n, seed=n, requires_grad=True)
            fn = _implementations()[name]
            peaks[name].append(
                peak_memory_bytes(
                    lambda fn=fn, q=q, k=k, v=v: fn(q, k, v).sum().backward()
                )
            )
    return peaks


@measured
def training_memory_table() -> str:
    peaks = _training_memory()
    mib = 2**20
    a, b = N_TRAIN
    lines = [
        f"| implementation | forward + backward, $N$ = {a:,} (MiB) "
        f"| $N$ = {b:,} (MiB) | growth |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, (p1, p2) in peaks.items():
        lines.append(f"| {name} | {p1 / mib:.1f} | {p2 / mib:.1f} | {p2 / p1:.1f}× |")
    return "\n".join(lines)
