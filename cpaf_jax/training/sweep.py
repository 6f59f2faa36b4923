"""Parallel sweeps: many training runs of one network as one program (PureJaxRL style).

Members differ in any mix of seed (weights, shuffling, dropout), learning rate and the CPAF
initial values ``a_init`` / ``b_init`` (constants, length-k sequences, or per layer). Each
member is built exactly as a single run would be (``build_model(kind, activation,
seed=member.seed, activation_kwargs={"a_init": ..., "b_init": ...})`` then
``init_state(model, tx, member.seed)``), the states are stacked on a leading member axis
``[M, ...]`` and trained with the pure step of ``train_state.make_train_step``, vmapped over
members (or looped, see ``cpaf_jax.training.executors``). Member ``m`` sees the batches
``epoch_permutation(member.seed, epoch, N)``, exactly as ``loop.fit`` with
``FitConfig(seed=member.seed)`` would, so member ``m`` of a sweep reproduces that single run.

Isolation: a member whose loss or gradient turns NaN/Inf is frozen by the step's guard at its
last finite state; the sweep records ``failed_step`` and lets the others go on. Nothing is
shared between members (no cross-member reductions), so the others are unaffected.

Several devices: pass ``mesh=cpaf_jax.training.meshes.member_mesh()``; members are split over the
devices (see ``cpaf_jax.training.meshes`` for multi-host use with ``jax.distributed.initialize``).

Example::

    from cpaf_jax.data import load_dataset
    from cpaf_jax.training.sweep import SweepMember, run_sweep

    ds = load_dataset("fashion_mnist")
    members = [SweepMember(seed=s, lr=lr, a_init=(a, a)) for s in range(2)
               for lr in (1e-3, 3e-4) for a in (0.5, 1.0)]
    res = run_sweep("fashion_mnist", "cpaf_relu", members, ds, epochs=10, batch_size=128)
    print(res.test_accuracy)        # float64 [M]
    model = res.model(0)            # the trained nnx model of member 0
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh
from tqdm.auto import tqdm

from cpaf_jax.activations.registry import is_parametric
from cpaf_jax.data.batching import epoch_permutation
from cpaf_jax.models import build_model
from cpaf_jax.training import executors as strat
from cpaf_jax.training.executors import stack_states, unstack_state
from cpaf_jax.training.loop import pad_eval
from cpaf_jax.training.state import TrainState, init_state, make_optimizer

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class SweepMember:
    """One run of a sweep.

    Attributes:
      seed: weight initialisation (``build_model(seed=...)``), shuffling and dropout
        (``init_state(..., seed)``, ``epoch_permutation(seed, ...)``), as in ``loop.fit``.
      lr: learning rate.
      a_init, b_init: CPAF initial values for every activation layer: ``None`` (Table 1), a
        scalar, a length-k sequence or an array broadcasting to ``[*P, k]``; or per layer, a
        mapping from the layer's attribute path (``"act1"``, ``"acts.0"``, ``"fc_acts.1"``) to
        such a value, with an optional ``"*"`` entry for the layers not named.
      label: a name for tables and logs (default built from the fields).
    """

    seed: int = 0
    lr: float = 1e-3
    a_init: Any = None
    b_init: Any = None
    label: str = ""

    def __post_init__(self):
        if not self.label:
            parts = [f"seed={self.seed}", f"lr={self.lr:g}"]
            if self.a_init is not None:
                parts.append(f"a={_short(self.a_init)}")
            if self.b_init is not None:
                parts.append(f"b={_short(self.b_init)}")
            object.__setattr__(self, "label", ",".join(parts))


def _short(v) -> str:
    if isinstance(v, Mapping):
        return "{" + ",".join(f"{k}:{_short(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "(" + ",".join(f"{float(x):g}" for x in v) + ")"
    if np.ndim(v) == 0 and not callable(v):
        return f"{float(v):g}"
    return type(v).__name__


@dataclasses.dataclass
class SweepResult:
    """What ``run_sweep`` returns.

    Attributes:
      members: the members, in order.
      graphdef: the common NNX graph definition.
      state: stacked ``TrainState``, every leaf ``[M, ...]`` (``step`` = steps the sweep ran).
      test_loss, test_accuracy: float64 ``[M]`` on the whole test set after the last epoch;
        NaN for failed members (their frozen last-finite models are still in ``state`` and
        their evaluations before the failure in ``history``).
      failed_step: per member, the first step whose loss/gradient was not finite, or ``None``.
      history: per member, its records (``"eval"``, ``"epoch"``, ``"diverged"``) as dicts.
      strategy, chunk_size: how the members were executed.
      wall_seconds: the whole call; train_seconds: training steps only (compile included).
      member_steps_per_second: member-steps per second of training (compile included).
      timings: candidate -> member-steps/s when ``strategy="measure"`` timed them, else ``{}``.
    """

    members: list[SweepMember]
    graphdef: Any
    state: TrainState
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    failed_step: list[int | None]
    history: list[list[dict]]
    strategy: str
    chunk_size: int
    wall_seconds: float
    train_seconds: float
    member_steps_per_second: float
    timings: dict = dataclasses.field(default_factory=dict)

    @property
    def params(self):
        """Stacked final parameters, an ``nnx.State`` with leaves ``[M, ...]``."""
        return self.state.params

    def member_state(self, i: int) -> TrainState:
        """Member ``i``'s final ``TrainState`` (unstacked)."""
        return unstack_state(self.state, i)

    def model(self, i: int) -> nnx.Module:
        """Member ``i``'s trained NNX model."""
        s = self.member_state(i)
        return nnx.merge(self.graphdef, s.params, s.others)

    def summary(self) -> list[dict]:
        """One JSON-able row per member: label, seed, lr, metrics, failed_step."""
        return [
            {
                "label": m.label,
                "seed": m.seed,
                "lr": m.lr,
                "test_loss": float(self.test_loss[i]),
                "test_accuracy": float(self.test_accuracy[i]),
                "failed_step": self.failed_step[i],
            }
            for i, m in enumerate(self.members)
        ]


# -- building members -------------------------------------------------------------------------


def _split_init(init) -> tuple[Any, dict]:
    """``(value for all layers, {layer path: value})`` of a member's a_init / b_init."""
    if isinstance(init, Mapping):
        rest = {k: v for k, v in init.items() if k != "*"}
        return init.get("*"), rest
    return init, {}


def _layer(model: nnx.Module, path: str):
    node = model
    for part in path.split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node


def _set_layer_init(model: nnx.Module, path: str, name: str, value) -> None:
    try:
        layer = _layer(model, path)
        var = getattr(layer, name)
    except (AttributeError, IndexError, TypeError):
        raise ValueError(
            f"per-layer {name}_init names {path!r}, which is not an activation layer with "
            f"parameter {name!r} in {type(model).__name__}"
        ) from None
    old = var[...]
    new = np.asarray(value, old.dtype)
    try:
        new = np.broadcast_to(new, old.shape)
    except ValueError:
        raise ValueError(
            f"{name}_init for {path!r} of shape {new.shape} does not broadcast to the "
            f"parameter shape {old.shape}"
        ) from None
    var[...] = jax.numpy.asarray(new)


def build_member_model(
    kind: str, activation: str, member: SweepMember, model_kwargs: Mapping | None = None
) -> nnx.Module:
    """The member's model, as a single run would build it.

    ``build_model(kind, activation, seed=member.seed, activation_kwargs={..., "a_init":
    member.a_init, "b_init": member.b_init}, **model_kwargs)``; per-layer values are written
    into the named layers afterwards (initial values draw no random numbers, so the weights are
    those of the same seed either way).
    """
    kw = dict(model_kwargs or {})
    act_kw = dict(kw.pop("activation_kwargs", None) or {})
    per_layer: dict[str, dict] = {}
    for name in ("a", "b"):
        init = getattr(member, f"{name}_init")
        if init is None:
            continue
        if not is_parametric(activation):
            raise ValueError(f"{name}_init given, but activation {activation!r} has no parameters")
        common, layers = _split_init(init)
        if common is not None:
            act_kw[f"{name}_init"] = common
        per_layer[name] = layers
    model = build_model(kind, activation, seed=member.seed, activation_kwargs=act_kw, **kw)
    for name, layers in per_layer.items():
        for path, value in layers.items():
            _set_layer_init(model, path, name, value)
    return model


def build_member_states(
    kind: str,
    activation: str,
    members: Sequence[SweepMember],
    *,
    optimizer: str = "adam",
    optimizer_kwargs: Mapping | None = None,
    model_kwargs: Mapping | None = None,
):
    """``(graphdef, tx, [TrainState per member])``; checks that all members share one graph.

    ``tx`` is ``make_optimizer(optimizer, members[0].lr)``; the step reads each member's own
    learning rate from its ``opt_state.hyperparams["learning_rate"]`` (float32 ``[]``).
    """
    if not members:
        raise ValueError("a sweep needs at least one member")
    states, graphdef0, ref = [], None, None
    for m in members:
        tx_m = make_optimizer(optimizer, m.lr, **dict(optimizer_kwargs or {}))
        model = build_member_model(kind, activation, m, model_kwargs)
        graphdef, state = init_state(model, tx_m, m.seed)
        shapes = jax.tree.map(lambda x: (x.shape, x.dtype), state)
        if graphdef0 is None:
            graphdef0, ref = graphdef, (jax.tree.structure(state), shapes)
        elif graphdef != graphdef0 or (jax.tree.structure(state), shapes) != ref:
            raise ValueError(
                f"member {m.label!r} builds a different network than {members[0].label!r}; sweep "
                "members may differ only in values (seed, lr, a_init, b_init), not in shapes "
                "(e.g. k or sharing)"
            )
        states.append(state)
    tx = make_optimizer(optimizer, members[0].lr, **dict(optimizer_kwargs or {}))
    return graphdef0, tx, states


def member_epoch_indices(
    seeds: Sequence[int], epoch: int, n: int, steps: int, batch_size: int
) -> np.ndarray:
    """int32 ``[M, steps, B]``: member m's batches of ``epoch``, as ``loop.fit`` draws them."""
    return np.stack(
        [
            epoch_permutation(s, epoch, n)[: steps * batch_size].reshape(steps, batch_size)
            for s in seeds
        ]
    ).astype(np.int32)


# -- running ----------------------------------------------------------------------------------


def _resolve(strategy, chunk_size, program, states, idx0, key, m, batch_size, steps):
    d = program.n_devices
    if strategy == "auto":
        dev_bytes = strat.device_memory_bytes(program.mesh)
        memory_of = None
        if jax.default_backend() != "cpu" and dev_bytes:

            def memory_of(c):
                return program.vstep_memory_bytes(states[0], c, steps, batch_size)

        name, c = strat.rule_strategy(jax.default_backend(), m, d, memory_of, dev_bytes)
        return name, c, {}
    if strategy == "measure":
        return strat.measure_strategy(program, states, idx0, key)
    if strategy == "vmap":
        return "vmap", m, {}
    if strategy == "chunked":
        return "chunked", chunk_size or max(1, min(m, 4)), {}
    if strategy == "loop":
        return "loop", 1, {}
    raise ValueError(f"unknown strategy {strategy!r}; choose one of {strat.STRATEGIES}")


def _is_oom(e: Exception) -> bool:
    return "RESOURCE_EXHAUSTED" in str(e) or "Out of memory" in str(e)


def run_sweep(
    kind: str,
    activation: str,
    members: Sequence[SweepMember],
    data,
    *,
    epochs: int,
    batch_size: int = 128,
    optimizer: str = "adam",
    optimizer_kwargs: Mapping | None = None,
    model_kwargs: Mapping | None = None,
    strategy: str = "auto",
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
    eval_every: int | None = None,
    eval_batch_size: int = 1000,
    log_every: int = 50,
    progress: bool = True,
) -> SweepResult:
    """Trains every member on ``data`` and evaluates each on the whole test set.

    Args:
      kind, activation: as for ``models.build_model``.
      members: the runs; they may differ only in values (same shapes for all).
      data: a ``cpaf_jax.data.Dataset`` (float32 NHWC images, int32 labels).
      epochs: passes over the training set (each member its own shuffling).
      batch_size: training batch size (the last partial batch of an epoch is dropped).
      optimizer, optimizer_kwargs: ``train_state.make_optimizer(optimizer, member.lr, **kw)``.
      model_kwargs: extra ``build_model`` arguments (``sharing``, ``activation_kwargs`` such as
        ``{"k": 3}``, ``structure``...).
      strategy: ``"auto"`` (rule: loop on CPU, vmap/chunked on accelerators within memory),
        ``"measure"`` (time candidates, cached), ``"vmap"``, ``"chunked"`` or ``"loop"``; see
        ``cpaf_jax.training.executors``. All give the same results to float tolerance.
      chunk_size: members per vmapped call for ``"chunked"`` (default 4).
      mesh: 1-D ``jax.sharding.Mesh`` (``sharding.member_mesh()``) to split members over
        devices; M is padded to a multiple of the device count with dummies.
      eval_every: also evaluate every this many steps (``None``: end of each epoch only).
      eval_batch_size: test batch size (as ``FitConfig.eval_batch_size``).
      log_every: steps between checks for failed members (a host sync).
      progress: show a progress bar.
    """
    t_wall = time.perf_counter()
    members = list(members)
    m = len(members)
    n = len(data.train_labels)
    steps = n // batch_size
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if steps == 0:
        raise ValueError(f"batch size {batch_size} is larger than the {n} training images")
    graphdef, tx, states = build_member_states(
        kind,
        activation,
        members,
        optimizer=optimizer,
        optimizer_kwargs=optimizer_kwargs,
        model_kwargs=model_kwargs,
    )
    tb = pad_eval(
        np.asarray(data.test_images), np.asarray(data.test_labels, np.int32), eval_batch_size
    )
    program = strat.SweepProgram(
        graphdef, tx, data.train_images, data.train_labels, tuple(np.asarray(a) for a in tb), mesh
    )
    seeds = [mem.seed for mem in members]
    idx0 = member_epoch_indices(seeds, 0, n, steps, batch_size)
    key = (jax.default_backend(), kind, activation, m, batch_size, program.n_devices, optimizer)
    name, c, timings = _resolve(
        strategy, chunk_size, program, states, idx0, key, m, batch_size, steps
    )
    while True:
        ex = strat.make_executor(program, m, name, c)
        try:
            ex.load(states)
            out = _train(
                ex, members, seeds, n, steps, batch_size, epochs, eval_every, log_every, progress
            )
            break
        except Exception as e:  # noqa: BLE001 - only out-of-memory is retried
            d = program.n_devices
            if not _is_oom(e) or name == "loop":
                raise
            c = ex.chunk_size // 2 // d * d
            name, c = ("chunked", c) if c >= d else ("loop", 1)
            warnings.warn(
                f"sweep ran out of memory; retrying with strategy={name}, chunk={c}", stacklevel=2
            )
    history, failed, final, train_seconds, steps_run = out
    loss = final[:, 0] / np.maximum(final[:, 2], 1)
    acc = final[:, 1] / np.maximum(final[:, 2], 1)
    bad = np.array([f is not None for f in failed])
    loss[bad], acc[bad] = np.nan, np.nan
    return SweepResult(
        members=members,
        graphdef=graphdef,
        state=ex.states(),
        test_loss=loss,
        test_accuracy=acc,
        failed_step=failed,
        history=history,
        strategy=ex.name,
        chunk_size=ex.chunk_size,
        wall_seconds=time.perf_counter() - t_wall,
        train_seconds=train_seconds,
        member_steps_per_second=m * steps_run / max(train_seconds, 1e-9),
        timings=timings,
    )


def _train(ex, members, seeds, n, steps, batch_size, epochs, eval_every, log_every, progress):
    """The epoch loop shared by all executors. Returns history, failures, final eval sums."""
    m = len(members)
    history: list[list[dict]] = [[] for _ in range(m)]
    failed: list[int | None] = [None] * m
    train_seconds, final, steps_run = 0.0, None, 0
    log_every = max(1, log_every)

    def eval_records(epoch: int, step: int) -> np.ndarray:
        sums = ex.evaluate()
        for j in range(m):
            history[j].append(
                {
                    "kind": "eval",
                    "epoch": epoch + 1,
                    "step": step,
                    "test_loss": sums[j, 0] / max(sums[j, 2], 1),
                    "test_accuracy": sums[j, 1] / max(sums[j, 2], 1),
                }
            )
        return sums

    def check_failed(epoch: int) -> bool:
        """Marks newly failed members; True when every member has failed."""
        for j, f in enumerate(ex.failed_steps()):
            if f >= 0 and failed[j] is None:
                failed[j] = int(f)
                history[j].append({"kind": "diverged", "step": int(f), "epoch": epoch + 1})
                ex.deactivate(j)
        return all(f is not None for f in failed)

    bar = tqdm(
        total=epochs * steps, desc=f"sweep M={m} [{ex.name}]", disable=not progress, leave=False
    )
    all_failed = False
    for epoch in range(epochs):
        ex.set_epoch(member_epoch_indices(seeds, epoch, n, steps, batch_size))
        t_epoch, eval_time = time.perf_counter(), 0.0
        for i in range(steps):
            ex.step(i)
            steps_run += 1
            step = epoch * steps + i + 1
            last = i == steps - 1
            if step % log_every == 0 or last:
                all_failed = check_failed(epoch)
                bar.update(i + 1 + epoch * steps - bar.n)
                if all_failed:
                    break
            if eval_every and step % eval_every == 0 and not last:
                t0 = time.perf_counter()
                eval_records(epoch, step)
                eval_time += time.perf_counter() - t0
        ex.block()
        secs = time.perf_counter() - t_epoch - eval_time
        train_seconds += secs
        sums = ex.pop_train_metrics()
        final = eval_records(epoch, steps_run)
        for j in range(m):
            history[j].append(
                {
                    "kind": "epoch",
                    "epoch": epoch + 1,
                    "epoch_seconds": secs,
                    "train_loss": sums[j, 0] / sums[j, 2] if sums[j, 2] else float("nan"),
                    "train_accuracy": sums[j, 1] / sums[j, 2] if sums[j, 2] else float("nan"),
                    "test_loss": history[j][-1]["test_loss"],
                    "test_accuracy": history[j][-1]["test_accuracy"],
                }
            )
        if all_failed:
            break
    bar.close()
    check_failed(max(0, epoch))
    return history, failed, final, train_seconds, steps_run


__all__ = [
    "SweepMember",
    "SweepResult",
    "build_member_model",
    "build_member_states",
    "member_epoch_indices",
    "run_sweep",
    "stack_states",
    "unstack_state",
]
