"""Chapter 13, FlashAttention: exactness, peak memory and speed of the tiled recurrence."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle
from torch.nn.attention import SDPBackend, sdpa_kernel

from snippets.attention import scaled_dot_product_attention
from snippets.bilingual import Say, join, same, say, zh
from snippets.flash import (
    flash_attention,
    flash_attention_io,
    standard_attention_io,
    tiled_attention,
)
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
from snippets.plotting import (
    COLORS,
    GRID,
    INK,
    Figure,
    figure,
    markdown_table,
    significant,
)
from snippets.runtime import device, device_description, measured

_D = 64  # head width, as in GPT-2 and the FlashAttention paper's benchmarks
_BLOCK = 256  # keys per tile (and queries per tile for the two-level variant)
_NS = [256, 512, 1024, 2048, 4096]  # sequence lengths of the memory sweep
_N_SPEED = 2048  # the sequence length of the speed comparison
_SPEED_ROUNDS = 8
_N_TRAIN = [256, 512, 1024, 2048]  # forward + backward memory
# The four implementations, by the names the tables show.
_DENSE = say("dense (ours, full n×n)", "稠密（我们的实现，完整 n×n）")
_KEYS = say(f"tiled, key blocks of {_BLOCK}", f"分块循环，键块大小 {_BLOCK}")
_TILES = say(f"tiled, {_BLOCK}×{_BLOCK} tiles", f"分块循环，{_BLOCK}×{_BLOCK} 分块")
_FUSED = say("PyTorch fused", "PyTorch 融合函数")
_FLASH_BLOCK = 128  # queries and keys per tile of flash_attention
_FLASH = say(
    f"flash_attention, {_FLASH_BLOCK}×{_FLASH_BLOCK} tiles",
    f"flash_attention，{_FLASH_BLOCK}×{_FLASH_BLOCK} 分块",
)
_YES, _NO = say("yes", "是"), say("no", "否")  # causal or not, in the tables
_DTYPE, _CAUSAL = say("dtype", "数据类型"), say("causal", "因果")
_IMPLEMENTATION = say("implementation", "实现")


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
                        _YES if causal else _NO,
                        1000,
                        block,
                        qblock or say("all", "全部"),
                        f"{err:.1e}",
                    ]
                )
    return markdown_table(
        [
            _DTYPE,
            _CAUSAL,
            "$N$",
            say("key block", "键块"),
            say("query block", "查询块"),
            say("largest difference", "最大差异"),
        ],
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
    _FLASH: (INK, "v"),  # drawn in the ink: legible in both palettes
}


def _memory_plot(peaks: dict[str, dict[int, int]], ns: list[int], what: str) -> Figure:
    """Peak memory of each implementation against N, beside one N x N float32 matrix."""
    fig, ax = figure(width=6.0, height=3.8)
    mib = 2**20
    ax.plot(
        ns,
        [4 * n * n / mib for n in ns],
        color=COLORS[1],
        linestyle="--",
        label=say(r"one $N\times N$ float32 matrix", r"单个 $N\times N$ float32 矩阵"),
    )
    for name, by_n in peaks.items():
        color, marker = _STYLES[name]
        values = [by_n[n] / mib for n in ns]
        ax.plot(ns, values, marker=marker, color=color, label=name)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=say("sequence length $N$", "序列长度 $N$"),
        ylabel=say("peak memory (MiB)", "峰值内存（MiB）"),
        title=say(
            f"one head, $d_k = {_D}$, float32, {what}",
            f"一个头，$d_k = {_D}$，float32，{zh(what)}",
        ),
    )
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return fig


@measured
def memory_figure() -> Figure:
    return _memory_plot(_memory_sweep(), _NS, say("forward pass", "前向传播"))


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
        "flash_block": str(_FLASH_BLOCK),
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


_NO_ATTENTION_OP = say("no attention-specific operator", "没有注意力专用的算子")


def _device_words() -> Say:
    """`device_description()` in both languages; the processor's name is data."""
    text = device_description()
    if device().type != "cpu":
        return same(text)
    name = text.removeprefix("CPU: ").rsplit(", ", 1)[0]
    n = torch.get_num_threads()
    return (
        say("CPU: ", "CPU：")
        + same(name)
        + say(f", {n} thread{'' if n == 1 else 's'}", f"，{n} 个线程")
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
    available = f"`{torch.cuda.is_available()}`"
    flag_list = [f"`{k}` = `{v}`" for k, v in flags.items()]
    lines = [
        say("- **Device:** ", "- **设备：** ")
        + _device_words()
        + say("; PyTorch ", "；PyTorch ")
        + same(torch.__version__)
        + say(
            f"; `torch.cuda.is_available()` is {available}.",
            f"；`torch.cuda.is_available()` 为 {available}。",
        ),
        say(
            "- **Flags in `torch.backends.cuda`:** " + ", ".join(flag_list) + ".",
            "- **`torch.backends.cuda` 中的标志：** " + "，".join(flag_list) + "。",
        ),
    ]
    dtypes = [torch.float32] + ([torch.float16] if device().type == "cuda" else [])
    for dtype in dtypes:
        ops = [f"`{op}`" for op in _ops_run_by_sdpa(dtype)]
        shown = say(", ".join(ops), "，".join(ops)) if ops else _NO_ATTENTION_OP
        setting = (
            f"{str(dtype).removeprefix('torch.')}, `{device()}`, 1 × 1 × 256 × {_D}"
        )
        lines.append(
            say(
                f"- **What one call ran** ({setting}): ",
                f"- **一次调用运行了什么**（{setting.replace(', ', '，')}）：",
            )
            + shown
            + say(".", "。")
        )
    return join("\n", lines)


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
            _IMPLEMENTATION,
            say("median time (ms)", "中位时间（ms）"),
            say("÷ PyTorch fused [95%]", "÷ PyTorch 融合函数 [95%]"),
            say("operators per call", "每次调用的算子数"),
        ],
        rows,
        "lrrr",
    )


_THE_FUSED = say("the fused function", "融合函数")


@measured
def speed_numbers() -> dict[str, str]:
    """Ratios to the fused function, which does the same arithmetic: the count predicts 1."""
    t = _speed()
    dense, keys, tiles, fused = _DENSE, _KEYS, _TILES, _FUSED
    why = fault_evidence(
        say("the dense function", "稠密函数"),
        t.page_faults(dense),
        _N_SPEED,
        t.median(dense),
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
            {
                keys: say("the tiled loop with key blocks", "使用键块的分块循环"),
                fused: say("PyTorch's fused function", "PyTorch 的融合函数"),
            },
        ),
        "tiles_vs_fused": t.verdict(
            tiles,
            fused,
            {
                tiles: say("the loop with square tiles", "使用方形分块的循环"),
                fused: _THE_FUSED,
            },
        ),
        "dense_vs_fused": t.verdict(
            dense,
            fused,
            {
                dense: say("the dense function of chapter 3", "第 3 章的稠密函数"),
                fused: _THE_FUSED,
            },
        ),
        "dense_gap": (
            say("a gap of memory, not arithmetic (", "这是内存的差距，而非算术的差距（")
            + why
            + say(")", "）")
            if why
            else say(
                "with no excess of page faults to explain a gap",
                "并没有多出的缺页可以解释这一差距",
            )
        ),
    }


def _training_implementations() -> dict[str, object]:
    """name -> attention(q, k, v) for a training step: the forward-pass four less the
    loop with key blocks only, plus FlashAttention's backward pass."""
    forward = _implementations()
    return {
        _DENSE: forward[_DENSE],
        _TILES: forward[_TILES],
        _FLASH: lambda q, k, v: flash_attention(q, k, v, block_size=_FLASH_BLOCK),
        _FUSED: forward[_FUSED],
    }


@functools.cache
def _training_memory() -> dict[str, dict[int, int]]:
    """name -> n -> peak bytes of forward + backward, where autograd keeps what the
    backward needs."""
    peaks: dict[str, dict[int, int]] = {
        name: {} for name in _training_implementations()
    }
    for n in _N_TRAIN:
        for name, fn in _training_implementations().items():
            q, k, v = _qkv(n, seed=n, requires_grad=True)
            peaks[name][n] = peak_memory_bytes(
                lambda fn=fn, q=q, k=k, v=v: fn(q, k, v).sum().backward()
            )
    return peaks


@measured
def training_memory_table() -> str:
    peaks = _training_memory()
    mib = 2**20
    a, b = _N_TRAIN[-2:]
    rows = [
        [name, significant(p[a] / mib), significant(p[b] / mib), f"{p[b] / p[a]:.1f}×"]
        for name, p in peaks.items()
    ]
    return markdown_table(
        [
            _IMPLEMENTATION,
            say(
                f"forward + backward, $N$ = {a:,} (MiB)",
                f"前向加反向传播，$N$ = {a:,}（MiB）",
            ),
            say(f"$N$ = {b:,} (MiB)", f"$N$ = {b:,}（MiB）"),
            say("growth", "增长倍数"),
        ],
        rows,
        "lrrr",
    )


@measured
def training_memory_figure() -> Figure:
    what = say("forward + backward", "前向加反向传播")
    return _memory_plot(_training_memory(), _N_TRAIN, what)


def _saved_bytes(fn: object, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of fn(q, k, v), each
    storage counted once (q, k and v among them)."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(q, k, v)  # type: ignore[operator]
    return sum(saved.values())


def _per_mib(name: str) -> str:
    """The Chinese header's unit after `name`: no space next to a full-width bracket."""
    return "/ MiB" if name.endswith("）") else " / MiB"


def saved_table() -> str:
    """What each implementation keeps for the backward pass, against N."""
    names = [_DENSE, _TILES, _FLASH]
    kept = {name: {} for name in names}
    for n in _N_TRAIN:
        q, k, v = _qkv(n, seed=n, requires_grad=True)
        for name in names:
            kept[name][n] = _saved_bytes(_training_implementations()[name], q, k, v)
    mib = 2**20
    rows = []
    for n in _N_TRAIN:
        minimum = 4 * (4 * n * _D + n)  # bytes of Q, K, V, O and L in float32
        cells = [significant(kept[name][n] / mib) for name in names]
        rows.append([f"{n:,}", *cells, significant(minimum / mib)])
    header = [
        "$N$",
        # "/ MiB": a second pair of brackets would follow a name's own
        *(name + say(" (MiB)", _per_mib(zh(name))) for name in names),
        say("$4Nd + N$ numbers (MiB)", "$4Nd + N$ 个数 / MiB"),
    ]
    return markdown_table(header, rows, "r" * len(header))


def gradient_table() -> str:
    """Largest difference of flash_attention's gradients from autograd's through PyTorch's
    attention, for a length that no block divides."""
    g = torch.Generator().manual_seed(5)
    rows = []
    for dtype in (torch.float32, torch.float64):
        q, k, v = (
            torch.randn(1, 2, 1000, 32, generator=g, dtype=dtype)
            .to(device())
            .requires_grad_()
            for _ in range(3)
        )
        upstream = torch.randn(1, 2, 1000, 32, generator=g, dtype=dtype).to(device())
        for causal in (False, True):
            ours = torch.autograd.grad(
                flash_attention(q, k, v, causal, _FLASH_BLOCK), (q, k, v), upstream
            )
            with sdpa_kernel(SDPBackend.MATH):
                ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            expected = torch.autograd.grad(ref, (q, k, v), upstream)
            errors = [
                (a - b).abs().max().item() for a, b in zip(ours, expected, strict=True)
            ]
            setting = [str(dtype).removeprefix("torch."), _YES if causal else _NO]
            rows.append(setting + [f"{e:.1e}" for e in errors])
    header = [_DTYPE, _CAUSAL, "$dQ$", "$dK$", "$dV$"]
    return markdown_table(header, rows, "llrrr")


def tiling_figure() -> Figure:
    """Which blocks are on chip at three steps: two of the forward pass, one backward."""
    blocks = 6
    first, second, third = (
        say("forward:\nquery block 2, key block 1", "前向传播\n查询块 2，键块 1"),
        say("forward:\nquery block 2, key block 4", "前向传播\n查询块 2，键块 4"),
        say("backward:\nkey block 3, query block 4", "反向传播\n键块 3，查询块 4"),
    )
    steps = [
        (first, 2, 1, "forward"),
        (second, 2, 4, "forward"),
        (third, 4, 3, "backward"),
    ]
    fig, axes = figure(ncols=3, width=9.6, height=4.2)
    live, done = COLORS[0], COLORS[5]
    grid = {"edgecolor": GRID, "linewidth": 0.8}  # the tiles of scores
    outline = {"edgecolor": INK, "linewidth": 0.8}  # the blocks of Q, K, V and O
    for ax, (title, qi, kj, direction) in zip(axes, steps, strict=True):
        ax.set_title(title)
        ax.set_xlim(-1.6, blocks + 1.6)
        ax.set_ylim(blocks + 1.6, -1.6)
        ax.set_aspect("equal")
        ax.set_axis_off()
        for r in range(blocks):
            for c in range(blocks):
                if direction == "forward":
                    finished = r < qi or (r == qi and c < kj)
                else:
                    finished = c < kj or (c == kj and r < qi)
                color = live if (r, c) == (qi, kj) else done if finished else "none"
                alpha = 1.0 if (r, c) == (qi, kj) else 0.45
                cell = Rectangle((c, r), 1, 1, facecolor=color, alpha=alpha, **grid)
                ax.add_patch(cell)
        # the strips of Q (left), O (right), K and V (top): the live blocks filled
        strips = [((-1.4, r), r == qi) for r in range(blocks)]
        strips += [((blocks + 0.4, r), r == qi) for r in range(blocks)]
        strips += [((c, -1.4), c == kj) for c in range(blocks)]
        for corner, on in strips:
            fill = live if on else "none"
            ax.add_patch(Rectangle(corner, 1, 1, facecolor=fill, **outline))
        ax.text(-0.9, blocks + 0.5, "$Q$", ha="center", va="center")
        right = "$O$" if direction == "forward" else "$dQ$"
        ax.text(blocks + 0.9, blocks + 0.5, right, ha="center", va="center")
        top = "$K, V$" if direction == "forward" else "$K, V$\n$dK, dV$"
        ax.text(-0.5, -0.9, top, ha="right", va="center")
    return fig


# The on-chip SRAM of a GPU's streaming multiprocessor, in numbers of 2 bytes (fp16):
# A100, 192 KB of L1 and shared memory (Dao et al., 2022, section 2.1); H100, up to 228 KB
# of shared memory (NVIDIA H100 Tensor Core GPU Architecture whitepaper, 2022).
_GPU_SRAM = {
    say("A100 (192 KB)", "A100（192 KB）"): 192 * 1024 // 2,
    say("H100 (228 KB)", "H100（228 KB）"): 228 * 1024 // 2,
}
_IO_N, _IO_D = 4096, 64


def _cpu_caches() -> dict[Say, int]:
    """The build machine's per-core data caches, name -> size in float32 numbers (from
    Linux's sysfs; empty where it is not readable)."""
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            level = (index / "level").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind in ("Data", "Unified") and size.endswith("K") and level in ("1", "2"):
            name = say(
                f"this CPU's L{level} ({size[:-1]} KB)",
                f"本机 CPU 的 L{level}（{size[:-1]} KB）",
            )
            caches[name] = int(size[:-1]) * 1024 // 4
    return caches


def io_figure() -> Figure:
    srams = [2**k for k in range(12, 20)]  # 4,096 to 524,288 numbers
    fig, ax = figure(width=6.4, height=3.8)
    standard = standard_attention_io(_IO_N, _IO_D)
    standard_label = say("standard attention", "标准注意力")
    ax.plot(srams, [standard] * len(srams), color=COLORS[3], label=standard_label)
    counted = [flash_attention_io(_IO_N, _IO_D, m) for m in srams]
    counted_label = say("FlashAttention, counted", "FlashAttention（计数）")
    ax.plot(srams, counted, marker="o", color=COLORS[0], label=counted_label)
    marks = {**_GPU_SRAM, **_cpu_caches()}
    others = [c for i, c in enumerate(COLORS) if i not in (0, 3)]  # not the lines'
    for (name, m), color in zip(marks.items(), others, strict=False):
        ax.axvline(m, color=color, linestyle=":", label=name)
    fig.legend(loc="outside lower center", ncols=2)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=say("on-chip memory $M$ (numbers)", "片上内存 $M$（数的个数）"),
        ylabel=say("HBM reads and writes (numbers)", "HBM 读写量（数的个数）"),
        title=say(
            f"forward pass, $N = {_IO_N:,}$, $d = {_IO_D}$",
            f"前向传播，$N = {_IO_N:,}$，$d = {_IO_D}$",
        ),
    )
    return fig


def io_numbers() -> dict[str, str]:
    standard = standard_attention_io(_IO_N, _IO_D)
    out = {"n": f"{_IO_N:,}", "d": str(_IO_D), "standard": f"{standard / 1e6:.1f}"}
    a100 = _GPU_SRAM["A100 (192 KB)"]
    for d in (64, 128):  # the saving at an A100's memory, for two head widths
        saved = standard_attention_io(_IO_N, d) / flash_attention_io(_IO_N, d, a100)
        out[f"a100_d{d}"] = fmt_ratio(saved)
    marks = {**_GPU_SRAM, **_cpu_caches()}
    lines = []
    for name, m in marks.items():
        flash = flash_attention_io(_IO_N, _IO_D, m)
        fewer, more = fmt_ratio(standard / flash), fmt_ratio(flash / standard)
        ratio = (
            say(f"{fewer} times fewer", f"标准注意力是它的 {fewer} 倍")
            if flash < standard
            else say(f"{more} times more", f"是标准注意力的 {more} 倍")
        )
        lines.append(  # the Chinese puts $M$ inside the name's brackets
            say(
                f"{name}, $M$ = {m:,} numbers: {flash / 1e6:.1f} million accesses, ",
                f"{zh(name).removesuffix('）')}，$M$ = {m:,} 个数）："
                f"{flash / 1e4:,.0f} 万次访问，",
                name,
            )
            + ratio
        )
    out["by_memory"] = join(say("; ", "；"), lines)
    return out
