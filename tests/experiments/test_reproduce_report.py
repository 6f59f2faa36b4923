"""REPRODUCTION.md from a committed-style runs.csv fixture: stable, every number equal to
scipy's computed straight from the fixture, Holm adjustments right, the verdict chosen by
its rules."""

from __future__ import annotations

import csv
import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from cpaf_jax.experiments import report_features, repro_stats, reproduce
from cpaf_jax.experiments import reproduction_report as rr

FIXTURE = Path(__file__).parent / "data" / "runs_fixture.csv"


def _rows():
    with open(FIXTURE, newline="") as f:
        return list(csv.DictReader(f))


def _acc(rows, stage, label, lr):
    return {
        int(r["seed"]): float(r["test_accuracy"])
        for r in rows
        if r["stage"] == stage and r["label"] == label and r["lr"] == lr
    }


def _chosen(rows, label):
    lrs = sorted({r["lr"] for r in rows if r["stage"] == "tune" and r["label"] == label})
    return max(lrs, key=lambda lr: np.mean(list(_acc(rows, "tune", label, lr).values())))


def test_regenerating_gives_the_same_file(tmp_path):
    docs = []
    for i in range(2):
        doc = tmp_path / f"R{i}.md"
        assert reproduce.main(["--report-only", "--csv", str(FIXTURE), "--doc", str(doc)]) == 0
        docs.append(doc.read_text())
    assert docs[0] == docs[1]
    assert "## Verdict" in docs[0] and "## Ablation" in docs[0] and "14,790" in docs[0]


def test_main_table_matches_scipy():
    rows = _rows()
    text = rr.render(rows)
    for label in ("prelu", "cpaf_sigmoid", "tanh", "relu_wide", "cpaf_sigmoid_frozen"):
        lr = _chosen(rows, label)
        x = np.array(list(_acc(rows, "final", label, lr).values()))
        lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        want = f"| {label} | "
        line = next(ln for ln in text.splitlines() if ln.startswith(want) and "[" in ln)
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2] == lr
        assert cells[3] == f"{x.mean() * 100:.2f}"
        assert cells[4] == f"[{lo * 100:.2f}, {hi * 100:.2f}]"
        assert cells[5] == str(len(x))


def _holm_reference(p):
    # Holm (1979): reject H_(i) while p_(i) <= alpha / (m - i + 1); the adjusted value is the
    # running maximum of (m - i + 1) p_(i), capped at 1.
    order = np.argsort(p)
    m = len(p)
    adj = np.empty(m)
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        adj[j] = running
    return adj


def test_holm_on_a_known_family():
    adj = repro_stats.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    assert math.isnan(repro_stats.holm([0.2, float("nan")])[1])
    assert repro_stats.holm([0.2, float("nan")])[0] == pytest.approx(0.2)


def _tost_p(d, margin=0.005):
    """TOST as two one-sided one-sample t-tests (scipy), the larger p."""
    lower = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, margin, alternative="less").pvalue
    return max(lower, upper)


@pytest.mark.parametrize(("title", "rate"), [("each at its own tuned rate", None),
                                             ("all at 0.001", "0.001")])  # fmt: skip
def test_pairwise_table_matches_scipy_and_holm(title, rate):
    rows = _rows()
    text = rr.render(rows)
    labels = ["cpaf_sigmoid", "cpaf_relu", "prelu", "elu_learned", "tanh"]
    pairs = list(itertools.combinations(labels, 2))
    diffs, pvals, eq = [], [], []
    for x, y in pairs:
        a = _acc(rows, "final", x, rate or _chosen(rows, x))
        b = _acc(rows, "final", y, rate or _chosen(rows, y))
        d = np.array([a[s] - b[s] for s in sorted(a)])
        diffs.append(d.mean())
        pvals.append(stats.ttest_rel([a[s] for s in sorted(a)], [b[s] for s in sorted(a)]).pvalue)
        eq.append(_tost_p(d))
    holm, holm_eq = _holm_reference(np.array(pvals)), _holm_reference(np.array(eq))
    section = text.split(f"{title}: paired")[1].split("\n\n")[1]
    for i, (x, y) in enumerate(pairs):
        line = next(ln for ln in section.splitlines() if ln.startswith(f"| {x} - {y} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == f"{diffs[i] * 100:+.2f}"
        assert cells[4] == rr._p(pvals[i]) and cells[5] == rr._p(holm[i])
        assert cells[6] == ("yes" if holm[i] < 0.05 else "no")
        assert cells[8] == rr._p(holm_eq[i])
        # A tie is said only where the equivalence test shows it.
        assert ("equivalent within" in cells[9]) == (holm[i] >= 0.05 and holm_eq[i] < 0.05)
    assert f"over the {len(pairs)} comparisons" in text


def test_chosen_rate_is_the_best_mean_validation_accuracy():
    rows = _rows()
    chosen = rr.chosen_lrs(rows)
    for label in chosen:
        assert chosen[label] == _chosen(rows, label)
    # Every tuning row was scored on the validation split, every final row on the test set.
    assert {r["split"] for r in rows if r["stage"] == "tune"} == {"validation"}
    assert {r["split"] for r in rows if r["stage"] == "final"} == {"test"}


def test_ablation_pairs_compare_sharing_at_each_k_and_each_k_with_two():
    pairs = rr.ablation_pairs(_rows())
    assert pairs == [
        ("cpaf_relu_k1_element", "cpaf_relu_k1_channel", "sharing"),
        ("cpaf_relu_k3_element", "cpaf_relu_k3_channel", "sharing"),
        ("cpaf_relu_k1_element", "cpaf_relu_k2_element", "terms"),
        ("cpaf_relu_k3_element", "cpaf_relu_k2_element", "terms"),
    ]


def test_ablation_tests_match_scipy_and_holm():
    rows = _rows()
    section = "\n".join(rr.ablation_section(rows))
    pairs = rr.ablation_pairs(rows)
    diffs, pvals = [], []
    for x, y, _ in pairs:
        a, b = _acc(rows, "ablation", x, "0.001"), _acc(rows, "ablation", y, "0.001")
        diffs.append(np.mean([a[s] - b[s] for s in sorted(a)]))
        pvals.append(stats.ttest_rel([a[s] for s in sorted(a)], [b[s] for s in sorted(a)]).pvalue)
    holm = _holm_reference(np.array(pvals))
    for (x, y, _), d, p, h in zip(pairs, diffs, pvals, holm, strict=True):
        line = next(ln for ln in section.splitlines() if ln.startswith(f"| {x} - {y} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == f"{d * 100:+.2f}" and cells[4] == rr._p(p) and cells[5] == rr._p(h)
    assert "Holm over the 4 comparisons" in section


def _a(kind, mean, holm):
    return {**_t(mean, holm), "kind": kind}


def _t(mean, holm):
    return {"x": "cpaf_sigmoid", "y": "prelu", "mean": mean, "holm": holm,
            "low": mean - 0.01, "high": mean + 0.01, "n": 20}  # fmt: skip


def test_the_ablation_reading_counts_significant_comparisons_by_kind_and_sign():
    tests = [_a("sharing", 0.01, 0.01), _a("sharing", -0.01, 0.01), _a("sharing", 0.01, 0.2),
             _a("terms", 0.01, 0.04), _a("terms", -0.01, 0.06)]  # fmt: skip
    reading = rr.ablation_reading(tests)
    assert "same k: 1 of 3 significantly higher and 1 significantly lower." in reading
    assert "against k = 2: 1 of 2 significantly higher and 0 significantly lower" in reading


def test_features_table_says_which_dataset_each_loss_is_on():
    text = rr.render(_rows())
    header = next(ln for ln in text.splitlines() if ln.startswith("| activation | paper test loss"))
    assert "(MNIST)" in header and "(fashion_mnist)" in header
    assert re.search(r"\| relu \| 0\.627 \| 0\.\d{4} \|", text)


def test_features_loss_tests_match_scipy():
    rows = _rows()
    section = "\n".join(report_features.features_section(rows)).split("Without dead runs")[0]
    loss = {lab: {int(r["seed"]): float(r["test_loss"]) for r in rows
                  if r["stage"] == "features" and r["label"] == lab}
            for lab in ("cpaf_relu", "relu")}  # fmt: skip
    seeds = sorted(loss["relu"])
    d = np.mean([loss["cpaf_relu"][s] - loss["relu"][s] for s in seeds])
    p = stats.ttest_rel([loss["cpaf_relu"][s] for s in seeds], [loss["relu"][s] for s in seeds])
    line = next(ln for ln in section.splitlines() if ln.startswith("| cpaf_relu - relu |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == f"{d:+.4f}" and cells[4] == rr._p(p.pvalue) and cells[5] == cells[4]
    assert [(t["x"], t["y"]) for t in report_features.loss_tests(rows, False)] == [
        ("cpaf_relu", "relu")
    ]


def test_committed_reproduction_is_regenerated_from_the_committed_runs_csv(tmp_path, monkeypatch):
    """REPRODUCTION.md is exactly what ``--report-only`` writes from docs/reproduction/runs.csv
    (every number in it comes from that file or BENCHMARKS.json)."""
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    doc = tmp_path / "REPRODUCTION.md"
    csv_path = "docs/reproduction/runs.csv"
    assert reproduce.main(["--report-only", "--csv", csv_path, "--doc", str(doc)]) == 0
    assert doc.read_text() == (root / "REPRODUCTION.md").read_text()
