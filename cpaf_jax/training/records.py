"""What a training run logs: per-member history records, ``metrics.jsonl``, and the divergence
error.

Every record is a flat JSON-able dict with ``"kind"`` (``"train"``, ``"eval"``, ``"epoch"``,
``"trajectory"``, ``"diverged"``) and ``"name"`` (the member's label). The engine keeps one
list per member; ``metrics.jsonl`` holds every member's records in the order they were made.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from cpaf_jax.activations.family import ActivationParam

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
      epoch: the (0-based) epoch it happened in.
      checkpoint: path of the last good checkpoint, or ``None``.
    """

    def __init__(self, step: int, epoch: int, checkpoint: str | None, name: str = ""):
        self.step, self.epoch, self.checkpoint = step, epoch, checkpoint
        where = checkpoint if checkpoint else "none (no epoch had completed)"
        who = f"{name}: " if name else ""
        super().__init__(
            f"{who}training loss became NaN or Inf at step {step} (epoch {epoch + 1}); "
            f"last good checkpoint: {where}. Lower the learning rate (--lr) or check the data; "
            "rerun with --resume to continue from the checkpoint with the new rate."
        )


def ratio(num: float, den: float) -> float:
    """``num / den``, NaN when ``den`` is 0 (no examples counted)."""
    return num / den if den else float("nan")


def train_record(name: str, epoch: int, step: int, sums, images_per_second: float) -> dict:
    """A ``"train"`` record from ``sums = (loss_sum, correct_sum, count)`` since the last one."""
    return {
        "kind": "train",
        "name": name,
        "epoch": epoch + 1,
        "step": step,
        "train_loss": ratio(sums[0], sums[2]),
        "train_accuracy": ratio(sums[1], sums[2]),
        "images_per_second": images_per_second,
    }


def eval_record(name: str, epoch: int, step: int, sums, train_seconds: float) -> dict:
    """An ``"eval"`` record from test-set ``sums = (loss_sum, correct_sum, count)``.

    ``train_seconds``: the run's training time so far (compile included, evaluation not).
    """
    return {
        "kind": "eval",
        "name": name,
        "epoch": epoch + 1,
        "step": step,
        "test_loss": ratio(sums[0], sums[2]),
        "test_accuracy": ratio(sums[1], sums[2]),
        "train_seconds": train_seconds,
    }


def trajectory_record(name: str, step: int, summary) -> dict:
    """A ``"trajectory"`` record of ``activation_summary`` output (host arrays)."""
    layers = jax.tree.map(lambda x: np.asarray(x).tolist(), summary)
    return {"kind": "trajectory", "name": name, "step": step, "layers": layers}


class MetricsLog:
    """``metrics.jsonl`` in ``out_dir`` (or nothing when ``None``), appended record by record.

    A resumed run first rewrites the file from the checkpoint's history, so no record appears
    twice and none of the lost epoch's records remain.
    """

    def __init__(self, out_dir: str | None, history: list[list[dict]]):
        self.path = os.path.join(out_dir, "metrics.jsonl") if out_dir else None
        if self.path:
            with open(self.path, "w") as f:
                for rec in _interleaved(history):
                    f.write(json.dumps(rec) + "\n")

    def write(self, records: list[dict]) -> None:
        """Appends ``records`` (one line each)."""
        if self.path and records:
            with open(self.path, "a") as f:
                for rec in records:
                    f.write(json.dumps(rec) + "\n")


# The order in which the engine writes a step's records (for every member in turn).
_KIND_ORDER = {"diverged": 0, "train": 1, "trajectory": 2, "eval": 3, "epoch": 4}


def _interleaved(history: list[list[dict]]) -> list[dict]:
    # Every member's records in the order the engine wrote them: by step, kind, member.
    flat = [(r["step"], _KIND_ORDER[r["kind"]], j, r) for j, h in enumerate(history) for r in h]
    return [r for *_, r in sorted(flat, key=lambda t: t[:3])]


__all__ = [
    "MetricsLog",
    "TrainingDiverged",
    "activation_summary",
    "eval_record",
    "train_record",
    "trajectory_record",
]
