"""Parameter groups: activation parameters with their own learning rate, and weight decay on
weights only.

Activation parameters are the ``ActivationParam`` variables (CPAF's a and b, PReLU's alpha,
APL/PAU/Swish coefficients); everything else in ``nnx.Param`` is a weight. Decaying a and b
towards zero would pull every CPAF term towards a flat line, so decay applies to weights alone,
and of those not to biases (as in AdamW practice: a bias sets an offset, not a scale).
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


def _is_bias(path) -> bool:
    return any(getattr(k, "key", None) == "bias" for k in path)


def weight_mask(params) -> object:
    """True where weight decay applies: weights but not biases; False for activation params."""
    return jax.tree_util.tree_map_with_path(
        lambda path, v: not isinstance(v, ActivationParam) and not _is_bias(path),
        params,
        is_leaf=_is_var,
    )


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
      weight_decay: decoupled weight decay (AdamW style: ``-lr * wd * w``) on weights other
        than biases; for SGD, the same ``wd * w`` added to the gradient.

    Returns:
      an optax transformation over an ``nnx.State`` of parameters. Both groups keep their
      learning rate in ``inject_hyperparams`` state, so sweeps can vary them.
    """
    act_lr = learning_rate if activation_lr is None else activation_lr

    def weights_tx():
        tx = make_optimizer(name, learning_rate)
        if not weight_decay:
            return tx
        if name == "sgd":  # for plain SGD, L2 in the gradient is the decoupled decay
            return optax.chain(_add_scaled_weights(weight_decay), tx)
        return optax.chain(tx, _add_scaled_weights(-learning_rate * weight_decay))

    return optax.multi_transform(
        {WEIGHT: weights_tx(), ACTIVATION: make_optimizer(name, act_lr)}, param_labels
    )


def _add_scaled_weights(scale: float) -> optax.GradientTransformation:
    """``u + scale * w`` for every weight but biases (AdamW: ``scale = -lr * wd``, after the
    adaptive scaling, independent of the gradient's scale)."""

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params):
        if params is None:
            raise ValueError("weight decay needs the parameters: call tx.update(g, s, params)")
        updates = jax.tree_util.tree_map_with_path(
            lambda path, u, p: u if _is_bias(path) else u + scale * p, updates, params
        )
        return updates, state

    return optax.GradientTransformation(init, update)
