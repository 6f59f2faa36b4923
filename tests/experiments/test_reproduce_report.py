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

from cpaf_jax.experiments import repro_stats, reproduce
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


def test_pairwise_table_matches_scipy_and_holm():
    rows = _rows()
    text = rr.render(rows)
    labels = ["cpaf_sigmoid", "cpaf_relu", "prelu", "elu_learned", "tanh"]
    pairs = list(itertools.combinations(labels, 2))
    diffs, pvals = [], []
    for x, y in pairs:
        a, b = _acc(rows, "final", x, _chosen(rows, x)), _acc(rows, "final", y, _chosen(rows, y))
        seeds = sorted(a)
        diffs.append(np.mean([a[s] - b[s] for s in seeds]))
        pvals.append(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)
    holm = _holm_reference(np.array(pvals))
    section = text.split("each at its chosen rate")[1].split("\n\n")[1]
    for (x, y), d, p, h in zip(pairs, diffs, pvals, holm, strict=True):
        line = next(ln for ln in section.splitlines() if ln.startswith(f"| {x} - {y} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == f"{d * 100:+.2f}"
        assert cells[4] == rr._p(p) and cells[5] == rr._p(h)
        assert cells[6] == ("yes" if h < 0.05 else "no")
    assert f"over the {len(pairs)} comparisons" in text


def test_chosen_rate_is_the_best_mean_validation_accuracy():
    rows = _rows()
    chosen = rr.chosen_lrs(rows)
    for label in chosen:
        assert chosen[label] == _chosen(rows, label)
    # Every tuning row was scored on the validation split, every final row on the test set.
    assert {r["split"] for r in rows if r["stage"] == "tune"} == {"validation"}
    assert {r["split"] for r in rows if r["stage"] == "final"} == {"test"}


def _t(mean, holm):
    return {"x": "cpaf_sigmoid", "y": "prelu", "mean": mean, "holm": holm,
            "low": mean - 0.01, "high": mean + 0.01, "n": 20}  # fmt: skip


@pytest.mark.parametrize(
    ("tests", "phrase"),
    [
        ([_t(0.01, 0.01), _t(0.01, 0.02)], "The data support the paper's claim that"),
        ([_t(0.01, 0.01), _t(0.002, 0.4)], "only in part: 1 of the 2"),
        ([_t(0.01, 0.2), _t(-0.002, 0.4)], "do not support the paper's claim"),
        ([_t(0.01, 0.01), _t(-0.01, 0.01)], "contradict the paper's claim"),
    ],
)
def test_the_verdict_follows_its_rules(tests, phrase):
    assert phrase in rr.claim_verdict(tests)


def _m(y, mean, holm):
    return {**_t(mean, holm), "y": y, "n": 10}


@pytest.mark.parametrize(
    ("tests", "phrase"),
    [
        ([_m("relu_bias", 0.01, 0.01), _m("relu_wide", 0.01, 0.02)], "than every matched"),
        ([_m("relu_bias", 0.01, 0.01), _m("relu_wide", -0.01, 0.01)],
         "than learned-bias ReLU only"),
        ([_m("relu_bias", 0.01, 0.2), _m("relu_wide", -0.01, 0.01)], "cannot credit"),
    ],
)  # fmt: skip
def test_the_matched_baseline_verdict_follows_its_rules(tests, phrase):
    assert phrase in rr.matched_verdict(tests)


def test_the_verdict_reports_every_matched_baseline_with_its_seed_count():
    rows = _rows()
    verdict = rr.verdict_section(rows)[2]
    wide = [t for t in rr.control_tests(rows) if t["y"] == "relu_wide"]
    assert wide and all(rr.sentence(t)[:-1] + f" ({t['n']} paired seeds)." in verdict
                        for t in wide)  # fmt: skip
    assert rr.matched_verdict(wide) in verdict


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


def test_the_ablation_reading_counts_significant_comparisons_by_kind_and_sign():
    tests = [_a("sharing", 0.01, 0.01), _a("sharing", -0.01, 0.01), _a("sharing", 0.01, 0.2),
             _a("terms", 0.01, 0.04), _a("terms", -0.01, 0.06)]  # fmt: skip
    reading = rr.ablation_reading(tests)
    assert "same k: 1 of 3 significantly higher and 1 significantly lower." in reading
    assert "against k = 2: 1 of 2 significantly higher and 0 significantly lower" in reading


def test_sentence_reads_the_numbers():
    s = rr.sentence(_t(-0.0123, 0.2))
    assert s.startswith("CPAF-sigmoid's accuracy is lower than PReLU's by 1.23 pp [-2.23, -0.23]")
    assert s.endswith("Holm-adjusted p = 0.200: not significant at 5%.")


def test_features_table_says_which_dataset_each_loss_is_on():
    text = rr.render(_rows())
    header = next(ln for ln in text.splitlines() if ln.startswith("| activation | paper test loss"))
    assert "(MNIST)" in header and "(fashion_mnist)" in header
    assert re.search(r"\| relu \| 0\.627 \| 0\.\d{4} \|", text)


def test_features_loss_tests_match_scipy():
    rows = _rows()
    section = "\n".join(rr.features_section(rows))
    loss = {lab: {int(r["seed"]): float(r["test_loss"]) for r in rows
                  if r["stage"] == "features" and r["label"] == lab}
            for lab in ("cpaf_relu", "relu")}  # fmt: skip
    seeds = sorted(loss["relu"])
    d = np.mean([loss["cpaf_relu"][s] - loss["relu"][s] for s in seeds])
    p = stats.ttest_rel([loss["cpaf_relu"][s] for s in seeds], [loss["relu"][s] for s in seeds])
    line = next(ln for ln in section.splitlines() if ln.startswith("| cpaf_relu - relu |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == f"{d:+.4f}" and cells[4] == rr._p(p.pvalue) and cells[5] == cells[4]
    assert [(t["x"], t["y"]) for t in rr.features_tests(rows)] == [("cpaf_relu", "relu")]


def test_committed_reproduction_is_regenerated_from_the_committed_runs_csv(tmp_path, monkeypatch):
    """REPRODUCTION.md is exactly what ``--report-only`` writes from docs/reproduction/runs.csv
    (every number in it comes from that file or BENCHMARKS.json)."""
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    doc = tmp_path / "REPRODUCTION.md"
    csv_path = "docs/reproduction/runs.csv"
    assert reproduce.main(["--report-only", "--csv", csv_path, "--doc", str(doc)]) == 0
    assert doc.read_text() == (root / "REPRODUCTION.md").read_text()
