"""Flax Linen versions of every activation family: ONE generic module over the record.

Linen infers the feature shape from the first input (``x.shape[1:]``), so no
``features_shape`` is needed::

    x = cpaf_jax.linen.CPAF(base="relu", sharing="channel")(x)
    x = cpaf_jax.linen.activation("pau")(x)

Parameters live in the ``"params"`` collection under the family's parameter names (``a``,
``b``; ``alpha``; ``p``, ``q``; ``beta``) and take the same initial values as the NNX modules.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from cpaf_jax.activations.apl import APL_FAMILY
from cpaf_jax.activations.cpaf import cpaf_family
from cpaf_jax.activations.elu import ELU_FAMILY
from cpaf_jax.activations.family import ActivationFamily
from cpaf_jax.activations.fixed import RELU_FAMILY, SIGMOID_FAMILY, TANH_FAMILY
from cpaf_jax.activations.initializers import make_param
from cpaf_jax.activations.pau import PAU_FAMILY
from cpaf_jax.activations.prelu import PRELU_FAMILY
from cpaf_jax.activations.registry import family as _family
from cpaf_jax.activations.registry import known_activations
from cpaf_jax.activations.swish import SWISH_FAMILY


class Activation(nn.Module):
    """The Linen module of any ``ActivationFamily``.

    Attributes:
      family: the record.
      sharing: ``"element"``, ``"channel"``, ``"shared"`` or feature axes (``None``: the
        family's default).
      param_dtype: dtype of the parameters.
      kwargs: ``(name, value)`` pairs of the family's options and ``<param>_init`` values.

    Call: ``x`` of shape ``[batch, *F]`` -> same shape and dtype; parameters get shape
    ``[*P, *coeffs]`` from ``F = x.shape[1:]`` and ``sharing``.
    """

    family: ActivationFamily
    sharing: Any = None
    param_dtype: Any = jnp.float32
    kwargs: tuple = ()

    def option(self, name: str) -> Any:
        """An option's value (its default when not given)."""
        shape_opts, call_opts, _ = self.family.split(dict(self.kwargs))
        return {**shape_opts, **call_opts}[name]

    @nn.compact
    def __call__(self, x):
        fam = self.family
        shape_opts, call_opts, inits = fam.split(dict(self.kwargs))
        values = []
        if fam.parametric:
            sharing = fam.default_sharing if self.sharing is None else self.sharing
            if isinstance(sharing, list):
                sharing = tuple(sharing)
            shapes = fam.param_shapes(tuple(x.shape[1:]), sharing, **shape_opts)
            for name in fam.params:

                def init_fn(key, name=name):
                    init = inits.get(name)
                    default = fam.initial_values(**shape_opts)[name] if init is None else 0.0
                    return make_param(init, default, key, shapes[name], self.param_dtype, name)

                values.append(self.param(name, init_fn))
        return fam.apply(x, *values, **call_opts)


def _module(record: ActivationFamily, sharing=None, param_dtype=jnp.float32, **kwargs):
    record.split(kwargs)  # unknown arguments fail here, where they were passed
    return Activation(record, sharing, param_dtype, tuple(kwargs.items()))


def CPAF(*, base="sigmoid", sharing="element", param_dtype=jnp.float32, **kwargs) -> Activation:  # noqa: N802 - reads as a layer class at call sites
    """Combined parametric activation (``k``, ``a_init``, ``b_init``, ``implementation`` as for
    ``cpaf_jax.CPAF``)."""
    return _module(cpaf_family(base), sharing, param_dtype, **kwargs)


def PReLU(*, sharing="channel", param_dtype=jnp.float32, **kwargs) -> Activation:  # noqa: N802
    """PReLU with learned ``alpha`` (0.25 initially; ``alpha_init`` to change)."""
    return _module(PRELU_FAMILY, sharing, param_dtype, **kwargs)


def ELU(alpha: float = 1.0) -> Activation:  # noqa: N802
    """ELU with fixed ``alpha`` (1 by default)."""
    return _module(ELU_FAMILY, alpha=float(alpha))


def Sigmoid() -> Activation:  # noqa: N802
    """Logistic sigmoid as a parameter-free Linen layer: ``[...]`` -> same shape and dtype."""
    return _module(SIGMOID_FAMILY)


def Tanh() -> Activation:  # noqa: N802
    """``tanh`` as a parameter-free Linen layer: ``[...]`` -> same shape and dtype."""
    return _module(TANH_FAMILY)


def ReLU() -> Activation:  # noqa: N802
    """ReLU as a parameter-free Linen layer: ``[...]`` -> same shape and dtype."""
    return _module(RELU_FAMILY)


def APL(*, sharing="element", param_dtype=jnp.float32, **kwargs) -> Activation:  # noqa: N802
    """Adaptive piecewise linear unit (``hinges``, ``a_init``, ``b_init``)."""
    return _module(APL_FAMILY, sharing, param_dtype, **kwargs)


def PAU(*, sharing="shared", param_dtype=jnp.float32, **kwargs) -> Activation:  # noqa: N802
    """Safe Padé activation unit (``degrees``, ``p_init``, ``q_init``); one per layer by
    default, degrees (5, 4), leaky-ReLU initial coefficients."""
    return _module(PAU_FAMILY, sharing, param_dtype, **kwargs)


def Swish(*, sharing="channel", param_dtype=jnp.float32, **kwargs) -> Activation:  # noqa: N802
    """Swish with learned ``beta`` (1.0 initially; ``beta_init`` to change)."""
    return _module(SWISH_FAMILY, sharing, param_dtype, **kwargs)


def activation(name: str, *, sharing=None, param_dtype=jnp.float32, **kwargs) -> Activation:
    """The Linen module for an activation name (same names as ``cpaf_jax.activation``).

    ``sharing=None`` takes the family's default (PReLU and Swish per channel, PAU shared,
    the others per element).

    Raises:
      ValueError: for an unknown name, listing the known ones.
    """
    try:
        record = _family(name)
    except ValueError:
        raise ValueError(
            f"unknown activation {name!r}; known Linen activations are {known_activations()}"
        ) from None
    return _module(record, sharing, param_dtype, **kwargs)


__all__ = [
    "APL",
    "Activation",
    "CPAF",
    "ELU",
    "PAU",
    "PReLU",
    "ReLU",
    "Sigmoid",
    "Swish",
    "Tanh",
    "activation",
]
