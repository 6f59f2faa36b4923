"""The training loop: a Python loop over a jitted step, with evaluation, logs and checkpoints.

Why a Python loop and not ``lax.scan`` over steps: on XLA:CPU, scanning whole training steps of
these conv nets ran slower than dispatching a jitted step per batch (section 6 of
``BENCHMARKS.md`` measures both). Dispatch is asynchronous, so the host only waits when it
reads metrics, every ``log_every`` steps.

The training set lives on the device once; each step receives only its batch's indices.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from cpaf_jax import compile_options
from cpaf_jax.activations.modules import ActivationParam
from cpaf_jax.data.batching import epoch_permutation
from cpaf_jax.training import meshes as shd
from cpaf_jax.training.checkpoints import Checkpointer
from cpaf_jax.training.state import (
    TrainState,
    init_state,
    make_eval_step,
    make_train_step,
    row_step,
)

Array = jax.Array


def activation_summary(params) -> dict[str, dict[str, Array]]:
    """Per activation parameter: mean and standard deviation of each term over its elements.

    Args:
      params: ``nnx.State`` of the model's parameters.

    Returns:
      ``{"act1/a": {"mean": [k], "std": [k]}, ...}`` float32 arrays, one entry per
      ``ActivationParam`` (the last axis is the term axis; PReLU's alpha gives one value).
    """
    out = {}
    flat = jax.tree_util.tree_flatten_with_path(
        params, is_leaf=lambda x: isinstance(x, ActivationParam)
    )[0]
    for path, var in flat:
        if not isinstance(var, ActivationParam):
            continue
        v = var[...]
        v = v.reshape(-1, v.shape[-1]) if v.ndim else v.reshape(1, 1)
        key = "/".join(str(getattr(p, "key", p)) for p in path)
        out[key] = {"mean": jnp.mean(v, axis=0), "std": jnp.std(v, axis=0)}
    return out


class TrainingDiverged(RuntimeError):
    """The training loss or gradient became NaN or Inf.

    Attributes:
      step: the first step whose loss or gradient was not finite.
      checkpoint: path of the last good checkpoint, or ``None``.
    """

    def __init__(self, step: int, epoch: int, checkpoint: str | None):
        self.step, self.epoch, self.checkpoint = step, epoch, checkpoint
        where = checkpoint if checkpoint else "none (no epoch had completed)"
        super().__init__(
            f"training loss became NaN or Inf at step {step} (epoch {epoch + 1}); "
            f"last good checkpoint: {where}. Lower the learning rate or check the data; "
            "rerun with --resume to continue from the checkpoint."
        )


@dataclasses.dataclass
class FitConfig:
    """Settings of one training run.

    Attributes:
      epochs: passes over the training set.
      batch_size: training batch size (the last partial batch of an epoch is dropped).
      seed: shuffling and dropout seed (the model's weights are seeded when it is built).
      eval_every: evaluate the test set every this many steps (loss curves); ``None``: at the
        end of each epoch only.
      trajectory_every: record the per-layer, per-term mean and spread of every activation
        parameter (CPAF's a and b, PReLU's alpha...) every this many steps, as
        ``"trajectory"`` records in ``metrics.jsonl`` (computed by one jitted reduction).
      log_every: steps between progress-bar and ``metrics.jsonl`` updates.
      eval_batch_size: test batch size.
      out_dir: where ``metrics.jsonl`` and ``checkpoints/`` go; ``None`` writes nothing.
      checkpoint: save an Orbax checkpoint at the end of each epoch (needs ``out_dir``).
      resume: continue from the last checkpoint in ``out_dir`` if there is one.
      progress: show a progress bar.
      data_parallel: split each batch over the local devices (state and data replicated,
        gradients all-reduced) when ``True`` and there are several; needs ``batch_size``
        divisible by the device count, else one device is used. Results equal the
        single-device run's up to the order of float sums. It is not the default on CPU: with
        ``cpaf_jax.compile_options`` one device already uses every core, and splitting the
        Fashion-MNIST step over CPU devices did not make it faster (``BENCHMARKS.md``, section
        5, the ``batch split`` rows); XLA:CPU's all-reduce between CPU devices also once
        stalled for good (its rendezvous timeout aborted the process; commit 7a5ed51).
    """

    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    eval_every: int | None = None
    trajectory_every: int | None = None
    log_every: int = 50
    eval_batch_size: int = 1000
    out_dir: str | None = None
    checkpoint: bool = True
    resume: bool = False
    progress: bool = True
    data_parallel: bool = False


def data_parallel_mesh(cfg: FitConfig):
    """The 1-D ``"data"`` mesh ``fit`` splits batches over, or ``None`` for one device."""
    devices = jax.local_devices()
    if not cfg.data_parallel or len(devices) < 2 or cfg.batch_size % len(devices):
        return None
    return shd.data_mesh(devices)


@dataclasses.dataclass
class FitResult:
    """What ``fit`` returns.

    Attributes:
      graphdef, state: the trained model as ``nnx.merge(graphdef, state.params, state.others)``.
      history: every logged record (also in ``metrics.jsonl``).
      test_loss, test_accuracy: on the whole test set after the last epoch.
      train_seconds: time spent in training steps (compile included), without evaluation.
      wall_seconds: the whole run.
      images_per_second: training images per second over the steady epochs (the first epoch
        excluded when there are several, as it includes compilation).
      epoch_seconds: training time of each epoch run in this call.
    """

    graphdef: Any
    state: TrainState
    history: list[dict]
    test_loss: float
    test_accuracy: float
    train_seconds: float
    wall_seconds: float
    images_per_second: float
    epoch_seconds: list[float]
    steps: int

    def model(self) -> nnx.Module:
        """The trained NNX model (final parameters and batch statistics)."""
        return nnx.merge(self.graphdef, self.state.params, self.state.others)


def pad_eval(images: np.ndarray, labels: np.ndarray, batch: int):
    """A test set as equal batches, the last one padded, with a mask for the padding.

    Args:
      images: ``[N, H, W, C]``; labels: ``[N]`` int; batch: batch size (at most ``N``).

    Returns:
      device arrays ``x [T, Bt, H, W, C]``, ``y [T, Bt]`` and float32 ``mask [T, Bt]`` (0 on
      padding), ``Bt = min(batch, N)``, ``T = ceil(N / Bt)``.
    """
    n = len(labels)
    batch = min(batch, n)
    total = -(-n // batch) * batch
    pad = total - n
    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    if pad:
        images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
        labels = np.concatenate([labels, np.zeros(pad, labels.dtype)])
    shape = (total // batch, batch)
    return (
        jnp.asarray(images.reshape(shape + images.shape[1:])),
        jnp.asarray(labels.reshape(shape)),
        jnp.asarray(mask.reshape(shape)),
    )


class Evaluator:
    """Evaluates a state on a fixed, device-resident test set."""

    def __init__(self, graphdef, images: np.ndarray, labels: np.ndarray, batch_size: int):
        self.x, self.y, self.m = pad_eval(images, labels.astype(np.int32), batch_size)
        self._step = compile_options.jit(make_eval_step(graphdef))

    def __call__(self, state: TrainState) -> tuple[float, float]:
        """Returns ``(mean loss, accuracy)`` over the whole test set."""
        sums = [self._step(state, self.x[i], self.y[i], self.m[i]) for i in range(len(self.x))]
        loss, correct, count = (float(sum(float(s[j]) for s in sums)) for j in range(3))
        return loss / count, correct / count


class _MetricsLog:
    def __init__(self, out_dir: str | None, history: list[dict]):
        self.path = os.path.join(out_dir, "metrics.jsonl") if out_dir else None
        self.history = list(history)
        if self.path:
            # A resumed run rewrites the log up to its checkpoint, so no record appears twice.
            with open(self.path, "w") as f:
                for rec in self.history:
                    f.write(json.dumps(rec) + "\n")

    def write(self, rec: dict) -> None:
        self.history.append(rec)
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(rec) + "\n")


def fit(
    model: nnx.Module,
    data,
    tx: optax.GradientTransformation,
    cfg: FitConfig,
    *,
    name: str = "run",
    describe: dict | None = None,
    on_epoch_end: Callable[[int, TrainState], None] | None = None,
) -> FitResult:
    """Trains ``model`` on ``data`` with ``tx``.

    Args:
      model: NNX model, ``model(x, train, key) -> logits``.
      data: a ``cpaf_jax.data.Dataset`` (normalised float32 NHWC images, int32 labels).
      tx: optax transformation (see ``train_state.make_optimizer``).
      cfg: run settings.
      name: label for the progress bar and log records.
      describe: JSON-able description of the model saved in each checkpoint.
      on_epoch_end: called as ``on_epoch_end(epoch, state)`` after each epoch's checkpoint
        (tests use it to interrupt a run).

    Raises:
      TrainingDiverged: when a loss or gradient becomes NaN or Inf.
    """
    t_wall = time.perf_counter()
    n_train = len(data.train_labels)
    steps_per_epoch = n_train // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"batch size {cfg.batch_size} is larger than the {n_train} training images"
        )
    graphdef, state = init_state(model, tx, cfg.seed)
    train_step = compile_options.jit(row_step(make_train_step(graphdef, tx)), donate_argnums=(0,))
    evaluator = Evaluator(graphdef, data.test_images, data.test_labels, cfg.eval_batch_size)
    images = jnp.asarray(data.train_images)
    labels = jnp.asarray(data.train_labels, jnp.int32)

    ckpt = None
    start_epoch, history = 0, []
    if cfg.out_dir:
        os.makedirs(cfg.out_dir, exist_ok=True)
        ckpt_dir = os.path.join(cfg.out_dir, "checkpoints")
        if not cfg.resume and os.path.isdir(ckpt_dir):
            shutil.rmtree(ckpt_dir)
        if cfg.checkpoint:
            ckpt = Checkpointer(ckpt_dir)
            last = ckpt.latest_epoch() if cfg.resume else None
            if last is not None:
                state, meta = ckpt.restore(last, state)
                start_epoch, history = int(meta["epoch"]), list(meta["history"])
    mesh = data_parallel_mesh(cfg)
    if mesh is not None:
        state = shd.replicate(state, mesh)
        # From the host arrays: replicating the device copies would fetch them back first.
        images, labels = shd.replicate(
            (data.train_images, np.asarray(data.train_labels, np.int32)), mesh
        )
        by_batch = NamedSharding(mesh, P(None, shd.mesh_axis(mesh)))
    log = _MetricsLog(cfg.out_dir, history)
    summarize = compile_options.jit(activation_summary)
    last_good = ckpt.path(start_epoch) if (ckpt and start_epoch) else None

    train_seconds = sum(r.get("epoch_seconds", 0.0) for r in history if r.get("kind") == "epoch")
    epoch_seconds: list[float] = []
    log_every = max(1, cfg.log_every)

    def check_finite(epoch: int) -> None:
        bad = int(state.failed_step)
        if bad >= 0:
            log.write({"kind": "diverged", "name": name, "step": bad, "epoch": epoch})
            raise TrainingDiverged(bad, epoch, last_good)

    def test_record(epoch: int, step: int) -> dict:
        loss, acc = evaluator(state)
        rec = {
            "kind": "eval",
            "name": name,
            "epoch": epoch + 1,
            "step": step,
            "test_loss": loss,
            "test_accuracy": acc,
            "train_seconds": train_seconds + (time.perf_counter() - t_epoch - eval_time),
        }
        log.write(rec)
        return rec

    try:
        for epoch in range(start_epoch, cfg.epochs):
            perm = epoch_permutation(cfg.seed, epoch, n_train)[: steps_per_epoch * cfg.batch_size]
            perm = perm.reshape(steps_per_epoch, cfg.batch_size).astype(np.int32)
            perm = jnp.asarray(perm) if mesh is None else shd.put(perm, by_batch)
            t_epoch, eval_time = time.perf_counter(), 0.0
            bar = tqdm(
                total=steps_per_epoch,
                desc=f"{name} epoch {epoch + 1}/{cfg.epochs}",
                disable=not cfg.progress,
                leave=False,
            )
            t_log, seen_log = time.perf_counter(), 0
            for i in range(steps_per_epoch):
                state = train_step(state, images, labels, perm, i)
                seen_log += cfg.batch_size
                step = epoch * steps_per_epoch + i + 1
                last = i == steps_per_epoch - 1
                if step % log_every == 0 or last:
                    loss_sum, correct, count = jax.device_get(
                        (state.loss_sum, state.correct_sum, state.count)
                    )
                    check_finite(epoch)
                    now = time.perf_counter()
                    ips = seen_log / max(now - t_log, 1e-9)
                    rec = {
                        "kind": "train",
                        "name": name,
                        "epoch": epoch + 1,
                        "step": step,
                        "train_loss": float(loss_sum / max(count, 1)),
                        "train_accuracy": float(correct / max(count, 1)),
                        "images_per_second": ips,
                    }
                    log.write(rec)
                    state = state.reset_metrics()
                    bar.set_postfix(
                        loss=f"{rec['train_loss']:.4f}",
                        acc=f"{rec['train_accuracy']:.3f}",
                        img_s=f"{ips:,.0f}",
                    )
                    bar.update(i + 1 - bar.n)
                    t_log, seen_log = time.perf_counter(), 0
                if cfg.trajectory_every and (step % cfg.trajectory_every == 0 or step == 1):
                    log.write(
                        {
                            "kind": "trajectory",
                            "name": name,
                            "step": step,
                            "layers": jax.tree.map(
                                lambda x: np.asarray(x).tolist(), summarize(state.params)
                            ),
                        }
                    )
                if cfg.eval_every and step % cfg.eval_every == 0 and not last:
                    t0 = time.perf_counter()
                    test_record(epoch, step)
                    eval_time += time.perf_counter() - t0
                    t_log += time.perf_counter() - t0
            bar.close()
            jax.block_until_ready(state)
            secs = time.perf_counter() - t_epoch - eval_time
            epoch_seconds.append(secs)
            rec = test_record(epoch, (epoch + 1) * steps_per_epoch)
            train_seconds += secs
            log.write(
                {
                    "kind": "epoch",
                    "name": name,
                    "epoch": epoch + 1,
                    "epoch_seconds": secs,
                    "test_loss": rec["test_loss"],
                    "test_accuracy": rec["test_accuracy"],
                }
            )
            if ckpt is not None:
                last_good = ckpt.save(
                    epoch + 1,
                    state,
                    {"epoch": epoch + 1, "history": log.history, "model": describe or {}},
                )
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, state)
    finally:
        if ckpt is not None:
            ckpt.close()

    test_loss, test_acc = evaluator(state)
    steady = epoch_seconds[1:] if len(epoch_seconds) > 1 else epoch_seconds
    ips = (steps_per_epoch * cfg.batch_size * len(steady) / sum(steady)) if steady else 0.0
    return FitResult(
        graphdef=graphdef,
        state=state,
        history=log.history,
        test_loss=test_loss,
        test_accuracy=test_acc,
        train_seconds=train_seconds,
        wall_seconds=time.perf_counter() - t_wall,
        images_per_second=ips,
        epoch_seconds=epoch_seconds,
        steps=int(state.step),
    )
