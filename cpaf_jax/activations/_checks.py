"""Trace-time checks and the compute dtype shared by the families' pure functions."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from cpaf_jax.ops.functional import check_param_suffix

Array = jax.Array

#: How APL, PAU and Swish are differentiated: ``"custom_vjp"`` (the default: on CPU, for
#: float32, a backward through the one-pass kernel of ``cpaf_jax.ops.kernel_vjp``, no forward
#: mode) or ``"autodiff"`` (JAX's autodiff of the forward everywhere; supports ``jax.jvp``).
PEER_IMPLEMENTATIONS = ("custom_vjp", "autodiff")


def check_implementation(fn: str, implementation: str) -> None:
    """Raises ``ValueError`` unless ``implementation`` is one of ``PEER_IMPLEMENTATIONS``."""
    if implementation not in PEER_IMPLEMENTATIONS:
        raise ValueError(
            f"{fn}: implementation must be one of {PEER_IMPLEMENTATIONS}, got {implementation!r}"
        )


def check_float(fn: str, name: str, x: Array) -> None:
    """Raises ``TypeError`` unless ``x`` has a floating dtype."""
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{fn}: {name} must be a floating array, got dtype {x.dtype}")


def check_broadcast(fn: str, x_shape, p_shape, full_shape, what: str) -> None:
    """Raises ``ValueError`` unless a parameter's ``[*P]`` broadcasts against ``x``."""
    check_param_suffix(
        fn,
        x_shape,
        p_shape,
        full_shape,
        what=what,
        arg="x",
        expected="[*P, n]" if tuple(p_shape) != tuple(full_shape) else "[*P]",
        examples=f"{tuple(x_shape)[-1:]} per channel",
    )


def check_coeffs(fn: str, x: Array, names: tuple[str, ...], *arrays: Array) -> tuple:
    """Common checks for ``[*P, n]`` coefficient arrays; returns their coefficient counts."""
    p_shape = None
    counts = []
    for name, arr in zip(names, arrays, strict=True):
        check_float(fn, name, arr)
        if arr.ndim == 0:
            raise ValueError(
                f"{fn}: {name} needs a trailing coefficient axis, e.g. shape (n,), (C, n) or "
                f"(H, W, C, n); got a scalar"
            )
        if arr.shape[-1] == 0:
            raise ValueError(f"{fn}: {name} has an empty coefficient axis (shape {arr.shape})")
        if p_shape is None:
            p_shape = arr.shape[:-1]
        elif arr.shape[:-1] != p_shape:
            shapes = ", ".join(f"{n}{tuple(a.shape)}" for n, a in zip(names, arrays, strict=True))
            raise ValueError(
                f"{fn}: {' and '.join(names)} must share their leading shape [*P], got {shapes}"
            )
        counts.append(arr.shape[-1])
    check_broadcast(fn, x.shape, p_shape, arrays[0].shape, "parameters")
    return tuple(counts)
