"""The training engine: one program for a single run and for sweeps (PureJaxRL's shape).

``train(members, model_fn, data, config)`` trains every member: a single run is
``members=[Member(seed=s, lr=lr)]`` and runs exactly the program a sweep member runs. Members
are built the same way (``model_fn(member)``, ``tx_fn(member)``, ``init_state``), see the same
batches (``epoch_permutation(member.seed, epoch, N)``), and are executed by one of the
executors of ``cpaf_jax.training.executors`` (one after another, vmapped, in chunks, split over
a device mesh, or each member's batch split over devices); how they run is a dispatch choice
(``TrainConfig.strategy``), not another loop. Every option exists once, for every member
count: parameter groups and per-member learning rates (``Member.activation_lr``), weight
decay, evaluation cadence, trajectories, NaN/Inf isolation of one member, progress lines,
``metrics.jsonl`` and atomic per-epoch checkpoints of the whole stacked state (``resume``).

Example::

    from cpaf_jax.data import load_dataset
    from cpaf_jax.models import build_model
    from cpaf_jax.training import Member, TrainConfig, train

    ds = load_dataset("fashion_mnist")
    members = [Member(seed=s) for s in range(3)]
    res = train(members, lambda m: build_model("fashion_mnist", "cpaf_relu", seed=m.seed),
                ds, TrainConfig(epochs=10, out_dir="runs/demo"))
    print(res.test_accuracy)        # float64 [M]
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from cpaf_jax.training import executors as ex_mod
from cpaf_jax.training import meshes as shd
from cpaf_jax.training.checkpoints import ResumeMismatch, RunCheckpoints
from cpaf_jax.training.epochs import EpochRunner
from cpaf_jax.training.members import (
    Member,
    build_member_model,
    init_states,
    member_epoch_indices,
    member_tx,
)
from cpaf_jax.training.records import TrainingDiverged
from cpaf_jax.training.results import FitResult, RunView, TrainResult
from cpaf_jax.training.state import init_state
from cpaf_jax.training.test_set import pad_eval


@dataclasses.dataclass
class TrainConfig:
    """Settings of one engine call (shared by every member).

    Attributes:
      epochs: passes over the training set (>= 1).
      batch_size: training batch size (the last partial batch of an epoch is dropped).
      seed: the member seed ``fit`` uses (``train`` takes seeds from its members).
      optimizer: ``"adam"``, ``"rmsprop"`` or ``"sgd"`` (the default ``tx_fn``).
      weight_decay: decoupled decay on kernels (the default ``tx_fn``), >= 0.
      eval_every: also evaluate the test set every this many steps; ``None``: at the end of
        each epoch only.
      eval_batch_size: test batch size.
      trajectory_every: record per-layer, per-term mean and spread of every activation
        parameter every this many steps (``"trajectory"`` records); ``None``: never.
      log_every: steps between host reads of the running metrics (progress, ``"train"``
        records, the NaN/Inf check).
      out_dir: where ``metrics.jsonl`` and ``checkpoints/`` go; ``None`` writes nothing.
      checkpoint: save the stacked state at the end of each epoch (needs ``out_dir``).
      resume: continue from the last good checkpoint in ``out_dir`` when there is one.
      progress: a progress bar and one lasting line per epoch (stderr).
      strategy: ``"auto"``, ``"measure"``, ``"vmap"``, ``"chunked"``, ``"loop"`` or
        ``"data_parallel"`` (see ``cpaf_jax.training.executors``).
      chunk_size: members per vmapped call for ``"chunked"``.
      name: label of the run in progress output.
    """

    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    eval_every: int | None = None
    eval_batch_size: int = 1000
    trajectory_every: int | None = None
    log_every: int = 50
    out_dir: str | None = None
    checkpoint: bool = True
    resume: bool = False
    progress: bool = True
    strategy: str = "auto"
    chunk_size: int | None = None
    name: str = "run"

    def __post_init__(self):
        for field in ("epochs", "batch_size", "log_every", "eval_batch_size"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1, got {getattr(self, field)}")
        for field in ("eval_every", "trajectory_every", "chunk_size"):
            v = getattr(self, field)
            if v is not None and v < 1:
                raise ValueError(f"{field} must be None or >= 1, got {v}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.strategy not in ex_mod.STRATEGIES:
            raise ValueError(
                f"unknown strategy {self.strategy!r}; choose one of {ex_mod.STRATEGIES}"
            )


FitConfig = TrainConfig


def _steps_per_epoch(data, cfg: TrainConfig) -> int:
    n = len(data.train_labels)
    if n // cfg.batch_size == 0:
        raise ValueError(f"batch size {cfg.batch_size} is larger than the {n} training images")
    return n // cfg.batch_size


def _check_members(members: Sequence[Member]) -> None:
    if not members:
        raise ValueError("training needs at least one member")
    labels = [m.label for m in members]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"members must differ; these appear more than once: {dup}")


def _resolve(cfg: TrainConfig, program, states, members, n: int, steps: int):
    """``(strategy, chunk size, timings)`` for ``cfg.strategy`` (see ``executors``)."""
    name, d, m, backend = cfg.strategy, program.n_devices, len(members), jax.default_backend()
    if name == "auto":
        memory_of, dev_bytes = None, ex_mod.device_memory_bytes(program.mesh)
        if backend != "cpu" and dev_bytes:

            def memory_of(c):
                return program.vstep_memory_bytes(states[0], c, steps, cfg.batch_size)

        name, c = ex_mod.rule_strategy(backend, m, d, memory_of, dev_bytes)
        if name == "loop" and not shd.fully_addressable(program.mesh):
            # Whole members on single devices cannot span processes: one member per device.
            name, c = ("vmap", m) if m <= d else ("chunked", d)
        return name, c, {}
    if name == "measure":
        idx0 = member_epoch_indices([s.seed for s in members], 0, n, steps, cfg.batch_size)
        key = (backend, cfg.name, m, cfg.batch_size, d, cfg.optimizer)
        return ex_mod.measure_strategy(program, states, idx0, key)
    if name == "vmap":
        return "vmap", m, {}
    if name == "chunked":
        return "chunked", cfg.chunk_size or max(1, min(m, 4)), {}
    return name, 1, {}


def _is_oom(e: Exception) -> bool:
    return "RESOURCE_EXHAUSTED" in str(e) or "Out of memory" in str(e)


def _smaller(name: str, chunk: int, d: int) -> tuple[str, int]:
    c = chunk // 2 // d * d
    return ("chunked", c) if c >= d and name != "loop" else ("loop", 1)


def train(
    members: Sequence[Member],
    model_fn: Callable[[Member], nnx.Module],
    data,
    cfg: TrainConfig,
    *,
    tx_fn: Callable[[Member], Any] | None = None,
    mesh: Mesh | None = None,
    describe: dict | None = None,
    on_epoch_end: Callable[[int, EpochRunner], None] | None = None,
    on_records: Callable[[list[dict]], None] | None = None,
) -> TrainResult:
    """Trains every member on ``data`` and evaluates each on the whole test set.

    Args:
      members: the runs (distinct labels); they may differ only in values, not shapes.
      model_fn: ``member -> nnx.Module`` called as ``model(x, train, key) -> logits``.
      data: a ``cpaf_jax.data.Dataset`` (normalised float32 NHWC images, int32 labels).
      cfg: settings shared by every member.
      tx_fn: ``member -> optax transformation``; default ``members.member_tx(cfg.optimizer,
        cfg.weight_decay)`` (learning rates from the member, injected).
      mesh: a 1-D mesh: members split over it (``meshes.member_mesh``), or with
        ``strategy="data_parallel"`` each batch split over it (``meshes.data_mesh``).
      describe: JSON-able description of the model saved in each checkpoint; a resume is
        refused when it differs from the checkpoint's.
      on_epoch_end: called as ``on_epoch_end(epoch, runner)`` (the ``EpochRunner``) after each
        epoch's checkpoint (tests use it to interrupt a run).
      on_records: called with each batch of new history records as they are made (live
        experiment tracking).

    Raises:
      ResumeMismatch: ``resume`` with a checkpoint of other members or settings.
    """
    t_wall = time.perf_counter()
    members = list(members)
    _check_members(members)
    steps = _steps_per_epoch(data, cfg)
    tx_fn = tx_fn or member_tx(cfg.optimizer, cfg.weight_decay)
    graphdef, states = init_states(members, model_fn, tx_fn)
    tb = pad_eval(np.asarray(data.test_images), np.asarray(data.test_labels), cfg.eval_batch_size)
    program = ex_mod.SweepProgram(
        graphdef, tx_fn(members[0]), data.train_images, data.train_labels, tb, mesh
    )
    if cfg.strategy == "data_parallel" and (mesh is None or cfg.batch_size % shd.mesh_size(mesh)):
        raise ValueError("strategy 'data_parallel' needs a mesh whose size divides batch_size")
    ckpt = RunCheckpoints(cfg, members, describe)
    try:
        states, start, restored = ckpt.resume(states)
        n = len(data.train_labels)
        name, c, timings = _resolve(cfg, program, states, members, n, steps)
        while True:
            ex = ex_mod.make_executor(program, len(members), name, c)
            runner = EpochRunner(ex, cfg, members, steps, n, ckpt, on_records)
            try:
                runner.load(states, start, restored)
                runner.run(start, on_epoch_end)
                break
            except Exception as e:  # noqa: BLE001 - only out-of-memory is retried
                if not _is_oom(e) or name in ("loop", "data_parallel"):
                    raise
                name, c = _smaller(name, ex.chunk_size, program.n_devices)
                warnings.warn(
                    f"ran out of memory; retrying with strategy={name}, chunk={c}", stacklevel=2
                )
    finally:
        ckpt.close()
    return runner.result(graphdef, timings, time.perf_counter() - t_wall)


def evaluate(model: nnx.Module, images, labels, batch_size: int = 1000) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of ``model`` on ``images [N, H, W, C]``, ``labels [N]``.

    The same evaluation every engine run makes (one executor's ``evaluate``).
    """
    graphdef, state = init_state(model, optax.identity(), 0)
    x = np.asarray(images)
    program = ex_mod.SweepProgram(
        graphdef,
        optax.identity(),
        x[:0],
        np.zeros((0,), np.int32),
        pad_eval(x, np.asarray(labels), batch_size),
        None,
    )
    ex = ex_mod.make_executor(program, 1, "loop", 1)
    ex.load([state])
    loss, correct, count = ex.evaluate()[0]
    return float(loss / count), float(correct / count)


def fit(
    model: nnx.Module,
    data,
    tx,
    cfg: TrainConfig,
    *,
    name: str = "run",
    describe: dict | None = None,
    on_epoch_end: Callable[[int, EpochRunner], None] | None = None,
) -> RunView:
    """Trains one model: ``train`` with one member (seed ``cfg.seed``) and optimizer ``tx``.

    Raises:
      TrainingDiverged: when the loss or a gradient became NaN or Inf (the last good
        checkpoint is named).
    """
    cfg = dataclasses.replace(cfg, name=name)
    member = Member(seed=cfg.seed, label=name)
    res = train(
        [member],
        lambda m: model,
        data,
        cfg,
        tx_fn=lambda m: tx,
        describe=describe,
        on_epoch_end=on_epoch_end,
    )
    view = res.run(0)
    if view.failed_step is not None:
        epoch = view.failed_step // _steps_per_epoch(data, cfg)
        raise TrainingDiverged(view.failed_step, epoch, res.checkpoint, name)
    return view


def run_sweep(
    kind: str,
    activation: str,
    members: Sequence[Member],
    data,
    *,
    mesh: Mesh | None = None,
    model_kwargs: dict | None = None,
    **config,
) -> TrainResult:
    """``train`` for one of the paper's networks: ``build_member_model(kind, activation, m)``.

    Args:
      kind, activation: as for ``cpaf_jax.models.build_model``.
      members: the runs; they may differ only in values (seed, learning rates, a/b inits).
      data: a ``cpaf_jax.data.Dataset``.
      mesh: as for ``train``.
      model_kwargs: extra ``build_model`` arguments (``sharing``, ``activation_kwargs``...).
      **config: ``TrainConfig`` fields (``epochs``, ``batch_size``, ``optimizer``,
        ``strategy``...).
    """
    cfg = TrainConfig(**{"name": activation, **config})
    return train(
        members,
        lambda m: build_member_model(kind, activation, m, model_kwargs),
        data,
        cfg,
        mesh=mesh,
    )


SweepMember = Member
SweepResult = TrainResult

__all__ = [
    "evaluate",
    "SweepMember",
    "SweepResult",
    "run_sweep",
    "FitConfig",
    "FitResult",
    "Member",
    "ResumeMismatch",
    "RunView",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "fit",
    "train",
]
