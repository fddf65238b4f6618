"""Measuring time and memory the same way everywhere: medians after warm-up, peak bytes.

Used by every chapter that reports a speed-up or a memory saving, so that ratios between
implementations are measured alike.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator

import torch

from snippets.runtime import device, device_description


def _sync() -> None:
    if device().type == "cuda":
        torch.cuda.synchronize()


def median_seconds(
    fn: Callable[[], object], repeats: int = 5, warmup: int = 1
) -> float:
    """Median wall-clock time of `fn()` over `repeats` runs, after `warmup` unmeasured runs."""
    for _ in range(warmup):
        fn()
    _sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes held by tensors that `fn()` allocates, above what was held before it ran.

    On CUDA this is the allocator's own peak counter. On the CPU, PyTorch keeps no such
    counter, so the profiler records every allocation and free in order and we replay them.
    """
    if device().type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        fn()
    records = [
        e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    ]
    held = peak = 0
    for e in sorted(records, key=lambda e: e.start_ns()):
        held += e.nbytes()  # positive for an allocation, negative for a free
        peak = max(peak, held)
    return peak


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the body with n intra-op CPU threads (None: as it is), then restore the count.

    On a shared machine, several threads that wait for each other at every operation are
    slowed down far more than one thread when another process takes a core.
    """
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_cpu_thread() -> contextlib.AbstractContextManager[None]:
    """Time on one thread when the course runs on the CPU; on a GPU, change nothing."""
    return cpu_threads(1 if device().type == "cpu" else None)


def timing_device() -> str:
    """Where timings made under one_cpu_thread() ran, for the page that shows them."""
    if device().type != "cpu":
        return device_description()
    cpu = device_description().rsplit(",", 1)[0]  # "CPU: <model name>"
    return f"{cpu}, 1 thread (of {os.cpu_count()} logical CPUs)"
