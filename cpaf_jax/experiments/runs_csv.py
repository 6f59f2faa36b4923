"""``docs/reproduction/runs.csv``: one row per trained member of the reproduction's stages.

Columns (``COLUMNS``): the stage and row label of ``cpaf_jax.experiments.reproduction_plan``,
the experiment, registered activation, seed, learning rate, epochs, CPAF's k and the sharing
applied (empty when they do not apply), the width multiplier, the split the accuracy and loss
were scored on (``validation`` or ``test``), the final accuracy and loss, the activation and
total trainable parameter counts, and the commit the run trained at, from ``results.json``'s
``provenance``, with its dirty flag (ignoring the files the reproduction itself rewrites).
``collect`` upserts a stage's rows by ``KEY``.
"""

from __future__ import annotations

import csv
import functools
import json
import os

COLUMNS = (
    "stage", "label", "experiment", "activation", "seed", "lr", "epochs", "k", "sharing",
    "width", "split", "train_images", "test_accuracy", "test_loss", "activation_params",
    "params", "dataset", "commit", "dirty",
)  # fmt: skip
KEY = ("stage", "experiment", "label", "activation", "seed", "lr", "k", "sharing")


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # every digit, so statistics from the file are exact
    return str(value)


@functools.cache
def _weights(model: str, model_kwargs: str) -> int:
    """Weights and biases of a network without activation parameters (built once per
    configuration, with ReLU)."""
    import jax
    from flax import nnx

    from cpaf_jax.models import build_model

    kw = json.loads(model_kwargs)
    kw["input_shape"] = tuple(kw["input_shape"])
    model = build_model(model, "relu", **kw)
    return sum(int(v.size) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


#: Files the reproduction itself rewrites between its commands; a tree that differs from its
#: commit only in these trained the same code.
OWN_OUTPUTS = ("docs/reproduction/runs.csv", "REPRODUCTION.md")


def code_dirty(prov: dict) -> bool | None:
    """Whether the run's tree differed from its commit in anything but ``OWN_OUTPUTS``."""
    from cpaf_jax.provenance import _MAX_DIRTY_PATHS

    if prov.get("dirty") is None:
        return None
    paths = prov.get("dirty_paths") or []
    if len(paths) >= _MAX_DIRTY_PATHS:  # the list was cut: assume the worst
        return bool(prov["dirty"])
    return any(p not in OWN_OUTPUTS for p in paths)


def _k_and_sharing(run: dict) -> tuple:
    from cpaf_jax.activations.registry import family

    fam = family(run["activation"])
    shape_defaults = dict(fam.shape_options)
    k = (run.get("activation_kwargs") or {}).get("k", shape_defaults.get("k"))
    # None: the network's default, per element for 4.1 and 4.2.
    sharing = (run.get("sharing") or "element") if fam.parametric else None
    return k, sharing


def rows_of(results: dict, stage: str, label: str) -> list[dict]:
    """The CSV rows of one command's ``results.json``."""
    st, prov = results["settings"], results.get("provenance") or {}
    mk = st["model_kwargs"]
    out = []
    for run in results["runs"]:
        k, sharing = _k_and_sharing(run)
        scalars = run["activation_params"]["scalars"]
        params = _weights(st["model"], json.dumps(mk, sort_keys=True)) + scalars
        row = {
            "stage": stage, "label": label, "experiment": st["experiment"],
            "activation": run["activation"], "seed": run["seed"],
            "lr": f"{run['learning_rate']:g}", "epochs": run["epochs"], "k": k,
            "sharing": sharing, "width": mk.get("width"),
            "split": run.get("eval_split", st.get("eval_split", "test")),
            "train_images": st["train_images"],
            "test_accuracy": run["test_accuracy"], "test_loss": run["test_loss"],
            "activation_params": scalars, "params": params,
            "dataset": run["dataset"], "commit": prov.get("commit"), "dirty": code_dirty(prov),
        }  # fmt: skip
        out.append({c: _text(row[c]) for c in COLUMNS})
    return out


def read(path: str) -> list[dict]:
    """The rows of a runs.csv (strings), or ``[]`` if it does not exist."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _order(row: dict) -> tuple:
    from cpaf_jax.experiments.retuning import CSV_STAGES as STAGES

    stage = STAGES.index(row["stage"]) if row["stage"] in STAGES else len(STAGES)
    return (stage, row["label"], float(row["lr"] or 0), int(row["seed"]))


def write(path: str, rows: list[dict]) -> None:
    """Writes ``rows`` sorted by stage, label, rate and seed (atomically)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(sorted(rows, key=_order))
    os.replace(tmp, path)


def upsert(existing: list[dict], new: list[dict]) -> list[dict]:
    """``existing`` with every row of ``new`` added or replacing the row of the same ``KEY``."""
    merged = {tuple(r[c] for c in KEY): r for r in existing}
    merged.update({tuple(r[c] for c in KEY): r for r in new})
    return list(merged.values())


def collect(csv_path: str, out: str, stage: str, labels) -> int:
    """Adds the ``results.json`` of ``<out>/<stage>/<label>`` for each label to ``csv_path``.

    Runs that failed (no accuracy) are left out. Returns the number of rows added or replaced.
    """
    new = []
    for label in labels:
        path = os.path.join(out, stage, label, "results.json")
        if os.path.exists(path):
            with open(path) as f:
                new += [r for r in rows_of(json.load(f), stage, label) if r["test_accuracy"]]
    if new:
        write(csv_path, upsert(read(csv_path), new))
    return len(new)
