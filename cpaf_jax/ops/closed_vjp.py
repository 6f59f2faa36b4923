"""A custom VJP for an activation with one learned parameter and closed-form partials.

PReLU's slope and the learned ELU's alpha have a gradient that is a per-element product (the
cotangent times ``dz/dalpha``) summed over the batch, and over space too when the parameter
is shared per channel. JAX's autodiff of the forward leaves that sum as one reduction over the
batch, which XLA:CPU runs as a scalar loop per kept element (``cpaf_jax.ops.reductions``). Here
the backward evaluates the closed forms once and sums the parameter's products as
``reductions.unbroadcast_many`` lays them out, the same sums CPAF's XLA backward uses, so that
cost comparisons between the families are like with like.

The backward is plain JAX, so it runs on every backend and can be differentiated again
(second derivatives); a custom VJP has no forward mode, which is why the families keep their
autodiff form for the curve fitter (``ActivationFamily.fit_apply``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from cpaf_jax.ops import reductions as R
from cpaf_jax.ops.vma import match_vma

Array = jax.Array

#: ``(x, p, g) -> (dx, dp_per_element)`` in the compute dtype, both ``x``'s shape.
Partials = Callable[[Array, Array, Array], tuple[Array, Array]]


def compute_dtype(x: Array, p: Array) -> jnp.dtype:
    """The dtype of the backward's arithmetic: ``x``'s and ``p``'s common one, at least
    float32 (sums over a batch in bfloat16 lose most of their digits)."""
    dt = jnp.result_type(x.dtype, p.dtype)
    return jnp.float32 if jnp.finfo(dt).bits < 32 else dt


def with_closed_vjp(forward: Callable[[Array, Array], Array], partials: Partials) -> Callable:
    """``forward(x, p)`` with a custom VJP built from ``partials``.

    Args:
      forward: ``(x, p) -> z``: ``x`` of shape ``[..., *F]``, ``p`` of shape ``[*P]`` broadcasting
        against ``x``'s trailing axes; ``z`` of ``x``'s shape and dtype.
      partials: ``(x, p, g) -> (dx, dp)`` with ``x``, ``g`` cast to ``compute_dtype`` and ``p``
        too: ``dx = g * dz/dx`` and ``dp = g * dz/dp`` per element, both ``x``'s shape.

    Returns:
      ``f(x, p)`` with ``forward``'s values; its VJP returns ``dx`` in ``x``'s dtype and ``dp``
      summed over the axes ``p`` is shared along (``reductions.unbroadcast_many``) in ``p``'s
      dtype.
    """

    def bwd(res, g):
        x, p = res
        dt = compute_dtype(x, p)
        dx, dp = partials(x.astype(dt), p.astype(dt), g.astype(dt))
        (sp,) = R.unbroadcast_many([dp], tuple(p.shape))
        return dx.astype(x.dtype), sp.astype(p.dtype)

    fn = jax.custom_vjp(forward)
    fn.defvjp(lambda x, p: (forward(x, p), (x, p)), bwd)

    def call(x: Array, p: Array) -> Array:
        # A parameter replicated over a batch-split shard_map: its cotangent's psum is JAX's.
        return fn(*match_vma(x, p))

    return call
