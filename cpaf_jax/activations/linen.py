"""Flax Linen versions of every activation family: ONE generic module over the record.

Linen infers the feature shape from the first input (``x.shape[1:]``), so no
``features_shape`` is needed. The one way to build a layer is by name, with the family
record's defaults (its sharing, options, initial values)::

    x = cpaf_jax.linen.activation("pau")(x)          # one PAU per layer: PAU's default
    x = cpaf_jax.linen.activation("cpaf_relu", sharing="channel")(x)

The named classes (``CPAF``, ``PAU``...) are generated from the records (``layer_class``):
``cpaf_jax.linen.CPAF(base="relu", sharing="channel")`` builds the same parameters as the
second line.

Parameters live in the ``"params"`` collection under the family's parameter names (``a``,
``b``; ``alpha``; ``p``, ``q``; ``beta``) and take the same initial values as the NNX modules.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from cpaf_jax.activations.apl import APL_FAMILY
from cpaf_jax.activations.cpaf import CPAF_SIGMOID_FAMILY, cpaf_family
from cpaf_jax.activations.elu import ELU_FAMILY, ELU_LEARNED_FAMILY
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
    as fields, generated from the records (``layer_class``); they only map those fields to the
    record (``spec``).

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


def _layer_doc(cls_name: str, record: ActivationFamily, selector: tuple | None) -> str:
    """The generated class's docstring, from the record."""
    options = ", ".join(f"``{n}`` ({d!r})" for n, d in record.shape_options + record.call_options)
    inits = ", ".join(f"``{p}_init``" for p in record.params)
    lines = [
        f"``cpaf_jax.{cls_name}`` as a Linen layer, generated from the family's record: its "
        "fields are the NNX class's arguments without ``features_shape`` (``x.shape[1:]``).",
        "",
    ]
    if selector is not None:
        lines.append(f"``{selector[0]}`` (default {selector[1]!r}) chooses the record.")
    if options:
        lines.append(f"Options (defaults): {options}.")
    if record.parametric:
        lines.append(
            f"``sharing``: ``None`` (default) takes the record's, {record.default_sharing!r}; "
            f"{inits}: ``None`` (default) for the record's initial values."
        )
    lines += ["", "Call: ``x`` of shape ``[batch, *F]`` -> same shape and dtype."]
    return "\n".join(lines)


def layer_class(
    record: ActivationFamily, select: tuple[str, Callable[[Any], ActivationFamily]] | None = None
) -> type[Activation]:
    """The Linen class of a family's NNX class, generated from its record.

    Its fields are the record's options and ``<param>_init`` values with the record's own
    defaults (``None`` for ``sharing`` and the initial values: the record's); ``spec`` maps
    them to the record. Nothing about the family is written twice.

    Args:
      record: the family's record; the class takes the name of its NNX class
        (``record.module``).
      select: ``(field, record_of)`` for a class that covers several records (CPAF: ``("base",
        cpaf_family)``): the field, with the NNX class's default, chooses the record.

    Returns:
      an ``Activation`` subclass of this module.
    """
    cls = getattr(record.module, "func", record.module)
    options = record.shape_options + record.call_options
    fields = {n: d for n, d in options} | {f"{p}_init": None for p in record.params}
    names = tuple(fields)
    selector = None
    if select is not None:
        selector = (select[0], inspect.signature(cls.__init__).parameters[select[0]].default)
        fields = {selector[0]: selector[1], **fields}

    def spec(self) -> tuple[ActivationFamily, dict]:
        """The record (chosen by the selecting field, if any) and the keyword arguments."""
        chosen = record if select is None else select[1](getattr(self, select[0]))
        return chosen, {n: getattr(self, n) for n in names}

    namespace = {
        "__module__": __name__,
        "__qualname__": cls.__name__,
        "__doc__": _layer_doc(cls.__name__, record, selector),
        "__annotations__": {"sharing": Any, **{n: Any for n in fields}},
        "sharing": None,
        **fields,
        "spec": spec,
    }
    return type(cls.__name__, (Activation,), namespace)


CPAF = layer_class(CPAF_SIGMOID_FAMILY, select=("base", cpaf_family))
PReLU = layer_class(PRELU_FAMILY)
ELU = layer_class(ELU_FAMILY)
LearnedELU = layer_class(ELU_LEARNED_FAMILY)
APL = layer_class(APL_FAMILY)
PAU = layer_class(PAU_FAMILY)
Swish = layer_class(SWISH_FAMILY)


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
    """The Linen module for an activation name (same names as ``cpaf_jax.activation``): the one
    way to build a Linen layer; returns the generic ``Activation`` over the record.

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
    "LearnedELU",
    "PAU",
    "PReLU",
    "ReLU",
    "Sigmoid",
    "Swish",
    "Tanh",
    "activation",
]
