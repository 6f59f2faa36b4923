"""A custom VJP for an activation with one learned parameter and closed-form partials.

A learned slope or scale of a one-parameter activation (its record's ``apply`` wraps its
forward with ``with_closed_vjp``) has a gradient that is a per-element product (the
cotangent times ``dz/dp``) summed over the batch, and over space too when the parameter
is shared per channel. JAX's autodiff of the forward leaves that sum as one reduction over the
batch, which XLA:CPU runs as a scalar loop per kept element (``cpaf_jax.ops.reductions``). Here
the backward evaluates the closed forms once and sums the parameter's products as
``reductions.unbroadcast_many`` lays them out, the same sums CPAF's XLA backward uses, so that
cost comparisons between the families are like with like.

How that sum is best written depends on how the program is compiled, which the backward reads
at trace time (``cpaf_jax.compile_options.ynn_fusions``): with parameters narrower than a row
(per channel, shared; ``row_plan`` regroups rows) and XLA:CPU's YNN fusions on, one plain
reduction; otherwise the staged sums (``plain_lone_sum``).

The backward is plain JAX, so it runs on every backend and can be differentiated again
(second derivatives); a custom VJP has no forward mode, which is why the families keep their
autodiff form for the curve fitter (``ActivationFamily.fit_apply``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from cpaf_jax import compile_options
from cpaf_jax.ops import reductions as R
from cpaf_jax.ops.dtypes import compute_dtype
from cpaf_jax.ops.vma import match_vma

Array = jax.Array

#: ``(x, p, g) -> (dx, dp_per_element)`` in the compute dtype, both ``x``'s shape.
Partials = Callable[[Array, Array, Array], tuple[Array, Array]]


def plain_lone_sum(x_shape: tuple[int, ...], p_shape: tuple[int, ...], ynn: bool) -> bool:
    """Whether one parameter's gradient is summed by one plain reduction rather than the staged
    sums of ``reductions.unbroadcast_many``: over regrouped rows (``row_plan``'s ``f > 1``: per
    channel or shared) with YNN fusions on (``ynn``), where YNNPACK's reduction was measured
    faster than the stages; the stages were faster everywhere else."""
    plan = R.row_plan(tuple(x_shape), tuple(p_shape))
    return ynn and plan is not None and plan.f > 1


def with_closed_vjp(forward: Callable[[Array, Array], Array], partials: Partials) -> Callable:
    """``forward(x, p)`` with a custom VJP built from ``partials``.

    Args:
      forward: ``(x, p) -> z``: ``x`` of shape ``[..., *F]``, ``p`` of shape ``[*P]`` broadcasting
        against ``x``'s trailing axes; ``z`` of ``x``'s shape and dtype.
      partials: ``(x, p, g) -> (dx, dp)`` with ``x``, ``g`` and ``p`` cast to the compute dtype
        (``cpaf_jax.ops.dtypes.compute_dtype``): ``dx = g * dz/dx`` and ``dp = g * dz/dp`` per
        element, both ``x``'s shape.

    Returns:
      ``f(x, p)`` with ``forward``'s values; its VJP returns ``dx`` in ``x``'s dtype and ``dp``
      summed over the axes ``p`` is shared along (``reductions.unbroadcast_many``) in ``p``'s
      dtype.
    """

    def bwd(res, g):
        x, p = res
        dt = compute_dtype(x, p)
        dx, dp = partials(x.astype(dt), p.astype(dt), g.astype(dt))
        p_shape = tuple(p.shape)
        if plain_lone_sum(tuple(x.shape), p_shape, compile_options.ynn_fusions()):
            sp = jnp.sum(dp, axis=R.reduced_axes(tuple(x.shape), p_shape)).reshape(p_shape)
        else:
            (sp,) = R.unbroadcast_many([dp], p_shape)
        return dx.astype(x.dtype), sp.astype(p.dtype)

    fn = jax.custom_vjp(forward)
    fn.defvjp(lambda x, p: (forward(x, p), (x, p)), bwd)

    def call(x: Array, p: Array) -> Array:
        # A parameter replicated over a batch-split shard_map: its cotangent's psum is JAX's.
        return fn(*match_vma(x, p))

    return call
