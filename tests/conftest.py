"""Shared fixtures: every test is seeded and runs on the CPU unless it says otherwise."""

from __future__ import annotations

import pytest
import torch

from snippets.runtime import seed_everything


@pytest.fixture
def gen() -> torch.Generator:
    """A seeded generator; also seeds the global RNGs so that tests are deterministic."""
    return seed_everything(0)
