"""Shared pytest setup: hypothesis profiles (``ci`` derandomised, ``dev`` more examples)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch
from hypothesis import HealthCheck, settings

from dmm_engine import NeuronRegistry, default_registry

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # Two threads on two shared cores thrash in OpenMP barriers (30x slower under load).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def registry() -> NeuronRegistry:
    """A fresh registry of the built-in neuron types (tests may register their own)."""
    return default_registry()
