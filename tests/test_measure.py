"""snippets.measure: peaks count tensor bytes exactly; `compare` gives honest intervals.

The timing tests run synthetic calls of known cost on a fake clock: each call advances the
clock by its cost times a random factor, so the true ratio is known exactly and the tests
are deterministic.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch

from snippets.bilingual import say, zh
from snippets.measure import (
    ModelMismatchError,
    Ratio,
    Timings,
    check_exponent,
    check_ratio,
    check_scaling,
    compare,
    fit_scaling,
    median_interval,
    peak_memory_bytes,
    recording,
    timing_device,
)
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


class FakeMachine:
    """A clock and calls that advance it by cost × noise × (1 + drift × calls so far)."""

    def __init__(self, noise: float = 0.05, drift: float = 0.0, seed: int = 0):
        self.now, self.count = 0.0, 0
        self.noise, self.drift = noise, drift
        self.rng = random.Random(seed)

    def clock(self) -> float:
        return self.now

    def call(self, cost: float):
        def run() -> None:
            factor = self.rng.lognormvariate(0.0, self.noise)
            self.now += cost * factor * (1 + self.drift * self.count)
            self.count += 1

        return run


@pytest.mark.parametrize("seed", range(5))
def test_ratio_interval_contains_the_true_ratio(seed):
    m = FakeMachine(noise=0.1, seed=seed)
    t = compare({"2 ms": m.call(0.002), "6 ms": m.call(0.006)}, clock=m.clock)
    r = t.ratio("6 ms", "2 ms")
    assert r.low <= 3.0 <= r.high
    assert r.distinguishable
    assert t.median("6 ms") == pytest.approx(0.006, rel=0.1)


@pytest.mark.parametrize("seed", range(5))
def test_identical_calls_are_not_distinguishable(seed):
    m = FakeMachine(noise=0.1, seed=seed)
    t = compare({"a": m.call(0.002), "b": m.call(0.002)}, clock=m.clock)
    assert not t.ratio("a", "b").distinguishable


def test_a_steadily_slowing_machine_does_not_bias_identical_calls():
    """Each call costs 2% more than the one before; rotation keeps the ratio at 1."""
    m = FakeMachine(noise=0.0, drift=0.02)
    t = compare({"a": m.call(0.002), "b": m.call(0.002)}, rounds=20, clock=m.clock)
    r = t.ratio("a", "b")
    assert r.low <= 1.0 <= r.high
    assert not r.distinguishable


def test_timed_back_to_back_the_slowing_machine_would_bias_the_ratio():
    """The same drift, timed in two runs (all of a, then all of b), favours a: the
    property the previous test relies on is not trivially true."""
    m = FakeMachine(noise=0.0, drift=0.02)
    a = compare({"a": m.call(0.002)}, rounds=20, clock=m.clock)
    b = compare({"b": m.call(0.002)}, rounds=20, clock=m.clock)
    assert b.median("b") / a.median("a") > 1.3


def test_compare_warms_up_then_keeps_every_round():
    m = FakeMachine()
    t = compare(
        {"x": m.call(0.001), "y": m.call(0.001)}, rounds=7, warmup=3, clock=m.clock
    )
    # 7 rounds are rounded up to 8, so that each call is first in as many rounds
    assert m.count == 2 * (8 + 3)
    assert t.rounds == 8 and len(t.seconds["y"]) == 8


def test_compare_rejects_too_few_rounds():
    with pytest.raises(ValueError, match="rounds"):
        compare({"x": lambda: None}, rounds=5)


@pytest.mark.parametrize("rounds", [6, 7, 9, 15])
def test_the_ratio_interval_covers_the_true_ratio_at_least_95_percent(rounds):
    """400 measurements with lognormal noise, true ratio 2: the exact median interval
    covers 2 in at least 92% of them (95% less a margin for 400 trials)."""
    rng = np.random.default_rng(rounds)
    covered = 0
    for _ in range(400):
        fast = np.exp(rng.normal(0, 0.2, rounds))
        slow = 2 * np.exp(rng.normal(0, 0.2, rounds))
        t = Timings({"slow": list(slow), "fast": list(fast)}, "fake", 1, 0.0, 0.0)
        r = t.ratio("slow", "fast")
        covered += r.low <= 2 <= r.high
    assert covered / 400 >= 0.92


def test_median_interval_is_the_sign_test_interval():
    low, high, coverage = median_interval([5, 1, 4, 2, 3, 6, 9, 8, 7])
    assert (low, high) == (2, 8)  # 9 values: the 2nd smallest and the 2nd largest
    assert coverage == pytest.approx(1 - 2 * (1 + 9) / 2**9)
    with pytest.raises(ValueError, match="at least 6"):
        median_interval([1, 2, 3, 4, 5])


def test_six_identical_calls_on_a_drifting_machine_are_never_told_apart():
    m = FakeMachine(noise=0.0, drift=0.01)
    names = [f"c{i}" for i in range(6)]
    t = compare({n: m.call(0.002) for n in names}, rounds=6, clock=m.clock)
    for a in names:
        for b in names:
            if a != b:
                assert not t.ratio(a, b).distinguishable, (a, b)


def test_interval_ends_are_rounded_outwards():
    r = Ratio(1.05, 1.004, 1.081)
    assert r.interval() == "1.00–1.09"
    assert Ratio(43.0, 40.2, 45.1).interval() == "40–46"


def test_recording_collects_the_timings_of_its_block():
    m = FakeMachine()
    with recording() as log:
        t = compare({"x": m.call(0.001)}, clock=m.clock)
    compare({"x": m.call(0.001)}, clock=m.clock)  # outside: not recorded
    assert log == [t]


@pytest.mark.parametrize(
    "cost_a, cost_b, words, chinese",
    [
        (
            0.002,
            0.006,
            r"A was (2\.9\d|3\.0\d) times faster than B",
            r"甲的速度是乙的 (2\.9\d|3\.0\d) 倍（95% 置信区间 ",
        ),
        (
            0.006,
            0.002,
            r"A was (2\.9\d|3\.0\d) times slower than B",
            r"甲的耗时是乙的 (2\.9\d|3\.0\d) 倍",
        ),
        (
            0.002,
            0.002,
            "A and B could not be told apart",
            "甲与乙在这台机器上分不出快慢",
        ),
    ],
)
def test_verdicts_follow_the_interval_and_name_the_subject_first(
    cost_a, cost_b, words, chinese
):
    m = FakeMachine(noise=0.02)
    t = compare({"a": m.call(cost_a), "b": m.call(cost_b)}, clock=m.clock)
    verdict = t.verdict("a", "b", {"a": say("A", "甲"), "b": say("B", "乙")})
    assert re.match(words, verdict) and re.match(chinese, zh(verdict))


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_scaling_fit_recovers_a_power_law(power):
    m = FakeMachine(noise=0.05)
    sizes = [128, 256, 512, 1024, 2048]
    runs = [
        compare({"f": m.call(1e-6 * n**power)}, clock=m.clock).seconds["f"]
        for n in sizes
    ]
    fit = fit_scaling(sizes, runs)
    assert fit.low <= power <= fit.high
    assert fit.exponent == pytest.approx(power, abs=0.05)


def test_scaling_fit_needs_five_sizes():
    with pytest.raises(ValueError, match="5 sizes"):
        fit_scaling([1, 2, 3, 4], [[1.0]] * 4)


def test_a_measurement_far_from_its_model_stops():
    measured = Ratio(220.0, 200.0, 240.0)
    with pytest.raises(ModelMismatchError, match="banded vs dense"):
        check_ratio("banded vs dense", measured, predicted=43.0)
    # within the band, or with the gap explained, it passes and says both numbers
    assert "43" in check_ratio("banded vs fused", Ratio(40.0, 38, 42), 43.0)
    explained = check_ratio("banded vs dense", measured, 43.0, why="page faults")
    assert explained.endswith("; page faults")  # the evidence is shown with the gap
    assert not check_ratio("ok", Ratio(40.0, 38, 42), 43.0, why="x").endswith("x")


def _runs(times: list[float]) -> list[list[float]]:
    return [[t * f for f in (0.99, 1.0, 1.01, 1.0, 0.995, 1.005)] for t in times]


def test_check_scaling_accepts_a_fixed_cost_plus_linear_growth():
    sizes = [128, 256, 512, 1024, 2048, 4096]
    times = [0.002 + 1e-6 * n for n in sizes]  # 2 ms fixed, then linear
    check = check_scaling("linear", sizes, _runs(times), [float(n) for n in sizes])
    assert check.fit.low <= check.predicted + 0.05 and check.predicted < 1


def test_check_scaling_rejects_quadratic_time_against_a_linear_count():
    sizes = [128, 256, 512, 1024, 2048, 4096]
    times = [1e-8 * n * n for n in sizes]
    with pytest.raises(ModelMismatchError, match="quadratic vs linear"):
        check_scaling(
            "quadratic vs linear", sizes, _runs(times), [float(n) for n in sizes]
        )


def test_check_scaling_rejects_a_step_unless_explained():
    """Quadratic, but 4 times slower from 2,048 on (fresh pages, say)."""
    sizes = [128, 256, 512, 1024, 2048, 4096]
    times = [1e-9 * n * n * (4 if n >= 2048 else 1) for n in sizes]
    counts = [float(n * n) for n in sizes]
    with pytest.raises(ModelMismatchError, match="step"):
        check_scaling("step", sizes, _runs(times), counts)
    assert check_scaling("step", sizes, _runs(times), counts, why="page faults")


def test_an_exponent_far_from_its_model_stops():
    from snippets.measure import Scaling

    with pytest.raises(ModelMismatchError, match="dense"):
        check_exponent("dense", Scaling(1.2, 1.1, 1.3), predicted=2.0)
    assert check_exponent("dense", Scaling(1.8, 1.7, 1.9), predicted=2.0)


def test_the_timing_device_reads_as_chinese_before_a_particle(monkeypatch):
    """A page writes "在 {{ device }}上测得": on a GPU the name must end in a full-width
    bracket, as the CPU's does, not in a Latin letter against 上."""
    import snippets.measure as measure
    import snippets.runtime as runtime

    for module in (measure, runtime):
        monkeypatch.setattr(module, "device", lambda: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _: "NVIDIA H200")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    gpu = timing_device()
    assert str(gpu) == "NVIDIA H200 (CUDA 12.8)"
    assert zh(gpu) == "NVIDIA H200（CUDA 12.8）" and "NVIDIA H200" in gpu.kept
    monkeypatch.undo()
    assert zh(timing_device()).endswith("个逻辑 CPU）")
