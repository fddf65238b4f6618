"""Where code runs and how it is seeded: the two facts every executed result depends on."""

from __future__ import annotations

import os
import platform
import random
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch

DEVICE_ENV = "AE_DEVICE"  # set to "cpu" or "cuda" to override the automatic choice

F = TypeVar("F", bound=Callable[..., object])


def device() -> torch.device:
    """The device the course runs on: CUDA when present, else the CPU; `AE_DEVICE` overrides."""
    wanted = os.environ.get(DEVICE_ENV)
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_description() -> str:
    """A human-readable name of the device, for figures, tables and the build report."""
    dev = device()
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [
                ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"CPU: {cpu}, {threads} thread{'' if threads == 1 else 's'}"


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and return a CPU generator seeded the same way.

    Called before every executed demo, so that results do not depend on the order of execution.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def measured(fn: F) -> F:
    """Mark a demo whose output contains wall-clock measurements.

    Such output legitimately differs between two builds; the determinism test skips it.
    """
    fn.measured = True  # type: ignore[attr-defined]
    return fn
