"""Chapter 14: the sweep's structure and budgets, and agreement of the exact implementations."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest
import torch
import torch.nn.functional as F

from snippets.benchmarks import (
    Measurement,
    crossover,
    default_lengths,
    differences,
    implementations,
    random_qkv,
    sweep,
    sweep_table,
)
from snippets.measure import cpu_threads

# Small settings so that n = 32 and 64 are valid for every method (Reformer needs n to be
# a multiple of its chunk) and the window covers the whole sequence.
TINY = dict(window=64, num_features=32, chunk_size=16, num_rounds=2, block_size=16)
EXACT = ["dense (ours)", "PyTorch fused", "tiled, blocks of 16", "sliding window ±64"]


@pytest.fixture(scope="module")
def tiny_results() -> list[Measurement]:
    # No budget: on a busy machine even a tiny call can be slow enough to be skipped.
    return sweep(
        implementations(**TINY), [32, 64], rounds=6, warmup=0, max_seconds=math.inf
    )


def test_sweep_measures_every_implementation_at_every_length(tiny_results):
    names = [impl.name for impl in implementations(**TINY)]
    assert len(names) == 6
    assert [(m.name, m.n) for m in tiny_results] == [
        (name, n) for n in (32, 64) for name in names
    ]
    for m in tiny_results:
        assert m.skipped == ""
        assert isinstance(m.seconds, float) and m.seconds > 0
        assert isinstance(m.peak_bytes, int) and m.peak_bytes > 0
        assert len(m.times) == 6 and m.seconds == pytest.approx(
            statistics.median(m.times)
        )


@pytest.mark.parametrize("budget", [dict(max_seconds=0.0), dict(max_bytes=0)])
def test_over_budget_is_skipped_from_then_on(budget):
    impls = implementations(**TINY)[:2]
    results = sweep(impls, [32, 64, 128], rounds=6, warmup=0, **budget)
    first, later = results[:2], results[2:]
    assert all(m.seconds is not None for m in first)  # nothing to predict from yet
    assert all(m.seconds is None and m.peak_bytes is None for m in later)
    assert all(m.skipped.startswith("predicted over") for m in later)


def test_thread_count_is_restored_after_the_sweep():
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    sweep(implementations(**TINY)[:1], [32], rounds=6, warmup=0, threads=1)
    assert torch.get_num_threads() == before


def test_total_budget_stops_the_sweep():
    results = sweep(implementations(**TINY)[:2], [32, 64], max_total_seconds=0.0)
    assert all(m.seconds is None for m in results)
    assert all(m.skipped == "sweep's 0 s spent" for m in results)


def test_total_budget_spares_the_lengths_that_must_be_measured():
    impls = implementations(**TINY)[:2]
    results = sweep(impls, [32, 64], max_total_seconds=0.0, always_up_to=32)
    assert [m.seconds is None for m in results] == [False, False, True, True]


@pytest.mark.parametrize("n", [32, 64])
def test_exact_implementations_equal_pytorch(n):
    """Dense, fused, tiled and a window as wide as the sequence are the same function."""
    impls = {impl.name: impl for impl in implementations(**TINY)}
    q, k, v = random_qkv(n, 2, 3, 16, seed=n)
    expected = F.scaled_dot_product_attention(q, k, v)
    for name in EXACT:
        out = impls[name].fn(q, k, v)
        torch.testing.assert_close(out, expected, atol=2e-6, rtol=2e-5, msg=name)


def test_differences_are_rounding_for_exact_and_finite_for_estimates():
    result = differences(implementations(**TINY), 64, d=16)
    for name in EXACT:
        max_abs, relative = result[name]
        assert max_abs < 2e-6 and relative < 2e-6, name
    for name, (max_abs, relative) in result.items():
        assert math.isfinite(max_abs) and math.isfinite(relative), name


def test_estimates_match_their_reference_shapes():
    q, k, v = random_qkv(64, 1, 2, 16, seed=0)
    for impl in implementations(**TINY):
        assert impl.fn(q, k, v).shape == impl.reference(q, k, v).shape == v.shape


def test_sweep_table_marks_skipped_cells():
    results = [
        Measurement("a", 128, 0.5, 10),
        Measurement("b", 128, 0.25, 20),
        Measurement("a", 256, None, None, "predicted over 1 s per call"),
        Measurement("b", 256, 1.0, 40),
    ]
    table = sweep_table(results, "seconds", lambda s: f"{s:.2f}").splitlines()
    assert table[0] == "| $N$ | a | b |"
    assert table[2] == "| 128 | 0.50 | 0.25 |"
    assert table[3] == "| 256 | — | 1.00 |"


JITTER = (0.99, 1.0, 1.01, 1.005, 0.995, 1.0)  # six rounds, within 1%


def _timings(times: dict[str, list[float]]) -> list[Measurement]:
    """Measurements whose rounds all took the given time, give or take 1%."""
    return [
        Measurement(name, n, float(t), 1, times=tuple(t * f for f in JITTER))
        for name, ts in times.items()
        for n, t in zip((1, 2, 4, 8), ts, strict=True)
    ]


def test_crossover_is_the_first_length_of_a_lasting_lead():
    # "fast" loses at n = 1 and wins at 2, 4 and 8.
    results = _timings({"slow": [1, 2, 4, 8], "fast": [2, 1, 3, 4]})
    assert crossover(results, "fast", "slow") == (2, 8)
    assert crossover(results, "slow", "fast") == (None, 8)
    # A lead that is lost again at n = 4 does not count: the lasting one starts at 8.
    results = _timings({"slow": [1, 2, 4, 8], "fast": [2, 1, 5, 4]})
    assert crossover(results, "fast", "slow") == (8, 8)


def test_a_lead_within_the_noise_is_not_a_crossover():
    """2% faster on average, but the rounds overlap: not distinguishable, no crossover."""
    slow = Measurement("slow", 8, 1.0, 1, times=(0.9, 1.0, 1.1, 0.95, 1.05, 1.0))
    fast = Measurement("fast", 8, 0.98, 1, times=(1.05, 0.98, 0.92, 0.9, 1.02, 0.97))
    assert crossover([slow, fast], "fast", "slow") == (None, 8)


def test_each_count_grows_as_its_algorithm_says():
    """The counts the chapter checks the timings against: quadratic, linear, n log n."""
    impls = {i.name.split(",")[0].split(" ±")[0]: i for i in implementations(**TINY)}
    for name, power in [
        ("dense (ours)", 2),
        ("PyTorch fused", 2),
        ("sliding window", 1),
    ]:
        count = impls[name].multiply_adds
        assert count(2048, 64) / count(1024, 64) == pytest.approx(2**power)
    assert impls["Performer"].multiply_adds(2048, 64) == 2 * impls[
        "Performer"
    ].multiply_adds(1024, 64)


def test_default_lengths_reach_8192_on_cpu_and_further_on_gpu(monkeypatch):
    monkeypatch.setenv("AE_DEVICE", "cpu")
    cpu = default_lengths()
    assert cpu[0] == 128 and 8192 in cpu
    assert all(b == 2 * a for a, b in itertools.pairwise(cpu))
    monkeypatch.setenv("AE_DEVICE", "cuda")
    assert default_lengths()[-1] > cpu[-1]
