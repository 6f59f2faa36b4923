"""Flax Linen versions of the activations, to drop into existing Linen code.

Linen infers the feature shape from the first input, so no ``features_shape`` is needed::

    x = cpaf_jax.activations.linen.CPAF(base="relu", sharing="channel")(x)

Parameters live in the ``"params"`` collection under the names ``a``, ``b`` (CPAF) and
``alpha`` (PReLU); they take the same initial values as the NNX modules.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from cpaf_jax.activations import extra_linen
from cpaf_jax.activations.initializers import default_terms, make_param
from cpaf_jax.activations.modules import prelu
from cpaf_jax.ops.bases import resolve_base
from cpaf_jax.ops.functional import cpaf
from cpaf_jax.ops.sharing import param_shape


class CPAF(nn.Module):
    """Combined parametric activation; see ``cpaf_jax.CPAF`` for the arguments.

    Call: ``x`` of shape ``[batch, *F]`` -> same shape and dtype; the parameters get shape
    ``[*P, k]`` from ``F = x.shape[1:]`` and ``sharing``.
    """

    k: int = 2
    base: Any = "sigmoid"
    sharing: Any = "element"
    a_init: Any = None
    b_init: Any = None
    param_dtype: Any = jnp.float32
    implementation: str | None = None

    @nn.compact
    def __call__(self, x):
        if not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"CPAF needs k >= 1 terms, got k={self.k!r}")
        base = resolve_base(self.base)
        shape = param_shape(tuple(x.shape[1:]), self.sharing) + (self.k,)
        a0, b0 = default_terms(base, self.k)
        dt = self.param_dtype
        a = self.param("a", lambda key: make_param(self.a_init, a0, key, shape, dt, "a"))
        b = self.param("b", lambda key: make_param(self.b_init, b0, key, shape, dt, "b"))
        return cpaf(x, a, b, base, implementation=self.implementation)


class PReLU(nn.Module):
    """PReLU with learned ``alpha`` (0.25 initially); ``sharing`` as for CPAF."""

    sharing: Any = "channel"
    alpha_init: float = 0.25
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        shape = param_shape(tuple(x.shape[1:]), self.sharing)
        alpha = self.param("alpha", lambda key: jnp.full(shape, self.alpha_init, self.param_dtype))
        return prelu(x, alpha)


class ELU(nn.Module):
    """ELU with fixed ``alpha`` (1 by default)."""

    alpha: float = 1.0

    @nn.compact
    def __call__(self, x):
        return jax.nn.elu(x, self.alpha)


class _Fixed(nn.Module):
    fn: Any

    @nn.compact
    def __call__(self, x):
        return self.fn(x)


def Sigmoid() -> nn.Module:  # noqa: N802 - reads as a layer class at call sites
    """Logistic sigmoid as a parameter-free Linen layer: ``[...]`` -> same shape and dtype."""
    return _Fixed(jax.nn.sigmoid)


def Tanh() -> nn.Module:  # noqa: N802
    """``tanh`` as a parameter-free Linen layer: ``[...]`` -> same shape and dtype."""
    return _Fixed(jnp.tanh)


def ReLU() -> nn.Module:  # noqa: N802
    """ReLU as a parameter-free Linen layer: ``[...]`` -> same shape and dtype."""
    return _Fixed(jax.nn.relu)


_LINEN = {
    "sigmoid": lambda **kw: Sigmoid(),
    "tanh": lambda **kw: Tanh(),
    "relu": lambda **kw: ReLU(),
    "elu": lambda **kw: ELU(**{k: v for k, v in kw.items() if k == "alpha"}),
    "prelu": lambda **kw: PReLU(**kw),
    "cpaf_sigmoid": lambda **kw: CPAF(base="sigmoid", **kw),
    "cpaf_relu": lambda **kw: CPAF(base="relu", **kw),
    "cpaf_tanh": lambda **kw: CPAF(base="tanh", **kw),
    "apl": lambda **kw: extra_linen.APL(**kw),
    "pau": lambda **kw: extra_linen.PAU(**kw),
    "swish": lambda **kw: extra_linen.Swish(**kw),
}


def activation(name: str, **kwargs) -> nn.Module:
    """The Linen module for an activation name (same names as ``cpaf_jax.activation``).

    Raises:
      ValueError: for an unknown name, listing the known ones.
    """
    try:
        make = _LINEN[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; known Linen activations are {sorted(_LINEN)}"
        ) from None
    return make(**kwargs)


__all__ = ["CPAF", "PReLU", "ELU", "Sigmoid", "Tanh", "ReLU", "activation"]
