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
import io
import json
import math
import os

from cpaf_jax.experiments import atomic

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


class RunsCsvError(ValueError):
    """A runs.csv that cannot be used; the message names the file, the line and the field."""


def _integer(low: int):
    def check(text: str) -> bool:
        return text.lstrip("-").isdigit() and int(text) >= low

    check.expected = f"an integer >= {low}"
    return check


def _number(low: float, high: float = math.inf, *, open_low: bool = False):
    def check(text: str) -> bool:
        try:
            x = float(text)
        except ValueError:
            return False
        return math.isfinite(x) and (x > low if open_low else x >= low) and x <= high

    bounds = f"> {low:g}" if open_low else f">= {low:g}"
    check.expected = f"a finite number {bounds}" + (f" and <= {high:g}" if high < math.inf else "")
    return check


def _one_of(*values: str):
    def check(text: str) -> bool:
        return text in values

    check.expected = "one of " + ", ".join(repr(v) for v in values)
    return check


def _text_field(text: str) -> bool:
    return bool(text.strip())


_text_field.expected = "a non-empty value"


def _optional(check):
    def optional(text: str) -> bool:
        return text == "" or check(text)

    optional.expected = f"empty or {check.expected}"
    return optional


#: Each column's check (``check.expected`` says what it wants); other columns may hold anything.
CHECKS = {
    "stage": _text_field, "label": _text_field, "experiment": _text_field,
    "activation": _text_field, "seed": _integer(0), "lr": _number(0.0, open_low=True),
    "epochs": _integer(1), "k": _optional(_integer(1)),
    "width": _optional(_number(0.0, open_low=True)), "split": _one_of("test", "validation"),
    "train_images": _integer(1), "test_accuracy": _number(0.0, 1.0),
    "test_loss": _number(-math.inf), "activation_params": _integer(0), "params": _integer(1),
    "dataset": _text_field, "dirty": _one_of("True", "False", ""),
}  # fmt: skip


def _check_header(path: str, header: list[str]) -> None:
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown or len(header) != len(COLUMNS):
        raise RunsCsvError(
            f"{path}, line 1: the header must name the columns {', '.join(COLUMNS)}; "
            f"missing: {', '.join(missing) or 'none'}, unknown or repeated: "
            f"{', '.join(unknown) or ', '.join(c for c in header if header.count(c) > 1)}"
        )


def _check_row(path: str, line: int, header: list[str], fields: list[str]) -> dict:
    where = f"{path}, line {line}"
    if not fields or all(not f.strip() for f in fields):
        raise RunsCsvError(f"{where}: blank line; remove it (every line is one run)")
    if len(fields) != len(header):
        raise RunsCsvError(f"{where}: {len(fields)} fields, expected {len(header)} ({header[0]}..)")
    row = dict(zip(header, fields, strict=True))
    for column, check in CHECKS.items():
        if not check(row[column]):
            raise RunsCsvError(
                f"{where}, field {column}: expected {check.expected}, got {row[column]!r}"
            )
    return row


def parse(path: str, text: str) -> list[dict]:
    """The rows of runs.csv text, each checked (``CHECKS``), keys (``KEY``) distinct.

    Raises:
      RunsCsvError: naming the line and the field of the first bad value, a blank line, a row
        of the wrong length, or the two lines sharing a key.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise RunsCsvError(f"{path} is empty; it must start with the header line")
    _check_header(path, header)
    rows, seen = [], {}
    line = reader.line_num
    for fields in reader:
        first, line = line + 1, reader.line_num
        row = _check_row(path, first, header, fields)
        key = tuple(row[c] for c in KEY)
        if key in seen:
            shown = ", ".join(f"{c}={v}" for c, v in zip(KEY, key, strict=True))
            raise RunsCsvError(
                f"{path}, line {first}: the same run as line {seen[key]} ({shown}); keep one"
            )
        seen[key] = first
        rows.append(row)
    return rows


def read(path: str) -> list[dict]:
    """The rows of a runs.csv (strings, each checked: see :func:`parse`), or ``[]`` if it does
    not exist.

    Raises:
      RunsCsvError: the file is malformed (naming the line and the field) or unreadable.
    """
    if not os.path.exists(path):
        return []
    try:
        with open(path, newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise RunsCsvError(f"cannot read {path}: {e}") from None
    return parse(path, text)


def _order(row: dict) -> tuple:
    from cpaf_jax.experiments.retuning import CSV_STAGES as STAGES

    stage = STAGES.index(row["stage"]) if row["stage"] in STAGES else len(STAGES)
    return (stage, row["label"], float(row["lr"] or 0), int(row["seed"]))


def write(path: str, rows: list[dict]) -> None:
    """Writes ``rows`` sorted by stage, label, rate and seed (atomically).

    Raises:
      RunsCsvError: a row fails :func:`parse`'s checks (nothing is written).
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(sorted(rows, key=_order))
    parse(path, buf.getvalue())  # a row that would make the file unreadable is never written
    atomic.write_text(path, buf.getvalue(), newline="")


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
