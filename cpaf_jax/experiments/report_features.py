"""4.1 (feature extraction) in the report: the losses beside the paper's, a stated policy for
dead runs (counted; results with and without them), the weakest live run of each activation,
and a verdict on the paper's claim (CPAF's test loss below sigmoid's and ReLU's).
"""

from __future__ import annotations

import math

import numpy as np

from cpaf_jax.experiments import report_format as rf
from cpaf_jax.experiments import repro_stats as rs
from cpaf_jax.experiments.configs import get_config
from cpaf_jax.experiments.reproduction_plan import FEATURES_ACTIVATIONS

CLASSES = 10
#: A dead run: its test loss within ``DEAD_LOSS_TOL`` of ln 10 (a uniform prediction over the
#: ten classes) and its test accuracy within ``DEAD_ACC_TOL`` of 10% (chance).
DEAD_LOSS_TOL = 0.01
DEAD_ACC_TOL = 0.01
ALPHA = 0.05


def is_dead(row: dict) -> bool:
    """Whether a run never left chance (``DEAD_LOSS_TOL``, ``DEAD_ACC_TOL``)."""
    loss, acc = float(row["test_loss"]), float(row["test_accuracy"])
    return (abs(loss - math.log(CLASSES)) <= DEAD_LOSS_TOL
            and abs(acc - 1 / CLASSES) <= DEAD_ACC_TOL)  # fmt: skip


def dead_policy() -> str:
    """The dead-run policy, stated before any result."""
    return (f"A 4.1 run is dead when its test loss lies within {DEAD_LOSS_TOL} of ln 10 = "
            f"{math.log(CLASSES):.4f} (the loss of a uniform prediction over the ten classes) "
            f"and its test accuracy within {DEAD_ACC_TOL * 100:g} pp of 10% (chance): the "
            "network never left its starting point. Dead runs are counted and kept; every 4.1 "
            "result is given with them and without them (a comparison without them drops the "
            "seeds where either row is dead).")  # fmt: skip


def _rows(rows: list[dict], label: str, live: bool) -> list[dict]:
    group = rf.select(rows, "features", label)
    return [r for r in group if not is_dead(r)] if live else group


def loss_tests(rows: list[dict], live: bool) -> list[dict]:
    """Test loss, each CPAF minus each other activation, Holm over the list; ``live``: without
    the seeds where either row is dead."""
    labels = rf.labels_in(rows, "features", FEATURES_ACTIVATIONS)
    cpafs = [a for a in labels if a.startswith("cpaf")]
    pairs = [(x, y) for x in cpafs for y in labels if y not in cpafs]
    tests = []
    for x, y in pairs:
        a = {int(r["seed"]): float(r["test_loss"]) for r in _rows(rows, x, live)}
        b = {int(r["seed"]): float(r["test_loss"]) for r in _rows(rows, y, live)}
        tests.append({"x": x, "y": y, **rs.paired(a, b)})
    for t, adj in zip(tests, rs.holm([t["p"] for t in tests]), strict=True):
        t["holm"] = adj
    return tests


def weakest_live(rows: list[dict], label: str) -> str:
    """The lowest-accuracy live run of ``label``, against the median of its live runs."""
    live = _rows(rows, label, True)
    if len(live) < 2:
        return "-"
    worst = min(live, key=lambda r: float(r["test_accuracy"]))
    med = float(np.median([float(r["test_accuracy"]) for r in live]))
    return (
        f"seed {worst['seed']}: {rf.pct(float(worst['test_accuracy']))}% "
        f"({rf.pp(float(worst['test_accuracy']) - med)} pp from the median)"
    )


def _line(rows: list[dict], label: str, paper: dict) -> str:
    every, live = _rows(rows, label, False), _rows(rows, label, True)
    loss, lost = rf.t_of(every, "test_loss"), rf.t_of(live, "test_loss")
    acc, acc_live = rf.t_of(every), rf.t_of(live)

    def f4(s: dict) -> str:
        return "-" if math.isnan(s["mean"]) else f"{s['mean']:.4f}"

    def ci4(s: dict) -> str:
        return "-" if math.isnan(s["low"]) else f"[{s['low']:.4f}, {s['high']:.4f}]"

    return (f"| {label} | {paper.get(label, {}).get('test_loss', '-')} | {f4(loss)} | "
            f"{ci4(loss)} | {rf.pct(acc['mean'])} | {loss['n']} | {len(every) - len(live)} | "
            f"{f4(lost)} | {ci4(lost)} | {rf.pct(acc_live['mean'])} | "
            f"{weakest_live(rows, label)} | {every[0]['epochs']} |")  # fmt: skip


def _pair_table(tests: list[dict]) -> list[str]:
    def d4(x: float) -> str:
        return "-" if math.isnan(x) else f"{x:+.4f}"

    lines = ["| comparison | mean diff. | 95% CI | seeds | p | Holm p | significant at 5% |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for t in tests:
        sig = "-" if math.isnan(t["holm"]) else ("yes" if t["holm"] < ALPHA else "no")
        lines.append(f"| {t['x']} - {t['y']} | {d4(t['mean'])} | {rf.ci(t, d4)} | {t['n']} | "
                     f"{rf.pval(t['p'])} | {rf.pval(t['holm'])} | {sig} |")  # fmt: skip
    return lines + [""]


def claim_status(tests: list[dict]) -> str:
    """The paper's 4.1 claim (CPAF's test loss below sigmoid's and ReLU's) over ``tests``:
    ``supported`` (every difference significantly negative), ``contradicted`` (one
    significantly positive), ``partly`` (some negative), else ``not supported``."""
    claim = [t for t in tests if t["y"] in ("sigmoid", "relu")]
    lower = [t for t in claim if t["holm"] < ALPHA and t["mean"] < 0]
    if any(t["holm"] < ALPHA and t["mean"] > 0 for t in claim):
        return "contradicted"
    if claim and len(lower) == len(claim):
        return "supported"
    return "partly supported" if lower else "not supported"


def features_verdict(rows: list[dict]) -> str:
    """4.1's verdict with and without dead runs, in one or two sentences."""
    every, live = loss_tests(rows, False), loss_tests(rows, True)
    if not every:
        return ""
    dead = sum(is_dead(r) for r in rows if r["stage"] == "features")
    s_every, s_live = claim_status(every), claim_status(live)
    lower = [f"{rf.name(t['y'])}" for t in live if t["holm"] < ALPHA and t["mean"] < 0]
    text = (f"4.1 (on Fashion-MNIST, not the paper's MNIST): the paper's claim that CPAF's test "
            f"loss is below sigmoid's and ReLU's is {s_every} with all runs and {s_live} "
            f"without the {dead} dead run(s)")  # fmt: skip
    text += (f" (significantly lower than {', '.join(sorted(set(lower)))} without them)"
             if lower else "")  # fmt: skip
    others = sorted({rf.name(t["y"]) for t in live if t["y"] not in ("sigmoid", "relu")
                     and t["holm"] < ALPHA and t["mean"] > 0})  # fmt: skip
    if others:
        text += f"; CPAF's test loss is significantly above {', '.join(others)}'s (not in the "
        text += "paper)"
    return text + ". " + weakest_note(rows)


def weakest_note(rows: list[dict]) -> str:
    """The live run furthest below its activation's median, said for what it is."""
    worst = None
    for label in rf.labels_in(rows, "features", FEATURES_ACTIVATIONS):
        live = _rows(rows, label, True)
        if len(live) < 2:
            continue
        med = float(np.median([float(r["test_accuracy"]) for r in live]))
        low = min(live, key=lambda r: float(r["test_accuracy"]))
        gap = med - float(low["test_accuracy"])
        if worst is None or gap > worst[0]:
            worst = (gap, label, low)
    if worst is None:
        return ""
    gap, label, low = worst
    return (
        f"The live run furthest below its activation's median is {label}'s seed "
        f"{low['seed']} ({rf.pct(float(low['test_accuracy']))}%, {gap * 100:.2f} pp below; "
        f"test loss {float(low['test_loss']):.4f}): above chance, so not dead by the "
        "policy, but trained far less than its other seeds; it is kept in both versions."
    )


def features_section(rows: list[dict]) -> list[str]:
    """4.1's table with and without dead runs, its paired tests both ways, and its verdict."""
    labels = rf.labels_in(rows, "features", FEATURES_ACTIVATIONS)
    if not labels:
        return []
    paper = get_config("mnist_features").paper
    data = "/".join(sorted({r["dataset"] for r in rows if r["stage"] == "features"}))
    lines = [
        "## 4.1 Feature extraction (Fig. 9-10)", "",
        f"MNIST cannot be downloaded here: ours ran on {data}, the paper's on MNIST, so the "
        "loss columns are not comparable (the table's headers say which is which). Dead runs "
        "as the method defines them; the last column is the live run of lowest accuracy.", "",
        f"| activation | paper test loss (MNIST) | our test loss ({data}) | 95% CI | our acc. "
        f"(%, {data}) | n | dead | loss without dead | 95% CI | acc. without dead (%) | "
        "weakest live run | epochs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    lines += [_line(rows, a, paper) for a in labels] + [""]
    every = loss_tests(rows, False)
    if not every:
        return lines
    return lines + [
        "The paper's claim here is CPAF's lower test loss: paired t-tests of our test loss "
        f"({data}) by seed, CPAF minus each other activation (negative: CPAF lower), Holm over "
        "each table. With every run:", "",
        *_pair_table(every), "Without dead runs:", "", *_pair_table(loss_tests(rows, True)),
        features_verdict(rows), "",
    ]  # fmt: skip
