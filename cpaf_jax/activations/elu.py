"""ELU (Clevert et al. 2016) as two families: ``"elu"`` with a fixed ``alpha`` (1 by default)
and ``"elu_learned"``, whose ``alpha`` is a trainable parameter initialised to 1 as the paper
trains it (section 2: the alpha of PReLU and ELU "is learned by gradient descent"; 4.2:
initialised as in their papers), per element by default like PReLU in 4.2.

    elu(x) = x for x > 0,   alpha * (exp(x) - 1) otherwise

The learned alpha's gradients come from a custom VJP of the closed forms
(``cpaf_jax.ops.closed_vjp``), whose alpha sum over the batch is laid out as CPAF's XLA
backward lays out its parameter sums; ``fit_apply`` keeps JAX's autodiff for the curve fitter.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cpaf_jax.activations._checks import check_broadcast, check_float, check_implementation
from cpaf_jax.activations.family import Activation, ActivationFamily, pool_first
from cpaf_jax.ops.closed_vjp import with_closed_vjp
from cpaf_jax.ops.max_pool import max_pool_2x2
from cpaf_jax.ops.sharing import Sharing

Array = jax.Array

#: ELU's alpha (Clevert et al. 2016), fixed or initial.
ELU_ALPHA = 1.0


def _fixed_elu(x: Array, *, alpha: float = ELU_ALPHA) -> Array:
    return jax.nn.elu(x, alpha)


def learned_elu(x: Array, alpha: Array, *, implementation: str = "custom_vjp") -> Array:
    """ELU with a parameter ``alpha``: ``x`` where ``x > 0``, ``alpha * (exp(x) - 1)`` elsewhere.

    Args:
      x: shape ``[..., *F]``, floating dtype.
      alpha: shape ``[*P]`` broadcasting against the trailing axes of ``x`` (``()`` shared,
        ``(C,)`` per channel, ``F`` per element).
      implementation: ``"custom_vjp"`` (default: the closed-form backward of
        ``cpaf_jax.ops.closed_vjp``; no ``jax.jvp``) or ``"autodiff"`` (JAX's autodiff of the
        same forward; supports ``jax.jvp``); both give the same values and gradients.

    Returns:
      ``x``'s shape and dtype. ``d/d alpha = exp(x) - 1`` where ``x <= 0``, else 0.
    """
    x, alpha = jnp.asarray(x), jnp.asarray(alpha)
    check_float("learned_elu", "x", x)
    check_float("learned_elu", "alpha", alpha)
    check_broadcast("learned_elu", x.shape, alpha.shape, alpha.shape, "alpha")
    check_implementation("learned_elu", implementation)
    if implementation == "autodiff":
        return _learned_elu_forward(x, alpha)
    return _learned_elu_closed(x, alpha)


def _learned_elu_forward(x: Array, alpha: Array) -> Array:
    # expm1 of min(x, 0): the branch not taken stays finite, so its gradient is 0, not NaN.
    neg = jnp.expm1(jnp.minimum(x, 0))
    return jnp.where(x > 0, x, alpha.astype(x.dtype) * neg)


def _learned_elu_partials(x: Array, alpha: Array, g: Array) -> tuple[Array, Array]:
    """``(g dz/dx, g dz/dalpha)`` per element, as autodiff of the forward gives them:
    ``dz/dx = alpha (expm1(x) + 1)`` for ``x < 0``, half that at ``x = 0`` (where ``minimum``'s
    derivative splits between its arguments), 1 for ``x > 0``; ``dz/dalpha = expm1(min(x, 0))``
    for ``x <= 0``, else 0."""
    neg = jnp.expm1(jnp.minimum(x, 0))
    pos = x > 0
    slope = alpha * (neg + 1) * jnp.where(x < 0, 1.0, 0.5).astype(x.dtype)
    return jnp.where(pos, g, g * slope), jnp.where(pos, 0, g * neg)


_learned_elu_closed = with_closed_vjp(_learned_elu_forward, _learned_elu_partials)


def _fixed_pool(y: Array, bias: Array | None, *, alpha: float = ELU_ALPHA) -> Array:
    # Nondecreasing for alpha >= 0 only: then pool first, otherwise compose.
    if alpha >= 0:
        return pool_first(_fixed_elu)(y, bias, alpha=alpha)
    return max_pool_2x2(_fixed_elu(y if bias is None else y + bias, alpha=alpha))


def _numpy(alpha):
    def elu_numpy(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        x64 = x.astype(np.float64)
        return np.where(x64 > 0, x64, alpha * np.expm1(np.minimum(x64, 0))).astype(x.dtype)

    return elu_numpy


class ELU(Activation):
    """ELU with a fixed ``alpha`` (1 by default) as an NNX layer: ``[...]`` -> same shape and
    dtype. ``features_shape``, ``sharing`` and ``rngs`` are accepted and ignored."""

    def __init__(self, alpha: float = ELU_ALPHA, *, features_shape=None, sharing=None, rngs=None):
        del features_shape, sharing, rngs
        super().__init__(ELU_FAMILY, alpha=float(alpha))

    @property
    def alpha(self) -> float:
        """The fixed alpha."""
        return self.options["alpha"]


class LearnedELU(Activation):
    """ELU with a learned ``alpha`` (``"elu_learned"``), initialised to 1.

    Args:
      features_shape: per-example feature shape; needed unless ``sharing="shared"``.
      sharing: ``"element"`` (the record's default, like PReLU in 4.2), ``"channel"``,
        ``"shared"`` or axes; ``None`` (the default) takes the record's ``default_sharing``.
      alpha_init: initial alpha (scalar, array of the parameter shape or an initializer).
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
        alpha_init=ELU_ALPHA,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        super().__init__(
            ELU_LEARNED_FAMILY,
            features_shape,
            sharing=sharing,
            param_dtype=param_dtype,
            rngs=rngs,
            alpha_init=alpha_init,
        )


ELU_FAMILY = ActivationFamily(
    name="elu",
    apply=_fixed_elu,
    call_options=(("alpha", ELU_ALPHA),),
    described=("alpha",),
    module=ELU,
    pool=_fixed_pool,
    to_numpy=lambda *, alpha=ELU_ALPHA: _numpy(alpha),
)

ELU_LEARNED_FAMILY = ActivationFamily(
    name="elu_learned",
    apply=learned_elu,
    # The curve fitter's Jacobian is forward mode, which the custom VJP lacks.
    fit_apply=functools.partial(learned_elu, implementation="autodiff"),
    params=("alpha",),
    coeff_shapes=lambda: ((),),
    init=lambda: (np.asarray(ELU_ALPHA),),
    default_sharing="element",
    module=LearnedELU,
    to_numpy=_numpy,
    fit_starts=lambda rng, interval, r: (rng.uniform(0.0, 2.0, 1),),
)
