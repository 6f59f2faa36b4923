"""One registry from activation names to NNX modules.

``activation(name, features_shape, sharing=..., rngs=..., **kwargs)`` builds the module.
Parameter-free activations ignore ``features_shape`` and ``sharing``; parametric ones use them.
``register_activation`` adds a family (new trainable activations plug in here).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from flax import nnx

from cpaf_jax.activations import modules as m

Factory = Callable[..., nnx.Module]

_REGISTRY: dict[str, Factory] = {}
_PARAMETRIC: set[str] = set()


def register_activation(name: str, factory: Factory, *, parametric: bool) -> None:
    """Registers ``factory(features_shape, *, sharing, rngs, **kwargs) -> nnx.Module``."""
    if name in _REGISTRY:
        raise ValueError(f"activation {name!r} is already registered")
    _REGISTRY[name] = factory
    if parametric:
        _PARAMETRIC.add(name)


def known_activations() -> list[str]:
    """Registered names, sorted."""
    return sorted(_REGISTRY)


def is_parametric(name: str) -> bool:
    """Whether the named activation has trainable parameters."""
    _lookup(name)
    return name in _PARAMETRIC


def _lookup(name: str) -> Factory:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; known activations are {known_activations()}"
        ) from None


def activation(
    name: str,
    features_shape=None,
    *,
    sharing="element",
    rngs: nnx.Rngs | None = None,
    **kwargs,
) -> nnx.Module:
    """Builds the NNX module for an activation name.

    Args:
      name: one of ``known_activations()``: ``sigmoid``, ``tanh``, ``relu``, ``prelu``,
        ``elu``, ``cpaf_sigmoid``, ``cpaf_relu`` (and any registered later).
      features_shape: per-example feature shape, channels last (parametric ones need it
        unless ``sharing="shared"``).
      sharing: ``"element"``, ``"channel"``, ``"shared"`` or feature axes.
      rngs: for parametric activations with random initializers.
      **kwargs: passed to the module (e.g. ``k``, ``a_init``, ``b_init`` for CPAF).

    Raises:
      ValueError: for an unknown name, listing the known ones.
    """
    factory = _lookup(name)
    return factory(features_shape, sharing=sharing, rngs=rngs, **kwargs)


def _fixed(make):
    def factory(features_shape=None, *, sharing=None, rngs=None, **kwargs):
        del features_shape, sharing, rngs
        return make(**kwargs)

    return factory


def _cpaf(base):
    def factory(features_shape=None, *, sharing="element", rngs=None, **kwargs):
        return m.CPAF(features_shape, base=base, sharing=sharing, rngs=rngs, **kwargs)

    return factory


def _prelu(features_shape=None, *, sharing="element", rngs=None, **kwargs):
    return m.PReLU(features_shape, sharing=sharing, rngs=rngs, **kwargs)


register_activation("sigmoid", _fixed(m.Sigmoid), parametric=False)
register_activation("tanh", _fixed(m.Tanh), parametric=False)
register_activation("relu", _fixed(m.ReLU), parametric=False)
register_activation("elu", _fixed(m.ELU), parametric=False)
register_activation("prelu", _prelu, parametric=True)
register_activation("cpaf_sigmoid", _cpaf("sigmoid"), parametric=True)
register_activation("cpaf_relu", _cpaf("relu"), parametric=True)
register_activation("cpaf_tanh", _cpaf("tanh"), parametric=True)


def count_activation_params(model: nnx.Module) -> dict[str, int]:
    """Counts a model's activation parameters.

    Returns:
      ``{"scalars": total number of activation parameters, "cpaf_pairs": number of (a_1, b_1)
      pairs, i.e. of distinct CPAF activations (Fig. 14 counts these), "cpaf_terms": (a_i, b_i)
      pairs over all terms, "layers": number of parametric activation modules}``.
    """
    scalars = pairs = terms = layers = 0
    for _, node in nnx.iter_graph(model):
        if not isinstance(node, nnx.Module):
            continue
        if any(isinstance(v, m.ActivationParam) for v in vars(node).values()):
            layers += 1
        if isinstance(node, m.CPAF):
            n = int(node.a.size)
            pairs += n // node.k
            terms += n
    for leaf in jax.tree.leaves(nnx.state(model, m.ActivationParam)):
        scalars += int(leaf.size)
    return {"scalars": scalars, "cpaf_pairs": pairs, "cpaf_terms": terms, "layers": layers}
