"""Parameter groups: activation parameters with their own learning rate, and weight decay on
weights only.

Activation parameters are the ``ActivationParam`` variables (CPAF's a and b, PReLU's alpha,
APL/PAU/Swish coefficients); everything else in ``nnx.Param`` is a weight. Decaying a and b
towards zero would pull every CPAF term towards a flat line, so decay applies to weights alone.
"""

from __future__ import annotations

import jax
import optax
from flax import nnx

from cpaf_jax.activations.modules import ActivationParam
from cpaf_jax.training.state import make_optimizer

ACTIVATION, WEIGHT = "activation", "weight"


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
    """True for weights, False for activation parameters (for weight-decay masks)."""
    return jax.tree.map(lambda v: not isinstance(v, ActivationParam), params, is_leaf=_is_var)


def grouped_optimizer(
    name: str,
    learning_rate: float,
    *,
    activation_lr: float | None = None,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """An optimizer whose activation parameters may have their own learning rate.

    Args:
      name: ``"adam"``, ``"rmsprop"`` or ``"sgd"`` (see ``train_state.make_optimizer``).
      learning_rate: for the weights.
      activation_lr: for activation parameters; ``None`` uses ``learning_rate``.
      weight_decay: decoupled weight decay (AdamW style: ``-lr * wd * w``) on weights only.

    Returns:
      an optax transformation over an ``nnx.State`` of parameters. Both groups keep their
      learning rate in ``inject_hyperparams`` state, so sweeps can vary them.
    """
    act_lr = learning_rate if activation_lr is None else activation_lr

    def weights_tx():
        tx = make_optimizer(name, learning_rate)
        if weight_decay:
            tx = (
                optax.chain(
                    optax.add_decayed_weights(weight_decay),
                    tx,
                )
                if name == "sgd"
                else optax.chain(tx, _decoupled_decay(weight_decay, learning_rate))
            )
        return tx

    return optax.multi_transform(
        {WEIGHT: weights_tx(), ACTIVATION: make_optimizer(name, act_lr)}, param_labels
    )


def _decoupled_decay(weight_decay: float, learning_rate: float) -> optax.GradientTransformation:
    # AdamW adds -lr * wd * w after the adaptive scaling, independent of the gradient's scale.
    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params):
        if params is None:
            raise ValueError("weight decay needs the parameters: call tx.update(g, s, params)")
        updates = jax.tree.map(lambda u, p: u - learning_rate * weight_decay * p, updates, params)
        return updates, state

    return optax.GradientTransformation(init, update)
