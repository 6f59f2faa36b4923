"""Training state and pure, jit-compiled train and eval steps.

The model lives as pytrees (``nnx.split``): ``params`` (every ``nnx.Param``, activation
parameters included), ``rngs`` (the keys of the model's own ``nnx.Rngs`` streams, as raw
uint32 key data) and ``others`` (batch statistics, the streams' counters and any other
state), beside the optax state and a few running sums. Every function here is pure, so the
same step can be jitted, vmapped over a leading member axis (sweeps) and sharded.

Models are written in Flax's NNX idiom: ``model(x)`` only. A train step runs the model after
``model.train()`` (``nnx.Dropout`` drops, ``nnx.BatchNorm`` uses and updates batch
statistics), an evaluation after ``model.eval()``. Dropout keys come from the model's own
streams: each stream's key is folded with the run's seed once (``init_state``), and its
counter, carried from step to step in ``others``, makes every step's keys new.

A step whose loss or gradient is not finite changes nothing but ``step`` and records its step
number in ``failed_step``; every later step is frozen too. The host reads ``failed_step`` when
it logs, and stops the run (``TrainingDiverged``); a sweep marks the member failed and lets
the others go on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

Array = jax.Array
LossFn = Callable[[Array, Array], Array]

_METRIC_FIELDS = ("loss_sum", "correct_sum", "count")


def softmax_cross_entropy(logits: Array, labels: Array) -> Array:
    """The default loss: float32 ``[B]`` cross-entropy of ``logits [B, C]``, int ``labels [B]``."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def accuracy(logits: Array, labels: Array) -> Array:
    """The default metric: float32 ``[B]``, 1 where ``argmax(logits) == labels``, else 0."""
    return (jnp.argmax(logits, -1) == labels).astype(jnp.float32)


@struct.dataclass
class TrainState:
    """Everything a training run carries from step to step.

    Attributes:
      step: int32 ``[]``, steps taken.
      params: ``nnx.State`` of every ``nnx.Param``.
      rngs: ``nnx.State`` of the model's ``nnx.RngKey`` variables as uint32 key data
        (``jax.random.key_data``); empty for a model without random streams.
      others: ``nnx.State`` of every other variable (batch statistics, ``nnx.RngCount``).
      opt_state: optax state of ``params``.
      failed_step: int32 ``[]``, the first step whose loss or gradient was not finite, or -1.
      loss_sum: float32 ``[]``, sum of per-example training loss since the last reset.
      correct_sum: float32 ``[]``, sum of the per-example metric (default: correct
        predictions) since the last reset.
      count: float32 ``[]``, training examples since the last reset.
    """

    step: Array
    params: Any
    rngs: Any
    others: Any
    opt_state: Any
    failed_step: Array
    loss_sum: Array
    correct_sum: Array
    count: Array

    def reset_metrics(self) -> TrainState:
        """The same state with ``loss_sum``, ``correct_sum``, ``count`` zeroed (float32 ``[]``)."""
        # Three distinct buffers: the jitted step donates its state, and XLA refuses to donate
        # one buffer twice.
        return self.replace(**{k: jnp.zeros((), jnp.float32) for k in _METRIC_FIELDS})


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _key_data(x):
    if not _is_key(x):
        return x
    if jax.random.key_impl(x) != jax.random.key_impl(jax.random.key(0)):
        raise ValueError(
            f"the model's nnx.Rngs use the PRNG implementation {jax.random.key_impl(x)}; the "
            "engine carries keys of the default implementation only"
        )
    return jax.random.key_data(x)


def split_model(model: nnx.Module):
    """``(graphdef, params, rngs, others)`` of ``model``, with ``rngs`` as raw key data."""
    graphdef, params, keys, others = nnx.split(model, nnx.Param, nnx.RngKey, ...)
    return graphdef, params, jax.tree.map(_key_data, keys), others


def merge_parts(graphdef, params, rngs, others, *, copy: bool = False) -> nnx.Module:
    """The model back from ``split_model``'s parts (``rngs`` rewrapped as typed keys)."""
    keys = jax.tree.map(jax.random.wrap_key_data, rngs)
    return nnx.merge(graphdef, params, keys, others, copy=copy)


def init_state(model: nnx.Module, tx: optax.GradientTransformation, seed: int):
    """Splits a model into a ``(graphdef, TrainState)`` pair (``model`` is not changed).

    Args:
      model: an NNX model called as ``model(x)``; ``graphdef`` is its evaluation mode
        (``model.eval()``), so a merged trained model predicts deterministically.
      tx: optax transformation over the parameters.
      seed: folded into the key of every random stream of the model (``nnx.Rngs``), so that
        runs of one model with different seeds draw different dropout masks.
    """
    graphdef, params, rngs, others = split_model(model)
    copy = merge_parts(graphdef, params, rngs, others, copy=True)
    copy.eval()
    graphdef = nnx.graphdef(copy)
    rngs = jax.tree.map(
        lambda k: jax.random.key_data(jax.random.fold_in(jax.random.wrap_key_data(k), seed)), rngs
    )
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        rngs=rngs,
        others=others,
        opt_state=tx.init(params),
        failed_step=jnp.full((), -1, jnp.int32),
        **{k: jnp.zeros((), jnp.float32) for k in _METRIC_FIELDS},
    )
    return graphdef, state


def _forward(graphdef, params, rngs, others, x, train: bool):
    # copy=True: fresh Variables at this trace level, so batch norm may update its statistics
    # and dropout its stream counters inside jax.grad (which traces deeper than the jit that
    # passed them in).
    model = merge_parts(graphdef, params, rngs, others, copy=True)
    if train:
        model.train()
    else:
        model.eval()
    logits = model(x)
    _, _, new_rngs, new_others = split_model(model)
    return logits.astype(jnp.float32), new_rngs, new_others


def _tree_all_finite(tree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def make_train_step(
    graphdef,
    tx: optax.GradientTransformation,
    loss_fn: LossFn | None = None,
    metric_fn: LossFn | None = None,
):
    """Returns ``train_step(state, images, labels, idx) -> state`` (pure; jit it).

    Args:
      graphdef, tx: from ``init_state``.
      loss_fn: ``(outputs [B, ...], labels [B, ...]) -> float32 [B]`` per-example losses,
        minimised as their mean; default ``softmax_cross_entropy``.
      metric_fn: ``(outputs, labels) -> float32 [B]`` per-example score, summed into
        ``correct_sum``; default ``accuracy``.

    Args of the returned function:
      state: ``TrainState``.
      images: ``[N, ...]`` float, the whole training set (device-resident).
      labels: ``[N, ...]`` (int32 class labels for the defaults).
      idx: ``[B]`` int32, the batch's indices into ``images``.
    """
    loss_fn = loss_fn or softmax_cross_entropy
    metric_fn = metric_fn or accuracy

    def mean_loss(params, rngs, others, x, y):
        logits, new_rngs, new_others = _forward(graphdef, params, rngs, others, x, True)
        return jnp.mean(loss_fn(logits, y)), (logits, new_rngs, new_others)

    def train_step(state: TrainState, images: Array, labels: Array, idx: Array) -> TrainState:
        x, y = images[idx], labels[idx]
        (loss, (logits, new_rngs, new_others)), grads = jax.value_and_grad(mean_loss, has_aux=True)(
            state.params, state.rngs, state.others, x, y
        )
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & _tree_all_finite(grads) & (state.failed_step < 0)

        def keep(new, old):
            return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)

        n = jnp.float32(idx.shape[0])
        correct = jnp.sum(metric_fn(logits, y).astype(jnp.float32))
        return state.replace(
            step=state.step + 1,
            params=keep(new_params, state.params),
            rngs=keep(new_rngs, state.rngs),
            others=keep(new_others, state.others),
            opt_state=keep(new_opt, state.opt_state),
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


def make_eval_step(graphdef, loss_fn: LossFn | None = None, metric_fn: LossFn | None = None):
    """Returns ``eval_step(state, images, labels, mask) -> (loss_sum, correct_sum, count)``.

    The model runs in evaluation mode (``model.eval()``); its state is not changed.

    Args:
      graphdef: from ``init_state``; loss_fn, metric_fn: as for ``make_train_step``.

    Args of the returned function:
      images: ``[B, ...]``; labels: ``[B, ...]``; mask: ``[B]`` float32, 0 for padding.

    Returns:
      three float32 scalars: summed loss, summed metric, real examples.
    """
    loss_fn = loss_fn or softmax_cross_entropy
    metric_fn = metric_fn or accuracy

    def eval_step(state: TrainState, images: Array, labels: Array, mask: Array):
        logits, _, _ = _forward(graphdef, state.params, state.rngs, state.others, images, False)
        losses = loss_fn(logits, labels)
        correct = metric_fn(logits, labels).astype(jnp.float32)
        return jnp.sum(losses * mask), jnp.sum(correct * mask), jnp.sum(mask)

    return eval_step


def merge_model(graphdef, state: TrainState) -> nnx.Module:
    """The NNX model with the state's parameters (for inspection, plots, export)."""
    return merge_parts(graphdef, state.params, state.rngs, state.others)
