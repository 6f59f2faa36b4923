"""Orbax checkpoints of a ``TrainState`` plus a JSON record of the run so far.

The state is saved as its flat list of leaves (keyed ``"000000"``, ``"000001"``, ...), and
restored into the tree structure of a freshly initialised state. That keeps checkpoints
independent of how NNX or optax name their internals between versions; ``meta`` (JSON) holds
the epoch, the history so far, and whatever description of the model the caller gives (the
experiments store a spec from which ``cpaf_jax.experiments.restore.restore_model`` rebuilds the
model from a checkpoint alone).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from cpaf_jax.training import hosts
from cpaf_jax.training.executors import stack_states, unstack_state
from cpaf_jax.training.optim import set_learning_rates


def _leaves_dict(tree) -> dict[str, np.ndarray]:
    return {f"{i:06d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))}


class Checkpointer:
    """Saves and restores ``(state, meta)`` pairs under ``directory``, one per epoch.

    Args:
      directory: where checkpoints go (created when missing).
      max_to_keep: how many epoch checkpoints to keep.
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
        self.directory = os.path.abspath(os.fspath(directory))
        self._mngr = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            item_names=("state", "model", "meta"),
        )

    def latest_epoch(self) -> int | None:
        """The last saved epoch, or ``None``."""
        return self._mngr.latest_step()

    def epochs(self) -> list[int]:
        """Every kept epoch, newest first (fully written ones only: orbax renames a
        checkpoint into place when it is complete, so a half-written one is never listed)."""
        return sorted(self._mngr.all_steps(), reverse=True)

    def path(self, epoch: int) -> str:
        """The directory of ``epoch``'s checkpoint (whether or not it exists)."""
        return os.path.join(self.directory, str(epoch))

    def discard_partial(self, epoch: int) -> None:
        """Removes what a failed save of ``epoch`` left (orbax's temporary folders), so a full
        disk gets its space back and nothing half-written stays beside the good ones."""
        import glob

        for partial in glob.glob(glob.escape(self.path(epoch)) + ".orbax-checkpoint-tmp*"):
            shutil.rmtree(partial, ignore_errors=True)

    def save(self, epoch: int, state: Any, meta: dict) -> str:
        """Saves and waits until the checkpoint is complete on disk; returns its path."""
        self._mngr.save(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_leaves_dict(state)),
                # The model alone (params, rngs, others) restores without the optimizer.
                model=ocp.args.StandardSave(_leaves_dict((state.params, state.rngs, state.others))),
                meta=ocp.args.JsonSave(meta),
            ),
        )
        # Waiting makes "last good checkpoint" in error messages true the moment we print it.
        self._mngr.wait_until_finished()
        return self.path(epoch)

    def restore(self, epoch: int, like: Any, item: str = "state") -> tuple[Any, dict]:
        """Restores epoch ``epoch`` into the structure (and dtypes) of ``like``.

        Args:
          epoch: which checkpoint.
          like: a pytree of the saved structure: a ``TrainState`` for ``item="state"``, a
            ``(params, rngs, others)`` triple for ``item="model"``.
          item: ``"state"`` (everything, for resuming) or ``"model"`` (the model alone).
        """
        leaves, treedef = jax.tree.flatten(like)
        # An explicit device: a checkpoint written from a state replicated over several devices
        # (fit's data parallelism) restores in a process with any number of them.
        one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        abstract = {
            f"{i:06d}": jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype, sharding=one)
            for i, x in enumerate(leaves)
        }
        restored = self._mngr.restore(
            epoch,
            args=ocp.args.Composite(
                **{item: ocp.args.StandardRestore(abstract)},
                meta=ocp.args.JsonRestore(),
            ),
        )
        flat = restored[item]
        if len(flat) != len(leaves):
            raise ValueError(
                f"checkpoint {self.path(epoch)} holds {len(flat)} arrays but the model has "
                f"{len(leaves)}: it was written for another model or activation"
            )
        new_leaves = [jax.numpy.asarray(flat[f"{i:06d}"]) for i in range(len(leaves))]
        return jax.tree.unflatten(treedef, new_leaves), restored["meta"]

    def read_meta(self, epoch: int) -> dict:
        """The JSON record saved with epoch ``epoch``."""
        restored = self._mngr.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return restored["meta"]

    def close(self) -> None:
        """Waits for pending asynchronous saves and releases the checkpoint manager."""
        self._mngr.wait_until_finished()
        self._mngr.close()


class DiskFull(OSError):
    """The disk filled up while a checkpoint was written (the last good one is kept)."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (the last good one is kept); one line says which."""


class ResumeMismatch(ValueError):
    """``--resume`` found a checkpoint written for other members, settings or model."""


def _differences(stored: dict, current: dict) -> list[str]:
    keys = sorted(set(stored) | set(current))
    return [
        f"{k}: {stored.get(k)!r} -> {current.get(k)!r}"
        for k in keys
        if stored.get(k) != current.get(k)
    ]


def _roundtrip(x):
    return json.loads(json.dumps(x))


def _fixed(member: dict) -> dict:
    # What a resume may not change: learning rates (and the label naming them) may change.
    return {k: member.get(k) for k in ("seed", "inits")}


class RunCheckpoints:
    """The engine's checkpoints: the stacked state of every member at each epoch's end.

    Args:
      cfg: the engine's ``TrainConfig`` (``out_dir``, ``checkpoint``, ``resume`` and the
        settings a resume must share: ``batch_size``, ``optimizer``, ``weight_decay``).
      members: the engine's members (their seeds and initial values must match on resume).
      describe: the model description saved with each checkpoint (must match on resume).

    A fresh (not resumed) run removes an earlier run's ``checkpoints/`` in ``out_dir``.
    """

    def __init__(self, cfg, members: Sequence, describe: dict | None):
        self.cfg, self.members = cfg, list(members)
        self.describe = _roundtrip(describe or {})
        self.fixed_config = {
            k: getattr(cfg, k) for k in ("batch_size", "optimizer", "weight_decay")
        }
        self.last_good: str | None = None
        self._ckpt = None
        if cfg.out_dir and cfg.checkpoint:
            os.makedirs(cfg.out_dir, exist_ok=True)
            directory = os.path.join(cfg.out_dir, "checkpoints")
            if not cfg.resume and os.path.isdir(directory) and hosts.is_writer():
                shutil.rmtree(directory)
            hosts.barrier("fresh checkpoints")  # no process opens them before the removal
            self._ckpt = Checkpointer(directory)

    def _check(self, meta: dict, path: str) -> None:
        problems = []
        stored = [_fixed(m) for m in meta.get("members", [])]
        current = [_fixed(m.describe()) for m in self.members]
        if _roundtrip(current) != stored:
            problems.append(f"members (seeds, initial a/b) {stored} -> {_roundtrip(current)}")
        problems += _differences(meta.get("config", {}), self.fixed_config)
        was, now = meta.get("model", {}), self.describe
        if "data" not in was:  # written before checkpoints named their data: not checked
            now = {k: v for k, v in now.items() if k != "data"}
        if was != now:
            problems += [
                f"{part} {d}"
                for part, key in (("model", "spec"), ("data", "data"))
                for d in _differences(was.get(key) or {}, now.get(key) or {})
            ] or ["model description"]
        if problems:
            raise ResumeMismatch(
                f"cannot resume from {path}: it was written for other settings "
                f"({'; '.join(problems)}). Rerun with the checkpoint's settings to continue, "
                "or without --resume (and with --overwrite) to start over."
            )

    def _restore(self, epoch: int, states: list) -> tuple[list, dict]:
        meta = self._ckpt.read_meta(epoch)
        if "members" not in meta:
            raise ResumeMismatch(
                f"cannot resume from {self._ckpt.path(epoch)}: it was written by an older "
                "cpaf-jax (one run per checkpoint); rerun without --resume to start over."
            )
        self._check(meta, self._ckpt.path(epoch))
        stacked, meta = self._ckpt.restore(epoch, stack_states(states))
        return [unstack_state(stacked, i) for i in range(len(states))], meta

    def resume(self, states: list) -> tuple[list, int, dict | None]:
        """``(states, first epoch to train, checkpoint meta or None)``.

        Falls back to an earlier kept checkpoint, with a warning, when the newest cannot be
        read; applies the members' (possibly new) learning rates to the restored states.
        """
        if self._ckpt is None or not self.cfg.resume:
            return states, 0, None
        for epoch in self._ckpt.epochs():
            try:
                restored, meta = self._restore(epoch, states)
            except ResumeMismatch:
                raise
            except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: try an older one
                warnings.warn(
                    f"checkpoint {self._ckpt.path(epoch)} could not be read "
                    f"({type(e).__name__}); trying the one before it",
                    stacklevel=3,
                )
                continue
            self.last_good = self._ckpt.path(epoch)
            return self._with_rates(restored, meta), int(meta["epoch"]), meta
        if self._ckpt.epochs():
            raise ResumeMismatch(
                f"no readable checkpoint in {self._ckpt.directory}; rerun without --resume "
                "(and with --overwrite) to start over"
            )
        return states, 0, None

    def _with_rates(self, states: list, meta: dict) -> list:
        out = []
        for st, m, old in zip(states, self.members, meta["members"], strict=True):
            same = (old.get("lr"), old.get("activation_lr")) == (m.lr, m.activation_lr)
            try:
                opt = set_learning_rates(st.opt_state, m.lr, m.activation_lr)
            except TypeError:
                if not same:
                    raise ResumeMismatch(
                        "the optimizer has no injected learning rate, so a resume cannot "
                        "change it; rerun with the checkpoint's learning rate"
                    ) from None
                opt = st.opt_state
            out.append(st.replace(opt_state=opt) if not same else st)
        return out

    def save(self, epoch: int, stacked, meta: dict) -> str | None:
        """Saves the stacked state and ``meta`` (plus members, config, model); returns the path.

        Raises:
          DiskFull: one line naming the checkpoint and the last good one, when the disk is full.
          CheckpointWriteError: the same for any other failed write.
          jax.errors.JaxRuntimeError: as raised, when a write of several processes failed at
            a barrier (a process is gone).
        """
        if self._ckpt is None:
            return None
        meta = {
            **meta,
            "epoch": epoch,
            "members": [m.describe() for m in self.members],
            "config": self.fixed_config,
            "model": self.describe,
        }
        try:
            self.last_good = self._ckpt.save(epoch, stacked, meta)
        except Exception as e:  # noqa: BLE001 - orbax wraps write errors in several types
            self._ckpt.discard_partial(epoch)
            if isinstance(e, jax.errors.JaxRuntimeError) and jax.process_count() > 1:
                # A barrier of the multi-process write failed: a process is gone, not the
                # disk. Raised as it is, so the command reports the lost process (and its exit
                # status) as at any other exchange between processes.
                raise
            kept = f"the last good checkpoint is {self.last_good or 'none'}"
            if "No space left" in str(e) or getattr(e, "errno", None) == 28:
                raise DiskFull(
                    f"no space left on the device writing checkpoint {self._ckpt.path(epoch)}; "
                    f"{kept}"
                ) from e
            reason = (str(e).strip().splitlines() or [""])[0][:300]
            raise CheckpointWriteError(
                f"could not write checkpoint {self._ckpt.path(epoch)} ({type(e).__name__}: "
                f"{reason}); {kept}"
            ) from e
        return self.last_good

    def close(self) -> None:
        """Waits for pending writes and releases the checkpoint manager."""
        if self._ckpt is not None:
            self._ckpt.close()
