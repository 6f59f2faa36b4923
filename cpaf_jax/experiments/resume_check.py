"""What a ``--resume`` must share with the run it continues: the training data and the
activations already trained.

Epochs continued on other data would be recorded as one run that no data ever trained, and an
activation left out of the resumed command would vanish from ``results.json``; both are refused
before anything is trained or written. The run's checkpoints carry the same data identity
(``cpaf_jax.training.checkpoints``), so a run interrupted before its first ``results.json`` is
held to it too.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from cpaf_jax.training import ResumeMismatch

__all__ = ["check_resume", "data_identity"]

#: results.json ``settings`` keys that must be equal on resume (older runs may lack some).
MATCHED = (
    "dataset", "data_source", "train_images", "train_labels_sha256", "train_subset",
    "validation", "eval_split", "test_images",
)  # fmt: skip


def data_identity(data, train_subset: int | None, validation: int | None) -> dict:
    """The training data's identity: its name, source, sizes, a hash of its labels and the
    options that cut it.

    Args:
      data: the ``cpaf_jax.data.Dataset`` trained on (subset and split applied).
      train_subset, validation: ``--train-subset`` and ``--validation`` (``None``: not given).

    Returns:
      a JSON-able dict with the keys of ``MATCHED``; ``train_labels_sha256`` hashes the labels
      as int32 in order, so a subset, a split or other files give another value.
    """
    labels = np.ascontiguousarray(np.asarray(data.train_labels), dtype=np.int32)
    return {
        "dataset": data.name,
        "data_source": data.source,
        "train_images": int(len(labels)),
        "train_labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
        "train_subset": train_subset,
        "validation": validation,
        "eval_split": data.eval_split,
        "test_images": int(len(data.test_labels)),
    }


def _previous(out: str) -> dict | None:
    path = os.path.join(out, "results.json")
    try:
        with open(path) as f:
            results = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ResumeMismatch(
            f"cannot resume: {path} is unreadable ({e}); move it away to resume from the "
            "checkpoints alone"
        ) from None
    return results if isinstance(results, dict) else None


def check_resume(out: str, identity: dict, activations: tuple[str, ...]) -> None:
    """Refuses to resume the run in ``out`` on other data or without an activation it trained.

    Args:
      out: the run folder (its ``results.json``, if any, describes the run so far).
      identity: :func:`data_identity` of the data this command trains on.
      activations: this command's activations; every one of the previous run must be among
        them (new ones may be added: the earlier ones' results are kept).

    Raises:
      ResumeMismatch: naming each setting that differs, or the activations left out.
    """
    results = _previous(out)
    if results is None:
        return
    stored = results.get("settings") or {}
    changed = [
        f"{k}: {stored[k]!r} -> {identity[k]!r}"
        for k in MATCHED
        if k in stored and stored[k] != identity[k]
    ]
    if changed:
        raise ResumeMismatch(
            f"cannot resume the run in {out}: it trained on other data ({'; '.join(changed)}). "
            "Rerun with its --dataset, --data-dir, --train-subset and --validation, or without "
            "--resume (and with --overwrite) to start over."
        )
    trained = stored.get("activations") or [r["activation"] for r in results.get("runs", [])]
    missing = [a for a in dict.fromkeys(trained) if a not in activations]
    if missing:
        keep = ",".join([*dict.fromkeys(trained), *(a for a in activations if a not in trained)])
        raise ResumeMismatch(
            f"cannot resume the run in {out} without {', '.join(missing)}: results.json would "
            f"lose their results. Pass --activations {keep} (new ones may be added)."
        )
