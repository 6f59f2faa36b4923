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
CPU's features, so a machine builds it once (a few seconds; ``cpaf-train build-kernel``
builds it ahead). The library is checksummed when built and loaded only when it matches, and a
damaged one is rebuilt once (``cpaf_jax.ops.kernel_cache``). Where no compiler is found, the
build fails, or ``CPAF_JAX_CPU_KERNEL=0`` is set, ``available()`` is ``False`` and ``cpaf``
uses its XLA backward instead, with one warning naming the reason (none for the environment
variable).
"""

from __future__ import annotations

import os
import threading
import warnings

import jax
import jax.numpy as jnp

from cpaf_jax.ops import kernel_cache

Array = jax.Array

TARGET = "cpaf_jax_cpaf_backward_f32"
SOURCE = kernel_cache.SOURCE
#: Base ids of CPAF's built-in bases in the kernel (``enum BaseId`` in the source). The
#: kernel's other forms are named, with their limits, by the activation families that use them
#: (``ActivationFamily.kernel``, a ``cpaf_jax.ops.kernel_vjp.KernelSpec``).
BASE_IDS = {"relu": 0, "sigmoid": 1, "tanh": 2}
#: Number of base ids the kernel knows (``enum BaseId``: 0 .. NUM_BASE_IDS - 1).
NUM_BASE_IDS = 6
MAX_K = 8
#: Upper bound on the chunks a call splits into (the pool's size bounds it too).
_MAX_THREADS = 64

_lock = threading.Lock()
_state: dict[str, object] = {}


def _load() -> str | None:
    """Builds (if needed), verifies, loads and registers the kernel; returns why not, or
    ``None``."""
    if os.environ.get("CPAF_JAX_CPU_KERNEL", "1") == "0":
        return "disabled by CPAF_JAX_CPU_KERNEL=0"
    try:
        lib = kernel_cache.load()
        capsule = jax.ffi.pycapsule(getattr(lib, kernel_cache.SYMBOL))
        jax.ffi.register_ffi_target(TARGET, capsule, platform="cpu")
    except Exception as e:  # noqa: BLE001 - any failure means the XLA backward, never a crash
        return (
            str(e) if isinstance(e, kernel_cache.KernelBuildError) else f"{type(e).__name__}: {e}"
        )
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
      y, g: float32 of one shape holding ``[R, M]`` in row-major order (``[R, M]`` itself, or
        the input's own shape when its leading axes are the summed rows): the input and the
        output cotangent. Left in their shape, what produced ``g`` is computed in it; reshaped,
        XLA computes it in the ``[R, M]`` view, with index arithmetic per element.
      a, b: ``[k, M]`` float32, the parameters laid out along a row (terms first).
      base_id: the kernel's form: a value of ``BASE_IDS`` (a CPAF base) or a family's
        ``KernelSpec.base_id`` (other sums: see ``kernels/cpaf_cpu.cc``).

    Returns:
      ``(dy, sa, sd)``: ``dy = g * sum_i a_i f'(y - b_i)`` in ``y``'s shape;
      ``sa_i = sum_rows g (f(y - b_i) - offset)`` and ``sd_i = sum_rows g f'(y - b_i)`` of
      shape ``[k, M]`` (Eq. 10-12: ``dL/da_i = sa_i``, ``dL/db_i = -a_i sd_i``). Under ``vmap``
      every input gains the batch axes in front (``vmap_method="broadcast_all"``).

    Raises:
      ValueError: ``y`` and ``g`` differ in shape, or their size is not a multiple of ``M``.
    """
    m = a.shape[-1]
    if y.shape != g.shape or (y.size % m if m else y.size):
        raise ValueError(
            f"cpu_kernel.backward: y{tuple(y.shape)} and g{tuple(g.shape)} must have one shape "
            f"holding [R, M] rows of M = {m}, the parameters' row length"
        )
    out = (
        jax.ShapeDtypeStruct(y.shape, jnp.float32),
        jax.ShapeDtypeStruct(a.shape, jnp.float32),
        jax.ShapeDtypeStruct(a.shape, jnp.float32),
    )
    call = jax.ffi.ffi_call(TARGET, out, vmap_method="broadcast_all")
    rows = y.size // m if m else 0
    return call(y, g, a, b, base=int(base_id), max_threads=_MAX_THREADS, rows=rows)
