"""Training state and pure, jit-compiled train and eval steps.

The model lives as pytrees (``nnx.split``): ``params`` (every ``nnx.Param``, activation
parameters included) and ``others`` (batch statistics and any other state), beside the optax
state, a raw PRNG key and a few running sums. Every function here is pure, so the same step
can be jitted, vmapped over a leading member axis (sweeps) and sharded.

A step whose loss or gradient is not finite changes nothing but ``step`` and records its step
number in ``failed_step``; every later step is frozen too. The host reads ``failed_step`` when
it logs, and stops the run (``loop.TrainingDiverged``); a sweep marks the member failed and lets
the others go on.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

Array = jax.Array

_METRIC_FIELDS = ("loss_sum", "correct_sum", "count")


@struct.dataclass
class TrainState:
    """Everything a training run carries from step to step.

    Attributes:
      step: int32 ``[]``, steps taken.
      params: ``nnx.State`` of every ``nnx.Param``.
      others: ``nnx.State`` of every other variable (batch statistics).
      opt_state: optax state of ``params``.
      key: uint32 ``[2]`` raw PRNG key, split once per step for dropout.
      failed_step: int32 ``[]``, the first step whose loss or gradient was not finite, or -1.
      loss_sum: float32 ``[]``, sum of per-example training loss since the last reset.
      correct_sum: float32 ``[]``, correctly classified training examples since the last reset.
      count: float32 ``[]``, training examples since the last reset.
    """

    step: Array
    params: Any
    others: Any
    opt_state: Any
    key: Array
    failed_step: Array
    loss_sum: Array
    correct_sum: Array
    count: Array

    def reset_metrics(self) -> TrainState:
        """The same state with ``loss_sum``, ``correct_sum``, ``count`` zeroed (float32 ``[]``)."""
        # Three distinct buffers: the jitted step donates its state, and XLA refuses to donate
        # one buffer twice.
        return self.replace(**{k: jnp.zeros((), jnp.float32) for k in _METRIC_FIELDS})


def init_state(model: nnx.Module, tx: optax.GradientTransformation, seed: int):
    """Splits a model into a ``(graphdef, TrainState)`` pair.

    Args:
      model: an NNX model called as ``model(x, train=..., key=...)``.
      tx: optax transformation over the parameters.
      seed: seeds the dropout key (weights were seeded when the model was built).
    """
    graphdef, params, others = nnx.split(model, nnx.Param, ...)
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        others=others,
        opt_state=tx.init(params),
        key=jax.random.key_data(jax.random.key(seed + 1_000_003)),
        failed_step=jnp.full((), -1, jnp.int32),
        **{k: jnp.zeros((), jnp.float32) for k in _METRIC_FIELDS},
    )
    return graphdef, state


def _forward(graphdef, params, others, x, train, key):
    # copy=True: fresh Variables at this trace level, so batch norm may update its statistics
    # inside jax.grad (which traces deeper than the jit that passed ``others`` in).
    model = nnx.merge(graphdef, params, others, copy=True)
    logits = model(x, train=train, key=key)
    _, _, new_others = nnx.split(model, nnx.Param, ...)
    return logits.astype(jnp.float32), new_others


def _tree_all_finite(tree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def make_train_step(graphdef, tx: optax.GradientTransformation):
    """Returns ``train_step(state, images, labels, idx) -> state`` (pure; jit it).

    Args of the returned function:
      state: ``TrainState``.
      images: ``[N, H, W, C]`` float, the whole training set (device-resident).
      labels: ``[N]`` int32.
      idx: ``[B]`` int32, the batch's indices into ``images``.
    """

    def loss_fn(params, others, x, y, key):
        logits, new_others = _forward(graphdef, params, others, x, True, key)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return jnp.mean(losses), (logits, new_others)

    def train_step(state: TrainState, images: Array, labels: Array, idx: Array) -> TrainState:
        x, y = images[idx], labels[idx]
        key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
        (loss, (logits, new_others)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.others, x, y, sub
        )
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & _tree_all_finite(grads) & (state.failed_step < 0)

        def keep(new, old):
            return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)

        n = jnp.float32(idx.shape[0])
        correct = jnp.sum(jnp.argmax(logits, -1) == y).astype(jnp.float32)
        return state.replace(
            step=state.step + 1,
            params=keep(new_params, state.params),
            others=keep(new_others, state.others),
            opt_state=keep(new_opt, state.opt_state),
            key=jnp.where(ok, jax.random.key_data(key), state.key),
            failed_step=jnp.where(
                (state.failed_step < 0) & ~ok, state.step, state.failed_step
            ).astype(jnp.int32),
            loss_sum=state.loss_sum + jnp.where(ok, loss * n, 0.0),
            correct_sum=state.correct_sum + jnp.where(ok, correct, 0.0),
            count=state.count + jnp.where(ok, n, 0.0),
        )

    return train_step


def row_step(train_step):
    """``train_step`` taking the epoch's whole index table: ``(state, images, labels, perm, i)``.

    Args of the returned function: as ``train_step``'s, with ``perm``: int32 ``[S, B]``, the
    epoch's batches, and ``i``: the step, an int32 scalar. Row ``i`` is sliced inside the
    program, which saves one dispatch per step over slicing it outside.
    """

    def step(state: TrainState, images: Array, labels: Array, perm: Array, i) -> TrainState:
        return train_step(state, images, labels, perm[i])

    return step


def make_eval_step(graphdef):
    """Returns ``eval_step(state, images, labels, mask) -> (loss_sum, correct_sum, count)``.

    Args of the returned function:
      images: ``[B, H, W, C]``; labels: ``[B]`` int32; mask: ``[B]`` float32, 0 for padding.

    Returns:
      three float32 scalars: summed cross-entropy, correct predictions, real examples.
    """

    def eval_step(state: TrainState, images: Array, labels: Array, mask: Array):
        logits, _ = _forward(graphdef, state.params, state.others, images, False, None)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        return jnp.sum(losses * mask), jnp.sum(correct * mask), jnp.sum(mask)

    return eval_step


def merge_model(graphdef, state: TrainState) -> nnx.Module:
    """The NNX model with the state's parameters (for inspection, plots, export)."""
    return nnx.merge(graphdef, state.params, state.others)
