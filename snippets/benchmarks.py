"""One benchmark for every attention of the course: time and peak memory against N.

All implementations take the same (q, k, v) of shape (B, H, N, d) and are measured in
one run, one after the other at each sequence length, with the same inputs, so that their
ratios are comparable. The sweep protects the build: before each measurement it predicts
the time per call and the peak memory from the previous length (assuming quadratic
growth, which overestimates the linear methods) and skips what would exceed the budget.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from snippets.attention import scaled_dot_product_attention
from snippets.bilingual import say
from snippets.flash import tiled_attention
from snippets.measure import (
    Ratio,
    Timings,
    compare,
    cpu_threads,
    peak_memory_bytes,
)
from snippets.performer import favor_attention
from snippets.plotting import markdown_table
from snippets.reformer import lsh_attention, shared_qk_attention
from snippets.runtime import device
from snippets.sparse import sliding_window_attention, sliding_window_mask

Attention = Callable[[Tensor, Tensor, Tensor], Tensor]  # (q, k, v) -> output


# --8<-- [start:implementations]
@dataclasses.dataclass(frozen=True)
class Implementation:
    """An attention function and the exact function it computes or approximates."""

    name: str
    fn: Attention  # (B, H, N, d) x 3 -> (B, H, N, d_v)
    computes: str  # what its output is, in words
    reference: Attention  # the exact O(N^2) computation of the same quantity
    multiply_adds: Callable[[int, int], float]  # (N, d) -> the count of the model


def implementations(
    window: int = 128,  # sliding window: |i - j| <= window
    num_features: int = 256,  # Performer: random features m
    chunk_size: int = 64,  # Reformer: chunk length; buckets = 2 N / chunk_size
    num_rounds: int = 2,  # Reformer: hash rounds
    block_size: int = 256,  # tiled: keys per tile
    seed: int = 0,  # random features and hash rotations
) -> list[Implementation]:
    """The six attentions of chapters 3, 10, 11, 12 and 13, with one set of settings."""

    def dense(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return scaled_dot_product_attention(q, k, v)[0]

    def window_reference(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        mask = sliding_window_mask(q.size(-2), window).to(q.device)
        return scaled_dot_product_attention(q, k, v, mask)[0]

    def performer(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        g = torch.Generator().manual_seed(seed)  # the same features at every call
        return favor_attention(q, k, v, num_features, generator=g)

    def reformer(q: Tensor, k: Tensor, v: Tensor) -> Tensor:  # shared QK: k is unused
        g = torch.Generator().manual_seed(seed)
        buckets = max(2, 2 * q.size(-2) // chunk_size)  # the paper's: 2 N / chunk
        return lsh_attention(q, v, buckets, num_rounds, chunk_size, generator=g)

    def reformer_reference(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return shared_qk_attention(q, v)

    def exact(n: int, d: int) -> float:  # scores and weighted sum
        return 2 * n * n * d

    def banded(n: int, d: int) -> float:  # blocks of b queries, spans of b + 2w keys
        b = min(max(window, 32), n)  # as sliding_window_attention chooses it
        return 2 * n * (b + 2 * window) * d

    def features(n: int, d: int) -> float:
        # project q and k, then K'^T V and Q'(K'^T V)
        return 4 * n * num_features * d

    def hashed(n: int, d: int) -> float:  # per round: rotate, sort, attend to 2 chunks
        buckets = max(2, 2 * n // chunk_size)
        return num_rounds * (
            n * d * buckets / 2 + n * math.log2(n) + 4 * n * chunk_size * d
        )

    exactly = say("exact attention", "精确注意力")  # what the first three compute
    return [
        Implementation(
            say("dense (ours)", "我们的稠密注意力"), dense, exactly, dense, exact
        ),
        Implementation(
            say("PyTorch fused", "PyTorch 融合函数"),
            F.scaled_dot_product_attention,
            exactly,
            dense,
            exact,
        ),
        Implementation(
            say(f"tiled, blocks of {block_size}", f"分块循环，块大小 {block_size}"),
            lambda q, k, v: tiled_attention(q, k, v, block_size),
            exactly,
            dense,
            exact,
        ),
        Implementation(
            say(f"sliding window ±{window}", f"滑动窗口 ±{window}"),
            lambda q, k, v: sliding_window_attention(q, k, v, window),
            say(
                f"exact attention over the keys at most {window} positions away",
                f"对相距不超过 {window} 个位置的键做精确注意力",
            ),
            window_reference,
            banded,
        ),
        Implementation(
            say(f"Performer, m = {num_features}", f"Performer，m = {num_features}"),
            performer,
            say("random-feature estimate of attention", "注意力的随机特征估计"),
            dense,
            features,
        ),
        Implementation(
            say(f"Reformer, {num_rounds} rounds", f"Reformer，{num_rounds} 轮"),
            reformer,
            say(
                f"shared-QK attention within hash buckets (chunks of {chunk_size})",
                f"哈希桶内共享查询和键的注意力（段长 {chunk_size}）",
            ),
            reformer_reference,
            hashed,
        ),
    ]


# --8<-- [end:implementations]


# --8<-- [start:sweep]
@dataclasses.dataclass(frozen=True)
class Measurement:
    name: str
    n: int
    seconds: float | None  # median time per call; None if skipped
    peak_bytes: int | None  # peak memory of tensors allocated by one call
    skipped: str = ""  # why it was not measured
    times: tuple[float, ...] = ()  # every round's time, for intervals
    page_faults: int | None = None  # minor page faults of one call (Linux)


def random_qkv(
    n: int, batch: int, heads: int, d: int, seed: int, scale: float = 1.0
) -> tuple[Tensor, Tensor, Tensor]:
    """q, k with N(0, scale^2) components, v with N(0, 1); each (batch, heads, n, d)."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, n, d, generator=g) for _ in range(3))
    return q.mul(scale).to(device()), k.mul(scale).to(device()), v.to(device())


def _over_budget(
    previous: tuple[int, float, int], n: int, max_seconds: float, max_bytes: int
) -> str:
    """Why length n would exceed a budget, from (n_prev, seconds, bytes); or ''."""
    n0, t0, b0 = previous
    growth = (n / n0) ** 2  # quadratic: exact for dense, pessimistic otherwise
    if t0 * growth > max_seconds:
        return say(
            f"predicted over {max_seconds:g} s per call",
            f"预测每次调用超过 {max_seconds:g} s",
        )
    if b0 * growth > max_bytes:
        return say(
            f"predicted over {max_bytes / 2**30:g} GiB",
            f"预测超过 {max_bytes / 2**30:g} GiB",
        )
    return ""


def sweep(
    impls: list[Implementation],
    lengths: list[int],
    batch: int = 1,
    heads: int = 1,
    d: int = 64,
    rounds: int = 6,  # rounded up to a multiple of the implementations measured
    warmup: int = 1,
    # per call, predicted; beyond always_up_to, over it the length is skipped
    max_seconds: float = 1.0,
    max_bytes: int = 2**30,  # peak memory, predicted
    # for the whole sweep; then the rest is skipped ...
    max_total_seconds: float = math.inf,
    # ... except lengths up to this one, measured whatever they cost in time
    always_up_to: int = 0,
    threads: int | None = None,  # CPU threads during the sweep; None: leave as is
    seed: int = 0,
) -> list[Measurement]:
    """Time and peak memory of every implementation at every length.

    At each length the implementations still within budget are timed together by
    `compare`, in interleaved rounds. The prediction for the next length is the fastest
    call at this one times (n / n_prev)^2; a skipped implementation stays skipped.
    Up to `always_up_to`, only the memory budget can skip a length.
    """
    start = time.perf_counter()
    results: list[Measurement] = []
    last: dict[str, tuple[int, float, int]] = {}  # name -> (n, fastest s, bytes)
    stopped: dict[str, str] = {}
    for n in lengths:
        q, k, v = random_qkv(n, batch, heads, d, seed + n)
        calls, peaks = {}, {}
        for impl in impls:
            reason = stopped.get(impl.name, "")
            spent = time.perf_counter() - start
            if not reason and n > always_up_to and spent > max_total_seconds:
                reason = say(
                    f"sweep's {max_total_seconds:g} s spent",
                    f"扫描的 {max_total_seconds:g} s 已用完",
                )
            limit = max_seconds if n > always_up_to else math.inf
            if not reason and impl.name in last:
                reason = _over_budget(last[impl.name], n, limit, max_bytes)
            if reason:
                stopped[impl.name] = reason
                continue
            calls[impl.name] = functools.partial(impl.fn, q, k, v)
        if not calls:
            timings = None
        else:
            with torch.no_grad(), cpu_threads(threads):
                for name, call in calls.items():
                    peaks[name] = peak_memory_bytes(call)
                timings = compare(calls, rounds=rounds, warmup=warmup, threads=threads)
        for impl in impls:
            if timings is None or impl.name not in calls:
                results.append(
                    Measurement(impl.name, n, None, None, stopped[impl.name])
                )
                continue
            times = tuple(timings.seconds[impl.name])
            last[impl.name] = (n, min(times), peaks[impl.name])
            results.append(
                Measurement(
                    impl.name,
                    n,
                    timings.median(impl.name),
                    peaks[impl.name],
                    times=times,
                    page_faults=timings.page_faults(impl.name),
                )
            )
    return results


# --8<-- [end:sweep]


def default_lengths() -> list[int]:
    """128, 256, ... up to 8,192 on the CPU and 65,536 on a GPU."""
    top = 65_536 if device().type == "cuda" else 8_192
    return [2**p for p in range(7, int(math.log2(top)) + 1)]


def differences(
    impls: list[Implementation], n: int, d: int = 64, seed: int = 1, scale: float = 1.0
) -> dict[str, tuple[float, float]]:
    """(largest |output - reference|, ||output - reference|| / ||v - mean(v)||) of each
    implementation, Frobenius norms over the whole output, for q and k with components
    of standard deviation `scale` (the larger, the more peaked the attention). The
    error is relative to the spread of the values, not to the output: an average of
    values can be near zero, which would inflate a relative error.

    The reference runs in float64, so that the exact methods show their float32 rounding.
    """
    q, k, v = random_qkv(n, 1, 1, d, seed, scale)
    out = {}
    with torch.no_grad():
        for impl in impls:
            ref = impl.reference(q.double(), k.double(), v.double())
            diff = impl.fn(q, k, v).double() - ref
            out[impl.name] = (
                diff.abs().max().item(),
                (
                    diff.norm()
                    / (v.double() - v.double().mean(-2, keepdim=True)).norm()
                ).item(),
            )
    return out


def crossover(
    results: list[Measurement], name: str, baseline: str
) -> tuple[int | None, int | None]:
    """(first n from which `name` is faster than `baseline` at every larger measured n,
    largest n at which both were measured). Faster means the 95% interval of the
    time ratio lies above 1; None when that never lasts to the longest length."""
    by = {(m.name, m.n): m for m in results if m.seconds is not None}
    common = sorted(n for (nm, n) in by if nm == name and (baseline, n) in by)
    first = None
    for n in reversed(common):
        if ratio(by[(baseline, n)], by[(name, n)]).low > 1:
            first = n
        else:
            break
    return first, (common[-1] if common else None)


def ratio(slow: Measurement, fast: Measurement) -> Ratio:
    """`slow`'s time over `fast`'s at one length, round by round, with its 95% interval."""
    t = Timings({"slow": slow.times, "fast": fast.times}, "", 0, 0.0, 0.0)
    return t.ratio("slow", "fast")


def sweep_table(
    results: list[Measurement], field: str, fmt: Callable[[float], str]
) -> str:
    """Rows: sequence lengths; columns: implementations; '—' where it was skipped."""
    names = list(dict.fromkeys(m.name for m in results))
    lengths = sorted({m.n for m in results})
    cell = {(m.name, m.n): getattr(m, field) for m in results}
    rows = [
        [f"{n:,}", *("—" if (v := cell.get((x, n))) is None else fmt(v) for x in names)]
        for n in lengths
    ]
    return markdown_table(["$N$", *names], rows, "r" * (len(names) + 1))
