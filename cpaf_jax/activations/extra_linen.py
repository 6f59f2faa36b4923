"""Flax Linen versions of APL, PAU and Swish (see ``cpaf_jax.activations.extra``).

Linen infers the feature shape from the first input (``x.shape[1:]``), so no
``features_shape`` is needed. Parameters live in ``"params"`` under the same names as the NNX
modules (``a``, ``b``; ``p``, ``q``; ``beta``) and take the same initial values.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from cpaf_jax.activations.extra import (
    APL_DEFAULT_HINGES,
    PAU_DEFAULT_DEGREES,
    SWISH_BETA_INIT,
    _check_degrees,
    apl,
    apl_default_init,
    pau,
    pau_default_init,
    swish,
)
from cpaf_jax.activations.initializers import make_param
from cpaf_jax.ops.sharing import param_shape


class APL(nn.Module):
    """Adaptive piecewise linear unit; see ``cpaf_jax.activations.extra.APL``.

    Call: ``x`` of shape ``[batch, *F]`` -> same shape and dtype; ``a``, ``b`` get shape
    ``[*P, hinges]`` from ``F = x.shape[1:]`` and ``sharing``.
    """

    hinges: int = APL_DEFAULT_HINGES
    sharing: Any = "element"
    a_init: Any = None
    b_init: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        if not isinstance(self.hinges, int) or self.hinges < 1:
            raise ValueError(f"APL needs hinges >= 1, got hinges={self.hinges!r}")
        shape = param_shape(tuple(x.shape[1:]), self.sharing) + (self.hinges,)
        a0, b0 = apl_default_init(self.hinges)
        dt = self.param_dtype
        a = self.param("a", lambda key: make_param(self.a_init, a0, key, shape, dt, "a"))
        b = self.param("b", lambda key: make_param(self.b_init, b0, key, shape, dt, "b"))
        return apl(x, a, b)


class PAU(nn.Module):
    """Safe Padé activation unit; see ``cpaf_jax.activations.extra.PAU`` (default one PAU per
    layer, degrees (5, 4), leaky-ReLU initial coefficients)."""

    degrees: tuple[int, int] = PAU_DEFAULT_DEGREES
    sharing: Any = "shared"
    p_init: Any = None
    q_init: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        m, n = _check_degrees(self.degrees)
        pshape = param_shape(tuple(x.shape[1:]), self.sharing)
        if self.p_init is None or self.q_init is None:
            p0, q0 = pau_default_init((m, n))
        else:
            p0, q0 = np.zeros((m + 1,)), np.zeros((n,))
        dt = self.param_dtype
        p = self.param(
            "p", lambda key: make_param(self.p_init, p0, key, pshape + (m + 1,), dt, "p")
        )
        q = self.param("q", lambda key: make_param(self.q_init, q0, key, pshape + (n,), dt, "q"))
        return pau(x, p, q)


class Swish(nn.Module):
    """Swish with learned ``beta`` (1.0 initially); see ``cpaf_jax.activations.extra.Swish``."""

    sharing: Any = "channel"
    beta_init: Any = SWISH_BETA_INIT
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        shape = param_shape(tuple(x.shape[1:]), self.sharing)
        default = np.asarray(SWISH_BETA_INIT)
        dt = self.param_dtype
        beta = self.param(
            "beta", lambda key: make_param(self.beta_init, default, key, shape, dt, "beta")
        )
        return swish(x, beta)


_LINEN = {
    "apl": lambda **kw: APL(**kw),
    "pau": lambda **kw: PAU(**kw),
    "swish": lambda **kw: Swish(**kw),
}


def activation(name: str, **kwargs) -> nn.Module:
    """The Linen module for ``"apl"``, ``"pau"`` or ``"swish"``.

    Raises:
      ValueError: for another name, listing these.
    """
    try:
        make = _LINEN[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; the extra Linen activations are {sorted(_LINEN)}"
        ) from None
    return make(**kwargs)


__all__ = ["APL", "PAU", "Swish", "activation"]
