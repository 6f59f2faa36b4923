"""The two training protocols the reproduction's verdict is judged under, and what counts as a
tie: each row at its own tuned rate, or every row at the paper's fixed 1e-3; paired t-tests
(Holm) for differences and two one-sided tests (TOST, Holm) for ties within ``MARGIN``.
"""

from __future__ import annotations

import itertools
import math

from cpaf_jax.experiments import repro_stats as rs
from cpaf_jax.experiments.reproduction_plan import MAIN, PAPER_LR
from cpaf_jax.experiments.retuning import chosen_rates, retuned_rates, target_seeds
from cpaf_jax.experiments.stats import equivalence_test

#: The equivalence margin of a tie, in accuracy (0.5 percentage points).
MARGIN = 0.005
ALPHA = 0.05
PROTOCOLS = ("own", "paper")
#: The main activations in the order pairs are formed: CPAF first, so a difference reads
#: "CPAF minus the other".
PAIR_ORDER = ("cpaf_sigmoid", "cpaf_relu", *(a for a in MAIN if not a.startswith("cpaf")))
#: The paper's claim on 4.2: CPAF more accurate than PReLU and (learned-alpha) ELU.
CLAIM = tuple(itertools.product(("cpaf_sigmoid", "cpaf_relu"), ("prelu", "elu_learned")))


def main_pairs(rows: list[dict]) -> list[tuple[str, str]]:
    """Every pair among the main activations that has final runs (tanh included)."""
    have = {r["label"] for r in rows if r["stage"] == "final"}
    return list(itertools.combinations([a for a in PAIR_ORDER if a in have], 2))


def _seeds_at(rows: list[dict], label: str, lr: str) -> int:
    return len({r["seed"] for r in rows if r["stage"] == "final" and r["label"] == label
                and r["lr"] == lr})  # fmt: skip


def own_rates(rows: list[dict]) -> tuple[dict[str, str], dict[str, str]]:
    """Each final row's own tuned rate (as runs.csv writes it) and where it comes from.

    The re-tuned rate (``retuning.retuned_rates``) once its re-tuning is finished and the row's
    ``final`` runs at that rate have every seed they are due (``retuning.target_seeds``);
    until then the first tuning's choice.

    Returns:
      ``(rates, source)``: label -> rate, and label -> ``"retuned"`` or ``"first"``.
    """
    first, retuned = chosen_rates(rows, "tune"), retuned_rates(rows)
    rates, source = {}, {}
    for label in sorted(set(first) | set(retuned)):
        new = retuned.get(label)
        due = None if new is None else target_seeds(label, new, new, first.get(label))
        if new is not None and _seeds_at(rows, label, new) >= due:
            rates[label], source[label] = new, "retuned"
        elif label in first:
            rates[label], source[label] = first[label], "first"
    return rates, source


def rate_of(rows: list[dict], label: str, protocol: str, rates: dict | None = None) -> str | None:
    """The rate a row is judged at under ``protocol`` (``"own"`` or ``"paper"``); ``rates``:
    ``own_rates(rows)[0]`` when the caller has it already."""
    if protocol != "own":
        return f"{PAPER_LR:g}"
    return (own_rates(rows)[0] if rates is None else rates).get(label)


def final_rows(rows: list[dict], label: str, protocol: str, rates: dict | None = None) -> list:
    """A label's final rows at its rate under ``protocol`` (``rates`` as for :func:`rate_of`)."""
    lr = rate_of(rows, label, protocol, rates)
    return [r for r in rows if r["stage"] == "final" and r["label"] == label and r["lr"] == lr]


def _by_seed(group: list[dict], key: str = "test_accuracy") -> dict[int, float]:
    return {int(r["seed"]): float(r[key]) for r in group}


def judged_tests(pairs, rows_of, margin: float = MARGIN, key: str = "test_accuracy") -> list:
    """Paired t-tests of ``first - second`` (Holm over the list) and their TOST within
    ``+-margin`` (Holm over the list), each with its ``"call"`` (:func:`call`)."""
    tests = []
    for x, y in pairs:
        a, b = _by_seed(rows_of(x), key), _by_seed(rows_of(y), key)
        eq = equivalence_test(a, b, margin)
        tests.append({"x": x, "y": y, **rs.paired(a, b), "p_eq": eq["p_value"],
                      "eq_low": eq["ci90_low"], "eq_high": eq["ci90_high"]})  # fmt: skip
    for t, adj, adj_eq in zip(tests, rs.holm([t["p"] for t in tests]),
                              rs.holm([t["p_eq"] for t in tests]), strict=True):  # fmt: skip
        t.update(holm=adj, holm_eq=adj_eq)
        t["call"] = call(t)
    return tests


def call(t: dict) -> str:
    """``"higher"`` / ``"lower"`` (Holm p < 5%, first row against second), ``"tie"`` (TOST,
    Holm p < 5%: the difference lies within the margin), else ``"open"`` (not distinguishable,
    not shown equivalent); ``"-"`` below two seeds."""
    if math.isnan(t["holm"]):
        return "-"
    if t["holm"] < ALPHA:
        return "higher" if t["mean"] > 0 else "lower"
    return "tie" if t["holm_eq"] < ALPHA else "open"


CALL_WORDS = {"higher": "significantly higher", "lower": "significantly lower",
              "tie": "equivalent within +-0.5 pp", "open": "not distinguishable, not shown "
              "equivalent", "-": "not tested (fewer than two seeds)"}  # fmt: skip


def call_words(t: dict) -> str:
    """The call of ``t`` in words; a significant difference that is also shown to lie within
    the margin says so."""
    words = CALL_WORDS[t["call"]]
    if t["call"] in ("higher", "lower") and t["holm_eq"] < ALPHA:
        words += f", yet within +-{MARGIN * 100:g} pp"
    return words


def protocol_tests(rows: list[dict], pairs, protocol: str) -> list[dict]:
    """:func:`judged_tests` of final rows under ``protocol``."""
    rates = own_rates(rows)[0]
    return judged_tests(pairs, lambda label: final_rows(rows, label, protocol, rates))


def judged_table(tests: list[dict], fmt=None, unit: str = " (pp)") -> list[str]:
    """Markdown table of :func:`judged_tests`: difference, 95% interval, p, Holm p, whether
    significant, the 90% interval and Holm p of the TOST, and the call in words."""
    from cpaf_jax.experiments import report_format as rf

    fmt = fmt or rf.pp
    lines = [
        f"| comparison | mean diff.{unit} | 95% CI{unit} | seeds | p | Holm p | significant at 5% "
        f"| 90% CI{unit} | TOST Holm p | reading |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in tests:
        sig = "-" if math.isnan(t["holm"]) else ("yes" if t["holm"] < ALPHA else "no")
        eq = {"low": t["eq_low"], "high": t["eq_high"]}
        lines.append(
            f"| {t['x']} - {t['y']} | {fmt(t['mean'])} | {rf.ci(t, fmt)} | {t['n']} | "
            f"{rf.pval(t['p'])} | {rf.pval(t['holm'])} | {sig} | {rf.ci(eq, fmt)} | "
            f"{rf.pval(t['holm_eq'])} | {call_words(t)} |"
        )
    return lines + [""]


def call_sentence(t: dict) -> str:
    """One judged comparison in words: the difference with its interval and the call."""
    from cpaf_jax.experiments import report_format as rf

    return (f"{rf.name(t['x'])} - {rf.name(t['y'])}: {rf.pp(t['mean'])} pp "
            f"{rf.ci(t, rf.pp)} ({t['n']} seeds), {call_words(t)}")  # fmt: skip
