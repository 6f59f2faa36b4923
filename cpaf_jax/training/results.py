"""What the engine returns: the stacked result of every member, and one member's view."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from flax import nnx

from cpaf_jax.training.executors import unstack_state
from cpaf_jax.training.members import Member
from cpaf_jax.training.state import TrainState, merge_model


@dataclasses.dataclass
class RunView:
    """One member's run (what ``fit`` returns, and ``TrainResult.run(i)``).

    Attributes:
      graphdef, state: the trained model as ``state.merge_model(graphdef, state)`` (in
        evaluation mode).
      history: the member's records (also in ``metrics.jsonl``).
      test_loss, test_accuracy: on the whole test set after the last epoch (NaN if failed).
      train_seconds, wall_seconds, epoch_seconds, images_per_second: the engine call's
        (shared by all members of a sweep), over all epochs of the run, resumed ones included.
      steps: steps taken; failed_step: the first non-finite step, or ``None``.
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
    failed_step: int | None

    def model(self) -> nnx.Module:
        """The trained NNX model (final parameters and batch statistics), in eval mode."""
        return merge_model(self.graphdef, self.state)


@dataclasses.dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
      members: the members, in order.
      graphdef: the common NNX graph definition.
      state: stacked ``TrainState``, every leaf ``[M, ...]``.
      test_loss, test_accuracy: float64 ``[M]`` after the last epoch; NaN for failed members.
      failed_step: per member, the first non-finite step, or ``None``.
      history: per member, its records.
      strategy, chunk_size: how the members were executed.
      wall_seconds: the whole call; train_seconds: training steps over all epochs of the run
        (compile included, evaluation not; resumed epochs' times come from the checkpoint).
      epoch_seconds: training time of every epoch; images_per_second: training images (all
        members) per second over the steady epochs (the first excluded when there are more).
      member_steps_per_second: member-steps per second of training.
      timings: candidate -> member-steps/s when ``strategy="measure"`` timed them.
      checkpoint: the last good checkpoint's path, or ``None``.
    """

    members: list[Member]
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
    epoch_seconds: list[float]
    images_per_second: float
    member_steps_per_second: float
    timings: dict
    checkpoint: str | None

    @property
    def params(self):
        """Stacked final parameters, an ``nnx.State`` with leaves ``[M, ...]``."""
        return self.state.params

    def member_state(self, i: int) -> TrainState:
        """Member ``i``'s final ``TrainState`` (unstacked)."""
        return unstack_state(self.state, i)

    def model(self, i: int) -> nnx.Module:
        """Member ``i``'s trained NNX model, in eval mode."""
        return merge_model(self.graphdef, self.member_state(i))

    def run(self, i: int) -> RunView:
        """Member ``i``'s run as a ``RunView``."""
        s = self.member_state(i)
        return RunView(
            graphdef=self.graphdef,
            state=s,
            history=self.history[i],
            test_loss=float(self.test_loss[i]),
            test_accuracy=float(self.test_accuracy[i]),
            train_seconds=self.train_seconds,
            wall_seconds=self.wall_seconds,
            images_per_second=self.images_per_second,
            epoch_seconds=list(self.epoch_seconds),
            steps=int(s.step),
            failed_step=self.failed_step[i],
        )

    def summary(self) -> list[dict]:
        """One JSON-able row per member: its fields, metrics and failed step."""
        return [
            {
                **m.describe(),
                "test_loss": float(self.test_loss[i]),
                "test_accuracy": float(self.test_accuracy[i]),
                "failed_step": self.failed_step[i],
            }
            for i, m in enumerate(self.members)
        ]


__all__ = ["RunView", "TrainResult"]
