"""How the reproduction report writes its numbers and names, and picks rows of runs.csv."""

from __future__ import annotations

import math

from cpaf_jax.experiments import repro_stats as rs

NAMES = {"cpaf_sigmoid": "CPAF-sigmoid", "cpaf_relu": "CPAF-ReLU", "prelu": "PReLU",
         "elu_learned": "learned-alpha ELU", "elu": "ELU (alpha = 1)", "relu": "ReLU",
         "tanh": "tanh", "sigmoid": "sigmoid", "cpaf_sigmoid_frozen": "frozen CPAF-sigmoid",
         "cpaf_relu_frozen": "frozen CPAF-ReLU", "relu_bias": "learned-bias ReLU",
         "relu_wide": "parameter-matched wide ReLU", "prelu_channel": "channel-wise PReLU",
         "cpaf_sigmoid_a_only": "CPAF-sigmoid learning only a",
         "cpaf_sigmoid_b_only": "CPAF-sigmoid learning only b",
         "cpaf_relu_a_only": "CPAF-ReLU learning only a",
         "cpaf_relu_b_only": "CPAF-ReLU learning only b"}  # fmt: skip


def name(label: str) -> str:
    """A row's name in prose."""
    return NAMES.get(label, label)


def pct(x: float) -> str:
    """A fraction in percent, 2 decimals (``-`` for NaN)."""
    return "-" if math.isnan(x) else f"{x * 100:.2f}"


def pp(x: float) -> str:
    """A difference of fractions in signed percentage points."""
    return "-" if math.isnan(x) else f"{x * 100:+.2f}"


def pval(p: float) -> str:
    """A p-value: 3 decimals, or 2 significant digits below 0.001."""
    if math.isnan(p):
        return "-"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def ci(s: dict, fmt=pct) -> str:
    """``[low, high]`` of a ``t_interval``-like dict."""
    return "-" if math.isnan(s["low"]) else f"[{fmt(s['low'])}, {fmt(s['high'])}]"


def select(rows: list[dict], stage: str, label: str, lr: str | None = None) -> list[dict]:
    """The rows of a stage and label (at one learning rate, as written in the CSV)."""
    return [
        r for r in rows
        if r["stage"] == stage and r["label"] == label and (lr is None or r["lr"] == lr)
    ]  # fmt: skip


def t_of(rows: list[dict], key: str = "test_accuracy") -> dict:
    """``t_interval`` of a column of rows."""
    return rs.t_interval([float(r[key]) for r in rows])


def labels_in(rows: list[dict], stage: str, order) -> list[str]:
    """The labels of ``stage`` in ``order``, then the others sorted."""
    present = {r["label"] for r in rows if r["stage"] == stage}
    return [x for x in order if x in present] + sorted(present - set(order))
