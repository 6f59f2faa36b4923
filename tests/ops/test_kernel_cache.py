"""The kernel's cache (``cpaf_jax.ops.kernel_cache``): a damaged library is rebuilt, never
loaded.

The "compiler" here is a script that copies the library the session already built (or prints a
version), so each rebuild takes milliseconds and counts itself; the cache folder is the test's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from cpaf_jax.ops import cpu_kernel, kernel_cache

pytestmark = pytest.mark.skipif(
    not cpu_kernel.available(), reason="no C++ compiler: the XLA backward is used (tested)"
)


@pytest.fixture
def fake_cxx(tmp_path, monkeypatch):
    """``$CXX`` set to a copying compiler, ``$CPAF_JAX_CACHE`` to a fresh folder; returns the
    file each compilation appends a line to."""
    real = kernel_cache.build()  # the session's library, built once by the real compiler
    log = tmp_path / "compilations"
    script = tmp_path / "cxx"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            if [ "$1" = "--version" ]; then echo "copying compiler 1.0"; exit 0; fi
            while [ "$#" -gt 1 ]; do
              if [ "$1" = "-o" ]; then echo built >> {log}; exec cp {real} "$2"; fi
              shift
            done
            exit 1
            """
        )
    )
    script.chmod(0o755)
    monkeypatch.setenv("CXX", str(script))
    monkeypatch.setenv("CPAF_JAX_CACHE", str(tmp_path / "cache"))
    return log


def _builds(log) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_a_build_records_the_checksum_and_is_not_repeated(fake_cxx):
    path = kernel_cache.build()
    assert kernel_cache.verified(path) and _builds(fake_cxx) == 1
    kernel_cache.build()
    assert _builds(fake_cxx) == 1
    kernel_cache.build(force=True)
    assert _builds(fake_cxx) == 2
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _not_a_library(path):
    path.write_text("not a shared library\n")


def _forged(path):
    """Another file at the path, with its checksum recorded: it fails to load instead."""
    _not_a_library(path)
    (path.parent / (path.name + ".sha256")).write_text(kernel_cache._sha256(path) + "\n")


@pytest.mark.parametrize("damage", (_truncate, _not_a_library, _forged))
def test_a_damaged_library_is_rebuilt_and_loads(fake_cxx, damage):
    path = kernel_cache.build()
    damage(path)
    assert _builds(fake_cxx) == 1
    lib = kernel_cache.load()
    assert _builds(fake_cxx) == 2 and kernel_cache.verified(path)
    assert getattr(lib, kernel_cache.SYMBOL) is not None


def test_a_library_without_the_kernel_is_rebuilt_once(fake_cxx, tmp_path):
    """A library that loads but lacks the entry point (another library at that path, its
    checksum recorded): rebuilt, and the rebuilt one is loaded, not the cached handle."""
    other = tmp_path / "other.c"
    other.write_text("int not_the_kernel(void) { return 1; }\n")
    path = kernel_cache.build()
    cc = os.environ.get("CC") or "cc"
    subprocess.run([cc, "-shared", "-fPIC", str(other), "-o", str(path)], check=True)
    (path.parent / (path.name + ".sha256")).write_text(kernel_cache._sha256(path) + "\n")
    lib = kernel_cache.load()
    assert _builds(fake_cxx) == 2
    assert getattr(lib, kernel_cache.SYMBOL) is not None


def test_a_library_that_never_loads_is_one_error(fake_cxx, monkeypatch):
    monkeypatch.setattr(kernel_cache, "_open", lambda path: (_ for _ in ()).throw(OSError("bad")))
    with pytest.raises(kernel_cache.KernelBuildError, match="rebuilt, it still did not"):
        kernel_cache.load()
    assert _builds(fake_cxx) == 2  # the first build and one rebuild, no more


def test_a_compiler_that_hangs_is_stopped(fake_cxx, tmp_path, monkeypatch):
    slow = tmp_path / "slow"
    slow.write_text('#!/bin/sh\n[ "$1" = "--version" ] && exit 0\nsleep 30\n')
    slow.chmod(0o755)
    monkeypatch.setenv("CXX", str(slow))
    monkeypatch.setattr(kernel_cache, "COMPILE_TIMEOUT_S", 0.5)
    with pytest.raises(kernel_cache.KernelBuildError, match="ran for over"):
        kernel_cache.build()
    assert [p.name for p in kernel_cache.cache_dir().iterdir() if p.suffix == ".so"] == []


def test_a_verified_library_in_a_read_only_cache_is_used(fake_cxx, monkeypatch):
    path = kernel_cache.build()

    def no_lock(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(kernel_cache.os, "open", no_lock)
    assert kernel_cache.build() == path
    with pytest.raises(kernel_cache.KernelBuildError, match="cannot write the kernel cache"):
        kernel_cache.build(force=True)
    assert _builds(fake_cxx) == 1


def test_concurrent_builders_wait_for_one_build(fake_cxx, tmp_path, monkeypatch):
    """Two processes' worth of builders (threads with their own lock descriptors) start
    together: one compiles, the other waits on the lock and finds the library verified."""
    import threading

    slow = tmp_path / "slow_cxx"
    real = os.environ["CXX"]
    slow.write_text(f'#!/bin/sh\n[ "$1" = "--version" ] || sleep 1\nexec {real} "$@"\n')
    slow.chmod(0o755)
    monkeypatch.setenv("CXX", str(slow))
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(kernel_cache.build())) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(paths) == 2 and paths[0] == paths[1] and kernel_cache.verified(paths[0])
    assert _builds(fake_cxx) == 1


_RUN = textwrap.dedent(
    """
    import warnings, jax, jax.numpy as jnp
    from cpaf_jax import cpaf
    from cpaf_jax.ops import cpu_kernel
    warnings.simplefilter("error")
    y, a, b = jnp.linspace(-2, 2, 24).reshape(4, 6), jnp.ones((6, 2)), jnp.zeros((6, 2))
    fn = jax.jit(jax.grad(lambda y, a, b: jnp.sum(cpaf(y, a, b)), (0, 1, 2)))
    print(cpu_kernel.TARGET in fn.lower(y, a, b).as_text(), float(fn(y, a, b)[0].sum()))
    """
)


@pytest.mark.parametrize("damage", (_truncate, _not_a_library), ids=("truncated", "other-file"))
def test_a_process_finding_a_damaged_library_runs(fake_cxx, jax_subprocess_env, damage):
    """Before, a library cut to half its size crashed every process with SIGBUS."""
    damage(kernel_cache.build())
    env = {k: os.environ[k] for k in ("CXX", "CPAF_JAX_CACHE")}
    proc = subprocess.run(
        [sys.executable, "-c", _RUN],
        env={**jax_subprocess_env, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[0] == "True" and _builds(fake_cxx) == 2


def test_the_build_command_builds_and_reports_the_path(fake_cxx, capsys, monkeypatch):
    from cpaf_jax.ops.build_kernel import main

    assert main(["--force"]) == 0
    assert str(kernel_cache.build()) in capsys.readouterr().out
    assert _builds(fake_cxx) == 1
    monkeypatch.setenv("CXX", "false")
    assert main([]) == 1
    assert capsys.readouterr().err.startswith("error: ")
