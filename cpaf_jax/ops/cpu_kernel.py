"""The one-pass CPU backward of CPAF and of the activations whose records name a form of it
(``kernels/cpaf_cpu.cc``): built on first use, called through ``jax.ffi`` (by
``cpaf_jax.ops.kernel_vjp``).

The kernel reads ``y`` and the cotangent once, writes the input cotangent and accumulates the
parameter sums (2k for CPAF) in the same pass, with rows split over XLA's intra-op thread pool: the
reductions XLA:CPU emits as scalar loops (see ``cpaf_jax.ops.reductions``) become part of one
vectorised loop.

It is compiled with the C++ compiler found on ``PATH`` (``$CXX``, else ``c++``, ``g++``,
``clang++``) against ``jax.ffi.include_dir()`` into a cache folder (``$CPAF_JAX_CACHE``, else
``~/.cache/cpaf_jax``) keyed by the source, the compiler, the flags, the jaxlib version and the
CPU's features, so a machine builds it once (a few seconds). Where no compiler is found, the
build fails, or ``CPAF_JAX_CPU_KERNEL=0`` is set, ``available()`` is ``False`` and ``cpaf``
uses its XLA backward instead, with one warning naming the reason (none for the environment
variable).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib

Array = jax.Array

TARGET = "cpaf_jax_cpaf_backward_f32"
SOURCE = Path(__file__).parent / "kernels" / "cpaf_cpu.cc"
#: Base ids of CPAF's built-in bases in the kernel (``enum BaseId`` in the source). The
#: kernel's other forms are named, with their limits, by the activation families that use them
#: (``ActivationFamily.kernel``, a ``cpaf_jax.ops.kernel_vjp.KernelSpec``).
BASE_IDS = {"relu": 0, "sigmoid": 1, "tanh": 2}
#: Number of base ids the kernel knows (``enum BaseId``: 0 .. NUM_BASE_IDS - 1).
NUM_BASE_IDS = 6
MAX_K = 8
#: Upper bound on the chunks a call splits into (the pool's size bounds it too).
_MAX_THREADS = 64
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC")

_lock = threading.Lock()
_state: dict[str, object] = {}


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cache_dir() -> Path:
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


def _library_path(cxx: str) -> Path:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(SOURCE.read_bytes())
    for part in (version, " ".join(FLAGS), jaxlib.__version__, _cpu_features()):
        key.update(part.encode())
    return _cache_dir() / f"libcpaf_cpu_{key.hexdigest()[:16]}.so"


def _build(cxx: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place: concurrent builders (pytest workers) each
    # finish a whole file, and a reader never sees half of one.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    cmd = [cxx, *FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", tmp]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        os.unlink(tmp)
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    os.replace(tmp, out)


def _load() -> str | None:
    """Builds (if needed), loads and registers the kernel; returns why not, or ``None``."""
    if os.environ.get("CPAF_JAX_CPU_KERNEL", "1") == "0":
        return "disabled by CPAF_JAX_CPU_KERNEL=0"
    cxx = _compiler()
    if cxx is None:
        return "no C++ compiler on PATH (set CXX)"
    try:
        path = _library_path(cxx)
        if not path.exists():
            _build(cxx, path)
        lib = ctypes.cdll.LoadLibrary(str(path))
        capsule = jax.ffi.pycapsule(lib.cpaf_backward_f32)
        jax.ffi.register_ffi_target(TARGET, capsule, platform="cpu")
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        return f"{type(e).__name__}: {e}"
    _state["lib"] = lib  # keeps the library loaded
    return None


def available() -> bool:
    """Whether the CPU kernel is built and registered (builds it on the first call)."""
    with _lock:
        if "error" not in _state:
            _state["error"] = _load()
            error = _state["error"]
            if error is not None and not error.startswith("disabled"):
                warnings.warn(
                    f"cpaf_jax: the one-pass CPU kernel for cpaf's backward is unavailable "
                    f"({error}); using the XLA backward",
                    RuntimeWarning,
                    stacklevel=3,
                )
    return _state["error"] is None


def supports(base_id: int, k: int, dtype) -> bool:
    """Whether the kernel computes this case: a base id of the kernel, ``1 <= k <= 8``,
    float32 (a form's own limits are its ``KernelSpec``'s)."""
    return 0 <= base_id < NUM_BASE_IDS and 1 <= k <= MAX_K and jnp.dtype(dtype) == jnp.float32


def backward(y: Array, g: Array, a: Array, b: Array, base_id: int) -> tuple[Array, Array, Array]:
    """The kernel: input cotangent and the per-term sums over rows, on CPU.

    Args:
      y, g: ``[R, M]`` float32, the input and the output cotangent in the row view.
      a, b: ``[k, M]`` float32, the parameters laid out along a row (terms first).
      base_id: the kernel's form: a value of ``BASE_IDS`` (a CPAF base) or a family's
        ``KernelSpec.base_id`` (other sums: see ``kernels/cpaf_cpu.cc``).

    Returns:
      ``(dy, sa, sd)``: ``dy = g * sum_i a_i f'(y - b_i)`` of shape ``[R, M]``;
      ``sa_i = sum_rows g (f(y - b_i) - offset)`` and ``sd_i = sum_rows g f'(y - b_i)`` of
      shape ``[k, M]`` (Eq. 10-12: ``dL/da_i = sa_i``, ``dL/db_i = -a_i sd_i``). Under ``vmap``
      every input gains the batch axes in front (``vmap_method="broadcast_all"``).
    """
    out = (
        jax.ShapeDtypeStruct(y.shape, jnp.float32),
        jax.ShapeDtypeStruct(a.shape, jnp.float32),
        jax.ShapeDtypeStruct(a.shape, jnp.float32),
    )
    call = jax.ffi.ffi_call(TARGET, out, vmap_method="broadcast_all")
    return call(y, g, a, b, base=int(base_id), max_threads=_MAX_THREADS)
