"""Initial values of the CPAF parameters.

The paper's Table 1 (k = 2): sigmoid base ``(a, b) = (4, 2), (4, -2)``; ReLU base
``(1, 1), (1, -1)``. For other k we keep the total scale ``sum_i a_i`` of Table 1 and spread
the locations evenly over the same range, which is Table 1 exactly at k = 2:

    a_i = A * 2 / k,   b_i = linspace(B, -B, k)   (b = 0 for k = 1)

with ``(A, B) = (4, 2)`` for sigmoid, ``(1, 1)`` for ReLU and tanh, and ``(1, 1)`` for a user
base. Any of these can be overridden by a constant, a length-k sequence, an array broadcasting
to the parameter shape, or an initializer ``init(key, shape, dtype)``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from cpaf_jax.ops.bases import Base

TABLE1 = {
    "sigmoid": ((4.0, 4.0), (2.0, -2.0)),
    "relu": ((1.0, 1.0), (1.0, -1.0)),
}

_SCALE_RANGE = {"sigmoid": (4.0, 2.0), "relu": (1.0, 1.0), "tanh": (1.0, 1.0)}

InitLike = None | float | int | np.ndarray | jax.Array | Callable | tuple | list


def default_terms(base: Base, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Default ``(a, b)`` per term for a base: Table 1 at k = 2, its extension otherwise.

    For k != 2 every scale is Table 1's times ``2 / k``, so ``sum_i a_i`` stays Table 1's
    ``2 A``. That sum is what sets the initial function's size: with the ReLU
    base it is the slope right of every location (2 at any k; giving every term ``a_i = 1``
    made it k, and k >= 3 diverged in the ablation), with the sigmoid base the range
    ``(-A, A)`` (Eq. 2: each term spans ``(-a_i/2, a_i/2)``), with tanh ``(-2A, 2A)``. The
    locations still span ``[-B, B]``, so the curve keeps Table 1's extent; its slope at 0 with
    the sigmoid base moves a little with k, as the terms' centres move.

    Returns:
      two float64 NumPy arrays of shape ``(k,)``.
    """
    scale, loc = _SCALE_RANGE.get(base.name, (1.0, 1.0))
    a = np.full((k,), scale * 2.0 / k)
    b = np.zeros((k,)) if k == 1 else np.linspace(loc, -loc, k)
    return a, b


def make_param(
    init: InitLike,
    default: np.ndarray,
    key: jax.Array | None,
    shape: tuple[int, ...],
    dtype,
    name: str,
) -> jax.Array:
    """Builds one ``[*P, k]`` parameter array.

    Args:
      init: ``None`` (use ``default``), a scalar, a length-k sequence, an array broadcasting to
        ``shape``, or an initializer ``init(key, shape, dtype)``.
      default: ``(k,)`` default values per term.
      key: PRNG key for initializers; may be ``None`` when ``init`` is not callable.
      shape: full parameter shape ``[*P, k]``.
      dtype: parameter dtype.
      name: ``"a"`` or ``"b"``, for messages.
    """
    if init is None:
        value = np.broadcast_to(default, shape)
    elif callable(init) and not isinstance(init, np.ndarray | jax.Array):
        if key is None:
            raise ValueError(f"initializer for {name} needs rngs (pass rngs=nnx.Rngs(...))")
        value = init(key, shape, dtype)
    else:
        value = jnp.asarray(init, dtype)
        try:
            value = jnp.broadcast_to(value, shape)
        except ValueError:
            raise ValueError(
                f"initial value of {name} with shape {value.shape} does not broadcast to the "
                f"parameter shape {shape} ([*P, k]: a length-k sequence, a scalar, or an array "
                "of that shape)"
            ) from None
    out = jnp.asarray(value, dtype)
    if out.shape != shape:
        raise ValueError(f"initializer for {name} returned shape {out.shape}, expected {shape}")
    return out
