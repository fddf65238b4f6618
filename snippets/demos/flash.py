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
    cpu_threads,
    fault_evidence,
    fmt_ratio,
    peak_memory_bytes,
    timing_device,
)
from snippets.plotting import COLORS, Figure, figure, markdown_table
from snippets.runtime import device, device_description, measured

_D = 64  # head width, as in GPT-2 and the FlashAttention paper's benchmarks
_BLOCK = 256  # keys per tile (and queries per tile for the two-level variant)
_NS = [256, 512, 1024, 2048, 4096]  # sequence lengths of the memory sweep
_N_SPEED = 2048  # the sequence length of the speed comparison
_SPEED_ROUNDS = 8
_N_TRAIN = [1024, 2048]  # forward + backward memory
# The four implementations, by the names the tables show.
_DENSE = "dense (ours, full n×n)"
_KEYS = f"tiled, key blocks of {_BLOCK}"
_TILES = f"tiled, {_BLOCK}×{_BLOCK} tiles"
_FUSED = "PyTorch fused"


def _qkv(n: int, seed: int, requires_grad: bool = False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(1, 1, n, _D, generator=g).to(device()).requires_grad_(requires_grad)
        for _ in range(3)
    ]


def _implementations() -> dict[str, object]:
    """name -> attention(q, k, v) for the four ways of computing the same output."""
    return {
        _DENSE: lambda q, k, v: scaled_dot_product_attention(q, k, v)[0],
        _KEYS: lambda q, k, v: tiled_attention(q, k, v, _BLOCK),
        _TILES: lambda q, k, v: tiled_attention(
            q, k, v, _BLOCK, query_block_size=_BLOCK
        ),
        _FUSED: F.scaled_dot_product_attention,
    }


def agreement_table() -> str:
    """Largest difference from PyTorch's attention, for sizes that are not block multiples."""
    g = torch.Generator().manual_seed(3)
    rows = []
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
                rows.append(
                    [
                        str(dtype).removeprefix("torch."),
                        "yes" if causal else "no",
                        1000,
                        block,
                        qblock or "all",
                        f"{err:.1e}",
                    ]
                )
    return markdown_table(
        ["dtype", "causal", "$N$", "key block", "query block", "largest difference"],
        rows,
        "llrrrr",
    )


@functools.cache
def _memory_sweep() -> dict[str, dict[int, int]]:
    """name -> n -> peak bytes of tensors allocated by one forward call, on one thread
    (the fused kernel's scratch memory grows with the thread count; chapter 14 also
    measures on one)."""
    peaks: dict[str, dict[int, int]] = {name: {} for name in _implementations()}
    for n in _NS:
        q, k, v = _qkv(n, seed=n)
        with torch.no_grad(), cpu_threads(1):
            for name, fn in _implementations().items():
                peaks[name][n] = peak_memory_bytes(functools.partial(fn, q, k, v))
    return peaks


_STYLES = {  # name -> colour and marker in the memory figure
    _DENSE: (COLORS[3], "o"),
    _KEYS: (COLORS[0], "s"),
    _TILES: (COLORS[2], "^"),
    _FUSED: (COLORS[4], "D"),
}


@measured
def memory_figure() -> Figure:
    peaks = _memory_sweep()
    fig, ax = figure(width=6.0, height=3.8)
    mib = 2**20
    ax.plot(
        _NS,
        [4 * n * n / mib for n in _NS],
        color=COLORS[1],
        linestyle="--",
        label=r"one $N\times N$ float32 matrix",
    )
    for name, by_n in peaks.items():
        color, marker = _STYLES[name]
        values = [by_n[n] / mib for n in _NS]
        ax.plot(_NS, values, marker=marker, color=color, label=name)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="sequence length $N$",
        ylabel="peak memory (MiB)",
        title=f"one head, $d_k = {_D}$, float32, forward pass",
    )
    ax.set_xticks(_NS, [str(n) for n in _NS])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return fig


@measured
def memory_numbers() -> dict[str, str]:
    peaks = _memory_sweep()
    n_max = max(_NS)
    dense, keys, tiles, fused = (
        peaks[name][n_max] for name in (_DENSE, _KEYS, _TILES, _FUSED)
    )
    mib = 2**20

    def growth(name: str) -> str:
        """The peak at the longest length over the peak at half of it."""
        return f"{peaks[name][n_max] / peaks[name][n_max // 2]:.1f}"

    return {
        "n_max": f"{n_max:,}",
        "block": str(_BLOCK),
        "dense_mib": f"{dense / mib:.0f}",
        "keys_mib": f"{keys / mib:.1f}",
        "tiles_mib": f"{tiles / mib:.1f}",
        "fused_mib": f"{fused / mib:.1f}",
        "matrix_mib": f"{4 * n_max**2 / mib:.0f}",
        "ratio_keys": f"{dense / keys:.0f}",
        "ratio_tiles": f"{dense / tiles:.0f}",
        "growth_dense": growth(_DENSE),
        "growth_tiles": growth(_TILES),
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
            f"`{device()}`, 1 × 1 × 256 × {_D}): {shown}."
        )
    return "\n".join(lines)


@functools.cache
def _speed() -> Timings:
    q, k, v = _qkv(_N_SPEED, seed=1)
    calls = {
        name: functools.partial(fn, q, k, v) for name, fn in _implementations().items()
    }
    with torch.no_grad():
        return compare(calls, rounds=_SPEED_ROUNDS, warmup=1)


def _operators(fn: object) -> int:
    """How many PyTorch operators one call dispatches (each reads and writes memory)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
        fn()  # type: ignore[operator]
    return sum(1 for e in p.events() if e.name.startswith("aten::"))


@measured
def speed_table() -> str:
    t = _speed()
    rows = []
    q, k, v = _qkv(_N_SPEED, seed=1)
    with torch.no_grad():
        for name, fn in _implementations().items():
            r = t.ratio(name, _FUSED)
            ops = _operators(functools.partial(fn, q, k, v))
            rows.append(
                [
                    name,
                    f"{t.median(name) * 1e3:.1f}",
                    f"{fmt_ratio(r.estimate)} [{r.interval()}]",
                    f"{ops:,}",
                ]
            )
    return markdown_table(
        [
            "implementation",
            "median time (ms)",
            "÷ PyTorch fused [95%]",
            "operators per call",
        ],
        rows,
        "lrrr",
    )


@measured
def speed_numbers() -> dict[str, str]:
    """Ratios to the fused function, which does the same arithmetic: the count predicts 1."""
    t = _speed()
    dense, keys, tiles, fused = _DENSE, _KEYS, _TILES, _FUSED
    why = fault_evidence(
        "the dense function", t.page_faults(dense), _N_SPEED, t.median(dense)
    )
    for name, w in ((keys, ""), (tiles, ""), (dense, why)):
        check_ratio(f"chapter 13, {name} vs fused", t.ratio(name, fused), 1.0, why=w)
    return {
        "n": f"{_N_SPEED:,}",
        "rounds": str(_SPEED_ROUNDS),
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
def _training_memory() -> dict[str, dict[int, int]]:
    """name -> n -> peak bytes of forward + backward, where autograd keeps what the
    backward needs."""
    chosen = [_DENSE, _TILES, _FUSED]
    peaks: dict[str, dict[int, int]] = {name: {} for name in chosen}
    for n in _N_TRAIN:
        for name in chosen:
            q, k, v = _qkv(n, seed=n, requires_grad=True)
            fn = _implementations()[name]
            peaks[name][n] = peak_memory_bytes(
                lambda fn=fn, q=q, k=k, v=v: fn(q, k, v).sum().backward()
            )
    return peaks


@measured
def training_memory_table() -> str:
    peaks = _training_memory()
    mib = 2**20
    a, b = _N_TRAIN
    rows = [
        [name, f"{p[a] / mib:.1f}", f"{p[b] / mib:.1f}", f"{p[b] / p[a]:.1f}×"]
        for name, p in peaks.items()
    ]
    return markdown_table(
        [
            "implementation",
            f"forward + backward, $N$ = {a:,} (MiB)",
            f"$N$ = {b:,} (MiB)",
            "growth",
        ],
        rows,
        "lrrr",
    )
