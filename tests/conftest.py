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


@pytest.fixture
def no_download(monkeypatch) -> dict[str, list]:
    """The machine offline, and any tfds download an error: records what was attempted.

    ``socket.getaddrinfo`` and ``socket.create_connection`` raise ``OSError`` as they do without a
    network; ``download_tfds`` raises ``AssertionError``. Returns ``{"connect": [...],
    "download": [...]}`` with the arguments of each attempt, for the test to assert on.
    """
    import socket

    from cpaf_jax.data import datasets, tfds_source

    attempts: dict[str, list] = {"connect": [], "download": []}

    def offline(*args, **kwargs):
        attempts["connect"].append(args)
        raise OSError(101, "Network is unreachable (test: offline)")

    def download(*args, **kwargs):
        attempts["download"].append(args)
        raise AssertionError(f"a download was attempted: download_tfds{args}")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    monkeypatch.setattr(socket, "create_connection", offline)
    monkeypatch.setattr(datasets, "download_tfds", download)
    monkeypatch.setattr(tfds_source, "download_tfds", download)
    return attempts
