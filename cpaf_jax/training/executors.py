"""How a sweep's members are executed: all at once, in chunks, or one after another.

``jax.vmap`` over per-member convolution weights turns every convolution into a grouped
convolution (``feature_group_count = M``). XLA:GPU/TPU run those well; XLA:CPU does not: there
members stepped one after another beat the same members vmapped, whole or in chunks
(``benchmarks/sweep_throughput.md``, from ``python -m benchmarks.sweep_throughput``, gives the
ratios per M; ``lax.map`` over members inside one program was slower still when measured in
commit ee0f970). Hence the strategies:

* ``"vmap"``: one compiled step for all members (padded to a multiple of the device count).
* ``"chunked"``: the same vmapped step over chunks of ``c`` members, dispatched one chunk after
  another (bounded memory).
* ``"loop"``: every member with the ordinary jitted step of ``train_state.make_train_step``,
  exactly the computation ``loop.fit`` does (bitwise the same results as a single run).
* ``"auto"``: a rule, no timing: ``"loop"`` on CPU; on GPU/TPU ``"vmap"`` if the compiled step's
  ``memory_analysis`` fits in 90% of device memory, else ``"chunked"`` with the largest
  fitting power-of-two chunk. the engine halves the chunk and restarts from the initial
  states if a step still fails with ``RESOURCE_EXHAUSTED``.
* ``"measure"``: times a few steps of each candidate on the real data and takes the fastest;
  the choice is cached in memory per (backend, model, activation, M, batch, devices).

Every executor holds the members' states between steps and exposes the same operations, so
the engine's ``EpochRunner`` drives them with one loop and all give the same per-member results.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from cpaf_jax import compile_options
from cpaf_jax.training import meshes as shd
from cpaf_jax.training.state import TrainState, make_eval_step, make_train_step, row_step

STRATEGIES = ("auto", "measure", "vmap", "chunked", "loop", "data_parallel")
_MEMORY_FRACTION = 0.9
_MEASURE_CACHE: dict[tuple, tuple[str, int]] = {}


def stack_states(states: Sequence[TrainState]) -> TrainState:
    """Stacks states of equal structure along a new leading member axis ``[M, ...]``."""
    return jax.tree.map(lambda *x: jnp.stack(x), *states)


def unstack_state(stacked: TrainState, i: int) -> TrainState:
    """Member ``i`` of a stacked state."""
    return jax.tree.map(lambda x: x[i], stacked)


def _reset_metrics(state: TrainState) -> TrainState:
    # Shape-preserving (works for a stacked state too) and three distinct buffers for donation.
    return state.replace(
        loss_sum=jnp.zeros_like(state.loss_sum),
        correct_sum=jnp.zeros_like(state.correct_sum),
        count=jnp.zeros_like(state.count),
    )


def _eval_sums(parts: list[tuple]) -> np.ndarray:
    """``[(loss, correct, count) per test batch]`` of ``[c]`` arrays -> float64 ``[c, 3]``.

    Summed in float64 batch after batch, as ``loop.Evaluator`` does.
    """
    host = [[shd.to_host(v).astype(np.float64) for v in p] for p in parts]
    out = np.zeros((host[0][0].shape[0], 3), np.float64) if host else np.zeros((0, 3))
    for p in host:
        for j in range(3):
            out[:, j] = out[:, j] + p[j]
    return out


class SweepProgram:
    """The compiled pieces shared by all executors of one sweep.

    Args:
      graphdef, tx: as for ``make_train_step`` (``tx`` reads each member's learning rate from
        its own ``opt_state.hyperparams``).
      images: float ``[N, ...]``; labels: ``[N, ...]`` (host arrays; int32 class labels for
        the default loss).
      test_batches: ``(x [T, Bt, ...], y [T, Bt, ...], mask [T, Bt])`` host arrays.
      mesh: 1-D mesh over which members are split, or ``None``.
      loss_fn, metric_fn: as for ``make_train_step`` (``None``: cross-entropy, accuracy).
    """

    def __init__(
        self,
        graphdef,
        tx,
        images,
        labels,
        test_batches,
        mesh: Mesh | None,
        loss_fn=None,
        metric_fn=None,
    ):
        self.graphdef, self.tx, self.mesh = graphdef, tx, mesh
        self.loss_fn, self.metric_fn = loss_fn, metric_fn
        self.n_devices = shd.mesh_size(mesh)
        self.train_step = make_train_step(graphdef, tx, loss_fn, metric_fn)
        self.eval_step = make_eval_step(graphdef, loss_fn, metric_fn)
        self._host = (np.asarray(images), np.asarray(labels))
        self._test = tuple(np.asarray(a) for a in test_batches)
        self._placed: dict = {}
        self._vstep = self._veval = self._vreset = None

    # -- data placement -------------------------------------------------------------------
    def data_on(self, where) -> tuple:
        """``(images, labels, test_x, test_y, test_mask)`` on a device, or replicated on a mesh.

        ``where``: ``None`` (default device), a ``jax.Device`` or a ``Mesh`` (replicated).
        """
        key = id(where) if where is not None else None
        if key not in self._placed:
            arrays = self._host + self._test
            if where is None:
                placed = tuple(jnp.asarray(a) for a in arrays)
            elif isinstance(where, Mesh):
                placed = tuple(shd.put(a, shd.replicated(where)) for a in arrays)
            else:
                placed = tuple(jax.device_put(a, where) for a in arrays)
            self._placed[key] = (where, placed)
        return self._placed[key][1]

    # -- vmapped functions ------------------------------------------------------------------
    def _local_vstep(self, state, images, labels, idx_all, i):
        # idx_all: [c, steps, B]; the step's batch is idx_all[:, i] (sliced inside the program,
        # saving a dispatch per step).
        return jax.vmap(lambda s, ix: self.train_step(s, images, labels, ix[i]))(state, idx_all)

    def _local_veval(self, state, x, y, m):
        return jax.vmap(self.eval_step, in_axes=(0, None, None, None))(state, x, y, m)

    def vstep(self):
        """Jitted ``(state[c], images, labels, idx [c, steps, B], i) -> state[c]`` (donating)."""
        if self._vstep is None:
            f = self._local_vstep
            if self.mesh is not None:
                ax = shd.mesh_axis(self.mesh)
                f = jax.shard_map(
                    f, mesh=self.mesh, in_specs=(P(ax), P(), P(), P(ax), P()), out_specs=P(ax)
                )
            self._vstep = compile_options.jit(f, donate_argnums=(0,))
        return self._vstep

    def veval(self):
        """Jitted ``(state[c], x [Bt,...], y [Bt], mask [Bt]) -> 3 x float32 [c]``."""
        if self._veval is None:
            f = self._local_veval
            if self.mesh is not None:
                ax = shd.mesh_axis(self.mesh)
                f = jax.shard_map(
                    f, mesh=self.mesh, in_specs=(P(ax), P(), P(), P()), out_specs=P(ax)
                )
            self._veval = compile_options.jit(f)
        return self._veval

    def vreset(self):
        """Jitted ``state[c] -> state[c]`` with the running training sums zeroed (donating)."""
        if self._vreset is None:
            kw = {}
            if self.mesh is not None:
                kw["out_shardings"] = shd.leading_axis(self.mesh)
            self._vreset = compile_options.jit(_reset_metrics, donate_argnums=(0,), **kw)
        return self._vreset

    def vstep_memory_bytes(self, state0: TrainState, c: int, steps: int, batch: int) -> int | None:
        """Bytes per device the compiled vmapped step over ``c`` members needs (``None``: unknown).

        Args:
          state0: one member's state (shapes only are used).
          c: members in the call (all devices together; a multiple of the device count).
        """
        try:
            lead = rep = None
            if self.mesh is not None:
                lead, rep = shd.leading_axis(self.mesh), shd.replicated(self.mesh)

            def sds(shape, dtype, sharding):
                return jax.ShapeDtypeStruct(tuple(shape), dtype, sharding=sharding)

            x, y = self._host
            args = (
                jax.tree.map(lambda a: sds((c, *a.shape), a.dtype, lead), state0),
                sds(x.shape, x.dtype, rep),
                sds(y.shape, y.dtype, rep),
                sds((c, steps, batch), np.int32, lead),
                sds((), np.int32, rep),
            )
            ma = self.vstep().lower(*args).compile().memory_analysis()
        except Exception as e:  # noqa: BLE001 - an allocation failure at compile means "no"
            if "RESOURCE_EXHAUSTED" in str(e):
                return 1 << 62
            return None
        if ma is None:
            return None
        return int(
            ma.temp_size_in_bytes
            + ma.argument_size_in_bytes
            + ma.output_size_in_bytes
            - ma.alias_size_in_bytes
        )


class ChunkedExecutor:
    """Members in chunks of ``c``, each chunk one vmapped (and mesh-sharded) step.

    ``"vmap"`` is this executor with one chunk. With a mesh, ``c`` is rounded up to a multiple
    of the device count; the member list is padded at its end with copies of the last member
    (dummies, dropped from every result).
    """

    def __init__(self, program: SweepProgram, n_members: int, chunk_size: int, name: str):
        d = program.n_devices
        self.program, self.n = program, n_members
        self.c = -(-max(1, chunk_size) // d) * d
        self.n_padded = -(-n_members // self.c) * self.c
        self.name = name
        # Padded position -> real member it copies.
        self.src = list(range(n_members)) + [n_members - 1] * (self.n_padded - n_members)
        self.where = program.mesh
        self.data = program.data_on(self.where)
        self._sharded = shd.leading_axis(program.mesh) if program.mesh is not None else None
        self.chunks: list[TrainState] = []
        self.idx: list[jax.Array] = []
        self.steps_done = 0
        self._vmap_fn: dict = {}

    @property
    def chunk_size(self) -> int:
        return self.c

    def _place(self, tree):
        if self._sharded is None:
            return tree
        return shd.put_tree(tree, self._sharded)

    def load(self, states: Sequence[TrainState], steps_done: int = 0) -> None:
        """Takes per-member states (not donated: stacking copies them).

        ``steps_done``: steps the states have already taken (a resumed run).
        """
        self.steps_done = steps_done
        self.chunks = []
        for k in range(0, self.n_padded, self.c):
            stacked = stack_states([states[self.src[j]] for j in range(k, k + self.c)])
            self.chunks.append(self._place(stacked))

    def set_epoch(self, idx: np.ndarray) -> None:
        """``idx``: int32 ``[M, steps, B]``, each member's batches of the epoch."""
        idx = np.asarray(idx, np.int32)[self.src]
        self.idx = []
        for k in range(0, self.n_padded, self.c):
            part = idx[k : k + self.c]
            self.idx.append(self._place(part) if self._sharded else jnp.asarray(part))

    def deactivate(self, member: int) -> None:
        """No-op: a frozen member costs nothing extra inside a vmapped step."""

    def step(self, i: int) -> None:
        """Dispatches step ``i`` of the epoch for every chunk (asynchronous)."""
        f = self.program.vstep()
        images, labels = self.data[0], self.data[1]
        for k, (st, ix) in enumerate(zip(self.chunks, self.idx, strict=True)):
            self.chunks[k] = f(st, images, labels, ix, np.int32(i))
        self.steps_done += 1

    def block(self) -> None:
        """Waits until every dispatched step has run."""
        jax.block_until_ready(self.chunks)

    def failed_steps(self) -> np.ndarray:
        """int ``[M]``: first non-finite step per member, -1 if none."""
        return np.concatenate([shd.to_host(s.failed_step) for s in self.chunks])[: self.n]

    def pop_train_metrics(self) -> np.ndarray:
        """float64 ``[M, 3]`` (loss_sum, correct_sum, count) since the last call; resets them."""
        out = np.concatenate(
            [
                np.stack(
                    [shd.to_host(s.loss_sum), shd.to_host(s.correct_sum), shd.to_host(s.count)], -1
                ).astype(np.float64)
                for s in self.chunks
            ]
        )[: self.n]
        reset = self.program.vreset()
        self.chunks = [reset(s) for s in self.chunks]
        return out

    def map_params(self, fn) -> list:
        """``[fn(params of member m) for m]`` as host pytrees (``fn`` is jitted and vmapped)."""
        if self._vmap_fn.get(fn) is None:
            self._vmap_fn[fn] = compile_options.jit(jax.vmap(fn))
        out = [jax.tree.map(shd.to_host, self._vmap_fn[fn](c.params)) for c in self.chunks]
        flat = jax.tree.map(lambda *x: np.concatenate(x), *out)
        return [jax.tree.map(lambda x, i=i: x[i], flat) for i in range(self.n)]

    def evaluate(self) -> np.ndarray:
        """float64 ``[M, 3]``: summed test loss, correct predictions, test examples."""
        f = self.program.veval()
        _, _, tx, ty, tm = self.data
        res = []
        for st in self.chunks:
            res.append(_eval_sums([f(st, tx[t], ty[t], tm[t]) for t in range(tx.shape[0])]))
        return np.concatenate(res)[: self.n]

    def states(self) -> TrainState:
        """Stacked ``[M, ...]`` states of the real members, on the default device."""
        host = [jax.tree.map(shd.to_host, s) for s in self.chunks]
        stacked = jax.tree.map(lambda *x: np.concatenate(x)[: self.n], *host)
        stacked = stacked.replace(step=np.full((self.n,), self.steps_done, np.int32))
        return jax.tree.map(jnp.asarray, stacked)


class LoopExecutor:
    """Members one after another, each with the ordinary jitted (donating) train step.

    With a mesh of D devices, member ``m`` lives on device ``m % D``: dispatch is asynchronous,
    so the devices work on different members at the same time, with no communication between
    them. On CPU, where ``sharding.split_cpu`` makes one device per core, this beats one device
    running one member at a time on all cores (``benchmarks.sweep_throughput``). Members known
    to have failed are skipped (their state is frozen anyway).
    """

    name = "loop"
    chunk_size = 1

    def __init__(self, program: SweepProgram, n_members: int):
        if self.name == "loop" and not shd.fully_addressable(program.mesh):
            raise ValueError(
                "strategy 'loop' places whole members on single devices and needs every mesh "
                "device to belong to this process; use 'vmap' or 'chunked' on several hosts"
            )
        self.program, self.n = program, n_members
        self._step = compile_options.jit(row_step(program.train_step), donate_argnums=(0,))
        self._eval = compile_options.jit(program.eval_step)
        self._reset = compile_options.jit(_reset_metrics, donate_argnums=(0,))
        devs = list(program.mesh.devices.flat) if program.mesh is not None else [None]
        self.places = [devs[m % len(devs)] for m in range(n_members)]
        self.active = [True] * n_members
        self.members: list[TrainState] = []
        self.perms: list[jax.Array] = []
        self.steps_done = 0
        self._fns: dict = {}

    def _put(self, x, m):
        # place None: the default device, uncommitted (as loop.fit's arrays are).
        return jax.device_put(x, self.places[m])

    def load(self, states: Sequence[TrainState], steps_done: int = 0) -> None:
        """Takes per-member states (copied: the steps donate their input).

        ``steps_done``: steps the states have already taken (a resumed run).
        """
        self.steps_done = steps_done
        self.active = [True] * self.n
        # jnp.copy: the step donates its state, and the caller keeps the initial states.
        self.members = [self._put(jax.tree.map(jnp.copy, s), m) for m, s in enumerate(states)]

    def set_epoch(self, idx: np.ndarray) -> None:
        """``idx``: int32 ``[M, steps, B]``, each member's batches of the epoch."""
        idx = np.asarray(idx, np.int32)
        self.perms = [self._put(idx[m], m) for m in range(self.n)]

    def deactivate(self, member: int) -> None:
        """Skips a failed member from now on (its state is frozen anyway)."""
        self.active[member] = False

    def step(self, i: int) -> None:
        """Dispatches step ``i`` of the epoch for every active member (asynchronous)."""
        for m in range(self.n):
            if self.active[m]:
                images, labels = self.program.data_on(self.places[m])[:2]
                self.members[m] = self._step(self.members[m], images, labels, self.perms[m], i)
        self.steps_done += 1

    def block(self) -> None:
        """Waits until every dispatched step has run."""
        jax.block_until_ready(self.members)

    def failed_steps(self) -> np.ndarray:
        """int ``[M]``: first non-finite step per member, -1 if none."""
        return np.array([int(s.failed_step) for s in self.members], np.int64)

    def pop_train_metrics(self) -> np.ndarray:
        """float64 ``[M, 3]`` (loss_sum, correct_sum, count) since the last call; resets them."""
        out = np.array(
            [[float(s.loss_sum), float(s.correct_sum), float(s.count)] for s in self.members],
            np.float64,
        ).reshape(self.n, 3)
        self.members = [self._reset(s) for s in self.members]
        return out

    def map_params(self, fn) -> list:
        """``[fn(params of member m) for m]`` as host pytrees (``fn`` is jitted)."""
        if self._fns.get(fn) is None:
            self._fns[fn] = compile_options.jit(fn)
        f = self._fns[fn]
        return [jax.tree.map(np.asarray, jax.device_get(f(s.params))) for s in self.members]

    def evaluate(self) -> np.ndarray:
        """float64 ``[M, 3]``: summed test loss, correct predictions, test examples."""
        rows = []
        for m, st in enumerate(self.members):
            _, _, tx, ty, tm = self.program.data_on(self.places[m])
            parts = [self._eval(st, tx[t], ty[t], tm[t]) for t in range(tx.shape[0])]
            rows.append(_eval_sums([tuple(jnp.reshape(v, (1,)) for v in p) for p in parts]))
        return np.concatenate(rows) if rows else np.zeros((0, 3))

    def states(self) -> TrainState:
        """Stacked ``[M, ...]`` states of the members, on the default device."""
        host = [jax.tree.map(lambda x: np.asarray(jax.device_get(x)), s) for s in self.members]
        stacked = jax.tree.map(lambda *x: np.stack(x), *host)
        # Skipped (failed) members stopped counting; report the steps the sweep ran.
        stacked = stacked.replace(step=np.full((self.n,), self.steps_done, np.int32))
        return jax.tree.map(jnp.asarray, stacked)


class DataParallelExecutor(LoopExecutor):
    """Members one after another, each member's batch split over the devices of a 1-D mesh.

    The state and the data are replicated on the mesh and the epoch's index table ``[S, B]``
    is split along ``B``, so XLA partitions each step over the batch and all-reduces the
    gradient sums. Results equal the one-device run's up to the order of float sums.
    """

    name = "data_parallel"

    def __init__(self, program: SweepProgram, n_members: int):
        super().__init__(program, n_members)
        mesh = program.mesh
        self.places = [mesh] * n_members
        self._batch = jax.sharding.NamedSharding(mesh, P(None, shd.mesh_axis(mesh)))
        self._step = shd.data_parallel_train_step(
            program.graphdef,
            program.tx,
            mesh,
            rows=True,
            loss_fn=program.loss_fn,
            metric_fn=program.metric_fn,
        )

    def _put(self, x, m):
        return shd.put_tree(x, shd.replicated(self.program.mesh))

    def set_epoch(self, idx: np.ndarray) -> None:
        """``idx``: int32 ``[M, steps, B]``; each member's table is split along ``B``."""
        idx = np.asarray(idx, np.int32)
        self.perms = [shd.put(idx[m], self._batch) for m in range(self.n)]


Executor = ChunkedExecutor | LoopExecutor


def make_executor(program: SweepProgram, n_members: int, name: str, chunk_size: int) -> Executor:
    """An executor for a resolved strategy (``"vmap"``, ``"chunked"`` or ``"loop"``)."""
    if name == "loop":
        return LoopExecutor(program, n_members)
    if name == "data_parallel":
        return DataParallelExecutor(program, n_members)
    if name == "vmap":
        return ChunkedExecutor(program, n_members, n_members, "vmap")
    if name == "chunked":
        return ChunkedExecutor(program, n_members, chunk_size, "chunked")
    raise ValueError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")


def device_memory_bytes(mesh: Mesh | None) -> int | None:
    """Memory of one device of the mesh (or the default device); ``None`` if not reported."""
    dev = next(iter(mesh.devices.flat)) if mesh is not None else jax.devices()[0]
    try:
        stats = dev.memory_stats()
    except Exception:  # noqa: BLE001 - CPU and some plugins do not implement it
        return None
    if not stats:
        return None
    return stats.get("bytes_limit") or stats.get("bytes_reservable_limit")


def rule_strategy(
    backend: str,
    n_members: int,
    n_devices: int,
    memory_of: Callable[[int], int | None] | None = None,
    device_bytes: int | None = None,
) -> tuple[str, int]:
    """The ``"auto"`` choice: ``(strategy, chunk_size)``.

    Args:
      backend: ``jax.default_backend()`` (``"cpu"``, ``"gpu"``, ``"tpu"``...).
      n_members: M.
      n_devices: devices in the member mesh (1 without a mesh).
      memory_of: ``c -> bytes`` the vmapped step over ``c`` members needs on each device
        (``SweepProgram.vstep_memory_bytes``); ``None`` skips the check.
      device_bytes: memory of one device; ``None`` skips the check.

    On CPU grouped convolutions lose to the sequential loop at every M we measured, so CPU
    takes ``"loop"``. Elsewhere the largest power-of-two chunk (all members first) whose
    compiled step fits in 90% of device memory.
    """
    if backend == "cpu":
        return "loop", 1
    full = -(-n_members // n_devices) * n_devices
    if memory_of is None or device_bytes is None:
        return "vmap", full
    c = full
    while True:
        need = memory_of(c)
        if need is None or need <= _MEMORY_FRACTION * device_bytes:
            return ("vmap", full) if c >= full else ("chunked", c)
        if c <= n_devices:
            # Not even one member per device fits in a vmapped step: fall back to the loop.
            return "loop", 1
        c = max(n_devices, (c // 2) // n_devices * n_devices)


def measure_strategy(
    program: SweepProgram,
    states: Sequence[TrainState],
    idx: np.ndarray,
    key: tuple,
    *,
    steps: int = 3,
    chunk_sizes: Sequence[int] | None = None,
) -> tuple[str, int, dict]:
    """Times ``steps`` steps of each candidate after one warm-up (compile) step.

    Args:
      program: the sweep's compiled pieces.
      states: the members' initial states (not modified).
      idx: int32 ``[M, steps_per_epoch, B]``: the first epoch's batches.
      key: cache key; a cached choice is returned without timing.
      chunk_sizes: chunked candidates (default powers of two below M; M itself is ``"vmap"``).

    Returns:
      ``(strategy, chunk_size, timings)``, ``timings`` mapping candidate to member-steps/s.
    """
    if key in _MEASURE_CACHE:
        name, c = _MEASURE_CACHE[key]
        return name, c, {}
    m = len(states)
    if chunk_sizes is None:
        chunk_sizes = [c for c in (2, 4, 8, 16) if c < m]
    loop = [("loop", 1)] if shd.fully_addressable(program.mesh) else []  # one process only
    candidates = loop + [("vmap", m)] + [("chunked", c) for c in chunk_sizes]
    steps = max(1, min(steps, idx.shape[1] - 1))
    timings: dict[str, float] = {}
    for name, c in candidates:
        ex = make_executor(program, m, name, c)
        ex.load(states)
        ex.set_epoch(idx)
        ex.step(0)
        ex.block()
        t0 = time.perf_counter()
        for i in range(1, steps + 1):
            ex.step(i)
        ex.block()
        timings[f"{name}:{c}"] = m * steps / (time.perf_counter() - t0)
    best = max(timings, key=timings.get)
    name, c = best.split(":")
    _MEASURE_CACHE[key] = (name, int(c))
    return name, int(c), timings


__all__ = [
    "STRATEGIES",
    "ChunkedExecutor",
    "DataParallelExecutor",
    "LoopExecutor",
    "SweepProgram",
    "device_memory_bytes",
    "make_executor",
    "measure_strategy",
    "rule_strategy",
    "stack_states",
    "unstack_state",
]
