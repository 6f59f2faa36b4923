"""The dtype a parametric activation computes in: one rule for every family."""

from __future__ import annotations

import jax.numpy as jnp


def compute_dtype(*values) -> jnp.dtype:
    """The common dtype of ``values`` (arrays or dtypes), at least float32.

    Below 32 bits (bfloat16, float16) the computation runs in float32 and the result is cast
    back: the few extra flops cost nothing in memory traffic and keep sums of k terms and
    polynomial evaluations accurate (bfloat16 has 8 bits of mantissa).
    """
    dt = jnp.result_type(*(getattr(v, "dtype", v) for v in values))
    if jnp.finfo(dt).bits < 32:
        dt = jnp.float32
    return dt
