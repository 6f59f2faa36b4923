"""Orbax checkpoints of a ``TrainState`` plus a JSON record of the run so far.

The state is saved as its flat list of leaves (keyed ``"000000"``, ``"000001"``, ...), and
restored into the tree structure of a freshly initialised state. That keeps checkpoints
independent of how NNX or optax name their internals between versions; ``meta`` (JSON) holds
the epoch, the history so far, and the model's spec (kind, activation, sharing, the family, k
and initial values of each activation), so ``cpaf_jax.training.restore.restore_model`` rebuilds the
model from a checkpoint alone.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


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

    def path(self, epoch: int) -> str:
        """The directory of ``epoch``'s checkpoint (whether or not it exists)."""
        return os.path.join(self.directory, str(epoch))

    def save(self, epoch: int, state: Any, meta: dict) -> str:
        """Saves and waits until the checkpoint is complete on disk; returns its path."""
        self._mngr.save(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_leaves_dict(state)),
                # The model alone (params, others) restores without knowing the optimizer.
                model=ocp.args.StandardSave(_leaves_dict((state.params, state.others))),
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
            ``(params, others)`` pair for ``item="model"``.
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
