"""Tests for cpaf_jax.experiments.report: statistics per group of like runs, never mixed."""

from __future__ import annotations

import pytest

from cpaf_jax.experiments import report, stats
from cpaf_jax.experiments.configs import get_config
from cpaf_jax.experiments.report import (
    ReportError,
    comparisons,
    group_runs,
    render,
    summary_by_group,
    table,
)


def run(act: str, seed: int, acc: float, **settings) -> dict:
    """A finished run entry as the runner writes it."""
    base = {"dataset": "fashion_mnist", "learning_rate": 1e-3, "epochs": 1, "batch_size": 64}
    return {
        "activation": act,
        "seed": seed,
        "test_accuracy": acc,
        "test_loss": 1.0 - acc,
        "failed_step": None,
        "epoch_seconds": [2.0, 1.0],
        "time_to_accuracy": None,
        **base,
        **settings,
    }


def lr_sweep() -> list[dict]:
    """Seeds 0, 1 at two learning rates for relu and cpaf_relu; accuracies chosen apart."""
    runs = []
    for lr, shift in ((1e-3, 0.0), (3e-2, -0.5)):
        runs += [run("relu", 0, 0.80 + shift, learning_rate=lr)]
        runs += [run("relu", 1, 0.82 + shift, learning_rate=lr)]
        runs += [run("cpaf_relu", 0, 0.85 + shift, learning_rate=lr)]
        runs += [run("cpaf_relu", 1, 0.86 + 2 * shift, learning_rate=lr)]
    return runs


def test_learning_rates_are_summarised_apart() -> None:
    summary = summary_by_group(lr_sweep())
    assert set(summary) == {
        "relu lr=0.001",
        "relu lr=0.03",
        "cpaf_relu lr=0.001",
        "cpaf_relu lr=0.03",
    }
    s = summary["relu lr=0.03"]
    assert s["test_accuracy"]["n"] == 2 and s["seeds"] == [0, 1]
    assert s["test_accuracy"]["mean"] == pytest.approx(0.31)
    assert s["activation"] == "relu" and s["settings"]["learning_rate"] == 3e-2


def test_pairs_are_made_within_the_same_learning_rate() -> None:
    comp = comparisons(lr_sweep(), "relu")
    assert set(comp) == {"cpaf_relu lr=0.001", "cpaf_relu lr=0.03"}
    low, high = comp["cpaf_relu lr=0.001"], comp["cpaf_relu lr=0.03"]
    assert low["baseline"] == "relu lr=0.001" and high["baseline"] == "relu lr=0.03"
    # lr 1e-3: diffs 0.05, 0.04; lr 3e-2: diffs 0.05, -0.46 (each against its own rate).
    assert low["seeds"] == 2 and low["mean"] == pytest.approx(0.045)
    assert high["seeds"] == 2 and high["mean"] == pytest.approx(-0.205)


def test_plain_runs_keep_activation_keys() -> None:
    runs = [run(a, s, 0.8 + 0.01 * s) for a in ("relu", "prelu") for s in (0, 1, 2)]
    summary = summary_by_group(runs)
    assert list(summary) == ["relu", "prelu"]
    assert summary["prelu"]["test_accuracy"]["n"] == 3
    assert set(comparisons(runs, "relu")) == {"prelu"}
    assert comparisons(runs, None) == {}


def test_duplicate_seed_in_a_group_is_refused() -> None:
    runs = [run("relu", 0, 0.8), run("relu", 1, 0.81), run("relu", 0, 0.9)]
    with pytest.raises(ReportError, match=r"relu hold seed\(s\) \[0\] more than once"):
        summary_by_group(runs)
    with pytest.raises(ReportError, match="more than once"):
        comparisons(runs + [run("prelu", 0, 0.8)], "prelu")
    # The same seed under another setting is another group, not a duplicate.
    assert len(group_runs(runs[:2] + [run("relu", 0, 0.9, epochs=3)])) == 2


def test_cpaf_init_grid_pairs_with_a_baseline_that_has_no_init() -> None:
    runs = [run("relu", s, 0.80) for s in (3, 7)]
    for a in (0.5, 1.0):
        runs += [run("cpaf_relu", s, 0.80 + a / 10, init_a=[a, a], init_b=None) for s in (3, 7)]
    summary = summary_by_group(runs)
    assert set(summary) == {"relu", "cpaf_relu a=0.5", "cpaf_relu a=1"}
    comp = comparisons(runs, "relu")
    assert {label: d["baseline"] for label, d in comp.items()} == {
        "cpaf_relu a=0.5": "relu",
        "cpaf_relu a=1": "relu",
    }
    assert comp["cpaf_relu a=1"]["mean"] == pytest.approx(0.1)


def test_groups_without_a_matching_baseline_are_not_compared() -> None:
    runs = [run("relu", 0, 0.8, epochs=1), run("prelu", 0, 0.9, epochs=2)]
    assert comparisons(runs, "relu") == {}


def test_failed_runs_are_left_out_of_statistics() -> None:
    runs = [run("relu", 0, 0.8), run("relu", 1, 0.7), run("prelu", 0, 0.9)]
    runs[1].update(failed_step=12, test_accuracy=None, test_loss=None)
    runs[2].update(failed_step=3, test_accuracy=None, test_loss=None)
    summary = summary_by_group(runs)
    assert list(summary) == ["relu"] and summary["relu"]["seeds"] == [0]
    text = render(get_config("fashion_mnist"), runs, baseline=None, command="c", plots=[])
    assert "| prelu | " in text and "failed" in text and "relu seed 1 at step 12" in text


def test_report_tables_show_groups_and_p_values(monkeypatch) -> None:
    def with_p(a, b):
        return dict(stats.paired_difference(a, b), p_value=0.0123)

    monkeypatch.setattr(report, "paired_difference", with_p)
    monkeypatch.setattr(stats, "holm", lambda ps: [min(1.0, 2 * p) for p in ps], raising=False)
    cfg = get_config("fashion_mnist")
    text = render(cfg, lr_sweep(), baseline="relu", command="python -m train x", plots=[])
    assert "| cpaf_relu lr=0.03 | " in text and "| relu lr=0.001 | " in text
    assert "lr {0.001, 0.03}" in text
    row = next(line for line in text.splitlines() if line.startswith("| cpaf_relu lr=0.001 | relu"))
    assert "| 0.0123 | 0.0246 |" in row
    terminal = table(lr_sweep(), cfg).splitlines()
    assert len(terminal) == 5 and terminal[1].startswith("relu lr=0.001 ")


def test_report_without_p_values_shows_a_dash(monkeypatch) -> None:
    def without_p(a, b):
        d = stats.paired_difference(a, b)
        d.pop("p_value", None)
        return d

    monkeypatch.setattr(report, "paired_difference", without_p)
    monkeypatch.delattr(stats, "holm", raising=False)
    text = render(get_config("fashion_mnist"), lr_sweep(), baseline="relu", command="c", plots=[])
    row = next(line for line in text.splitlines() if line.startswith("| cpaf_relu lr=0.03 | relu"))
    assert row.endswith("| 2 | - | yes |") or row.endswith("| 2 | - | no |")
