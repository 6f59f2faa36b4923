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

    Its fields: ``family``, the record; ``sharing``, ``"element"``, ``"channel"``,
    ``"shared"`` or feature axes (``None``: the family's default); ``param_dtype``, the
    parameters' dtype; ``kwargs``, ``(name, value)`` pairs of the family's options and
    ``<param>_init`` values.

    The named layers below (``CPAF``, ``PReLU``...) are this module with the family's options
    as fields; they only map those fields to the record (``spec``).

    Call: ``x`` of shape ``[batch, *F]`` -> same shape and dtype; parameters get shape
    ``[*P, *coeffs]`` from ``F = x.shape[1:]`` and ``sharing``.
    """

    family: ActivationFamily | None = None
    sharing: Any = None
    param_dtype: Any = jnp.float32
    kwargs: tuple = ()

    def spec(self) -> tuple[ActivationFamily, dict]:
        """The record and the keyword arguments (options, ``<param>_init``) to build it with."""
        if self.family is None:
            raise ValueError("linen.Activation needs family=<an ActivationFamily record>")
        return self.family, dict(self.kwargs)

    def option(self, name: str) -> Any:
        """An option's value (its default when not given)."""
        record, kwargs = self.spec()
        shape_opts, call_opts, _ = record.split(kwargs)
        return {**shape_opts, **call_opts}[name]

    @nn.compact
    def __call__(self, x):
        fam, kwargs = self.spec()
        shape_opts, call_opts, inits = fam.split(kwargs)
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


class CPAF(Activation):
    """Combined parametric activation; see ``cpaf_jax.CPAF`` for the fields (``k``, ``base``,
    ``sharing``, ``a_init``, ``b_init``, ``implementation``)."""

    sharing: Any = "element"
    k: int = 2
    base: Any = "sigmoid"
    a_init: Any = None
    b_init: Any = None
    implementation: str | None = None

    def spec(self) -> tuple[ActivationFamily, dict]:
        """CPAF's record for ``base`` and its options."""
        kwargs = {"k": self.k, "implementation": self.implementation}
        return cpaf_family(self.base), dict(kwargs, a_init=self.a_init, b_init=self.b_init)


class PReLU(Activation):
    """PReLU with learned ``alpha`` (``alpha_init`` 0.25), per channel by default."""

    sharing: Any = "channel"
    alpha_init: Any = 0.25

    def spec(self) -> tuple[ActivationFamily, dict]:
        """PReLU's record and initial alpha."""
        return PRELU_FAMILY, {"alpha_init": self.alpha_init}


class ELU(Activation):
    """ELU with fixed ``alpha`` (1 by default)."""

    alpha: float = 1.0

    def spec(self) -> tuple[ActivationFamily, dict]:
        """ELU's record and alpha."""
        return ELU_FAMILY, {"alpha": float(self.alpha)}


class APL(Activation):
    """Adaptive piecewise linear unit (``hinges``, ``a_init``, ``b_init``), per element."""

    sharing: Any = "element"
    hinges: int = 2
    a_init: Any = None
    b_init: Any = None

    def spec(self) -> tuple[ActivationFamily, dict]:
        """APL's record and options."""
        return APL_FAMILY, {"hinges": self.hinges, "a_init": self.a_init, "b_init": self.b_init}


class PAU(Activation):
    """Safe Padé activation unit (``degrees``, ``p_init``, ``q_init``); one per layer by
    default, degrees (5, 4), leaky-ReLU initial coefficients."""

    sharing: Any = "shared"
    degrees: tuple[int, int] = (5, 4)
    p_init: Any = None
    q_init: Any = None

    def spec(self) -> tuple[ActivationFamily, dict]:
        """PAU's record and options."""
        return PAU_FAMILY, {"degrees": self.degrees, "p_init": self.p_init, "q_init": self.q_init}


class Swish(Activation):
    """Swish with learned ``beta`` (``beta_init`` 1.0), per channel by default."""

    sharing: Any = "channel"
    beta_init: Any = 1.0

    def spec(self) -> tuple[ActivationFamily, dict]:
        """Swish's record and initial beta."""
        return SWISH_FAMILY, {"beta_init": self.beta_init}


def Sigmoid() -> Activation:  # noqa: N802 - reads as a layer class at call sites
    """Logistic sigmoid as a parameter-free Linen layer: ``[...]`` -> same shape and dtype."""
    return Activation(SIGMOID_FAMILY)


def Tanh() -> Activation:  # noqa: N802
    """``tanh`` as a parameter-free Linen layer: ``[...]`` -> same shape and dtype."""
    return Activation(TANH_FAMILY)


def ReLU() -> Activation:  # noqa: N802
    """ReLU as a parameter-free Linen layer: ``[...]`` -> same shape and dtype."""
    return Activation(RELU_FAMILY)


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
    record.split(kwargs)  # unknown arguments fail here, where they were passed
    return Activation(record, sharing, param_dtype, tuple(kwargs.items()))


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
