"""Backward passes through the one-pass CPU kernel (``cpu_kernel``) for CPAF, APL, PAU, Swish.

Two activations are sums of parametric terms: CPAF, ``z = sum_i a_i (f(y - b_i) - offset)``
(Eq. 7), and APL, ``h(y) = relu(y) + sum_s a_s relu(b_s - y)`` (the kernel's base ``"apl"``:
``f(u) = relu(-u)`` per hinge, plus the fixed ``relu(y)``). Both have parameters ``a``, ``b``
of shape ``[*P, k]``, ``P`` broadcasting against ``y``'s trailing axes, and gradients

    dL/dy = g * (c(y) + sum_i a_i f'(y - b_i))     (c = 0 for CPAF, [y > 0] for APL)
    dL/da_i = sum g (f(y - b_i) - offset)           dL/db_i = -a_i sum g f'(y - b_i)

summed over the axes the parameters are shared along (Eq. 10-12): ``terms_backward``. PAU
(base ``"pau"``) and Swish (``"swish"``) have other sums, laid out the same way; their modules
call ``sums`` and finish the gradients themselves. This module decides whether the kernel
computes a backward (``applies``), calls it in ``reductions.row_plan``'s ``[R, M]`` view
(``sums``), and wraps the call so that one jitted program still runs on every backend and can
be differentiated again (``platform_backward``); ``with_kernel_vjp`` makes a family's forward a
custom VJP around it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from cpaf_jax.ops import cpu_kernel
from cpaf_jax.ops import reductions as R
from cpaf_jax.ops.vma import inside_shard_map

Array = jax.Array


def applies(kernel_base: str, y: Array, a, dtype) -> bool:
    """Whether the CPU kernel computes this backward: a kernel base, ``1 <= k <= 8`` (``k =
    a.shape[-1]``; ``a`` needs only a shape), a float32 computation (``dtype``), parameters
    shared along leading axes only (``row_plan``), outside ``shard_map`` (varying manual axes:
    the fallback there), and the kernel built."""
    return (
        cpu_kernel.supports(kernel_base, a.shape[-1], dtype)
        and R.row_plan(tuple(y.shape), a.shape[:-1]) is not None
        and not inside_shard_map()
        and cpu_kernel.available()
    )


def sums(kernel_base: str, y: Array, g: Array, a: Array, b: Array):
    """``(dy, sa, sd)`` through ``cpu_kernel``: one pass over ``y`` and ``g`` in ``row_plan``'s
    view (rows regrouped to at least ``MIN_COLUMNS`` wide), then the regrouped partial sums
    added. ``dy`` has ``y``'s shape and dtype; ``sa``, ``sd`` (``cpu_kernel.backward``'s sums
    over the shared axes) are float32 of ``a``'s shape."""
    k, p_shape = a.shape[-1], a.shape[:-1]
    plan = R.row_plan(tuple(y.shape), p_shape)
    f32 = jnp.float32
    yv = plan.view(y.astype(f32)).reshape(plan.rows, -1)
    gv = plan.view(g.astype(f32)).reshape(plan.rows, -1)
    at, bt = (plan.tile(p.astype(f32)).reshape(k, -1) for p in (a, b))
    dy, sa, sd = cpu_kernel.backward(yv, gv, at, bt, kernel_base)
    sa, sd = (jnp.sum(s.reshape(k, plan.f, -1), axis=1) for s in (sa, sd))
    sa, sd = (jnp.moveaxis(s.reshape(k, *plan.kept), 0, -1).reshape(a.shape) for s in (sa, sd))
    return dy.reshape(y.shape).astype(y.dtype), sa, sd


def terms_backward(kernel_base: str, y: Array, a: Array, b: Array, g: Array):
    """``(dy, da, db)`` of a sum of terms (CPAF, APL) through the kernel: ``y``, ``g`` of shape
    ``[..., *F]``, ``a``, ``b`` of shape ``[*P, k]``; the gradients in the shapes and dtypes of
    ``y``, ``a``, ``b`` (``da = sa``, ``db = -a sd``, Eq. 10-11)."""
    dy, sa, sd = sums(kernel_base, y, g, a, b)
    gb = -a.astype(jnp.float32) * sd  # a_i is constant along the summed rows (Eq. 11)
    return dy, sa.astype(a.dtype), gb.astype(b.dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def platform_backward(cpu: Callable, fallback: Callable, *operands: Array):
    """``cpu(*operands)`` (a kernel's backward) on CPU, ``fallback(*operands)`` on any other
    backend of the same jitted program (``platform_dependent``: the kernel is registered for
    CPU only). Differentiating it (second derivatives) differentiates ``fallback``, which must
    compute the same values. Call it only where ``applies`` holds."""
    return jax.lax.platform_dependent(*operands, cpu=cpu, default=fallback)


@platform_backward.defjvp
def _platform_backward_jvp(cpu, fallback, primals, tangents):
    return jax.jvp(fallback, primals, tangents)


def with_kernel_vjp(forward: Callable, kernel_bwd: Callable) -> Callable:
    """``forward`` with a custom VJP whose backward is a kernel's on CPU.

    Args:
      forward: ``(x, *params) -> z``, a pure function of arrays (APL's, PAU's, Swish's value).
      kernel_bwd: ``(x, *params, g) -> (dx, *dparams)`` through the kernel, in the shapes and
        dtypes of ``x`` and ``params``; call the result only where ``applies`` holds.

    Returns:
      ``forward`` with a custom VJP: the residuals are its inputs; the backward is
      ``kernel_bwd`` on CPU and JAX's autodiff of ``forward`` on other backends of the same
      program and when differentiated again (``platform_backward``). No forward mode.
    """

    def autodiff_bwd(*operands):
        *inputs, g = operands
        return jax.vjp(forward, *inputs)[1](g)

    def fwd(*inputs):
        return forward(*inputs), inputs

    def bwd(inputs, g):
        return platform_backward(kernel_bwd, autodiff_bwd, *inputs, g)

    fn = jax.custom_vjp(forward)
    fn.defvjp(fwd, bwd)
    return fn
