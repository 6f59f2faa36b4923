"""The training engine: one program for a single run and for sweeps (PureJaxRL's shape).

``train(members, model, data, config)`` trains every member: a single run is
``members=[Member(seed=s, lr=lr)]`` and runs exactly the program a sweep member runs. Members
are built the same way (``model(member)`` for a factory, or a copy of a given module, with the
member's ``inits`` written in; ``tx_fn(member)``, ``init_state``), see the same batches
(``epoch_permutation(member.seed, epoch, N)``), and are executed by one of the executors of
``cpaf_jax.training.executors`` (one after another, vmapped, in chunks, split over a device
mesh, or each member's batch split over devices); how they run is a dispatch choice
(``TrainConfig.strategy``), not another loop. Every option exists once, for every member
count: parameter groups and per-member learning rates (``Member.activation_lr``), weight
decay, evaluation cadence, trajectories, NaN/Inf isolation of one member, progress lines,
``metrics.jsonl`` and atomic per-epoch checkpoints of the whole stacked state (``resume``).

Models are any Flax NNX module in Flax's idiom (``model(x)``; ``nnx.Dropout`` and
``nnx.BatchNorm`` switched by ``model.train()`` / ``model.eval()``; dropout keys from the
model's own ``nnx.Rngs``, folded with each member's seed).

Example::

    from flax import nnx
    import cpaf_jax
    from cpaf_jax.training import Member, TrainConfig, train

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(1, 16, (3, 3), rngs=rngs)
            self.act = cpaf_jax.activation("cpaf_relu", features_shape=(28, 28, 16))
            self.out = nnx.Linear(28 * 28 * 16, 10, rngs=rngs)

        def __call__(self, x):
            return self.out(self.act(self.conv(x)).reshape(x.shape[0], -1))

    members = [Member(seed=s, inits={"a": a}) for s in range(3) for a in (0.5, 1.0)]
    res = train(members, lambda m: Net(nnx.Rngs(m.seed)), (x_train, y_train),
                TrainConfig(epochs=1), eval_data=(x_test, y_test))
    print(res.test_loss)            # float64 [M]
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
from cpaf_jax.training.arrays import Arrays, as_arrays
from cpaf_jax.training.checkpoints import RunCheckpoints
from cpaf_jax.training.epochs import EpochRunner
from cpaf_jax.training.members import Member, init_states, member_epoch_indices, member_tx
from cpaf_jax.training.records import TrainingDiverged
from cpaf_jax.training.results import RunView, TrainResult
from cpaf_jax.training.state import LossFn, init_state
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


def _steps_per_epoch(data: Arrays, cfg: TrainConfig) -> int:
    n = len(data.train_y)
    if n // cfg.batch_size == 0:
        raise ValueError(f"batch size {cfg.batch_size} is larger than the {n} training examples")
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
    model: nnx.Module | Callable[[Member], nnx.Module],
    data,
    cfg: TrainConfig | None = None,
    *,
    eval_data=None,
    loss_fn: LossFn | None = None,
    metric_fn: LossFn | None = None,
    tx_fn: Callable[[Member], Any] | None = None,
    mesh: Mesh | None = None,
    describe: dict | None = None,
    on_epoch_end: Callable[[int, EpochRunner], None] | None = None,
    on_records: Callable[[list[dict]], None] | None = None,
) -> TrainResult:
    """Trains every member on ``data`` and evaluates each on the whole evaluation set.

    Args:
      members: the runs (distinct labels); they may differ only in values, not shapes.
      model: an ``nnx.Module`` called as ``model(x)`` (every member starts from a copy), or a
        factory ``member -> nnx.Module`` (e.g. ``lambda m: Net(rngs=nnx.Rngs(m.seed))``).
        Each member's ``inits`` are written into its model's activation layers.
      data: a ``cpaf_jax.data.Dataset``, or a pair ``(x_train [N, ...], y_train [N, ...])``
        of NumPy or JAX arrays (images or not).
      cfg: settings shared by every member (default ``TrainConfig()``).
      eval_data: ``(x_test, y_test)``: required with array ``data``; replaces a
        ``Dataset``'s test split when given.
      loss_fn: ``(outputs [B, ...], targets [B, ...]) -> float32 [B]`` per-example loss;
        default softmax cross-entropy with integer labels.
      metric_fn: ``(outputs, targets) -> float32 [B]`` per-example score, reported as
        ``accuracy``; default top-1 accuracy.
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
      ValueError: a member's ``inits`` name a parameter no activation layer has (the valid
        names are listed), or members build different networks.
    """
    t_wall = time.perf_counter()
    cfg = cfg or TrainConfig()
    members = list(members)
    _check_members(members)
    arrays = as_arrays(data, eval_data)
    steps = _steps_per_epoch(arrays, cfg)
    tx_fn = tx_fn or member_tx(cfg.optimizer, cfg.weight_decay)
    graphdef, states = init_states(members, model, tx_fn)
    tb = pad_eval(arrays.test_x, arrays.test_y, cfg.eval_batch_size)
    program = ex_mod.SweepProgram(
        graphdef,
        tx_fn(members[0]),
        arrays.train_x,
        arrays.train_y,
        tb,
        mesh,
        loss_fn=loss_fn,
        metric_fn=metric_fn,
    )
    if cfg.strategy == "data_parallel" and (mesh is None or cfg.batch_size % shd.mesh_size(mesh)):
        raise ValueError("strategy 'data_parallel' needs a mesh whose size divides batch_size")
    ckpt = RunCheckpoints(cfg, members, describe)
    try:
        runner, timings = _run(
            cfg, program, states, members, arrays, steps, ckpt, on_records, on_epoch_end
        )
    finally:
        ckpt.close()
    return runner.result(graphdef, timings, time.perf_counter() - t_wall)


def _run(cfg, program, states, members, arrays, steps, ckpt, on_records, on_epoch_end):
    """Resumes, picks a strategy and trains; retries smaller after running out of memory."""
    states, start, restored = ckpt.resume(states)
    n = len(arrays.train_y)
    name, c, timings = _resolve(cfg, program, states, members, n, steps)
    while True:
        ex = ex_mod.make_executor(program, len(members), name, c)
        runner = EpochRunner(ex, cfg, members, steps, n, ckpt, on_records)
        try:
            runner.load(states, start, restored)
            runner.run(start, on_epoch_end)
            return runner, timings
        except Exception as e:  # noqa: BLE001 - only out-of-memory is retried
            if not _is_oom(e) or name in ("loop", "data_parallel"):
                raise
            name, c = _smaller(name, ex.chunk_size, program.n_devices)
            warnings.warn(
                f"ran out of memory; retrying with strategy={name}, chunk={c}", stacklevel=3
            )


def evaluate(
    model: nnx.Module,
    images,
    labels,
    batch_size: int = 1000,
    *,
    loss_fn: LossFn | None = None,
    metric_fn: LossFn | None = None,
) -> tuple[float, float]:
    """``(mean loss, mean metric)`` of ``model`` (in eval mode) on ``images [N, ...]``,
    ``labels [N, ...]``; by default cross-entropy and accuracy.

    The same evaluation every engine run makes (one executor's ``evaluate``).
    """
    graphdef, state = init_state(model, optax.identity(), 0)
    x = np.asarray(images)
    y = np.asarray(labels)
    program = ex_mod.SweepProgram(
        graphdef,
        optax.identity(),
        x[:0],
        y[:0],
        pad_eval(x, y, batch_size),
        None,
        loss_fn=loss_fn,
        metric_fn=metric_fn,
    )
    ex = ex_mod.make_executor(program, 1, "loop", 1)
    ex.load([state])
    loss, correct, count = ex.evaluate()[0]
    return float(loss / count), float(correct / count)


def fit(
    model: nnx.Module,
    data,
    tx=None,
    cfg: TrainConfig | None = None,
    *,
    name: str = "run",
    describe: dict | None = None,
    on_epoch_end: Callable[[int, EpochRunner], None] | None = None,
    **train_kwargs,
) -> RunView:
    """Trains one model: ``train`` with one member (seed ``cfg.seed``) and optimizer ``tx``.

    ``tx=None`` takes ``cfg.optimizer`` at the member's default rate; ``train_kwargs``
    (``eval_data``, ``loss_fn``, ``metric_fn``, ``mesh``) go to ``train``.

    Raises:
      TrainingDiverged: when the loss or a gradient became NaN or Inf (the last good
        checkpoint is named).
    """
    cfg = dataclasses.replace(cfg or TrainConfig(), name=name)
    member = Member(seed=cfg.seed, label=name)
    res = train(
        [member],
        model,
        data,
        cfg,
        tx_fn=None if tx is None else (lambda m: tx),
        describe=describe,
        on_epoch_end=on_epoch_end,
        **train_kwargs,
    )
    view = res.run(0)
    if view.failed_step is not None:
        epoch = view.failed_step // _steps_per_epoch(
            as_arrays(data, train_kwargs.get("eval_data")), cfg
        )
        raise TrainingDiverged(view.failed_step, epoch, res.checkpoint, name)
    return view


# Only what this module defines; the types it returns and raises are public in
# cpaf_jax.training.
__all__ = ["TrainConfig", "evaluate", "fit", "train"]
