"""Optional experiment tracking: scalars per step and run, to TensorBoard or Weights & Biases.

Off by default (``--track none``). A tracker is anything with the two methods of
:class:`Tracker`; :func:`make_tracker` builds one by name:

* ``"none"``: :class:`NullTracker`, which drops everything.
* ``"tensorboard"``: :class:`TensorBoardTracker`, event files through ``tensorboardX``
  (``pip install "cpaf-jax[tensorboard]"``), one sub-folder per run name, so TensorBoard
  shows every activation and seed as its own run (``tensorboard --logdir OUT/tensorboard``).
* ``"wandb"``: :class:`WandbTracker`, one W&B run per run name
  (``pip install "cpaf-jax[wandb]"``; ``WANDB_MODE=offline`` keeps it on disk).

The packages are imported only when such a tracker is built; a missing one raises
:class:`TrackingUnavailable` naming the extra to install.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

TRACKERS = ("none", "tensorboard", "wandb")


class TrackingUnavailable(ImportError):
    """The package a tracker needs (an optional extra) is not installed."""


@runtime_checkable
class Tracker(Protocol):
    """Receives scalar metrics of named runs (e.g. ``"cpaf_relu/seed0"``) by training step."""

    def log(self, run: str, step: int, scalars: Mapping[str, float]) -> None:
        """Records ``scalars`` (name -> number, e.g. ``{"test_loss": 0.31}``) at ``step``."""
        ...

    def close(self) -> None:
        """Flushes and releases every run's writer; the tracker is not used afterwards."""
        ...


def _require(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise TrackingUnavailable(
            f"--track {extra} needs the {module} package, which is not installed ({e}); "
            f'pip install "cpaf-jax[{extra}]" (or pip install {module})'
        ) from e


def _floats(scalars: Mapping[str, Any]) -> dict[str, float]:
    # float() also turns 0-d jax / numpy arrays into plain numbers the writers accept.
    return {name: float(value) for name, value in scalars.items()}


class NullTracker:
    """The default: tracking off; every call does nothing."""

    def log(self, run: str, step: int, scalars: Mapping[str, float]) -> None:
        """Drops the scalars."""
        del run, step, scalars

    def close(self) -> None:
        """Nothing to release."""


class TensorBoardTracker:
    """TensorBoard event files via ``tensorboardX``, one writer per run in ``logdir/<run>``.

    Args:
      logdir: the folder TensorBoard is pointed at.
      writer_factory: ``logdir -> writer`` with ``add_scalar(tag, value, step)`` and
        ``close()``; default ``tensorboardX.SummaryWriter`` (imported here, so a missing
        package fails when tracking is turned on, not at the first step).
    """

    def __init__(self, logdir: str, writer_factory: Callable[[str], Any] | None = None):
        if writer_factory is None:
            writer_factory = _require("tensorboardX", "tensorboard").SummaryWriter
        self.logdir = logdir
        self._factory = writer_factory
        self._writers: dict[str, Any] = {}

    def log(self, run: str, step: int, scalars: Mapping[str, float]) -> None:
        """``add_scalar(name, value, step)`` on the run's writer (made at its first call)."""
        writer = self._writers.get(run)
        if writer is None:
            writer = self._writers[run] = self._factory(os.path.join(self.logdir, run))
        for tag, value in _floats(scalars).items():
            writer.add_scalar(tag, value, step)

    def close(self) -> None:
        """Closes (and so flushes) every run's writer."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


class WandbTracker:
    """Weights & Biases, one W&B run per run name, all in one project.

    Args:
      project: the W&B project.
      config: settings recorded with every run (e.g. the experiment's options).
      init: ``wandb.init``-like callable returning a run with ``log(dict, step=)`` and
        ``finish()``; default ``wandb.init`` (imported here).
    """

    def __init__(
        self,
        project: str = "cpaf-jax",
        config: Mapping[str, Any] | None = None,
        init: Callable[..., Any] | None = None,
    ):
        if init is None:
            init = _require("wandb", "wandb").init
        self.project = project
        self.config = dict(config or {})
        self._init = init
        self._runs: dict[str, Any] = {}

    def log(self, run: str, step: int, scalars: Mapping[str, float]) -> None:
        """``run.log(scalars, step=step)`` on the run's W&B run (started at its first call)."""
        handle = self._runs.get(run)
        if handle is None:
            # create_new: several runs (sweep members) may be open in one process.
            handle = self._runs[run] = self._init(
                project=self.project, name=run, config=self.config, reinit="create_new"
            )
        handle.log(_floats(scalars), step=step)

    def close(self) -> None:
        """Finishes every W&B run this tracker started."""
        for handle in self._runs.values():
            handle.finish()
        self._runs.clear()


def make_tracker(
    kind: str, *, out: str, config: Mapping[str, Any] | None = None, project: str = "cpaf-jax"
) -> Tracker:
    """The tracker named ``kind`` (one of :data:`TRACKERS`).

    Args:
      kind: ``"none"``, ``"tensorboard"`` (event files under ``out/tensorboard``) or
        ``"wandb"`` (project ``project``, ``config`` recorded with each run).
      out: the experiment's output folder.

    Raises:
      ValueError: ``kind`` is not one of :data:`TRACKERS`.
      TrackingUnavailable: the package for ``kind`` is not installed.
    """
    if kind == "none":
        return NullTracker()
    if kind == "tensorboard":
        return TensorBoardTracker(os.path.join(out, "tensorboard"))
    if kind == "wandb":
        return WandbTracker(project, config)
    raise ValueError(f"--track must be one of {', '.join(TRACKERS)}; got {kind!r}")
