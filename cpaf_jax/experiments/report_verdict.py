"""The report's verdict and method: the paper's 4.2 claim judged under both training protocols
(each row at its own tuned rate; every row at the paper's 1e-3), what holds under both, the
reading of the paper's baselines, and the rules every call follows.
"""

from __future__ import annotations

import math

from cpaf_jax.experiments import report_format as rf
from cpaf_jax.experiments import report_protocols as rp
from cpaf_jax.experiments.configs import get_config
from cpaf_jax.experiments.reproduction_plan import PAPER_LR

PROTOCOL_NAMES = {"own": "each row at its own tuned rate", "paper": f"every row at {PAPER_LR:g}"}
#: Rows whose distance to the paper's Table 2 the baseline reading gives, with the paper's
#: column for each (its ELU learns alpha).
PAPER_COLUMN = {"cpaf_sigmoid": "cpaf_sigmoid", "cpaf_relu": "cpaf_relu", "prelu": "prelu",
                "elu_learned": "elu"}  # fmt: skip


def claim_tests(rows: list[dict], protocol: str) -> list[dict]:
    """The claim's comparisons (``rp.CLAIM``) out of all main pairs under ``protocol`` (Holm
    over all of them, as in the pairs table)."""
    tests = {(t["x"], t["y"]): t for t in rp.protocol_tests(rows, rp.main_pairs(rows), protocol)}
    return [tests[p] for p in rp.CLAIM if p in tests]


def claim_status(tests: list[dict]) -> str:
    """``supported`` (every comparison significantly higher), ``contradicted`` (one is
    significantly lower), ``tied`` (every one equivalent), ``partly`` (some higher, none lower),
    else ``open``."""
    calls = [t["call"] for t in tests]
    if calls and all(c == "higher" for c in calls):
        return "supported"
    if "lower" in calls:
        return "contradicted"
    if calls and all(c == "tie" for c in calls):
        return "tied"
    return "partly" if "higher" in calls else "open"


STATUS_WORDS = {
    "supported": "supported (CPAF significantly more accurate in every comparison)",
    "contradicted": "contradicted (CPAF significantly less accurate in at least one comparison)",
    "tied": "not reproduced (CPAF equivalent within +-0.5 pp in every comparison)",
    "partly": "supported in part (CPAF significantly more accurate in some comparisons, less "
    "accurate in none)",
    "open": "not reproduced (CPAF significantly more accurate in no comparison, and not every "
    "comparison shown equivalent)",
}


def rates_note(rows: list[dict]) -> str:
    """Which rows are at a re-tuned rate and which still at the first tuning's."""
    _, source = rp.own_rates(rows)
    new = [a for a in rp.PAIR_ORDER if source.get(a) == "retuned"]
    old = [a for a in rp.PAIR_ORDER if source.get(a) == "first"]
    if not old:
        return "every main row at its re-tuned rate"
    if not new:
        return "every main row at its first tuning's rate (re-tuning pending)"
    return (
        f"re-tuned rates for {', '.join(new)}; the first tuning's for {', '.join(old)}, "
        "whose re-tuning or top-up is pending"
    )


def protocol_paragraph(rows: list[dict], protocol: str) -> str:
    """The claim's comparisons under one protocol and its status, in one paragraph."""
    tests = claim_tests(rows, protocol)
    note = f" ({rates_note(rows)})" if protocol == "own" else ""
    body = "; ".join(rp.call_sentence(t) for t in tests)
    return (
        f"**{PROTOCOL_NAMES[protocol].capitalize()}**{note}: {body}. The paper's claim "
        f"is {STATUS_WORDS[claim_status(tests)]}."
    )


def survival(own: list[dict], paper: list[dict]) -> str:
    """What holds under both protocols and what depends on the protocol, pair by pair."""
    same, differ = [], []
    by = {(t["x"], t["y"]): t for t in paper}
    for t in own:
        u = by.get((t["x"], t["y"]))
        if u is None:
            continue
        pair = f"{rf.name(t['x'])} - {rf.name(t['y'])}"
        if t["call"] == u["call"]:
            same.append(f"{pair} {rp.call_words(t)}")
        else:
            differ.append(f"{pair} ({rp.call_words(t)} at its own rate, "
                          f"{rp.call_words(u)} at {PAPER_LR:g})")  # fmt: skip
    s_own, s_paper = claim_status(own), claim_status(paper)
    both = {s_own, s_paper}
    head = ("Neither protocol supports the claim." if not both & {"supported", "partly"}
            else "The claim is supported under both protocols." if both <= {"supported"}
            else "Whether the claim is supported depends on the protocol.")  # fmt: skip
    text = (f"{head} The same call under both: {'; '.join(same) or 'none'}. Depends on the "
            f"protocol: {'; '.join(differ) or 'none'}.")  # fmt: skip
    return text + gap_clause(own, paper)


def paper_gap(t: dict) -> float | None:
    """The paper's Table 2 gap (pp) for the pair of ``t``; None where it has no figure."""
    paper = get_config("fashion_mnist").paper
    px = paper.get(PAPER_COLUMN.get(t["x"], t["x"]), {}).get("test_accuracy")
    py = paper.get(PAPER_COLUMN.get(t["y"], t["y"]), {}).get("test_accuracy")
    return None if px is None or py is None else px - py


def gap_clause(own: list[dict], paper: list[dict]) -> str:
    """How many of the paper's gaps lie above our 95% interval under both protocols."""
    above = 0
    for t, u in zip(own, paper, strict=True):
        gap = paper_gap(t)
        if gap is not None and all(gap > s["high"] * 100 for s in (t, u)):
            above += 1
    gaps = [g for g in map(paper_gap, own) if g is not None]
    if not gaps:
        return ""
    both = sum(t["call"] == u["call"] == "higher" for t, u in zip(own, paper, strict=True))
    text = (
        f" CPAF is significantly more accurate under both protocols in {both} of {len(own)} "
        f"comparisons. The paper's own gaps for these pairs "
        f"({', '.join(f'{g:+.2f}' for g in gaps)} pp) lie above our 95% interval under both "
        f"protocols in {above} of {len(gaps)}"
    )
    if above == len(gaps):
        return text + ": the size of the paper's advantage is reproduced under neither."
    return text + "."


def baseline_gaps(rows: list[dict], protocol: str) -> dict[str, float]:
    """Our mean accuracy minus the paper's Table 2, in pp, for ``PAPER_COLUMN``'s rows."""
    paper, rates = get_config("fashion_mnist").paper, rp.own_rates(rows)[0]
    out = {}
    for label, column in PAPER_COLUMN.items():
        ours = rf.t_of(rp.final_rows(rows, label, protocol, rates))["mean"]
        ref = paper.get(column, {}).get("test_accuracy")
        if ref is not None and not math.isnan(ours):
            out[label] = ours * 100 - ref
    return out


def baseline_reading(rows: list[dict]) -> str:
    """How far above the paper's Table 2 our rows are, CPAF against the baselines."""
    gaps = {p: baseline_gaps(rows, p) for p in rp.PROTOCOLS}
    if not gaps["own"]:
        return ""
    parts = [f"{rf.name(a)} {gaps['own'][a]:+.2f} pp ({gaps['paper'].get(a, math.nan):+.2f} "
             f"at {PAPER_LR:g})" for a in PAPER_COLUMN if a in gaps["own"]]  # fmt: skip
    cpaf = [gaps["own"][a] for a in ("cpaf_sigmoid", "cpaf_relu") if a in gaps["own"]]
    base = [gaps["own"][a] for a in ("prelu", "elu_learned") if a in gaps["own"]]
    text = ("Against the paper's Table 2 (its single runs), our means at each row's own rate "
            f"are: {'; '.join(parts)}.")  # fmt: skip
    if cpaf and base and min(base) - max(cpaf) > rp.MARGIN * 100:
        text += (" Our baselines exceed the paper's by more than our CPAF exceeds its CPAF, "
                 "so the paper's baselines look weak: its CPAF gaps are what baselines trained "
                 "less well than its CPAF would give (a reading, not a test: the paper reports "
                 "no spread).")  # fmt: skip
    return text


def margin_note() -> str:
    """Why the margin: against the smallest gap the paper reports for its claim."""
    gaps = [paper_gap({"x": x, "y": y}) for x, y in rp.CLAIM]
    smallest = min(g for g in gaps if g is not None)
    return (f"{rp.MARGIN * 100:g} pp is {rp.MARGIN * 10_000:.0f} of the 10,000 test images, "
            f"and below every gap the paper reports for its claim (the smallest: "
            f"{smallest:.2f} pp)")  # fmt: skip


def method_section() -> list[str]:
    """The protocols, the statistics, what counts as a tie and what counts as a dead run, all
    stated before any result."""
    from cpaf_jax.experiments.report_features import dead_policy
    from cpaf_jax.experiments.retuning import RETUNE_SEEDS

    return [
        "## Method", "",
        "**Two protocols.** Each 4.2 row is judged (a) at its own tuned rate, the rate of "
        "highest mean validation accuracy (its re-tuned rate, on seeds "
        f"{RETUNE_SEEDS[0]}-{RETUNE_SEEDS[-1]} that no final run uses, once that re-tuning is "
        "finished and the row's final runs at that rate have all their seeds; until then the "
        f"first tuning's rate, whose seeds 0-2 are also final seeds), and (b) at the paper's "
        f"fixed {PAPER_LR:g} for every row. A conclusion is said to hold when it holds under "
        "both.", "",
        "**Statistics.** Accuracies are on the 10,000 test images; intervals are 95% Student-t "
        "intervals of the mean over seeds; comparisons are paired t-tests over the seeds both "
        "rows have (a seed gives the same initial weights and data order to every activation), "
        "with Holm's adjustment within each table.", "",
        "**What counts as a tie.** A difference is significant when its Holm-adjusted p is "
        "below 5%. A tie is claimed only when an equivalence test shows it: two one-sided "
        f"paired t-tests (TOST) reject both 'the difference is at most -{rp.MARGIN * 100:g} pp' "
        f"and 'it is at least +{rp.MARGIN * 100:g} pp', with the larger of their p-values "
        "Holm-adjusted over the table below 5% (without the adjustment this is the 90% interval "
        f"lying inside +-{rp.MARGIN * 100:g} pp). The margin, fixed before the results: "
        f"{margin_note()}. A difference neither significant nor shown equivalent is reported "
        "as not distinguishable, not shown equivalent, never as a tie.", "",
        f"**Dead runs.** {dead_policy()}", "",
    ]  # fmt: skip


def _calls(tests: list[dict]) -> str:
    return "; ".join(f"{rf.name(t['x'])} - {rf.name(t['y'])} {rp.call_words(t)} "
                     f"({t['n']} seeds)" for t in tests)  # fmt: skip


def stage_bullets(rows: list[dict]) -> list[str]:
    """The verdict's lines on the controls, the half-learned rows, longer training and 4.1."""
    from cpaf_jax.experiments import report_stages as st
    from cpaf_jax.experiments.report_features import features_verdict

    out = []
    controls = rp.protocol_tests(rows, st.present_pairs(rows, st.CONTROL_PAIRS), "own")
    if controls:
        short = st.pending_seeds(rows, st.MATCHED, "final", st.rt.FINAL_SEEDS)
        out.append(f"- **Controls** (own rates): {_calls(controls)}."
                   + (f" Top-up to {st.rt.FINAL_SEEDS} seeds pending for "
                      f"{', '.join(short)}." if short else ""))  # fmt: skip
    half = rp.protocol_tests(rows, st.present_pairs(rows, st.half_pairs()), "own")
    out.append("- **Learning only a or only b**: " + (st.half_reading(half) if half else
               "pending (no row at its re-tuned rate with all its seeds yet)."))  # fmt: skip
    thirty = st.long_tests(rows, "long") if rf.labels_in(rows, "long", ()) else []
    # While some rows are missing, the sentence covers only the pairs among the rows there.
    waiting = st.pending_seeds(rows, st.rt.LONG_ACTIVATIONS, "long", st.rt.LONG_SEEDS)
    so_far = f" So far, among the rows trained; pending: {', '.join(waiting)}." if waiting else ""
    out.append(f"- **{st.rt.LONG_EPOCHS} epochs**: " + (st.ranking_sentence(
        st.long_tests(rows, "final"), thirty) + " " + st.longer_sentence(st.longer_tests(rows))
        + so_far if thirty else "pending."))  # fmt: skip
    feats = features_verdict(rows)
    if feats:
        out.append(f"- {feats}")
    return out


def verdict_section(rows: list[dict]) -> list[str]:
    """The short verdict: the claim under both protocols and what survives, the baseline
    reading, then one line per derived check."""
    own, paper = claim_tests(rows, "own"), claim_tests(rows, "paper")
    if not own:
        return []
    lines = ["## Verdict", "",
             f"- **4.2, CPAF more accurate than PReLU and ELU** (the paper's claim): with "
             f"{PROTOCOL_NAMES['own']} ({rates_note(rows)}) the claim is "
             f"{STATUS_WORDS[claim_status(own)]}; with {PROTOCOL_NAMES['paper']} it is "
             f"{STATUS_WORDS[claim_status(paper)]}. " + survival(own, paper)]  # fmt: skip
    reading = baseline_reading(rows)
    if reading:
        lines.append(f"- **The paper's baselines**: {reading}")
    return lines + stage_bullets(rows) + [""]


def protocols_section(rows: list[dict]) -> list[str]:
    """The claim's four comparisons under each protocol, in full."""
    if not claim_tests(rows, "own"):
        return []
    return ["## The paper's 4.2 claim under both protocols", "",
            protocol_paragraph(rows, "own"), "", protocol_paragraph(rows, "paper"), "",
            "Holm's adjustment over all pairs among the main activations (the tables below)."
            " A tie needs its equivalence test (method).", ""]  # fmt: skip
