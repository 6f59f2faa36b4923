"""The registry: an explicit table from activation names to ``ActivationFamily`` records.

``activation(name, features_shape, sharing=..., rngs=..., **kwargs)`` builds the NNX module,
``family(name)`` returns the record (its pure function, parameter shapes, initial values, fused
pool form, NumPy export). Nothing registers itself on import; ``register_activation(record)``
adds a family explicitly.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from flax import nnx

from cpaf_jax.activations.apl import APL_FAMILY
from cpaf_jax.activations.controls import (
    CPAF_RELU_A_ONLY_FAMILY,
    CPAF_RELU_B_ONLY_FAMILY,
    CPAF_RELU_FROZEN_FAMILY,
    CPAF_SIGMOID_A_ONLY_FAMILY,
    CPAF_SIGMOID_B_ONLY_FAMILY,
    CPAF_SIGMOID_FROZEN_FAMILY,
    RELU_BIAS_FAMILY,
)
from cpaf_jax.activations.cpaf import (
    CPAF_RELU_FAMILY,
    CPAF_SIGMOID_FAMILY,
    CPAF_TANH_FAMILY,
    cpaf_family,
)
from cpaf_jax.activations.elu import ELU_FAMILY, ELU_LEARNED_FAMILY
from cpaf_jax.activations.family import Activation, ActivationFamily, ActivationParam
from cpaf_jax.activations.fixed import RELU_FAMILY, SIGMOID_FAMILY, TANH_FAMILY
from cpaf_jax.activations.pau import PAU_FAMILY
from cpaf_jax.activations.prelu import PRELU_FAMILY
from cpaf_jax.activations.swish import SWISH_FAMILY
from cpaf_jax.fitting.curve_fit import CurveFit, fit_curve

_REGISTRY: dict[str, ActivationFamily] = {
    f.name: f
    for f in (
        SIGMOID_FAMILY,
        TANH_FAMILY,
        RELU_FAMILY,
        ELU_FAMILY,
        ELU_LEARNED_FAMILY,
        PRELU_FAMILY,
        CPAF_SIGMOID_FAMILY,
        CPAF_RELU_FAMILY,
        CPAF_TANH_FAMILY,
        APL_FAMILY,
        PAU_FAMILY,
        SWISH_FAMILY,
        # Controls of the reproduction: shape without learning, an untied bias,
        # only the scales or only the locations learned.
        CPAF_SIGMOID_FROZEN_FAMILY,
        CPAF_RELU_FROZEN_FAMILY,
        RELU_BIAS_FAMILY,
        CPAF_SIGMOID_A_ONLY_FAMILY,
        CPAF_SIGMOID_B_ONLY_FAMILY,
        CPAF_RELU_A_ONLY_FAMILY,
        CPAF_RELU_B_ONLY_FAMILY,
    )
}


def register_activation(record: ActivationFamily) -> None:
    """Adds a family under ``record.name`` (see ``cpaf_jax.activations.family``).

    Raises:
      ValueError: the name is taken. TypeError: not an ``ActivationFamily``.
    """
    if not isinstance(record, ActivationFamily):
        raise TypeError(
            "register_activation takes an ActivationFamily record (its pure function, parameter "
            f"names and shapes, initial values); got {type(record).__name__}"
        )
    if record.name in _REGISTRY:
        raise ValueError(f"activation {record.name!r} is already registered")
    _REGISTRY[record.name] = record


def known_activations() -> list[str]:
    """Registered names, sorted."""
    return sorted(_REGISTRY)


def family(name: str) -> ActivationFamily:
    """The record of a registered activation.

    Raises:
      ValueError: for an unknown name, listing the known ones.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; known activations are {known_activations()}"
        ) from None


def is_parametric(name: str) -> bool:
    """Whether the named activation has trainable parameters."""
    return family(name).parametric


def activation(
    name: str,
    features_shape=None,
    *,
    sharing=None,
    rngs: nnx.Rngs | None = None,
    **kwargs,
) -> nnx.Module:
    """Builds the NNX module for an activation name: the one way to build an NNX layer.

    The module is the family's class where it has one (``cpaf_jax.CPAF`` for ``cpaf_relu``,
    ``cpaf_jax.PAU`` for ``pau``...), with the same defaults as that class.

    Args:
      name: one of ``known_activations()``: ``sigmoid``, ``tanh``, ``relu``, ``elu``,
        ``elu_learned``, ``prelu``, ``cpaf_sigmoid``, ``cpaf_relu``, ``cpaf_tanh``, ``apl``,
        ``pau``, ``swish``, the controls ``cpaf_sigmoid_frozen``, ``cpaf_relu_frozen``,
        ``relu_bias``, ``cpaf_sigmoid_a_only``, ``cpaf_sigmoid_b_only``, ``cpaf_relu_a_only``,
        ``cpaf_relu_b_only`` (and any registered later).
      features_shape: per-example feature shape, channels last (parametric ones need it
        unless ``sharing="shared"``).
      sharing: ``"element"``, ``"channel"``, ``"shared"`` or feature axes; ``None`` (the
        default) takes the family's own ``default_sharing`` (PReLU and Swish per channel, PAU
        shared, the others per element); ignored by parameter-free activations.
      rngs: for parametric activations with random initializers (constant initial values draw
        no key).
      **kwargs: the family's options and initial values (e.g. ``k``, ``a_init``, ``b_init``
        for CPAF, ``alpha`` for ELU).

    Raises:
      ValueError: for an unknown name, listing the known ones.
    """
    return family(name).build(features_shape, sharing=sharing, rngs=rngs, **kwargs)


def count_activation_params(model: nnx.Module) -> dict[str, int]:
    """Counts a model's activation parameters.

    Returns:
      ``{"scalars": total number of activation parameters, "cpaf_pairs": number of (a_1, b_1)
      pairs, i.e. of distinct CPAF activations (Fig. 14 counts these), "cpaf_terms": (a_i, b_i)
      pairs over all terms, "layers": number of parametric activation modules}``. Pairs are
      counted for families with ``pairs`` (CPAF's (a, b)).
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(
            f"count_activation_params expects an NNX module (a model or layer), got "
            f"{type(model).__name__}"
        )
    pairs = terms = layers = 0
    for _, node in nnx.iter_graph(model):
        if not isinstance(node, nnx.Module):
            continue
        if any(isinstance(v, ActivationParam) for v in vars(node).values()):
            layers += 1
        if isinstance(node, Activation) and node.record.pairs is not None:
            scale = getattr(node, node.record.pairs[0])
            terms += int(scale.size)
            pairs += int(np.prod(scale.shape[:-1]))
    scalars = sum(int(leaf.size) for leaf in jax.tree.leaves(nnx.state(model, ActivationParam)))
    return {"scalars": scalars, "cpaf_pairs": pairs, "cpaf_terms": terms, "layers": layers}


def _resolve(name: str, base) -> ActivationFamily:
    # "cpaf" with a base is the curve fitter's historical spelling of cpaf_<base>.
    return cpaf_family(base) if name == "cpaf" else family(name)


def fit_activation(
    target: str | Callable,
    k: int = 4,
    base="sigmoid",
    interval: tuple[float, float] = (-3.0, 3.0),
    *,
    family: str = "cpaf",  # noqa: A002 - the argument's name since the first release
    **kwargs,
) -> CurveFit:
    """``cpaf_jax.fitting.curve_fit.fit_curve`` by activation name; kept for one release (as
    ``cpaf_jax.fit_activation`` it warns): use ``fit_curve(target, family(name), **options)``.

    Args:
      target: a name in ``cpaf_jax.fitting.curve_fit.TARGETS`` or an elementwise callable.
      k: number of terms (CPAF) or hinges (APL): the family's one integer shape option;
        ignored by families without one.
      base: CPAF base when ``family="cpaf"``.
      interval: ``(lo, hi)``.
      family: ``"cpaf"`` (with ``base``) or a registered parametric name (``"cpaf_relu"``,
        ``"apl"``, ``"pau"``, ``"swish"``, ``"prelu"``, ``"elu_learned"``...).
      **kwargs: other options (PAU's ``degrees``) and ``fit_curve``'s settings.

    Raises:
      ValueError: unknown family, target or base; bad k, interval or options.
    """
    record = _resolve(family, base)
    counts = [n for n, d in record.shape_options if isinstance(d, int) and n not in kwargs]
    options = {counts[0]: k} if len(counts) == 1 else {}
    return fit_curve(target, record, interval, **options, **kwargs)


def fit_initializer(
    target: str | Callable,
    k: int = 4,
    base="sigmoid",
    interval: tuple[float, float] = (-3.0, 3.0),
    *,
    family: str = "cpaf",  # noqa: A002
    **kwargs,
) -> tuple[np.ndarray, ...]:
    """Fitted initial values in the module's argument order, to pass as ``*_init``; kept for
    one release (as ``cpaf_jax.fit_initializer`` it warns): use ``fit_curve(target,
    family(name), **options).init_kwargs()``.

    ``(a_init, b_init)`` (shape ``(k,)`` each) for CPAF and APL, ``(p_init, q_init)`` for PAU,
    ``(beta_init,)`` for Swish, ``(alpha_init,)`` for PReLU. Each broadcasts over any sharing,
    so every activation of the layer starts from the fitted curve::

        a, b = fit_initializer("tanh", k=4, base="sigmoid")
        act = cpaf_jax.activation("cpaf_sigmoid", (26, 26, 16), k=4, a_init=a, b_init=b)

    Arguments are those of ``fit_activation``, which also returns the fit's errors.
    """
    res = fit_activation(target, k, base, interval, family=family, **kwargs)
    return tuple(res.params.values())
