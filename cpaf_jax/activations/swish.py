"""Swish (Ramachandran et al. 2017), ``x * sigmoid(beta x)`` with a learned ``beta``, as an
activation family, and its NNX module ``Swish``.

Gradients: on CPU, for float32 computations with per-element, per-channel or shared parameters
(not shared along an inner axis alone), a custom VJP whose backward is one pass of the C++
kernel of ``cpaf_jax.ops.kernel_vjp`` (the record's ``kernel``: the input cotangent and the
beta sum together); elsewhere (other backends of the same program, ``shard_map``, float64, no
compiler) and for second derivatives, JAX's autodiff of the forward.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cpaf_jax.activations._checks import (
    check_broadcast,
    check_float,
    check_implementation,
)
from cpaf_jax.activations.family import Activation, ActivationFamily
from cpaf_jax.activations.initializers import InitLike
from cpaf_jax.ops import kernel_vjp
from cpaf_jax.ops.dtypes import compute_dtype
from cpaf_jax.ops.sharing import Sharing

Array = jax.Array

#: Swish's initial beta (Ramachandran et al. 2017: beta = 1 gives x * sigmoid(x), i.e. SiLU).
SWISH_BETA_INIT = 1.0


def swish(x: Array, beta, *, implementation: str = "custom_vjp") -> Array:
    """Swish (Ramachandran et al. 2017): ``x * sigmoid(beta * x)``.

    Args:
      x: shape ``[..., *F]``, floating dtype.
      beta: shape ``[*P]`` (no coefficient axis), ``P`` a suffix of ``x``'s shape or 1s; a
        scalar shares one beta over everything.
      implementation: ``"custom_vjp"`` (default: on CPU, for float32, the backward is one pass
        of the kernel of ``cpaf_jax.ops.kernel_vjp``; no ``jax.jvp``) or ``"autodiff"`` (JAX's
        autodiff of the same forward everywhere; supports ``jax.jvp``).

    Returns:
      ``x``'s shape and dtype. Inputs below 32 bits are computed in float32.
    """
    x, beta = jnp.asarray(x), jnp.asarray(beta)
    check_float("swish", "x", x)
    check_float("swish", "beta", beta)
    check_broadcast("swish", x.shape, beta.shape, beta.shape, "beta")
    dt = compute_dtype(x, beta)
    check_implementation("swish", implementation)
    spec = SWISH_FAMILY.kernel
    if implementation == "custom_vjp" and kernel_vjp.applies(spec, x, beta[..., None], dt):
        return _swish_kernel_vjp(x, beta)
    return _swish_forward(x, beta)


def _swish_forward(x: Array, beta: Array) -> Array:
    """``swish``'s value, unchecked; differentiated by JAX's autodiff."""
    dt = compute_dtype(x, beta)
    xc = x.astype(dt)
    return (xc * jax.nn.sigmoid(beta.astype(dt) * xc)).astype(x.dtype)


def _kernel_bwd(x: Array, beta: Array, g: Array):
    """``(dx, dbeta)`` through the CPU kernel's Swish form (one term: ``a = beta``; the kernel
    does not read ``b``)."""
    dx, sb, _ = kernel_vjp.sums(SWISH_FAMILY.kernel, x, g, beta[..., None], beta[..., None])
    return dx, sb[..., 0].astype(beta.dtype)


_swish_kernel_vjp = kernel_vjp.with_kernel_vjp(_swish_forward, _kernel_bwd)


def _to_numpy(beta: np.ndarray):
    def swish_numpy(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        x64 = x.astype(np.float64)
        return (x64 * (0.5 * np.tanh(0.5 * beta * x64) + 0.5)).astype(x.dtype)

    return swish_numpy


class Swish(Activation):
    """Swish with a learned ``beta``: ``x * sigmoid(beta * x)``.

    Args:
      features_shape: per-example feature shape, channels last; needed unless
        ``sharing="shared"``.
      sharing: ``"channel"`` (the record's default, one beta per channel like PReLU's alpha),
        ``"element"``, ``"shared"`` or a tuple of feature axes; ``None`` (the default) takes the
        record's ``default_sharing``.
      beta_init: initial beta (default 1.0, i.e. SiLU, as in Ramachandran et al. 2017), a scalar,
        an array of the parameter shape or an initializer ``init(key, shape, dtype)``.
      param_dtype: dtype of beta.
      rngs: needed only for a callable initializer.

    Attributes:
      beta: ``ActivationParam`` of shape ``[*P]`` (no coefficient axis).

    Call: ``x`` of shape ``[batch..., *features_shape]`` -> same shape and dtype.
    """

    def __init__(
        self,
        features_shape=None,
        *,
        sharing: Sharing | None = None,
        beta_init: InitLike = SWISH_BETA_INIT,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        super().__init__(
            SWISH_FAMILY,
            features_shape,
            sharing=sharing,
            param_dtype=param_dtype,
            rngs=rngs,
            beta_init=beta_init,
        )


SWISH_FAMILY = ActivationFamily(
    name="swish",
    apply=swish,
    # The curve fitter's Jacobian is forward mode, which the kernel's custom VJP lacks.
    fit_apply=functools.partial(swish, implementation="autodiff"),
    params=("beta",),
    coeff_shapes=lambda: ((),),
    init=lambda: (np.asarray(SWISH_BETA_INIT),),
    default_sharing="channel",
    module=Swish,
    to_numpy=_to_numpy,
    fit_starts=lambda rng, interval, r: (rng.uniform(0.0, 2.0, 1),),
    # ``enum BaseId``'s kSwish in ``cpaf_jax/ops/kernels/cpaf_cpu.cc``: one term (beta), float32.
    kernel=kernel_vjp.KernelSpec(base_id=5, max_k=1),
)
