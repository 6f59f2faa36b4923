"""runs.csv fixtures for the report: the committed-style fixture as it is (the derived stages
not run yet), and the same with synthetic rows of every derived stage added (re-tuning,
top-ups at 20 seeds, CPAF learning only a or only b, 30-epoch rows) and a dead 4.1 run.

The synthetic values are test data, drawn from a seeded generator: no assertion reads them
from here, every test recomputes what it checks from the rows.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from cpaf_jax.experiments import retuning as rt
from cpaf_jax.experiments import runs_csv

FIXTURE = Path(__file__).parent / "data" / "runs_fixture.csv"
COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
#: label -> (the re-tuned rate, mean validation accuracy there); the grid falls away from it.
RETUNED = {"prelu": (1e-2, 0.905), "cpaf_sigmoid": (1e-3, 0.885), "cpaf_relu": (3e-3, 0.886),
           "elu_learned": (3e-3, 0.894), "tanh": (1e-3, 0.879), "relu_wide": (1e-3, 0.899),
           "cpaf_sigmoid_frozen": (1e-3, 0.874), "cpaf_relu_frozen": (3e-3, 0.876),
           "relu_bias": (3e-3, 0.886), "relu": (1e-3, 0.871),
           **{a: (3e-3, 0.883) for a in rt.HALF_LEARNED}}  # fmt: skip
#: label -> mean test accuracy of its synthetic final and 30-epoch rows.
MEANS = {"prelu": 0.893, "cpaf_relu_frozen": 0.877, "relu_bias": 0.887, "relu": 0.870,
         "cpaf_sigmoid_a_only": 0.880, "cpaf_sigmoid_b_only": 0.886, "cpaf_relu_a_only": 0.879,
         "cpaf_relu_b_only": 0.887, "cpaf_sigmoid": 0.887, "cpaf_relu": 0.888,
         "elu_learned": 0.893}  # fmt: skip


def read(path: Path = FIXTURE) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _row(label: str, stage: str, lr: float, seed: int, acc: float, **kw) -> dict:
    blank = {c: "" for c in runs_csv.COLUMNS}
    return {**blank, "stage": stage, "label": label, "experiment": "fashion_mnist",
            "activation": label, "seed": str(seed), "lr": f"{lr:g}", "epochs": "10",
            "split": "test", "train_images": "50000", "test_accuracy": repr(round(acc, 4)),
            "test_loss": repr(round(1.2 - acc, 5)), "activation_params": "0", "params": "7376",
            "dataset": "fashion_mnist", "commit": COMMIT, "dirty": "False", **kw}  # fmt: skip


def retune_rows(rng: np.random.Generator) -> list[dict]:
    """Finished re-tuning of every ``RETUNED`` label: its grid grown past the edges as
    ``retuning.retune_rates`` asks, the best rate at ``RETUNED[label]``."""
    out = []
    for label, (best, top) in RETUNED.items():
        i = rt.RATE_LADDER.index(best)
        grid = sorted(set(rt.RETUNE_LRS) | set(rt.RATE_LADDER[max(i - 1, 0) : i + 2]))
        for lr in grid:
            mean = top - abs(math.log10(lr / best)) / 20
            out += [_row(label, "retune", lr, s, mean + rng.normal(0, 0.002), split="validation")
                    for s in rt.RETUNE_SEEDS]  # fmt: skip
    return out


def final_rows(rng: np.random.Generator, label: str, lrs, seeds, stage="final", epochs=10):
    return [_row(label, stage, lr, s, MEANS[label] + rng.normal(0, 0.003), epochs=str(epochs))
            for lr in lrs for s in seeds]  # fmt: skip


def dead_features(rows: list[dict]) -> list[dict]:
    """4.1 sigmoid rows, seed 1 dead (loss ln 10, accuracy 10%)."""
    base = next(r for r in rows if r["stage"] == "features")
    out = []
    for seed, (acc, loss) in enumerate([(0.45, 1.30), (0.1, math.log(10) + 0.0004),
                                        (0.43, 1.35)]):  # fmt: skip
        out.append({**base, "label": "sigmoid", "activation": "sigmoid", "seed": str(seed),
                    "test_accuracy": repr(acc), "test_loss": repr(loss),
                    "activation_params": "0"})  # fmt: skip
    return out


def later(rows: list[dict] | None = None) -> list[dict]:
    """The fixture with every derived stage's synthetic rows added."""
    rows = read() if rows is None else rows
    rng = np.random.default_rng(35)
    new = retune_rows(rng)
    new += final_rows(rng, "prelu", [1e-2], range(20))  # a changed choice: 20 seeds
    for label in ("relu_bias", "cpaf_relu_frozen", *rt.HALF_LEARNED):
        new += final_rows(rng, label, sorted({RETUNED[label][0], 1e-3}), range(20))
    for label in rt.LONG_ACTIVATIONS:
        lr = 1e-2 if label == "prelu" else RETUNED[label][0]
        new += final_rows(rng, label, [lr], range(rt.LONG_SEEDS), "long", rt.LONG_EPOCHS)
    new += final_rows(rng, "relu", [1e-3], range(6))
    return rows + new + dead_features(rows)


def write(path: Path, rows: list[dict]) -> Path:
    runs_csv.write(str(path), rows)
    return path
