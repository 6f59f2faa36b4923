"""cpaf_jax.host_memory: when glibc's malloc thresholds are fixed, that they are, and what
that changes for memory freed and allocated again."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from cpaf_jax import host_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.parametrize(
    "env, libc, expected",
    [
        ({}, "glibc", True),
        ({"CPAF_JAX_MALLOC": "1"}, "glibc", True),
        ({"CPAF_JAX_MALLOC": "0"}, "glibc", False),
        ({}, "", False),  # musl, macOS, Windows: no glibc thresholds
        ({"MALLOC_TRIM_THRESHOLD_": "1000000"}, "glibc", False),
        ({"MALLOC_MMAP_THRESHOLD_": "1000000"}, "glibc", False),
        ({"MALLOC_TOP_PAD_": "0"}, "glibc", False),
        ({"MALLOC_MMAP_MAX_": "0"}, "glibc", False),
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, "glibc", False),
        ({"GLIBC_TUNABLES": "glibc.rtld.nns=8"}, "glibc", True),
    ],
)
def test_tuning_applies(env, libc, expected):
    assert host_memory.tuning_applies(env, libc) is expected


class _FakeLibc:
    def __init__(self, accept=True):
        self.calls, self.accept = [], accept
        self.mallopt = self

    def __call__(self, param, value):
        self.calls.append((param, value))
        return 1 if self.accept else 0


@pytest.fixture
def fresh_state(monkeypatch):
    monkeypatch.setattr(host_memory, "_state", {})
    monkeypatch.setattr(host_memory.platform, "libc_ver", lambda: ("glibc", "2.36"))
    for name in (*host_memory._USER_SETTINGS, "GLIBC_TUNABLES", "CPAF_JAX_MALLOC"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("accept", [True, False])
def test_keep_freed_memory_sets_the_thresholds_once(fresh_state, monkeypatch, accept):
    libc = _FakeLibc(accept)
    monkeypatch.setattr(host_memory.ctypes, "CDLL", lambda name: libc)
    assert host_memory.keep_freed_memory() is accept
    assert host_memory.keep_freed_memory() is accept  # once per process
    if accept:
        assert libc.calls == [
            (host_memory.M_MMAP_THRESHOLD, host_memory.MMAP_THRESHOLD),
            (host_memory.M_TRIM_THRESHOLD, host_memory.TRIM_THRESHOLD),
            (host_memory.M_TOP_PAD, host_memory.TOP_PAD),
        ]
    else:  # a rejected mmap threshold leaves the others alone
        assert libc.calls == [(host_memory.M_MMAP_THRESHOLD, host_memory.MMAP_THRESHOLD)]


def test_keep_freed_memory_leaves_a_chosen_setting(fresh_state, monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setattr(host_memory.ctypes, "CDLL", lambda name: libc)
    monkeypatch.setenv("CPAF_JAX_MALLOC", "0")
    assert host_memory.keep_freed_memory() is False
    assert libc.calls == []


@pytest.mark.parametrize("platform, calls", [("cpu", 3), ("gpu", 0), ("tpu", 0)])
def test_keep_freed_memory_on_applies_on_the_cpu_backend_only(
    fresh_state, monkeypatch, platform, calls
):
    libc = _FakeLibc()
    monkeypatch.setattr(host_memory.ctypes, "CDLL", lambda name: libc)
    assert host_memory.keep_freed_memory_on(platform) is (calls > 0)
    assert len(libc.calls) == calls


def test_keep_freed_memory_on_reads_the_default_backend(fresh_state, monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setattr(host_memory.ctypes, "CDLL", lambda name: libc)
    monkeypatch.setattr(host_memory.jax, "default_backend", lambda: "gpu")
    assert host_memory.keep_freed_memory_on() is False
    monkeypatch.setattr(host_memory.jax, "default_backend", lambda: "cpu")
    assert host_memory.keep_freed_memory_on() is True
    assert len(libc.calls) == 3


# Frees 96 MiB in 200 KiB blocks and allocates them again: with glibc's dynamic thresholds
# the freed memory goes back to the kernel (its trim threshold is at most 64 MiB) and every
# page faults again; with the thresholds fixed it stays.
_REUSE = textwrap.dedent(
    """
    import ctypes, os, resource, sys
    from cpaf_jax import host_memory
    if sys.argv[1] == "keep":
        print("applied", host_memory.keep_freed_memory())
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    block, n = 200 * 1024, 480
    for round in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [libc.malloc(block) for _ in range(n)]
        for p in blocks:
            ctypes.memset(p, 1, block)
        for p in reversed(blocks):
            libc.free(p)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print("faults", faults)
    """
)


def _reuse_faults(mode: str, env_extra: dict | None = None) -> tuple[int, str]:
    env = {**os.environ, **(env_extra or {})}
    for name in host_memory._USER_SETTINGS:
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-c", _REUSE, mode], capture_output=True, text=True, env=env, check=True
    ).stdout
    return int(out.split("faults")[-1]), out


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc thresholds only exist under glibc")
def test_freed_memory_is_reused_without_page_faults():
    pages = 480 * 200 * 1024 // 4096  # 24,000 pages touched per round
    kept, out = _reuse_faults("keep")
    assert "applied True" in out
    assert kept < pages // 20
    returned, _ = _reuse_faults("default")
    assert returned > pages // 2
    off, out = _reuse_faults("keep", {"CPAF_JAX_MALLOC": "0"})
    assert "applied False" in out
    assert off > pages // 2


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc thresholds only exist under glibc")
def test_applied_when_cpaf_is_traced_on_cpu_not_on_import():
    code = textwrap.dedent(
        """
        import jax, jax.numpy as jnp
        import cpaf_jax
        from cpaf_jax import host_memory
        print("after import", host_memory._state.get("applied"))
        jax.jit(cpaf_jax.cpaf).lower(jnp.ones((4, 3)), jnp.ones((3, 2)), jnp.ones((3, 2)))
        print("after trace", host_memory._state.get("applied"))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in host_memory._USER_SETTINGS}
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "after import None" in out
    assert "after trace True" in out
