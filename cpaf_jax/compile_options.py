"""XLA compiler options for the training programs, chosen per backend.

On XLA:CPU, jaxlib 0.10 hands convolutions, dots and some reductions to YNNPACK ("YNN
fusions") by default. For the paper's small conv nets these ran on one thread each (seen in
a profile), while XLA's own (Eigen) convolutions use every core, so the training steps were
slower with them. Section 5 of ``BENCHMARKS.md`` (``python -m benchmarks``) times both
settings side by side: its ``XLA defaults`` rows are the same steps compiled without these
options. (History: the first measurement, and a conditional update that cost time only with
YNN on, are in commit b18187f.)

Every program this package compiles goes through ``jit`` here (exported as ``cpaf_jax.jit``),
so ``fit``, sweeps, benchmarks and evaluation all run with the same options. For your own
steps, write ``cpaf_jax.jit`` where you would write ``jax.jit``, or pass
``compiler_options=compiler_options()`` to ``jax.jit``. It changes no result, only speed:
section 2b of ``BENCHMARKS.md`` gives a plain-JAX network's ReLU and CPAF steps under both, and
section 1b the CPAF layer alone. CPAF's cost relative to ReLU is kept low under plain
``jax.jit`` as well (``cpaf_jax.ops.reductions.materialize``).

The options are applied only where they are understood: on the CPU backend, when this jaxlib
accepts them (checked once by compiling a trivial program), and when ``XLA_FLAGS`` does not
already choose the YNN fusion types itself (then yours win). ``CPAF_JAX_XLA_DEFAULTS=1``
turns them off entirely, leaving XLA's defaults.
"""

from __future__ import annotations

import contextvars
import functools
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp

from cpaf_jax import host_memory

#: Options applied to XLA:CPU compilations: an empty YNN fusion list turns YNN fusions off.
CPU_OPTIONS: dict[str, str] = {"xla_cpu_experimental_ynn_fusion_type": ""}

_ENV_DEFAULTS = "CPAF_JAX_XLA_DEFAULTS"
_YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
#: The YNN fusion types of the ``jit`` being traced, when it sets them (``""``: off).
_TRACED_YNN_TYPES: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "cpaf_jax_traced_ynn_types", default=None
)


@functools.cache
def _accepted(platform: str) -> bool:
    """Whether this jaxlib compiles a trivial program for ``platform`` with ``CPU_OPTIONS``."""
    try:
        device = jax.devices(platform)[0]
        x = jax.device_put(jnp.zeros((2,), jnp.float32), device)
        jax.jit(lambda v: v + 1, compiler_options=CPU_OPTIONS).lower(x).compile()
    except Exception:  # an older jaxlib rejects the unknown option; keep XLA's defaults
        return False
    return True


def compiler_options(platform: str | None = None) -> dict[str, str] | None:
    """The compiler options this package uses for programs on ``platform``.

    Args:
      platform: ``"cpu"``, ``"gpu"``, ``"tpu"``...; ``None`` for ``jax.default_backend()``.

    Returns:
      a dict for ``jax.jit(..., compiler_options=...)``, or ``None`` for XLA's defaults (any
      backend but CPU, ``CPAF_JAX_XLA_DEFAULTS=1``, an ``XLA_FLAGS`` that sets the YNN fusion
      types, or a jaxlib without the option).
    """
    platform = platform or jax.default_backend()
    if platform != "cpu" or os.environ.get(_ENV_DEFAULTS, "") not in ("", "0"):
        return None
    if "xla_cpu_experimental_ynn_fusion_type" in os.environ.get("XLA_FLAGS", ""):
        return None
    return dict(CPU_OPTIONS) if _accepted(platform) else None


def _flag_value(xla_flags: str, name: str) -> str | None:
    """The value of ``--name=value`` in an ``XLA_FLAGS`` string (the last one), or ``None``."""
    value = None
    for token in xla_flags.split():
        key, _, v = token.lstrip("-").partition("=")
        if key == name:
            value = v
    return value


def ynn_fusions_on(
    platform: str, xla_flags: str, option_accepted: bool, traced_types: str | None
) -> bool:
    """Whether XLA:CPU's YNN fusions apply to a program, from what the library can see.

    Args:
      platform: the backend the program is traced for.
      xla_flags: the ``XLA_FLAGS`` environment variable.
      option_accepted: whether this jaxlib knows the YNN fusion option (older ones have no YNN
        fusions).
      traced_types: the YNN fusion types of the ``jit`` of this module being traced (``""``:
        off), ``None`` outside one (plain ``jax.jit``).

    Returns:
      ``True`` where the program runs on CPU with YNN fusions: the jit's own setting first,
      then ``XLA_FLAGS``, else this jaxlib's default (on where it has the option).
    """
    if platform != "cpu" or not option_accepted:
        return False
    if traced_types is not None:
        return bool(traced_types.strip())
    flag = _flag_value(xla_flags, _YNN_OPTION)
    if flag is not None:
        return bool(flag.strip())
    return True


def ynn_fusions(platform: str | None = None) -> bool:
    """``ynn_fusions_on`` for the program being traced now (call it at trace time): the
    backend (``None``: ``jax.default_backend()``), ``XLA_FLAGS``, this jaxlib, and whether
    the trace is inside this module's ``jit``."""
    platform = platform or jax.default_backend()
    accepted = platform == "cpu" and _accepted(platform)
    flags = os.environ.get("XLA_FLAGS", "")
    return ynn_fusions_on(platform, flags, accepted, _TRACED_YNN_TYPES.get())


def jit(fun: Callable, *, platform: str | None = None, **jit_kwargs) -> Callable:
    """``jax.jit(fun, **jit_kwargs)`` compiled with ``compiler_options(platform)``
    (``cpaf_jax.jit``): on XLA:CPU, YNN fusions off, so that convolutions, dots and reductions
    run as XLA's own multi-threaded code; elsewhere exactly ``jax.jit``.

    Args:
      fun: the function to compile.
      platform: the backend it will run on; ``None`` for ``jax.default_backend()``.
      **jit_kwargs: passed to ``jax.jit`` (``donate_argnums``, shardings...).
    """
    platform = platform or jax.default_backend()
    opts = compiler_options(platform)
    host_memory.keep_freed_memory_on(platform)  # steps that don't page in their temporaries
    if opts is None:
        return jax.jit(fun, **jit_kwargs)
    # The caller's own options win over ours.
    opts = {**opts, **(jit_kwargs.get("compiler_options") or {})}
    jit_kwargs["compiler_options"] = opts

    @functools.wraps(fun)
    def traced(*args, **kwargs):
        # Tells the functions traced here how the program will be compiled (``ynn_fusions``).
        token = _TRACED_YNN_TYPES.set(str(opts.get(_YNN_OPTION, "")))
        try:
            return fun(*args, **kwargs)
        finally:
            _TRACED_YNN_TYPES.reset(token)

    return jax.jit(traced, **jit_kwargs)
