"""Shared fixtures for the cpaf-jax tests.

Nothing here changes JAX's global configuration (device count, x64, matmul precision):
other test files may need their own settings. Float64 is switched on only inside the
``x64`` fixture, through the ``jax.enable_x64`` context manager.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded NumPy generator per test."""
    return np.random.default_rng(0)


@pytest.fixture
def x64():
    """Runs the test with 64-bit types enabled, restoring the previous setting afterwards."""
    with jax.enable_x64(True):
        yield
