"""The data behind the reproduction's Fig. 11 and Fig. 14, trained once and committed.

No trained model of the reproduction is kept, so ``python -m train reproduce --figure-data``
retrains one seed per network the figures need and writes compact files under
``docs/reproduction/`` (``report_figures`` draws the PNGs and the report's section from them):

* ``fig11_features.csv``: 4.1's network (``FEATURES_ACTIVATIONS``, on Fashion-MNIST, seed 0, the
  ``features`` stage's epochs and rate): the 2-D features ``[z1, z2]`` of ``PER_CLASS`` test
  images of each class, columns ``activation,label,z1,z2`` (3 decimals).
* ``fig14_ab.npz``: 4.2's network with CPAF-sigmoid (seed 0, ``EPOCHS`` epochs, its own tuned
  rate): every layer's learned ``(a_i, b_i)`` as int16 thousandths, ``[units, k, 2]`` per layer.
* ``figures.json``: what trained them (commit, commands, rates, test accuracies).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex

import numpy as np

from cpaf_jax.experiments import atomic
from cpaf_jax.experiments.reproduction_plan import EPOCHS, FEATURES_ACTIVATIONS, PAPER_LR

PER_CLASS = 200
SEED = 0
FEATURES_CSV = "fig11_features.csv"
AB_NPZ = "fig14_ab.npz"
META_JSON = "figures.json"
AB_SCALE = 1000  # (a, b) stored as int16 thousandths: 3 decimals, |value| < 32.7


def features_argv(out: str) -> list[str]:
    """4.1's command: every activation of the ``features`` stage, one seed."""
    return ["mnist_features", "--activations", ",".join(FEATURES_ACTIVATIONS), "--seed",
            str(SEED), "--epochs", str(EPOCHS), "--lr", f"{PAPER_LR:g}", "--dataset",
            "fashion_mnist", "--eval-every", "0", "--no-plots", "--out", out]  # fmt: skip


def ab_argv(out: str, lr: str) -> list[str]:
    """4.2's command: CPAF-sigmoid at rate ``lr`` (as runs.csv writes it), one seed."""
    return ["fashion_mnist", "--activations", "cpaf_sigmoid", "--seed", str(SEED), "--epochs",
            str(EPOCHS), "--lr", lr, "--eval-every", "0", "--no-plots", "--out", out]  # fmt: skip


def features_text(points: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """``fig11_features.csv``'s text from activation -> (``[n, 2]`` features, ``[n]`` labels)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["activation", "label", "z1", "z2"])
    for act, (z, y) in points.items():
        for (z1, z2), label in zip(np.asarray(z, np.float64), y, strict=True):
            w.writerow([act, int(label), f"{z1:.3f}", f"{z2:.3f}"])
    return buf.getvalue()


def read_features(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``fig11_features.csv`` back as activation -> (``[n, 2]`` float64, ``[n]`` int labels)."""
    out: dict[str, tuple[list, list]] = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            z, y = out.setdefault(r["activation"], ([], []))
            z.append((float(r["z1"]), float(r["z2"])))
            y.append(int(r["label"]))
    return {a: (np.asarray(z, np.float64), np.asarray(y, np.int64)) for a, (z, y) in out.items()}


def ab_arrays(pairs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Layer -> ``[units, k, 2]`` (a, b) as int16 thousandths (what ``fig14_ab.npz`` holds)."""
    out = {}
    for name, arr in pairs.items():
        milli = np.rint(np.asarray(arr, np.float64) * AB_SCALE)
        if np.abs(milli).max() > np.iinfo(np.int16).max:
            raise ValueError(f"layer {name}: an (a, b) value beyond +-32.7 cannot be stored")
        out[name.replace("/", ".")] = milli.astype(np.int16)
    return out


def read_ab(path: str) -> dict[str, np.ndarray]:
    """``fig14_ab.npz`` back as layer -> ``[units, k, 2]`` float64 (a, b)."""
    with np.load(path) as z:
        return {name: z[name].astype(np.float64) / AB_SCALE for name in sorted(z.files)}


def _accuracy(folder: str, activation: str) -> float:
    with open(os.path.join(folder, "results.json")) as f:
        runs = json.load(f)["runs"]
    return next(r["test_accuracy"] for r in runs if r["activation"] == activation)


def _train(argv: list[str]) -> None:
    from cpaf_jax.experiments.cli import main as train_main

    print("== python -m train " + shlex.join(argv), flush=True)
    rc = train_main(argv)
    if rc != 0:
        raise SystemExit(f"error: the training command failed with exit status {rc}")


def write_figure_data(csv_path: str, work: str, dest: str) -> dict:
    """Trains the two figure networks into ``work`` and writes ``dest``'s three files.

    Returns:
      ``figures.json``'s record.
    """
    from cpaf_jax.data import load_dataset
    from cpaf_jax.experiments import runs_csv
    from cpaf_jax.experiments.inspect_model import ab_pairs, feature_points
    from cpaf_jax.experiments.report_protocols import own_rates
    from cpaf_jax.experiments.restore import restore_model
    from cpaf_jax.provenance import git_state

    prov = git_state()  # before training: what the networks trained at
    feats_dir, ab_dir = os.path.join(work, "features"), os.path.join(work, "ab")
    lr = own_rates(runs_csv.read(csv_path))[0]["cpaf_sigmoid"]
    commands = [features_argv(feats_dir), ab_argv(ab_dir, lr)]
    for argv in commands:
        _train(argv)
    data = load_dataset("fashion_mnist")
    points = {
        a: feature_points(restore_model(os.path.join(feats_dir, a)), data.test_images,
                          data.test_labels, PER_CLASS)
        for a in FEATURES_ACTIVATIONS
    }  # fmt: skip
    pairs = ab_pairs(restore_model(os.path.join(ab_dir, "cpaf_sigmoid")))
    os.makedirs(dest, exist_ok=True)
    atomic.write_text(os.path.join(dest, FEATURES_CSV), features_text(points), newline="")
    np.savez_compressed(os.path.join(dest, AB_NPZ), **ab_arrays(pairs))
    meta = {
        "commit": prov.get("commit"), "dirty": prov.get("dirty"), "seed": SEED,
        "epochs": EPOCHS, "per_class": PER_CLASS, "ab_lr": lr, "features_lr": f"{PAPER_LR:g}",
        "commands": ["python -m train " + shlex.join(a) for a in commands],
        "features_accuracy": {a: _accuracy(feats_dir, a) for a in FEATURES_ACTIVATIONS},
        "ab_accuracy": _accuracy(ab_dir, "cpaf_sigmoid"),
    }  # fmt: skip
    atomic.write_text(os.path.join(dest, META_JSON), json.dumps(meta, indent=1) + "\n")
    return meta
