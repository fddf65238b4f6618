"""How the course measures: interleaved rounds, intervals, scaling fits and a model check.

A timing is a measurement, not a number. Every timed demo of the course goes through
`compare`, which calls the functions it compares in interleaved rounds (each round calls
every function once, in an order that rotates from round to round), so that a machine
that slows down or speeds up during the measurement affects all of them alike. What comes
back keeps every time, so that a ratio can be given with a 95% interval
(`Timings.ratio`), a growth with an exponent and its interval (`fit_scaling`), and both
can be set against what an operation count predicts (`check_ratio`, `check_exponent`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from snippets.runtime import device, device_description

BOOTSTRAP = 2000  # resamples of the rounds for every interval
CONFIDENCE = 0.95


def _sync() -> None:
    if device().type == "cuda":
        torch.cuda.synchronize()


def _load() -> float:
    """The 1-minute load average, or NaN where the system does not tell."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return math.nan


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def _resampled_rounds(rounds: int, seed: int = 0) -> np.ndarray:
    """(BOOTSTRAP, rounds) indices of rounds drawn with replacement, the same every time."""
    return np.random.default_rng(seed).integers(0, rounds, size=(BOOTSTRAP, rounds))


def fmt_ratio(x: float) -> str:
    """A ratio to the precision a measurement supports: 43, 4.3, 0.43."""
    return f"{x:.0f}" if x >= 9.95 else f"{x:.2g}" if x >= 0.995 else f"{x:.2f}"


# --8<-- [start:ratio]
@dataclasses.dataclass(frozen=True)
class Ratio:
    """How many times longer one call took than another, with a 95% interval."""

    estimate: float  # median over rounds of (slow time / fast time) in the same round
    low: float
    high: float

    @property
    def distinguishable(self) -> bool:
        """True when the interval excludes 1: the two really differ on this machine."""
        return self.low > 1 or self.high < 1

    def interval(self) -> str:
        return f"{fmt_ratio(self.low)}–{fmt_ratio(self.high)}"

    def sentence(self, fast: str, slow: str) -> str:
        """'{fast} took k times less time than {slow}', or that they could not be told apart."""
        if not self.distinguishable:
            return (
                f"{fast} and {slow} could not be told apart on this machine "
                f"(ratio {fmt_ratio(self.estimate)}, 95% interval {self.interval()})"
            )
        if self.estimate >= 1:
            return (
                f"{fast} was {fmt_ratio(self.estimate)} times faster than {slow} "
                f"(95% interval {self.interval()})"
            )
        inverse = Ratio(1 / self.estimate, 1 / self.high, 1 / self.low)
        return (
            f"{fast} was {fmt_ratio(inverse.estimate)} times slower than {slow} "
            f"(95% interval {inverse.interval()})"
        )


# --8<-- [end:ratio]


@dataclasses.dataclass(frozen=True)
class Timings:
    """Every time of every call of a `compare`, and the conditions it ran under."""

    seconds: Mapping[str, Sequence[float]]  # name -> one time per kept round
    machine: str
    threads: int
    load_before: float
    load_after: float

    @property
    def rounds(self) -> int:
        return len(next(iter(self.seconds.values())))

    def median(self, name: str) -> float:
        """Median seconds per call of `name`."""
        return statistics.median(self.seconds[name])

    def spread(self, name: str) -> float:
        """Interquartile range over median: 0.05 means the middle half is within 5%."""
        q1, q3 = np.percentile(self.seconds[name], [25, 75])
        return float((q3 - q1) / self.median(name))

    def ratio(self, slow: str, fast: str) -> Ratio:
        """`slow`'s time over `fast`'s, round by round, with a bootstrap interval over rounds.

        Dividing times of the same round cancels what the machine did to both of them.
        """
        per_round = np.asarray(self.seconds[slow]) / np.asarray(self.seconds[fast])
        medians = np.median(per_round[_resampled_rounds(len(per_round))], axis=1)
        return Ratio(float(np.median(per_round)), *_percentiles(medians))

    def summary(self) -> dict[str, object]:
        """What the build report shows: conditions, and median and spread per call."""
        return {
            "machine": self.machine,
            "threads": self.threads,
            "rounds": self.rounds,
            "load": [round(self.load_before, 2), round(self.load_after, 2)],
            "calls": {
                name: {"median_s": self.median(name), "spread": self.spread(name)}
                for name in self.seconds
            },
        }


_journal: list[list[Timings]] = []  # open `recording()` blocks, innermost last


@contextlib.contextmanager
def recording() -> Iterator[list[Timings]]:
    """Collect every `Timings` that `compare` returns inside the block (the build uses it)."""
    log: list[Timings] = []
    _journal.append(log)
    try:
        yield log
    finally:
        _journal.remove(log)


# --8<-- [start:compare]
def compare(
    calls: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 15,
    warmup: int = 2,
    threads: int | None = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> Timings:
    """Time each call once per round, in an order that rotates, and keep every time.

    The first `warmup` rounds are run and thrown away. On the CPU the calls run on
    `threads` threads (None: as set); on a GPU each call is timed from a synchronised
    start to a synchronised end, so that the time covers the work, not its launch.
    """
    if rounds < 3:
        raise ValueError(f"rounds must be at least 3 for an interval, got {rounds}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if not calls:
        raise ValueError("calls must name at least one function")
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    load_before = _load()
    with cpu_threads(threads if device().type == "cpu" else None):
        used = torch.get_num_threads()
        for r in range(warmup + rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                _sync()
                start = clock()
                calls[name]()
                _sync()
                if r >= warmup:
                    times[name].append(clock() - start)
    timings = Timings(times, machine_name(), used, load_before, _load())
    for log in _journal:
        log.append(timings)
    return timings


# --8<-- [end:compare]


@dataclasses.dataclass(frozen=True)
class Scaling:
    """Time grows as size^exponent; `low` and `high` bound the exponent at 95%."""

    exponent: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.exponent:.2f} (95% interval {self.low:.2f} to {self.high:.2f})"


def log_log_slope(sizes: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(value) against log(size): 1 for linear, 2 for quadratic."""
    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(values, float))
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x * x).sum())


# --8<-- [start:scaling]
def fit_scaling(sizes: Sequence[int], runs: Sequence[Sequence[float]]) -> Scaling:
    """Exponent p of time ∝ size^p, fitted to the median of each size's times.

    `runs[i]` holds the times measured at `sizes[i]`. The interval comes from resampling
    each size's times and refitting.
    """
    if len(sizes) < 5:
        raise ValueError(f"a scaling fit needs at least 5 sizes, got {len(sizes)}")
    if len(runs) != len(sizes):
        raise ValueError(f"runs has {len(runs)} entries for {len(sizes)} sizes")
    medians = [statistics.median(r) for r in runs]
    rng = np.random.default_rng(0)
    resampled = np.stack(
        [np.median(rng.choice(np.asarray(r), (BOOTSTRAP, len(r))), 1) for r in runs],
        axis=1,
    )  # (BOOTSTRAP, sizes)
    x = np.log(np.asarray(sizes, float))
    x = x - x.mean()
    y = np.log(resampled)
    slopes = ((y - y.mean(1, keepdims=True)) @ x) / (x @ x)
    return Scaling(log_log_slope(sizes, medians), *_percentiles(slopes))


# --8<-- [end:scaling]


class ModelMismatchError(AssertionError):
    """A measurement that its operation-count model does not explain: the build stops."""


# --8<-- [start:check]
def check_ratio(
    what: str, measured: Ratio, predicted: float, band: float = 3.0, why: str = ""
) -> str:
    """Set a measured ratio beside its prediction; stop unless within `band` or explained.

    `why` is the evidence, computed by the build, that accounts for a gap; it is shown
    on the page. Returns 'measured ..., predicted ...' for the page.
    """
    off = max(measured.estimate / predicted, predicted / measured.estimate)
    if off > band and not why:
        raise ModelMismatchError(
            f"{what}: measured {fmt_ratio(measured.estimate)}× (95% interval "
            f"{measured.interval()}), but the operation count predicts "
            f"{fmt_ratio(predicted)}×, {off:.1f} times off (allowed: {band:g})"
        )
    return (
        f"measured {fmt_ratio(measured.estimate)}× (95% interval {measured.interval()}); "
        f"the count predicts {fmt_ratio(predicted)}×"
    )


def check_exponent(
    what: str, measured: Scaling, predicted: float, band: float = 0.5, why: str = ""
) -> str:
    """Like check_ratio, for a growth exponent: stop if off by more than `band`."""
    if abs(measured.exponent - predicted) > band and not why:
        raise ModelMismatchError(
            f"{what}: measured exponent {measured}, but the count predicts "
            f"{predicted:.2f} (allowed difference: {band:g})"
        )
    return f"measured {measured}; the count predicts {predicted:.2f}"


@dataclasses.dataclass(frozen=True)
class ScalingCheck:
    """A fitted exponent beside the model's, over the sizes `check_scaling` used."""

    fit: Scaling
    predicted: float
    sizes: tuple[int, ...]
    phrase: str

    def __str__(self) -> str:
        return self.phrase


def check_scaling(
    what: str,
    sizes: Sequence[int],
    runs: Sequence[Sequence[float]],
    counts: Sequence[float],
    band: float = 0.5,
    why: str = "",
    points: int = 5,
) -> ScalingCheck:
    """Fit time ∝ size^p over the `points` largest sizes; check p against the model's.

    The model is a fixed cost per call plus a rate times the count: t(n) = a + r c(n).
    The fixed cost a (Python, dispatch, launch) is bounded by the time at the smallest
    size, and the rate r is set by the largest size; the model's exponent over the same
    sizes is what a cost of this shape predicts. A cost that grows faster or slower than
    the count between the two ends shows as a different exponent.
    """
    if len(sizes) < points + 1:
        raise ValueError(
            f"need {points + 1} sizes (one for the fixed cost), got {len(sizes)}"
        )
    medians = [statistics.median(r) for r in runs]
    fixed = medians[0]
    rate = max(medians[-1] - fixed, 0.0) / counts[-1]
    used = list(sizes[-points:])
    fit = fit_scaling(used, runs[-points:])
    predicted = log_log_slope(used, [fixed + rate * c for c in counts[-points:]])
    phrase = check_exponent(what, fit, predicted, band, why)
    return ScalingCheck(
        fit, predicted, tuple(used), f"{phrase} ({used[0]:,} to {used[-1]:,})"
    )


# --8<-- [end:check]


def describe_steps(seconds: Sequence[float], unit: str = "step") -> str:
    """A training loop's CPU time as a measurement: median per step, middle half, total.

    A loop runs once, so there is nothing to interleave it with; its steps are repeated
    measurements of the same work. Measured as the process's CPU time
    (`time.process_time`), on one thread, they are not inflated by other processes on
    other cores, and their median resists a moment of load.
    """
    if not seconds:
        raise ValueError("seconds must hold at least one step's time")
    q1, q2, q3 = np.percentile(np.asarray(seconds) * 1e3, [25, 50, 75])
    return (
        f"median {q2:.3g} ms of CPU time per {unit} (middle half {q1:.3g}–{q3:.3g} ms) "
        f"over {len(seconds)} {unit}s, {sum(seconds):.1f} s in all, on "
        f"{timing_device(torch.get_num_threads())}"
    )


def minor_page_faults(fn: Callable[[], object]) -> int | None:
    """Minor page faults of this process during one call of `fn` (None if not on Linux).

    Each is the kernel handing a fresh page of memory to an allocation: a count of how
    much memory a call touches for the first time.
    """
    try:
        import resource
    except ImportError:
        return None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    _sync()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def fault_evidence(name: str, faults: int | None, n: int, itemsize: int = 4) -> str:
    """Why a function that builds n x n matrices can be slower than its count predicts.

    When one call of it takes at least one n x n matrix's worth of minor page faults,
    its large buffers are fresh memory at every call: the operating system hands them
    over and zeroes them page by page, a cost of bytes, not of arithmetic. Returns that
    evidence as a phrase for the page, or '' when the count does not show it.
    """
    if faults is None:
        return ""
    import resource

    matrix_pages = itemsize * n * n / resource.getpagesize()
    if faults < matrix_pages:
        return ""
    return (
        f"at $N$ = {n:,} one call of {name} took {faults:,} minor page faults, "
        f"{faults / matrix_pages:.1f} times the pages of one $N \\times N$ matrix: its "
        "large buffers are fresh memory at every call"
    )


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
    """Run the body with n intra-op CPU threads (None: as it is), then restore the count."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def machine_name() -> str:
    """The processor or GPU that timings run on, without the thread count."""
    if device().type != "cpu":
        return device_description()
    return device_description().rsplit(",", 1)[0].removeprefix("CPU: ")


def timing_device(threads: int = 1) -> str:
    """Where `compare` ran, for captions: 'CPU model, 1 thread (of 2 logical CPUs)'."""
    if device().type != "cpu":
        return device_description()
    unit = "thread" if threads == 1 else "threads"
    return f"{machine_name()}, {threads} {unit} (of {os.cpu_count()} logical CPUs)"
