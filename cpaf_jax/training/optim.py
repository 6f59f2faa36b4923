"""Optimisers: one learning rate per parameter group, injected so that sweeps and resumes can
change it, and decoupled weight decay on weights only.

Activation parameters are the ``ActivationParam`` variables (CPAF's a and b, PReLU's alpha,
APL/PAU/Swish coefficients); everything else in ``nnx.Param`` is a weight. Decaying a and b
towards zero would pull every CPAF term towards a flat line, and decaying biases is not what
"weight decay" means, so decay applies to kernels (weights with two or more axes) alone.

Every learning rate lives in ``optax.inject_hyperparams`` state, so each sweep member carries
its own (``[M]`` after stacking) and ``set_learning_rates`` changes it in a restored state:
the decay term reads the same injected rate (``-lr * wd * w``), never a rate frozen when the
optimiser was built.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from cpaf_jax.activations.family import ActivationParam

OPTIMIZERS = ("adam", "rmsprop", "sgd")
ACTIVATION, WEIGHT = "activation", "weight"


def _keras_rmsprop(learning_rate, decay: float = 0.9, eps: float = 1e-7):
    # Explicit arguments: inject_hyperparams reads the signature to find hyperparameters.
    return optax.rmsprop(learning_rate, decay=decay, eps=eps)


_MAKERS: dict[str, Callable] = {"adam": optax.adam, "rmsprop": _keras_rmsprop, "sgd": optax.sgd}

# The same optimisers with decoupled decay between the scaling and the learning rate:
# updates = -lr * (scaled gradient + wd * w), AdamW's form (optax.adamw is exactly this).
_DECAYED: dict[str, Callable] = {
    "adam": lambda learning_rate, weight_decay, mask: optax.adamw(
        learning_rate, weight_decay=weight_decay, mask=mask
    ),
    "rmsprop": lambda learning_rate, weight_decay, mask: optax.chain(
        optax.scale_by_rms(decay=0.9, eps=1e-7),
        optax.add_decayed_weights(weight_decay, mask),
        optax.scale_by_learning_rate(learning_rate),
    ),
    "sgd": lambda learning_rate, weight_decay, mask: optax.chain(
        optax.add_decayed_weights(weight_decay, mask),
        optax.scale_by_learning_rate(learning_rate),
    ),
}


def _check_name(name: str) -> None:
    if name not in _MAKERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def make_optimizer(name: str, learning_rate: float, **kwargs) -> optax.GradientTransformation:
    """An optax optimizer with its learning rate as an injected (vmappable) hyperparameter.

    Args:
      name: ``"adam"`` (experiments 4.1, 4.2), ``"rmsprop"`` (4.3; Keras defaults decay 0.9,
        eps 1e-7 as the paper's Keras code would have used) or ``"sgd"``.
      learning_rate: step size.
      **kwargs: passed to the optax constructor.

    Returns:
      ``optax.inject_hyperparams(...)`` transformation, so ``opt_state.hyperparams
      ["learning_rate"]`` can differ per sweep member.
    """
    _check_name(name)
    return optax.inject_hyperparams(_MAKERS[name])(learning_rate=learning_rate, **kwargs)


def _is_var(x) -> bool:
    return isinstance(x, nnx.Variable)


def param_labels(params) -> object:
    """``"activation"`` or ``"weight"`` for each variable of an ``nnx.State`` of parameters.

    Returns:
      a pytree with the state's structure down to its variables (a prefix of the array tree,
      as ``optax.multi_transform`` and ``optax.masked`` accept).
    """
    return jax.tree.map(
        lambda v: ACTIVATION if isinstance(v, ActivationParam) else WEIGHT, params, is_leaf=_is_var
    )


def weight_mask(params) -> object:
    """True for kernels (weights with >= 2 axes), False for biases and activation parameters."""

    def is_kernel(v) -> bool:
        if isinstance(v, ActivationParam):
            return False
        return jnp.ndim(v[...] if _is_var(v) else v) >= 2

    return jax.tree.map(is_kernel, params, is_leaf=_is_var)


def _weights_tx(name: str, learning_rate: float, weight_decay: float):
    if not weight_decay:
        return make_optimizer(name, learning_rate)
    return optax.inject_hyperparams(_DECAYED[name], static_args=("mask",))(
        learning_rate=learning_rate, weight_decay=weight_decay, mask=weight_mask
    )


def grouped_optimizer(
    name: str,
    learning_rate: float,
    *,
    activation_lr: float | None = None,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """An optimizer whose activation parameters may have their own learning rate.

    Without ``activation_lr`` and ``weight_decay`` this is ``make_optimizer(name,
    learning_rate)`` itself, so a plain run's program (and its numbers) do not change.

    Args:
      name: ``"adam"``, ``"rmsprop"`` or ``"sgd"`` (see ``make_optimizer``).
      learning_rate: for the weights (and activation parameters without ``activation_lr``).
      activation_lr: for activation parameters; ``None`` uses ``learning_rate``.
      weight_decay: decoupled weight decay (``-lr * wd * w``, AdamW's form) on kernels only,
        reading the injected learning rate.

    Returns:
      an optax transformation over an ``nnx.State`` of parameters; every learning rate is an
      injected hyperparameter (``set_learning_rates`` changes them).
    """
    _check_name(name)
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if activation_lr is None and not weight_decay:
        return make_optimizer(name, learning_rate)
    act_lr = learning_rate if activation_lr is None else activation_lr
    return optax.multi_transform(
        {
            WEIGHT: _weights_tx(name, learning_rate, weight_decay),
            ACTIVATION: make_optimizer(name, act_lr),
        },
        param_labels,
    )


def _is_injected(x) -> bool:
    return isinstance(x, optax.InjectStatefulHyperparamsState)


def _set_lr(state, lr):
    hp = dict(state.hyperparams)
    old = hp["learning_rate"]
    hp["learning_rate"] = jnp.full_like(old, lr)
    return state._replace(hyperparams=hp)


def set_learning_rates(opt_state, learning_rate: float, activation_lr: float | None = None):
    """``opt_state`` with its injected learning rates replaced (e.g. after ``--resume``).

    Args:
      opt_state: the state of ``make_optimizer`` or ``grouped_optimizer`` (one member, or
        stacked ``[M]``: the new rate fills every member).
      learning_rate: the weights' rate (and the activation parameters' without
        ``activation_lr``).
      activation_lr: the activation group's rate, when the optimizer has groups.
    """
    if isinstance(opt_state, optax.MultiTransformState):
        act_lr = learning_rate if activation_lr is None else activation_lr
        rates = {WEIGHT: learning_rate, ACTIVATION: act_lr}
        inner = {k: _set_all(v, rates[k]) for k, v in opt_state.inner_states.items()}
        return opt_state._replace(inner_states=inner)
    return _set_all(opt_state, learning_rate)


def _set_all(opt_state, lr: float):
    # Every injected state below this one (multi_transform wraps each group in masked()).
    found = []

    def visit(x):
        if _is_injected(x):
            found.append(x)
            return _set_lr(x, lr)
        return x

    out = jax.tree.map(visit, opt_state, is_leaf=_is_injected)
    if not found:
        raise TypeError(f"no injected learning rate in an optimizer state of {type(opt_state)}")
    return out


__all__ = [
    "OPTIMIZERS",
    "grouped_optimizer",
    "make_optimizer",
    "param_labels",
    "set_learning_rates",
    "weight_mask",
]
