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
import functools
import gc
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from snippets.bilingual import Say, same, say, spaced, zh
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


def median_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(low, high, coverage): the exact distribution-free interval for a median.

    Sorted, the k-th smallest and the k-th largest of n values bracket the true median
    with probability 1 - 2 P(Binomial(n, 1/2) < k), whatever the distribution (the
    sign test's interval). k is the largest index for which that is at least 95%; it
    needs n >= 6.
    """
    n = len(values)
    if n < 6:
        raise ValueError(
            f"a 95% interval for a median needs at least 6 values, got {n}"
        )
    below = [math.comb(n, i) / 2**n for i in range(n + 1)]  # P(Bin(n, 1/2) = i)
    k = max(k for k in range(1, n // 2 + 1) if sum(below[:k]) <= (1 - CONFIDENCE) / 2)
    ordered = sorted(values)
    return ordered[k - 1], ordered[n - k], 1 - 2 * sum(below[:k])


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def fmt_ratio(x: float, rounding: str = "nearest") -> str:
    """A ratio with two or three significant digits: 43, 4.27, 0.43. `rounding` is
    'down' or 'up' for the ends of an interval, which are rounded outwards."""
    digits = 0 if x >= 9.95 else 2 if x >= 0.0995 else 3
    scale = 10**digits
    value = {"down": math.floor, "up": math.ceil}.get(rounding, round)(
        x * scale
    ) / scale
    return f"{value:.{digits}f}"


# --8<-- [start:ratio]
@dataclasses.dataclass(frozen=True)
class Ratio:
    """How many times longer one call took than another, with a 95% interval."""

    estimate: float  # median over rounds of (slow time / fast time) in the same round
    low: float
    high: float
    coverage: float = CONFIDENCE  # the interval's exact coverage

    @property
    def distinguishable(self) -> bool:
        """True when the interval excludes 1: the two really differ on this machine."""
        return self.low > 1 or self.high < 1

    def interval(self) -> str:
        """The interval, its ends rounded outwards: never narrower than it is."""
        return f"{fmt_ratio(self.low, 'down')}–{fmt_ratio(self.high, 'up')}"

    def inverse(self) -> Ratio:
        return Ratio(1 / self.estimate, 1 / self.high, 1 / self.low, self.coverage)


# --8<-- [end:ratio]


@dataclasses.dataclass(frozen=True)
class Timings:
    """Every time of every call of a `compare`, and the conditions it ran under."""

    seconds: Mapping[str, Sequence[float]]  # name -> one time per kept round
    machine: str
    threads: int
    load_before: float
    load_after: float
    faults: Mapping[str, Sequence[int]] = dataclasses.field(default_factory=dict)

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
        """`slow`'s time over `fast`'s: the median of same-round ratios, with the exact
        95% interval of a median (`median_interval`).

        Dividing times of the same round cancels what the machine did to both of them;
        the median is taken of log-ratios, so that ratio(a, b) is 1 / ratio(b, a).
        """
        logs = np.log(np.asarray(self.seconds[slow]) / np.asarray(self.seconds[fast]))
        low, high, coverage = median_interval(list(logs))
        return Ratio(
            float(np.exp(np.median(logs))), math.exp(low), math.exp(high), coverage
        )

    def page_faults(self, name: str) -> int | None:
        """Median minor page faults of one call of `name` (None where not counted)."""
        counts = self.faults.get(name)
        return int(statistics.median(counts)) if counts else None

    def verdict(self, subject: str, other: str, labels: Mapping[str, str] = {}) -> Say:
        """How `subject` compared with `other`, in words that follow the interval:
        'A was k times faster than B (95% interval ...)', slower, or not told apart."""
        a, b = labels.get(subject, subject), labels.get(other, other)
        r = self.ratio(other, subject)  # > 1: the subject took less time
        if not r.distinguishable:
            own = r.inverse()  # the subject's time over the other's
            k, interval = fmt_ratio(own.estimate), own.interval()
            return say(
                f"{a} and {b} could not be told apart on this machine (time of {a} "
                f"÷ time of {b}: {k}, 95% interval {interval})",
                spaced(zh(a), "与", zh(b), "在这台机器上分不出快慢（", zh(a))
                + spaced("的时间 ÷ ", zh(b), f"的时间：{k}，95% 置信区间 {interval}）"),
                a,
                b,
            )
        faster = r.estimate > 1
        r = r if faster else r.inverse()
        k, interval = fmt_ratio(r.estimate), r.interval()
        return say(
            f"{a} was {k} times {'faster' if faster else 'slower'} than {b} "
            f"(95% interval {interval})",
            spaced(zh(a), "的速度" if faster else "的耗时", "是", zh(b), f"的 {k} 倍")
            + f"（95% 置信区间 {interval}）",
            a,
            b,
        )

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
    rounds: int = 12,
    warmup: int = 1,
    threads: int | None = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> Timings:
    """Time each call once per round, in an order that rotates, and keep every time.

    `rounds` is rounded up to a multiple of the number of calls, so that each call takes
    each place in the order equally often. The first `warmup` rounds are thrown away.
    On the CPU the calls run on `threads` threads (None: as set); on a GPU each call is
    timed from a synchronised start to a synchronised end. The garbage collector runs
    before the rounds and not during them, as in `timeit`; each call's minor page
    faults are counted.
    """
    if rounds < 6:
        raise ValueError(f"rounds must be at least 6 for a 95% interval, got {rounds}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if not calls:
        raise ValueError("calls must name at least one function")
    names = list(calls)
    rounds = -(-rounds // len(names)) * len(names)
    times: dict[str, list[float]] = {name: [] for name in names}
    faults: dict[str, list[int]] = {name: [] for name in names}
    load_before = _load()
    gc.collect()
    with cpu_threads(threads if device().type == "cpu" else None), _no_gc():
        used = torch.get_num_threads()
        for r in range(-warmup, rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                _sync()
                before = _minor_faults()
                start = clock()
                calls[name]()
                _sync()
                elapsed = clock() - start
                if r >= 0:
                    times[name].append(elapsed)
                    faults[name].append(_minor_faults() - before)
    timings = Timings(times, machine_name(), used, load_before, _load(), faults)
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

    def __str__(self) -> Say:
        p, low, high = f"{self.exponent:.2f}", f"{self.low:.2f}", f"{self.high:.2f}"
        return say(
            f"{p} (95% interval {low} to {high})",
            f"{p}（95% 置信区间 {low} 到 {high}）",
        )


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
    # (BOOTSTRAP, sizes)
    resampled = np.stack(
        [np.median(rng.choice(np.asarray(r), (BOOTSTRAP, len(r))), 1) for r in runs],
        axis=1,
    )
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
) -> Say:
    """A measured ratio beside its prediction; stop unless within `band` or explained.

    `why` is the evidence, computed by the build, that accounts for a gap. Returns
    'measured ...; the count predicts ...' for the page, and the evidence after it
    when it was needed, so that a page that shows the one shows the other.
    """
    off = max(measured.estimate / predicted, predicted / measured.estimate)
    if off > band and not why:
        raise ModelMismatchError(
            f"{what}: measured {fmt_ratio(measured.estimate)}× (95% interval "
            f"{measured.interval()}), but the operation count predicts "
            f"{fmt_ratio(predicted)}×, {off:.1f} times off (allowed: {band:g})"
        )
    k, interval, count = (
        fmt_ratio(measured.estimate),
        measured.interval(),
        fmt_ratio(predicted),
    )
    phrase = say(
        f"measured {k}× (95% interval {interval}); the count predicts {count}×",
        f"实测 {k}×（95% 置信区间 {interval}），运算量预测 {count}×",
    )
    return phrase + say("; ", "；") + why if off > band else phrase


def check_exponent(
    what: str, measured: Scaling, predicted: float, band: float = 0.5, why: str = ""
) -> Say:
    """Like check_ratio, for a growth exponent: stop if off by more than `band`."""
    off = abs(measured.exponent - predicted) > band
    if off and not why:
        raise ModelMismatchError(
            f"{what}: measured exponent {measured}, but the count predicts "
            f"{predicted:.2f} (allowed difference: {band:g})"
        )
    exponent = str(measured)
    phrase = say(
        f"measured {exponent}; the model predicts {predicted:.2f}",
        f"实测 {zh(exponent)}，模型预测 {predicted:.2f}",
    )
    return phrase + say("; ", "；") + why if off else phrase


@dataclasses.dataclass(frozen=True)
class ScalingCheck:
    """A fitted exponent beside the model's, over the sizes `check_scaling` used."""

    fit: Scaling
    predicted: float
    sizes: tuple[int, ...]
    phrase: Say
    evidence: str = ""  # the `why` it needed, also at the end of the phrase

    def __str__(self) -> Say:
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

    The model is a fixed cost per call plus a rate times the count: t(n) = a + r c(n),
    with a (Python, dispatch, launch) and r set by the smallest and the largest size.
    Its exponent over the same sizes is what a cost of this shape predicts; a cost that
    grows faster or slower than the count in between shows as a different exponent, and
    any size whose median is more than 3 times off the model stops the build too.
    """
    if len(sizes) < points + 1:
        raise ValueError(
            f"need {points + 1} sizes (one for the fixed cost), got {len(sizes)}"
        )
    medians = [statistics.median(r) for r in runs]
    rate = max(medians[-1] - medians[0], 0.0) / (counts[-1] - counts[0])
    fixed = max(medians[0] - rate * counts[0], 0.0)
    model = [fixed + rate * c for c in counts]
    used = list(sizes[-points:])
    fit = fit_scaling(used, runs[-points:])
    predicted = log_log_slope(used, model[-points:])
    excused = abs(fit.exponent - predicted) > band
    check_exponent(what, fit, predicted, band, why)  # stops if off and unexplained
    phrase = check_exponent(what, fit, predicted, math.inf)  # the numbers alone
    phrase += say(
        f", sizes {used[0]:,} to {used[-1]:,}", f"，规模 {used[0]:,} 到 {used[-1]:,}"
    )
    off = max(max(m / t, t / m) for m, t in zip(model, medians, strict=True))
    if off > 3 and not why:
        raise ModelMismatchError(
            f"{what}: at one size the median time is {off:.1f} times what a fixed cost "
            "plus the count predicts (allowed: 3, as for a ratio)"
        )
    evidence = why if excused or off > 3 else ""
    if evidence:  # it goes with the numbers it explains
        phrase += say("; ", "；") + evidence
    return ScalingCheck(fit, predicted, tuple(used), phrase, evidence)


# --8<-- [end:check]


def _ms(x: float) -> str:
    """Milliseconds with three significant digits and no exponent: 1,020, 47.3, 0.512."""
    return f"{x:,.0f}" if x >= 99.5 else f"{x:#.3g}"


def step_clock() -> tuple[Callable[[], float], str]:
    """The clock for a training loop's steps, and its name for the page.

    On the CPU, the process's CPU time: on one thread it is the work done, not inflated
    by other processes on other cores. On a GPU, whose work runs apart from the CPU,
    wall-clock time from a synchronised start to a synchronised end.
    """
    if device().type == "cpu":
        return time.process_time, say("CPU time", "CPU 时间")

    def synchronised() -> float:
        _sync()
        return time.perf_counter()

    return synchronised, say("wall-clock time", "墙钟时间")


def describe_steps(
    seconds: Sequence[float], unit: str = "step", clock: str = "CPU time"
) -> Say:
    """A training loop's time as a measurement: median per step, middle half, total.

    A loop runs once, so there is nothing to interleave it with; its steps are repeated
    measurements of the same work, and their median resists a moment of load. `clock`
    names what was measured (`step_clock`).
    """
    if not seconds:
        raise ValueError("seconds must hold at least one step's time")
    q1, q2, q3 = (
        _ms(x) for x in np.percentile(np.asarray(seconds) * 1e3, [25, 50, 75])
    )
    n, total, where = (
        len(seconds),
        f"{sum(seconds):.1f}",
        timing_device(torch.get_num_threads()),
    )
    return say(
        f"median {q2} ms of {clock} per {unit} (middle half {q1}–{q3} ms) "
        f"over {n} {unit}s, {total} s in all, on {where}",
        spaced("每", zh(unit), zh(clock), f"的中位数为 {q2} ms")
        + f"（中间 50% 为 {q1}–{q3} ms），"
        + spaced(f"共 {n}", zh(unit), f"，合计 {total} s，运行于", zh(where)),
        unit,
        clock,
        where,
    )


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _minor_faults() -> int:
    try:
        import resource
    except ImportError:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


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


@functools.cache
def fresh_page_seconds() -> float:
    """Seconds the operating system takes to hand over and zero one fresh page, measured:
    filling a freshly allocated 64 MiB buffer against refilling one that is reused."""
    import resource

    n = 16 * 2**20  # float32 numbers: 64 MiB, above glibc's largest mmap threshold
    reused = torch.empty(n)
    t = compare(
        {
            "fresh": lambda: torch.empty(n).fill_(1.0),
            "reused": lambda: reused.fill_(1.0),
        },
        rounds=6,
    )
    pages = 4 * n / resource.getpagesize()
    return max(t.median("fresh") - t.median("reused"), 0.0) / pages


def fault_evidence(
    name: str, faults: int | None, n: int, seconds: float, itemsize: int = 4
) -> Say:
    """Why a function that builds n x n matrices can be slower than its count predicts.

    When one call of it takes at least one n x n matrix's worth of minor page faults,
    its large buffers are fresh memory at every call: the operating system hands them
    over and zeroes them page by page, a cost of bytes, not of arithmetic. The cost of
    one fresh page is measured here, so the phrase says how much of the call's
    `seconds` those faults account for. Returns '' when the count does not show it.
    """
    if faults is None or device().type != "cpu":
        return say("", "")
    import resource

    matrix_pages = itemsize * n * n / resource.getpagesize()
    if faults < matrix_pages:
        return say("", "")
    page_us, times = f"{fresh_page_seconds() * 1e6:.2g}", f"{faults / matrix_pages:.1f}"
    cost, total = f"{faults * fresh_page_seconds() * 1e3:,.0f}", f"{seconds * 1e3:,.0f}"
    return say(
        f"at $N$ = {n:,} one call of {name} took {faults:,} minor page faults (median "
        f"over its calls), {times} times the pages of one $N \\times N$ matrix: its "
        "large buffers are fresh memory at every call, each page a fault that the "
        "operating system serves by mapping and zeroing it, at "
        f"{page_us} µs per page (measured here); that is about "
        f"{cost} ms of the call's {total} ms",
        spaced(f"在 $N$ = {n:,} 时，", zh(name), "每次调用的次要缺页数为")
        + f" {faults:,}（各次调用的中位数），相当于一个 $N \\times N$ 矩阵所占页数的 "
        f"{times} 倍：它的大缓冲区每次调用都是新分配的内存，每一页都触发一次缺页，由"
        f"操作系统映射并清零，每页耗时 {page_us} µs（本机实测）；这约占该调用 "
        f"{total} ms 中的 {cost} ms",
        name,
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


def machine_name() -> Say:
    """The processor or GPU that timings run on, without the thread count."""
    if device().type != "cpu":
        return same(device_description())
    return same(device_description().rsplit(",", 1)[0].removeprefix("CPU: "))


def timing_device(threads: int = 1) -> Say:
    """Where `compare` ran, for captions: 'CPU model, 1 thread (of 2 logical CPUs)'."""
    if device().type == "cuda":
        # in Chinese, full-width brackets: "在 H200（CUDA 12.8）上", as after a CPU
        name = same(torch.cuda.get_device_name(device()))
        chinese = f"{zh(name)}（CUDA {torch.version.cuda}）"
        return say(device_description(), chinese, name)
    if device().type != "cpu":
        return same(device_description())
    unit = "thread" if threads == 1 else "threads"
    cpus = os.cpu_count()
    return machine_name() + say(
        f", {threads} {unit} (of {cpus} logical CPUs)",
        f" 的 {threads} 个线程（共 {cpus} 个逻辑 CPU）",
    )
