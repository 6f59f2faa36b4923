"""PReLU (He et al. 2015) as an activation family, and its NNX module ``PReLU``.

Gradients: a custom VJP from the closed forms (``cpaf_jax.ops.closed_vjp``), whose slope sum
over the batch is laid out as CPAF's XLA backward lays out its parameter sums; the family's
``fit_apply`` keeps JAX's autodiff for the curve fitter's forward mode.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cpaf_jax.activations._checks import check_implementation
from cpaf_jax.activations.family import Activation, ActivationFamily
from cpaf_jax.ops.closed_vjp import with_closed_vjp
from cpaf_jax.ops.sharing import Sharing

Array = jax.Array

#: PReLU's initial slope (He et al. 2015).
PRELU_ALPHA_INIT = 0.25


def prelu(x: Array, alpha: Array, *, implementation: str = "custom_vjp") -> Array:
    """PReLU (He et al. 2015): ``x`` where ``x > 0``, ``alpha * x`` elsewhere.

    ``x``: any shape ``[..., *F]``; ``alpha``: shape ``[*P]`` broadcasting against the trailing
    axes of ``x`` (``()`` shared, ``(C,)`` per channel, ``F`` per element). The output has
    ``x``'s shape and dtype. ``implementation``: ``"custom_vjp"`` (default: the closed-form
    backward of ``cpaf_jax.ops.closed_vjp``; no ``jax.jvp``) or ``"autodiff"`` (JAX's autodiff
    of the same forward; supports ``jax.jvp``); both give the same values and gradients.
    """
    check_implementation("prelu", implementation)
    x, alpha = jnp.asarray(x), jnp.asarray(alpha)
    if implementation == "autodiff":
        return _prelu_forward(x, alpha)
    return _prelu_closed(x, alpha)


def _prelu_forward(x: Array, alpha: Array) -> Array:
    return jnp.where(x > 0, x, alpha.astype(x.dtype) * x)


def _prelu_partials(x: Array, alpha: Array, g: Array) -> tuple[Array, Array]:
    """``(g dz/dx, g dz/dalpha)`` per element: ``(g or alpha g, 0 or g x)``."""
    pos = x > 0
    return jnp.where(pos, g, alpha * g), jnp.where(pos, 0, g * x)


_prelu_closed = with_closed_vjp(_prelu_forward, _prelu_partials)


def _to_numpy(alpha: np.ndarray):
    def prelu_numpy(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return np.where(x > 0, x, alpha * x).astype(x.dtype)

    return prelu_numpy


class PReLU(Activation):
    """PReLU with a learned slope ``alpha`` (initialised to 0.25, as in He et al. 2015).

    Args:
      features_shape: per-example feature shape; needed unless ``sharing="shared"``.
      sharing: ``"element"``, ``"channel"`` (He et al.'s channel-wise form, the record's
        default), ``"shared"`` or axes, as for ``CPAF``; ``None`` (the default) takes the
        record's ``default_sharing``.
      alpha_init: initial slope (scalar, array of the parameter shape or an initializer).
      param_dtype: dtype of alpha.
      rngs: needed only for a callable initializer.

    Attributes:
      alpha: ``ActivationParam`` of shape ``[*P]``.
    """

    def __init__(
        self,
        features_shape=None,
        *,
        sharing: Sharing | None = None,
        alpha_init=PRELU_ALPHA_INIT,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        super().__init__(
            PRELU_FAMILY,
            features_shape,
            sharing=sharing,
            param_dtype=param_dtype,
            rngs=rngs,
            alpha_init=alpha_init,
        )


PRELU_FAMILY = ActivationFamily(
    name="prelu",
    apply=prelu,
    # The curve fitter's Jacobian is forward mode, which the custom VJP lacks.
    fit_apply=functools.partial(prelu, implementation="autodiff"),
    params=("alpha",),
    coeff_shapes=lambda: ((),),
    init=lambda: (np.asarray(PRELU_ALPHA_INIT),),
    default_sharing="channel",
    module=PReLU,
    to_numpy=_to_numpy,
    fit_starts=lambda rng, interval, r: (rng.uniform(-0.5, 1.0, 1),),
)
