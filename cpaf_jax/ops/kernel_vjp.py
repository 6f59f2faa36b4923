"""Backward passes through the one-pass CPU kernel (``cpu_kernel``) for any activation whose
record names a form of it (``KernelSpec``: a base id of the kernel and its limits).

The kernel's first forms are sums of parametric terms, ``z = c(y) + sum_i a_i (f(y - b_i) -
offset)`` with parameters ``a``, ``b`` of shape ``[*P, k]``, ``P`` broadcasting against ``y``'s
trailing axes, and gradients

    dL/dy = g * (c'(y) + sum_i a_i f'(y - b_i))
    dL/da_i = sum g (f(y - b_i) - offset)           dL/db_i = -a_i sum g f'(y - b_i)

summed over the axes the parameters are shared along (Eq. 10-12): ``terms_backward``. CPAF's
built-in bases are such forms (``base_spec``); other forms have other sums, laid out the same
way, and their callers finish the gradients themselves from ``sums``. This module decides
whether the kernel computes a backward (``applies``), calls it in ``reductions.row_plan``'s
``[R, M]`` view (``sums``), and wraps the call so that one jitted program still runs on every
backend and can be differentiated again (``platform_backward``); ``with_kernel_vjp`` makes a
forward function a custom VJP around it. Which form a family uses is written in its record
(``cpaf_jax.activations.family.ActivationFamily.kernel``), not here.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from cpaf_jax.ops import cpu_kernel
from cpaf_jax.ops import reductions as R
from cpaf_jax.ops.vma import inside_shard_map

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """One form of the CPU kernel, as an activation family's record names it.

    Attributes:
      base_id: the kernel's ``enum BaseId`` value (``kernels/cpaf_cpu.cc``) that selects the
        form's sums.
      max_k: the most terms (coefficients) the form takes, at most ``cpu_kernel.MAX_K``.
      dtype: the computation dtype the kernel handles (the kernel is float32 only).
    """

    base_id: int
    max_k: int = cpu_kernel.MAX_K
    dtype: str = "float32"


def base_spec(base_name: str) -> KernelSpec | None:
    """The kernel form of a built-in CPAF base (``"relu"``, ``"sigmoid"``, ``"tanh"``);
    ``None`` for any other name."""
    base_id = cpu_kernel.BASE_IDS.get(base_name)
    return None if base_id is None else KernelSpec(base_id)


def applies(spec: KernelSpec | None, y: Array, a, dtype) -> bool:
    """Whether the CPU kernel computes this backward: a kernel form (``spec``; ``None``: none),
    ``1 <= k <= spec.max_k`` (``k = a.shape[-1]``; ``a`` needs only a shape), a computation
    (``dtype``) in ``spec.dtype``, parameters shared along leading axes only (``row_plan``),
    outside ``shard_map`` (varying manual axes: the fallback there), and the kernel built."""
    if spec is None:
        return False
    k = a.shape[-1]
    return (
        1 <= k <= spec.max_k
        and jnp.dtype(dtype) == jnp.dtype(spec.dtype)
        and cpu_kernel.supports(spec.base_id, k, dtype)
        and R.row_plan(tuple(y.shape), a.shape[:-1]) is not None
        and not inside_shard_map()
        and cpu_kernel.available()
    )


def sums(spec: KernelSpec, y: Array, g: Array, a: Array, b: Array):
    """``(dy, sa, sd)`` through ``cpu_kernel``: one pass over ``y`` and ``g`` in ``row_plan``'s
    view (rows regrouped to at least ``MIN_COLUMNS`` wide; the same memory, so ``y`` and ``g``
    go in their own shape), then the regrouped partial sums added. ``dy`` has ``y``'s shape and
    dtype; ``sa``, ``sd`` (``cpu_kernel.backward``'s sums over the shared axes) are float32 of
    ``a``'s shape."""
    k, p_shape = a.shape[-1], a.shape[:-1]
    plan = R.row_plan(tuple(y.shape), p_shape)
    f32 = jnp.float32
    at, bt = (plan.tile(p.astype(f32)).reshape(k, -1) for p in (a, b))
    dy, sa, sd = cpu_kernel.backward(y.astype(f32), g.astype(f32), at, bt, spec.base_id)
    sa, sd = (jnp.sum(s.reshape(k, plan.f, -1), axis=1) for s in (sa, sd))
    sa, sd = (jnp.moveaxis(s.reshape(k, *plan.kept), 0, -1).reshape(a.shape) for s in (sa, sd))
    return dy.astype(y.dtype), sa, sd


def terms_backward(spec: KernelSpec, y: Array, a: Array, b: Array, g: Array):
    """``(dy, da, db)`` of a sum of terms through the kernel form ``spec``: ``y``, ``g`` of shape
    ``[..., *F]``, ``a``, ``b`` of shape ``[*P, k]``; the gradients in the shapes and dtypes of
    ``y``, ``a``, ``b`` (``da = sa``, ``db = -a sd``, Eq. 10-11)."""
    dy, sa, sd = sums(spec, y, g, a, b)
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
      forward: ``(x, *params) -> z``, a pure function of arrays (an activation's value).
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
