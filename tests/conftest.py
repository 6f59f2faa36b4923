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


@pytest.fixture(scope="session")
def jax_subprocess_env(tmp_path_factory) -> dict[str, str]:
    """Environment for tests that run JAX in a fresh process (8 simulated devices and such).

    CPU only, no inherited ``XLA_FLAGS`` (the script chooses its device count), and one JAX
    compilation cache shared by every such process of the session, so a program that two of
    them compile (a run and its resumed copy) is compiled once; ``$CPAF_JAX_TEST_COMPILATION_CACHE``
    names a directory that outlives the session instead.
    """
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env["JAX_PLATFORMS"] = "cpu"
    # CI may keep the cache between runs by naming a directory it restores.
    cache = os.environ.get("CPAF_JAX_TEST_COMPILATION_CACHE") or tmp_path_factory.mktemp("jax")
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    return env
