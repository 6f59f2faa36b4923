"""Device meshes for sweeps (members split over devices) and data-parallel single runs.

Two ways to use several devices:

* **Member parallelism** (``cpaf_jax.training.train(..., mesh=member_mesh())``): the
  stacked ``TrainState`` has a leading member axis; it is split over a 1-D mesh axis ``"members"``
  with ``NamedSharding(mesh, P("members"))``. Inside ``jax.shard_map`` each device vmaps the
  ordinary train step over its own members, so no member ever talks to another (no
  collectives at all) and a device count that does not divide M is handled by padding with
  dummy members whose results are dropped.
* **Data parallelism** for one run (``data_parallel_train_step``): the state, images and
  labels are replicated, the batch indices ``idx[B]`` are split over a ``"data"`` axis, so each
  device gathers and processes ``B / D`` examples; XLA's partitioner all-reduces the gradient.
  ``B`` must be a multiple of ``D``.

Multi-host (several processes, e.g. one per GPU host or TPU VM host): on **every** host, before
any other JAX call, run::

    import jax
    jax.distributed.initialize()  # TPU / SLURM / Open MPI: detected automatically; else pass
    # coordinator_address="host0:1234", num_processes=N, process_id=i

Then ``jax.devices()`` lists the devices of all hosts, ``member_mesh()`` builds a mesh over all
of them, and every host runs the *same* ``train(...)`` call with the same members and the
same data (SPMD: each host loads the dataset itself; batch indices are derived from seeds, so
every host computes identical ones). Arrays are placed with ``jax.make_array_from_callback``,
which only touches each host's own devices, and results are gathered to every host with
``jax.experimental.multihost_utils.process_allgather``. The ``"loop"`` strategy places whole
members on single devices and therefore needs every mesh device to be addressable (one host);
across hosts ``"auto"`` takes ``"vmap"`` or ``"chunked"`` instead. ``python -m train`` does all
this with ``--coordinator/--num-processes/--process-id`` or ``--distributed``
(``cpaf_jax.experiments.distributed``); ``cpaf_jax.training.hosts`` says which process writes.

**One CPU, several devices.** XLA:CPU runs one program on all cores through its intra-op thread
pool. With ``cpaf_jax.compile_options`` one device keeps every core busy; the ``loop`` column
of ``benchmarks/sweep_throughput.md`` (``python -m benchmarks.sweep_throughput``) compares
members stepped side by side, one per CPU device, with the same members one after another on
one device (XLA's defaults left a core idle, history: commit 374cf6e). ``split_cpu()`` exposes the
cores as devices; call it right after ``import jax``, before any computation.
``python -m train`` does so (``--cpu-devices``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from cpaf_jax import compile_options
from cpaf_jax.training.state import make_train_step

MEMBER_AXIS = "members"
DATA_AXIS = "data"


def split_cpu(n: int | None = None) -> int:
    """Exposes the host's CPU as ``n`` JAX devices (default: one per core).

    Must run before JAX's first computation (``jax_num_cpu_devices`` is read when the CPU
    backend starts). Harmless where the default backend is a GPU or TPU: only the CPU client
    gets the extra devices, and sweeps there use the accelerator's devices.

    Args:
      n: number of CPU devices, ``>= 1``; ``None`` means ``os.cpu_count()``.

    Returns:
      the number of CPU devices in effect: ``n``, or the current count (with a warning) when
      the backend had already started.
    """
    n = (os.cpu_count() or 1) if n is None else n
    if n < 1:
        raise ValueError(f"split_cpu: n must be >= 1, got {n}")
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:
        have = len(jax.devices("cpu"))
        if have != n:
            warnings.warn(
                f"split_cpu({n}): JAX has already started with {have} CPU device(s); call it "
                "right after `import jax`, before any computation",
                stacklevel=2,
            )
        return have
    return n


def sweep_mesh() -> Mesh | None:
    """The member mesh a sweep should use by default: every device of the default backend, of
    every process (``jax.devices()``), when there are several, else ``None`` (one device)."""
    devices = jax.devices()
    return member_mesh(devices) if len(devices) > 1 else None


def member_mesh(devices: Sequence[jax.Device] | None = None, axis: str = MEMBER_AXIS) -> Mesh:
    """A 1-D mesh over ``devices`` (default: ``jax.devices()``, all hosts) named ``axis``."""
    devs = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devs), (axis,))


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``"data"`` for ``data_parallel_train_step``."""
    return member_mesh(devices, DATA_AXIS)


def mesh_size(mesh: Mesh | None) -> int:
    """Number of devices of a mesh (1 for ``None``)."""
    return 1 if mesh is None else int(mesh.devices.size)


def mesh_axis(mesh: Mesh) -> str:
    """The name of a 1-D mesh's only axis."""
    if len(mesh.axis_names) != 1:
        raise ValueError(f"expected a 1-D mesh, got axes {mesh.axis_names}")
    return mesh.axis_names[0]


def fully_addressable(mesh: Mesh | None) -> bool:
    """Whether this process can address every device of ``mesh`` (always for one host)."""
    if mesh is None:
        return True
    pid = jax.process_index()
    return all(d.process_index == pid for d in mesh.devices.flat)


def put(x: np.ndarray, sharding: jax.sharding.Sharding) -> jax.Array:
    """Places a host array (identical on every host) with ``sharding``; multi-host safe.

    Returns a global ``jax.Array`` of ``x``'s shape and dtype, each device holding its shard.
    """
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def put_tree(tree, sharding: jax.sharding.Sharding):
    """``put`` for every leaf of a pytree of (host or single-device) arrays."""
    return jax.tree.map(lambda x: put(np.asarray(jax.device_get(x)), sharding), tree)


def to_host(x) -> np.ndarray:
    """A device array as numpy on this host, gathering from other hosts when needed."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that puts a whole copy of an array on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def leading_axis(mesh: Mesh, ndim_before: int = 0) -> NamedSharding:
    """Sharding that splits axis ``ndim_before`` over the mesh's axis, the rest replicated."""
    return NamedSharding(mesh, P(*([None] * ndim_before), mesh_axis(mesh)))


def data_parallel_train_step(
    graphdef, tx, mesh: Mesh, *, rows: bool = False, loss_fn=None, metric_fn=None
):
    """A jitted, donating train step split over the batch: the one data-parallel program
    (the engine's ``data_parallel`` strategy runs it too).

    Args:
      graphdef, tx: as for ``state.make_train_step``.
      mesh: 1-D mesh (``data_mesh()``); ``B`` must be a multiple of its size.
      rows: ``False``: ``step(state, images, labels, idx [B])``; ``True``:
        ``step(state, images, labels, perm [S, B], i)``, the epoch's index table with the
        step's row sliced inside the program (``state.row_step``).
      loss_fn, metric_fn: as for ``state.make_train_step`` (``None``: the defaults).

    Inputs (place them with ``replicate``/``shard_batch``; they are also accepted from host):
      state: ``TrainState``, replicated.
      images: ``[N, H, W, C]`` float32, replicated; labels ``[N]`` int32, replicated.
      idx / perm: int32, split over the mesh axis along ``B``.

    Returns the same state a single-device step would (up to the order of float reductions:
    the batch mean is an all-reduce of per-device sums).
    """
    axis = mesh_axis(mesh)
    step = make_train_step(graphdef, tx, loss_fn, metric_fn)
    repl = NamedSharding(mesh, P())

    def checked(state, images, labels, idx, *i):
        if idx.shape[-1] % mesh_size(mesh):
            raise ValueError(
                f"batch of {idx.shape[-1]} does not split over {mesh_size(mesh)} devices"
            )
        return step(state, images, labels, idx[i[0]] if rows else idx)

    batch = NamedSharding(mesh, P(None, axis) if rows else P(axis))
    return compile_options.jit(
        checked,
        in_shardings=(repl, repl, repl, batch) + ((repl,) if rows else ()),
        out_shardings=repl,
        donate_argnums=(0,),
    )


def replicate(tree, mesh: Mesh):
    """Every leaf of ``tree`` replicated on ``mesh`` (state, images, labels)."""
    return put_tree(tree, replicated(mesh))


def shard_batch(idx: np.ndarray, mesh: Mesh) -> jax.Array:
    """Batch indices ``[B]`` int32 split over the mesh axis."""
    return put(np.asarray(idx, np.int32), NamedSharding(mesh, P(mesh_axis(mesh))))
