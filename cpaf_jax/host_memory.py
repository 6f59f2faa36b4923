"""Keeps freed host memory in the process, so that XLA:CPU's per-step buffers are not paged in
again on every step.

XLA:CPU allocates each execution's temporary buffers with ``malloc`` and frees them when the
execution ends. glibc gives memory back to the kernel in three ways: an allocation above the
*mmap threshold* is mapped and unmapped each time; free memory above the *trim threshold* at
the top of a heap is released; and a thread arena's heap is unmapped as soon as it is entirely
free, unless the arena would keep less than the *top pad*. After any of them the next step
writes to fresh pages and takes a page fault on each. The thresholds move as the process runs,
and which thread's arena holds which buffer depends on what ran before, so the same jitted
training step ran without faults in one process, while in the next an XLA worker thread mapped
a heap for the step's temporaries and unmapped it at the end of every step. A step with more
temporary memory (a parametric activation keeps its input for the backward pass) fell into that
state more often than its ReLU counterpart, which made the cost ratio between them a lottery.

``keep_freed_memory`` fixes all three once: allocations up to ``MMAP_THRESHOLD`` come from a
heap, up to ``TRIM_THRESHOLD`` of free memory stays in it, and a thread's heap is not unmapped
when it empties (``TOP_PAD``). It runs, through ``keep_freed_memory_on``, when ``cpaf`` or
``cpaf_max_pool_2x2`` is first traced or ``cpaf_jax.jit`` first wraps a function for the CPU
backend (importing the package changes nothing), only with glibc, and never where the process
chose its own ``malloc`` settings (``MALLOC_*_`` variables, ``glibc.malloc`` tunables) or
``CPAF_JAX_MALLOC=0`` is set. The price is memory the process keeps after freeing it, which no
longer shrinks between steps.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
from collections.abc import Mapping

import jax

#: glibc's ``mallopt`` parameters (``<malloc.h>``).
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
#: Allocations up to this size come from the heap: glibc's own ceiling for its dynamic
#: threshold (``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit), the most ``mallopt`` accepts.
MMAP_THRESHOLD = 32 * 2**20
#: Free memory kept at the top of a heap before any is returned to the kernel.
TRIM_THRESHOLD = 256 * 2**20
#: Padding kept when a heap grows or shrinks, as large as a thread arena's heap can be. A
#: thread's heap is unmapped once it is entirely free unless its arena would keep less than
#: this padding; XLA:CPU's worker threads otherwise mapped a new heap for a step's
#: temporaries and unmapped it at the end of the step, every step.
TOP_PAD = 64 * 2**20

_ENV_OFF = "CPAF_JAX_MALLOC"
#: Environment variables through which a process sets glibc's malloc parameters itself.
_USER_SETTINGS = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)

_lock = threading.Lock()
_state: dict[str, bool] = {}


def tuning_applies(env: Mapping[str, str], libc: str) -> bool:
    """Whether ``keep_freed_memory`` changes anything in a process with this environment.

    Args:
      env: the process environment (``os.environ``).
      libc: the C library's name, as ``platform.libc_ver()[0]`` gives it (``"glibc"``).

    Returns:
      ``True`` under glibc, unless ``CPAF_JAX_MALLOC=0`` or the environment already sets
      malloc parameters (a ``MALLOC_*_`` variable or ``glibc.malloc`` in ``GLIBC_TUNABLES``).
    """
    if libc != "glibc" or env.get(_ENV_OFF, "") == "0":
        return False
    if any(name in env for name in _USER_SETTINGS):
        return False
    return "glibc.malloc." not in env.get("GLIBC_TUNABLES", "")


def _mallopt(libc: ctypes.CDLL) -> bool:
    set_option = libc.mallopt
    set_option.argtypes = (ctypes.c_int, ctypes.c_int)
    set_option.restype = ctypes.c_int
    # mallopt returns 1 on success; the mmap threshold first, so that a rejected value leaves
    # glibc's dynamic thresholds (setting any of the three turns them off).
    if set_option(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        return False
    trim = set_option(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return set_option(M_TOP_PAD, TOP_PAD) == 1 and trim


def keep_freed_memory() -> bool:
    """Sets glibc's mmap threshold, trim threshold and top pad once per process, where
    ``tuning_applies``.

    Returns:
      whether the thresholds are this module's (set now or by an earlier call).
    """
    with _lock:
        if "applied" not in _state:
            applied = False
            if tuning_applies(os.environ, platform.libc_ver()[0]):
                try:
                    applied = _mallopt(ctypes.CDLL(None))
                except (AttributeError, OSError):  # no mallopt in this C library
                    applied = False
            _state["applied"] = applied
        return _state["applied"]


def keep_freed_memory_on(platform: str | None = None) -> bool:
    """``keep_freed_memory`` for a program that will run on ``platform`` (``None``: JAX's default
    backend): only the CPU backend keeps its buffers in this process's heap. ``cpaf`` and
    ``cpaf_max_pool_2x2`` call it when traced, ``cpaf_jax.jit`` when it wraps a function.

    Returns:
      whether the thresholds are this module's (always ``False`` off the CPU backend).
    """
    if (platform or jax.default_backend()) != "cpu":
        return False
    return keep_freed_memory()
