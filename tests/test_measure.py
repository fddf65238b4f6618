"""snippets.measure: the peak counts tensor bytes exactly; the median is a median."""

from __future__ import annotations

import time

import pytest
import torch

from snippets.measure import median_seconds, peak_memory_bytes
from snippets.runtime import device

# Sizes are multiples of 512 bytes, the rounding unit of the CUDA caching allocator, so
# that the expected byte counts are exact on the GPU as well as on the CPU.
N = 64 * 1024  # elements


@pytest.mark.parametrize(
    "dtype, itemsize", [(torch.float32, 4), (torch.float64, 8), (torch.int8, 1)]
)
def test_peak_of_one_tensor_is_its_size(dtype, itemsize):
    size = N * 8  # multiple of 512 bytes for every itemsize
    assert peak_memory_bytes(
        lambda: torch.empty(size, dtype=dtype, device=device())
    ) == (size * itemsize)


def test_sequential_freed_allocations_peak_at_the_largest():
    def one_after_the_other():
        a = torch.empty(N, device=device())
        del a
        b = torch.empty(3 * N, device=device())
        del b

    assert peak_memory_bytes(one_after_the_other) == 3 * N * 4


def test_simultaneous_allocations_add_up():
    def both_at_once():
        a = torch.empty(N, device=device())
        b = torch.empty(3 * N, device=device())
        return a, b

    assert peak_memory_bytes(both_at_once) == 4 * N * 4


def test_memory_held_before_the_call_is_not_counted():
    held = torch.empty(10 * N, device=device())  # noqa: F841, alive during the call
    assert peak_memory_bytes(lambda: torch.empty(N, device=device())) == N * 4


def test_a_matmul_peaks_at_its_output():
    a = torch.randn(256, 128, device=device())
    b = torch.randn(128, 512, device=device())
    assert peak_memory_bytes(lambda: a @ b) == 256 * 512 * 4


def test_median_seconds_runs_warmup_then_repeats_and_takes_the_median(monkeypatch):
    """Calls of known length on a fake clock: the result is exactly the middle one."""
    durations = iter([0.0, 0.040, 0.001, 0.020, 0.060, 0.002])  # the first is warm-up
    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    calls = []

    def fn():
        calls.append(1)
        clock[0] += next(durations)

    result = median_seconds(fn, repeats=5, warmup=1)
    assert len(calls) == 6
    assert result == pytest.approx(0.020)
