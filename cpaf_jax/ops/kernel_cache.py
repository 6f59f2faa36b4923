"""The CPU kernel's shared library: built once per machine into a cache folder, verified before
it is loaded, rebuilt when it is damaged.

A library is compiled under a temporary name, checksummed (SHA-256), the checksum written beside
it (``<library>.sha256``) and only then renamed into place. A process loads a library only when
its bytes match the recorded checksum, so a file cut short by a kill or a full disk, or any
other file at that path, is never mapped (a truncated library mapped into memory crashes the
process with SIGBUS). A library that fails the check or fails to load (any exception) is rebuilt
once; if that fails too, :func:`load` raises :class:`KernelBuildError` and the caller
(``cpaf_jax.ops.cpu_kernel``) uses the XLA backward with one warning.

Builders take an exclusive file lock (``<library>.lock``) and the compiler runs under a time
limit, so processes starting together (pytest workers, a sweep's jobs) wait for one build
instead of racing. :func:`build` (``cpaf-train build-kernel``) builds the library ahead of
training, e.g. on a login node or in a container image.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import jax
import jaxlib

__all__ = ["KernelBuildError", "build", "cache_dir", "compiler", "library_path", "load"]

SOURCE = Path(__file__).parent / "kernels" / "cpaf_cpu.cc"
# On x86-64, GCC and Clang keep to 256-bit vectors on AVX-512 CPUs unless asked; the kernel is
# bound by its arithmetic, so it asks for 512 (the flag is harmless on CPUs without AVX-512).
_WIDE = ("-mprefer-vector-width=512",) if platform.machine() in ("x86_64", "AMD64") else ()
FLAGS = ("-O3", "-march=native", *_WIDE, "-std=c++17", "-shared", "-fPIC")
#: The entry point every library must export (``cpaf_backward_f32`` in the source).
SYMBOL = "cpaf_backward_f32"
#: Seconds the compiler may run, and a builder may wait for another's lock.
COMPILE_TIMEOUT_S = 300.0
LOCK_TIMEOUT_S = 600.0


class KernelBuildError(RuntimeError):
    """The kernel could not be built or loaded; the message says why."""


def compiler() -> str | None:
    """The C++ compiler: ``$CXX``, else ``c++``, ``g++`` or ``clang++`` on ``PATH``."""
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def cache_dir() -> Path:
    """``$CPAF_JAX_CACHE/kernels``, else ``~/.cache/cpaf_jax/kernels``."""
    root = os.environ.get("CPAF_JAX_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "cpaf_jax"
    )
    return Path(root) / "kernels"


def _cpu_features() -> str:
    """The CPU's feature flags (``/proc/cpuinfo``), else what ``platform`` knows: part of the
    cache key, since ``-march=native`` code can use instructions another CPU lacks (a home
    folder shared between machines)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def library_path(cxx: str) -> Path:
    """The library's path, keyed by the source, compiler, flags, jaxlib version and CPU."""
    try:
        version = subprocess.run(
            [cxx, "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise KernelBuildError(f"{cxx} --version failed ({type(e).__name__}: {e})") from None
    key = hashlib.sha256(SOURCE.read_bytes())
    for part in (version, " ".join(FLAGS), jaxlib.__version__, _cpu_features()):
        key.update(part.encode())
    return cache_dir() / f"libcpaf_cpu_{key.hexdigest()[:16]}.so"


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified(path: Path) -> bool:
    """Whether ``path`` exists and its bytes match the checksum recorded beside it."""
    try:
        recorded = _checksum_path(path).read_text().strip()
        return bool(recorded) and _sha256(path) == recorded
    except OSError:
        return False


class _Lock:
    """An exclusive ``flock`` on ``path``, waited for up to ``timeout`` seconds."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path, self.timeout, self.fd = path, timeout, -1

    def __enter__(self) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise KernelBuildError(
                        f"another process has held {self.path} for over {self.timeout:.0f} s; "
                        "if no build is running, delete that file"
                    ) from None
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # a cache folder may be shared by users and machines
    os.replace(tmp, path)


def _compile(cxx: str, out: Path) -> None:
    """Compiles the kernel to ``out``; raises KernelBuildError with the compiler's message."""
    cmd = [cxx, *FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", str(out)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise KernelBuildError(
            f"{cxx} ran for over {COMPILE_TIMEOUT_S:.0f} s compiling {SOURCE.name}"
        ) from None
    except OSError as e:
        raise KernelBuildError(f"{' '.join(cmd)} failed: {e}") from None
    if done.returncode != 0:
        raise KernelBuildError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")


def _build_locked(cxx: str, path: Path) -> None:
    """Compiles under a temporary name, records the checksum, renames into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        _compile(cxx, Path(tmp))
        os.chmod(tmp, 0o755)
        # The checksum goes first: a kill between the two renames leaves a checksum that the
        # old (or absent) library does not match, which is rebuilt, never loaded.
        _write_atomically(_checksum_path(path), _sha256(Path(tmp)) + "\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build(force: bool = False) -> Path:
    """Builds the kernel's library into the cache (unless a verified one is there).

    Call it before training (or run ``cpaf-train build-kernel``) to compile once, e.g.
    on a machine with a compiler whose cache folder the training machines share.

    Args:
      force: rebuild even when a verified library is cached.

    Returns:
      the library's path.

    Raises:
      KernelBuildError: no compiler, the compiler failed or ran too long, the cache folder is
        not writable, or another build held the lock too long.
    """
    cxx = compiler()
    if cxx is None:
        raise KernelBuildError("no C++ compiler on PATH (set CXX)")
    path = library_path(cxx)
    if not force and verified(path):  # no lock needed: a read-only shared cache works too
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _Lock(path.with_name(path.name + ".lock"), LOCK_TIMEOUT_S):
            # Checked again under the lock: another process may have just built it.
            if force or not verified(path):
                _build_locked(cxx, path)
    except OSError as e:
        raise KernelBuildError(f"cannot write the kernel cache {path.parent}: {e}") from None
    return path


def _open(path: Path) -> ctypes.CDLL:
    """Loads a verified library and checks that it exports the kernel."""
    lib = ctypes.CDLL(str(path))
    try:
        getattr(lib, SYMBOL)
    except AttributeError:
        # Unloaded, so that the rebuilt library at the same path is not this cached handle.
        import _ctypes

        _ctypes.dlclose(lib._handle)
        raise
    return lib


def load() -> ctypes.CDLL:
    """The kernel's library, loaded: built first if missing, rebuilt once if it fails the
    checksum or fails to load.

    Raises:
      KernelBuildError: the library could not be built, or the rebuilt one did not load.
    """
    path = build()
    try:
        if not verified(path):  # replaced since build() checked it
            raise KernelBuildError(f"{path} does not match its recorded checksum")
        return _open(path)
    except Exception as first:  # noqa: BLE001 - any failure to load: rebuild once
        path = build(force=True)
        try:
            return _open(path)
        except Exception as e:  # noqa: BLE001
            raise KernelBuildError(
                f"{path} did not load ({type(first).__name__}: {first}); rebuilt, it still "
                f"did not ({type(e).__name__}: {e})"
            ) from None
