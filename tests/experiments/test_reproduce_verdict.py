"""The report's verdict under both protocols, its equivalence tests, the derived stages'
sections (pending now, filled later), 4.1's dead-run policy and Table 6: rules table-driven,
numbers checked against scipy computed straight from the fixture rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import repro_later
from scipy import stats

from cpaf_jax.experiments import report_cost, report_features, reproduce
from cpaf_jax.experiments import report_protocols as rp
from cpaf_jax.experiments import report_stages as st
from cpaf_jax.experiments import report_verdict as rv
from cpaf_jax.experiments import reproduction_report as rr
from cpaf_jax.experiments.configs import get_config


@pytest.fixture(scope="module")
def now():
    return repro_later.read()


@pytest.fixture(scope="module")
def later():
    return repro_later.later()


def _holm(p):
    order, m, out, running = np.argsort(p), len(p), np.empty(len(p)), 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        out[j] = running
    return out


def _t(mean, holm, holm_eq=1.0, x="cpaf_sigmoid", y="prelu"):
    return {"x": x, "y": y, "mean": mean, "holm": holm, "holm_eq": holm_eq, "n": 20,
            "low": mean - 0.002, "high": mean + 0.002}  # fmt: skip


@pytest.mark.parametrize(
    ("mean", "holm", "holm_eq", "call"),
    [(0.01, 0.01, 1.0, "higher"), (-0.01, 0.01, 1.0, "lower"), (0.001, 0.3, 0.01, "tie"),
     (0.001, 0.3, 0.2, "open"), (0.001, float("nan"), float("nan"), "-"),
     (0.002, 0.01, 0.01, "higher")],
)  # fmt: skip
def test_a_tie_needs_its_equivalence_test(mean, holm, holm_eq, call):
    assert rp.call(_t(mean, holm, holm_eq)) == call


def test_a_significant_difference_inside_the_margin_says_both():
    t = {**_t(0.002, 0.01, 0.01), "call": "higher"}
    assert rp.call_words(t) == "significantly higher, yet within +-0.5 pp"
    assert rp.call_words({**t, "call": "open"}) == "not distinguishable, not shown equivalent"


@pytest.mark.parametrize(
    ("calls", "status"),
    [(["higher"] * 4, "supported"), (["higher", "lower", "tie", "tie"], "contradicted"),
     (["tie"] * 4, "tied"), (["higher", "tie", "open", "tie"], "partly"),
     (["tie", "open", "tie", "tie"], "open"), ([], "open")],
)  # fmt: skip
def test_the_claims_status_follows_its_rules(calls, status):
    assert rv.claim_status([{"call": c} for c in calls]) == status


def test_what_holds_under_both_protocols_and_what_depends_on_it():
    own = [{**_t(-0.008, 0.001), "call": "lower"}, {**_t(0.0, 0.5, 0.01, y="elu_learned"),
                                                     "call": "tie"}]  # fmt: skip
    paper = [{**_t(0.0, 0.5, 0.01), "call": "tie"}, {**_t(0.0, 0.5, 0.01, y="elu_learned"),
                                                      "call": "tie"}]  # fmt: skip
    text = rv.survival(own, paper)
    assert text.startswith("Neither protocol supports the claim.")
    assert "The same call under both: CPAF-sigmoid - learned-alpha ELU equivalent" in text
    assert ("Depends on the protocol: CPAF-sigmoid - PReLU (significantly lower at its own "
            "rate, equivalent within +-0.5 pp at 0.001)") in text  # fmt: skip
    supported = [{**_t(0.02, 0.001), "call": "higher"}]
    assert rv.survival(supported, supported).startswith("The claim is supported under both")
    assert rv.survival(supported, own[:1]).startswith("Whether the claim is supported depends")


def test_own_rates_are_the_first_tunings_until_a_retuned_row_has_its_seeds(now, later):
    first = rr.chosen_lrs(now)
    assert rp.own_rates(now) == (first, {a: "first" for a in first})
    rates, source = rp.own_rates(later)
    # prelu's re-tuned rate differs and has its 20 seeds; cpaf_sigmoid's is the same rate
    # but its final rows lack seeds, so the first tuning's stands.
    assert (rates["prelu"], source["prelu"]) == ("0.01", "retuned")
    assert source["cpaf_sigmoid"] == "first" and rates["cpaf_sigmoid"] == first["cpaf_sigmoid"]
    assert source["cpaf_relu_b_only"] == "retuned"
    assert {r["lr"] for r in rp.final_rows(later, "prelu", "own")} == {"0.01"}
    assert {r["lr"] for r in rp.final_rows(later, "prelu", "paper")} == {"0.001"}


def test_the_report_says_what_is_pending_now_and_fills_it_later(now, later):
    text, done = rr.render(now), rr.render(later)
    for phrase in ("Pending: no re-tuning run has finished yet.",
                   "Pending: the a-only and b-only rows at 20 seeds",
                   "Pending: the 30-epoch rows", "- **30 epochs**: pending.",
                   "- **Learning only a or only b**: pending"):  # fmt: skip
        assert phrase in text and phrase not in done
    assert "Pending: no figure data yet" in text
    # The method states the margin and the dead-run policy before any result.
    method = text.index("**What counts as a tie.**")
    assert method < text.index("## The paper's 4.2 claim") < text.index("| comparison |")
    assert text.index("**Dead runs.**") < text.index("## 4.1")
    assert "## Verdict" in done and "The ranking" in done


def test_the_30_epoch_verdict_says_which_rows_it_still_waits_for(later):
    partial = [r for r in later if not (r["stage"] == "long" and r["label"] == "relu")]
    line = next(x for x in rv.stage_bullets(partial) if x.startswith("- **30 epochs**"))
    assert "The ranking" in line
    assert line.endswith("So far, among the rows trained; pending: relu (0 of 10).")
    full = next(x for x in rv.stage_bullets(later) if x.startswith("- **30 epochs**"))
    assert "The ranking" in full and "pending" not in full


def test_regenerating_the_later_report_gives_the_same_file(tmp_path, later):
    csv_path = repro_later.write(tmp_path / "runs.csv", later)
    docs = []
    for i in range(2):
        doc = tmp_path / f"R{i}.md"
        args = ["--report-only", "--csv", str(csv_path), "--doc", str(doc), "--figures-dir",
                str(tmp_path / "none")]  # fmt: skip
        assert reproduce.main(args) == 0
        docs.append(doc.read_text())
    assert docs[0] == docs[1] and "## What CPAF's gain is made of" in docs[0]


def _acc(rows, stage, label, lr):
    return {int(r["seed"]): float(r["test_accuracy"]) for r in rows
            if r["stage"] == stage and r["label"] == label and r["lr"] == lr}  # fmt: skip


def test_half_learned_table_matches_scipy(later):
    section = "\n".join(st.half_section(later))
    rates = rp.own_rates(later)[0]
    pairs = st.present_pairs(later, st.half_pairs())
    assert len(pairs) == 8
    d = []
    for x, y in pairs:
        a, b = _acc(later, "final", x, rates[x]), _acc(later, "final", y, rates[y])
        d.append(np.array([a[s] - b[s] for s in sorted(set(a) & set(b))]))
    p = _holm(np.array([stats.ttest_1samp(x, 0).pvalue for x in d]))
    eq = _holm(np.array([max(stats.ttest_1samp(x, -0.005, alternative="greater").pvalue,
                             stats.ttest_1samp(x, 0.005, alternative="less").pvalue)
                         for x in d]))  # fmt: skip
    for (x, y), diff, hp, he in zip(pairs, d, p, eq, strict=True):
        line = next(ln for ln in section.splitlines() if ln.startswith(f"| {x} - {y} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == f"{diff.mean() * 100:+.2f}" and cells[3] == str(len(diff))
        assert cells[5] == rr._p(hp) and cells[8] == rr._p(he)


def _half(a_vs_frozen, both_vs_a, b_vs_frozen, both_vs_b, base="cpaf_relu"):
    calls = {
        (f"{base}_a_only", f"{base}_frozen"): a_vs_frozen,
        (base, f"{base}_a_only"): both_vs_a,
        (f"{base}_b_only", f"{base}_frozen"): b_vs_frozen,
        (base, f"{base}_b_only"): both_vs_b,
    }
    return {k: {"call": c} for k, c in calls.items()}  # fmt: skip


@pytest.mark.parametrize(
    ("calls", "phrase"),
    [(("open", "higher", "higher", "tie"), "learning the shifts b alone recovers the gain and "
      "learning the scales a alone does not: the untied"),
     (("higher", "lower", "higher", "higher"), "the scales a alone recovers the gain and"),
     (("higher", "tie", "higher", "tie"), "either half alone"),
     (("higher", "higher", "higher", "higher"), "neither half alone recovers the gain: it needs"),
     # A non-significant difference from learning both is not a tie: nothing is recovered.
     (("higher", "open", "higher", "tie"), "b alone recovers the gain; whether the scales a"),
     (("higher", "open", "higher", "open"), "not determined at this sample size")],
)  # fmt: skip
def test_what_the_gain_is_made_of_follows_its_rules(calls, phrase):
    assert phrase in st.gain_source(_half(*calls), "cpaf_relu")
    assert st.gain_source({}, "cpaf_relu") == ""


@pytest.mark.parametrize(
    ("ten", "thirty", "flips"),
    [(["higher", "tie"], ["higher", "open"], []), (["higher", "lower"], ["lower", "lower"],
     ["a - b"]), (["open", "tie"], ["lower", "higher"], [])],
)  # fmt: skip
def test_the_ranking_holds_unless_a_significant_difference_changes_sign(ten, thirty, flips):
    def tests(calls):
        return [{"x": x, "y": "b", "call": c} for x, c in zip(("a", "c"), calls, strict=True)]

    assert st.ranking_holds(tests(ten), tests(thirty)) == flips


@pytest.mark.parametrize(
    ("ten", "thirty", "phrases", "absent"),
    [(["higher", "tie"], ["open", "tie"], ["The ranking holds", "Significant at 10 epochs but "
      "not at 30 (10 seeds against 20): a - b."], ["only at 30"]),
     (["open", "lower"], ["higher", "lower"], ["Significant only at 30 epochs: a - b."],
      ["but not at 30"]),
     (["higher", "lower"], ["lower", "lower"], ["does not hold", "a - b"], ["Significant"])],
)  # fmt: skip
def test_the_ranking_sentence_names_differences_that_lose_or_gain_significance(
    ten, thirty, phrases, absent
):
    def tests(calls, n):
        return [{"x": x, "y": "b", "call": c, "n": n} for x, c in zip(("a", "c"), calls,
                                                                      strict=True)]  # fmt: skip

    text = st.ranking_sentence(tests(ten, 20), tests(thirty, 10))
    assert all(p in text for p in phrases) and not any(p in text for p in absent)


def test_long_section_compares_thirty_epochs_with_ten_at_the_same_rate(later):
    section = "\n".join(st.long_section(later))
    for label in ("prelu", "relu"):
        long = [r for r in later if r["stage"] == "long" and r["label"] == label]
        lr = long[0]["lr"]
        x = np.array([float(r["test_accuracy"]) for r in long])
        ten = np.array(list(_acc(later, "final", label, lr).values()))
        line = next(ln for ln in section.splitlines() if ln.startswith(f"| {label} | {lr} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2] == "30" and cells[3] == f"{x.mean() * 100:.2f}" and cells[5] == "10"
        assert cells[6] == f"{ten.mean() * 100:.2f}" and cells[8] == str(len(ten))


def test_each_row_at_30_epochs_is_paired_with_itself_at_10_and_matches_scipy(later):
    tests = st.longer_tests(later)
    assert [t["x"] for t in tests] == [f"{a} at 30" for a in st.rt.LONG_ACTIVATIONS]
    p = []
    for t in tests:
        label = t["x"].rsplit(" at ", 1)[0]
        lr = next(r["lr"] for r in later if r["stage"] == "long" and r["label"] == label)
        thirty, ten = _acc(later, "long", label, lr), _acc(later, "final", label, lr)
        seeds = sorted(set(thirty) & set(ten))
        diff = np.array([thirty[s] - ten[s] for s in seeds])
        assert t["y"] == f"{label} at 10" and t["n"] == len(seeds) >= 2
        assert math.isclose(t["mean"], diff.mean(), abs_tol=1e-12)
        p.append(stats.ttest_1samp(diff, 0.0).pvalue)
        assert math.isclose(t["p"], p[-1], rel_tol=1e-9)
    assert np.allclose([t["holm"] for t in tests], _holm(np.array(p)))
    section = "\n".join(st.long_section(later))
    assert "| cpaf_sigmoid at 30 - cpaf_sigmoid at 10 |" in section
    assert st.longer_sentence(tests) in section
    line = next(x for x in rv.stage_bullets(later) if x.startswith("- **30 epochs**"))
    assert st.longer_sentence(tests) in line


@pytest.mark.parametrize(
    ("calls", "text"),
    [(["open", "open"], "not distinguishable, not shown equivalent for every row (PReLU "
      "+0.10 pp, ReLU +0.10 pp)."),
     (["higher", "open"], "PReLU +0.10 pp, significantly higher; ReLU +0.10 pp, not "
      "distinguishable, not shown equivalent.")],
)  # fmt: skip
def test_the_extra_epochs_sentence_says_a_shared_reading_once(calls, text):
    tests = [{"x": f"{a} at 30", "y": f"{a} at 10", "mean": 0.001, "call": c, "holm_eq": 1.0}
             for a, c in zip(("prelu", "relu"), calls, strict=True)]  # fmt: skip
    assert st.longer_sentence(tests) == "30 epochs against 10, row by row (paired): " + text


def test_retune_section_reports_changes_edges_and_margins(later):
    section = "\n".join(st.retune_section(later))
    line = next(ln for ln in section.splitlines() if ln.startswith("| prelu |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1:6] != [""] * 5 and "**" in cells[4]  # best at 1e-2, 3e-2 tried beyond it
    assert cells[6:10] == ["0.01", rr.chosen_lrs(later)["prelu"], "yes", "no"]
    means = sorted(
        (
            np.mean(
                [
                    float(r["test_accuracy"])
                    for r in later
                    if r["stage"] == "retune" and r["label"] == "prelu" and r["lr"] == lr
                ]
            )
            for lr in ("0.0003", "0.001", "0.003", "0.01", "0.03")
        ),
        reverse=True,
    )
    assert cells[10] == f"{round((means[0] - means[1]) * 30_000):,}"  # fmt: skip
    assert "Pending (re-tuning not finished): elu, apl, pau, swish, prelu_channel." in section


@pytest.mark.parametrize(
    ("acc", "loss", "dead"),
    [(0.1, math.log(10), True), (0.1, math.log(10) + 0.02, False), (0.1055, 2.31, True),
     (0.12, math.log(10), False), (0.388, 1.45, False)],
)  # fmt: skip
def test_the_dead_run_policy(acc, loss, dead):
    assert report_features.is_dead({"test_accuracy": acc, "test_loss": loss}) is dead


def test_features_are_given_with_and_without_dead_runs(later):
    every, live = (report_features.loss_tests(later, w) for w in (False, True))
    t_every = next(t for t in every if (t["x"], t["y"]) == ("cpaf_relu", "sigmoid"))
    t_live = next(t for t in live if (t["x"], t["y"]) == ("cpaf_relu", "sigmoid"))
    loss = {lab: {int(r["seed"]): float(r["test_loss"]) for r in later
                  if r["stage"] == "features" and r["label"] == lab} for lab in
            ("cpaf_relu", "sigmoid")}  # fmt: skip
    for t, seeds in ((t_every, [0, 1, 2]), (t_live, [0, 2])):  # seed 1 of sigmoid is dead
        a, b = [loss["cpaf_relu"][s] for s in seeds], [loss["sigmoid"][s] for s in seeds]
        assert t["n"] == len(seeds) and t["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    section = "\n".join(report_features.features_section(later))
    line = next(ln for ln in section.splitlines() if ln.startswith("| sigmoid |"))
    assert line.split("|")[7].strip() == "1"  # one dead run counted
    assert "Without dead runs:" in section and "without the 1 dead run(s)" in section


def test_the_baseline_reading_is_computed_from_rows_and_the_papers_table(now):
    paper = get_config("fashion_mnist").paper
    gaps = rv.baseline_gaps(now, "paper")
    x = np.mean(list(_acc(now, "final", "prelu", "0.001").values()))
    assert gaps["prelu"] == pytest.approx(x * 100 - paper["prelu"]["test_accuracy"])
    y = np.mean(list(_acc(now, "final", "elu_learned", "0.001").values()))
    assert gaps["elu_learned"] == pytest.approx(y * 100 - paper["elu"]["test_accuracy"])
    assert f"PReLU {rv.baseline_gaps(now, 'own')['prelu']:+.2f} pp" in rv.baseline_reading(now)


def _bench(tmp_path, relu_ms, cpaf_ms, tanh_ms, sig_ms):
    row = {"network": "CifarNet S1 (4.3)", "batch": 64}
    rows = [{**row, "activation": "relu", "step_ms": relu_ms, "ratio": 1.0},
            {**row, "activation": "cpaf_relu", "step_ms": cpaf_ms, "ratio": cpaf_ms / relu_ms,
             "ratio_lo": 1.01, "ratio_hi": 1.5},
            {**row, "activation": "tanh", "step_ms": tanh_ms, "ratio": tanh_ms / relu_ms},
            {**row, "activation": "cpaf_sigmoid", "step_ms": sig_ms, "ratio": sig_ms / relu_ms},
            {"network": "FashionNet (4.2)", "activation": "relu", "batch": 128, "step_ms": 8.0,
             "ratio": 1.0}]  # fmt: skip
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"machine": {"cpu_model": "Some CPU", "cpu_count": 4},
                                "sections": {"train_step": {"rows": rows}}}))  # fmt: skip
    return str(path)


@pytest.mark.parametrize(
    ("ms", "cells", "where"),
    [((100.0, 125.0, 90.0, 180.0), ("1.25", "2.00"), "below"),
     ((50.0, 80.0, 40.0, 50.0), ("1.60", "1.25"), "above"),
     ((50.0, 72.5, 40.0, 50.0), ("1.45", "1.25"), "within")],
)  # fmt: skip
def test_table6_reads_the_benchmark_json_and_the_papers_table(tmp_path, ms, cells, where):
    text = "\n".join(report_cost.table6_section(_bench(tmp_path, *ms)))
    paper = report_cost.PAPER_TABLE6
    ratio = paper["cifar10"]["cpaf_relu"] / paper["cifar10"]["relu"]
    assert f"| cpaf_relu / relu | {ratio:.2f}, " in text
    assert f"| cpaf_relu / relu | {ratio:.2f}, " + (
        f"{paper['cifar100']['cpaf_relu'] / paper['cifar100']['relu']:.2f} | {cells[0]} [1.01, "
        "1.50] |") in text  # fmt: skip
    assert f"| {cells[1]} |" in text.split("cpaf_sigmoid / tanh")[1].splitlines()[0]
    assert "Some CPU with 4 CPU cores" in text
    assert f"cpaf_relu costs more than relu per step here, {cells[0]}x, {where}" in text
    missing = "\n".join(report_cost.table6_section(str(tmp_path / "none.json")))
    assert "No benchmark results" in missing


def test_the_papers_gap_against_our_intervals_under_both_protocols():
    gap = rv.paper_gap({"x": "cpaf_sigmoid", "y": "prelu"})
    paper = get_config("fashion_mnist").paper
    assert gap == pytest.approx(
        paper["cpaf_sigmoid"]["test_accuracy"] - paper["prelu"]["test_accuracy"]
    )
    small = {**_t(0.0, 0.5, 0.01), "call": "tie"}
    text = rv.gap_clause([small], [small])
    assert text.endswith("in 1 of 1: the size of the paper's advantage is reproduced under "
                         "neither.")  # fmt: skip
    assert "significantly more accurate under both protocols in 0 of 1" in text
    wide = {**small, "high": gap / 100 + 0.001, "call": "higher"}
    assert rv.gap_clause([small], [wide]).endswith("in 0 of 1.")
    assert "in 1 of 1 comparisons" in rv.gap_clause([wide], [wide])


def test_first_tuning_note_counts_edge_choices_and_the_closest_calls(now):
    chosen = rr.chosen_lrs(now)
    lrs = sorted({r["lr"] for r in now if r["stage"] == "tune"}, key=float)
    edge = sum(lr in (lrs[0], lrs[-1]) for lr in chosen.values())
    margins = []
    for label in chosen:
        means = sorted((np.mean(list(_acc(now, "tune", label, lr).values())) for lr in lrs),
                       reverse=True)  # fmt: skip
        margins.append((round((means[0] - means[1]) * 10_000 * 3), label))
    note = st.first_tuning_note(now)
    assert note.startswith(f"{edge} of {len(chosen)} choices sit at an edge of this grid")
    m, label = min(margins)
    assert f"runner-up): {label} {m:,}" in note
    assert st.first_tuning_note([]) == ""
