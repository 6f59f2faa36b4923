"""The report's sections on the stages derived from runs.csv: the re-tuning on a wider grid,
the controls at 20 seeds, CPAF learning only a or only b, and 30-epoch training. Each says
plainly what is still to run.
"""

from __future__ import annotations

import itertools

from cpaf_jax.experiments import report_format as rf
from cpaf_jax.experiments import report_protocols as rp
from cpaf_jax.experiments import retuning as rt
from cpaf_jax.experiments.reproduction_plan import VALIDATION_IMAGES

#: (row, the row it is a control for): frozen (a, b) against learned; matched baselines.
CONTROL_PAIRS = (
    ("cpaf_sigmoid", "cpaf_sigmoid_frozen"), ("cpaf_relu", "cpaf_relu_frozen"),
    ("cpaf_sigmoid", "relu_bias"), ("cpaf_relu", "relu_bias"),
    ("cpaf_sigmoid", "relu_wide"), ("cpaf_relu", "relu_wide"),
    ("cpaf_sigmoid", "prelu_channel"), ("cpaf_relu", "prelu_channel"),
)  # fmt: skip
MATCHED = ("relu_bias", "relu_wide", "prelu_channel")


def half_pairs() -> list[tuple[str, str]]:
    """Per CPAF base: learning both against only a and only b, then each against frozen."""
    out = []
    for base in ("cpaf_sigmoid", "cpaf_relu"):
        a, b, frozen = f"{base}_a_only", f"{base}_b_only", f"{base}_frozen"
        out += [(base, a), (base, b), (a, frozen), (b, frozen)]
    return out


def present_pairs(rows: list[dict], pairs) -> list[tuple[str, str]]:
    """The pairs whose rows both have final runs at their own tuned rates."""
    rates = rp.own_rates(rows)[0]
    have = {a for a in {x for p in pairs for x in p} if rp.final_rows(rows, a, "own", rates)}
    return [(x, y) for x, y in pairs if x in have and y in have]


def retune_margin(rows: list[dict], label: str, stage: str = "retune") -> int | None:
    """Validation predictions (images x seeds) by which the best rate of ``stage`` beat the
    runner-up."""
    group = [r for r in rows if r["stage"] == stage and r["label"] == label]
    means = sorted((rf.t_of([r for r in group if r["lr"] == lr])["mean"] for lr in
                    {r["lr"] for r in group}), reverse=True)  # fmt: skip
    if len(means) < 2:
        return None
    seeds = len({r["seed"] for r in group})
    return round((means[0] - means[1]) * VALIDATION_IMAGES * seeds)


def first_tuning_note(rows: list[dict]) -> str:
    """How many first-tuning choices sit at an edge of its grid, and the closest calls."""
    chosen = rt.chosen_rates(rows, "tune")
    lrs = sorted({r["lr"] for r in rows if r["stage"] == "tune"}, key=float)
    if not chosen:
        return ""
    edge = [a for a, lr in chosen.items() if lr in (lrs[0], lrs[-1])]
    margins = {a: retune_margin(rows, a, "tune") for a in chosen}
    close = sorted((m, a) for a, m in margins.items() if m is not None)[:3]
    return (
        f"{len(edge)} of {len(chosen)} choices sit at an edge of this grid; the closest "
        "calls (validation predictions, images x seeds, between the chosen rate and the "
        f"runner-up): {', '.join(f'{a} {m:,}' for m, a in close)}. The re-tuning above "
        "widens the grid, on seeds no final run uses."
    )


def at_edge(rows: list[dict], label: str, lr: str) -> bool:
    """Whether ``lr`` is the lowest or highest rate of ``label``'s re-tuning grid."""
    grid = rt.retune_rates(rows, label)
    return lr in (f"{grid[0]:g}", f"{grid[-1]:g}")


def _retune_line(rows: list[dict], label: str, lrs: list[str], first: dict) -> str:
    done = rt.retuned_rates(rows).get(label)
    cells = []
    for lr in lrs:
        s = rf.t_of(rf.select(rows, "retune", label, lr))
        cell = rf.pct(s["mean"]) if s["n"] else ""
        cells.append(f"**{cell}**" if lr == done else cell)
    edge = "-" if done is None else ("yes" if at_edge(rows, label, done) else "no")
    changed = "-" if done is None or label not in first else (
        "yes" if first[label] != done else "no")  # fmt: skip
    margin = retune_margin(rows, label) if done else None
    return (f"| {label} | " + " | ".join(cells) + f" | {done or 'pending'} | "
            f"{first.get(label, '-')} | {changed} | {edge} | "
            f"{'-' if margin is None else f'{margin:,}'} |")  # fmt: skip


def retune_section(rows: list[dict]) -> list[str]:
    """The re-tuning: validation accuracy per rate, the choice, whether it changed, whether it
    sits at an edge of the grid, and by how many validation predictions it was decided."""
    labels = [r.label for r in rt.rows_4_2("retune", lambda a: 1)]
    lrs = sorted({r["lr"] for r in rows if r["stage"] == "retune"}, key=float)
    done = rt.retuned_rates(rows)
    pending = [a for a in labels if a not in done]
    seeds = ", ".join(str(s) for s in rt.RETUNE_SEEDS)
    grid = ", ".join(f"{x:g}" for x in rt.RETUNE_LRS)
    lines = ["## Learning rates re-tuned on a wider grid", "",
             f"Every 4.2 row, and CPAF learning only a or only b, on the validation split "
             f"({VALIDATION_IMAGES:,} training images held out) at {grid} (half-decade steps), "
             f"seeds {seeds}, which no final run uses (final seeds start at 0). A row whose best "
             "rate is the highest or lowest tried gets the next half-decade beyond it until "
             "its best lies inside. Mean validation accuracy (%); the re-tuned rate in bold; "
             "margin: validation predictions (images x seeds) between the best rate and the "
             "runner-up.", ""]  # fmt: skip
    if not lrs:
        return lines + ["Pending: no re-tuning run has finished yet.", ""]
    lines += ["| row | " + " | ".join(f"lr {lr}" for lr in lrs) + " | re-tuned lr | first lr "
              "| changed | at an edge | margin |", "|---|" + "---|" * (len(lrs) + 5)]  # fmt: skip
    first = rt.chosen_rates(rows, "tune")
    lines += [_retune_line(rows, a, lrs, first) for a in labels if a in done]
    changed = [a for a in done if a in first and first[a] != done[a]]
    edge = [a for a in done if at_edge(rows, a, done[a])]
    lines += ["", f"{len(done)} of {len(labels)} rows re-tuned; choice changed from the first "
              f"tuning: {', '.join(changed) or 'none'}; at an edge of its grid: "
              f"{', '.join(edge) or 'none'}."]  # fmt: skip
    if pending:
        lines.append(f"Pending (re-tuning not finished): {', '.join(pending)}.")
    return lines + [""]


def pending_seeds(rows: list[dict], labels, stage: str, want: int) -> list[str]:
    """``"label (n of want)"`` for labels with fewer than ``want`` seeds in ``stage`` at every
    rate (the rate with the most seeds counts)."""
    out = []
    for a in labels:
        group = [r for r in rows if r["stage"] == stage and r["label"] == a]
        have = max([len(rf.select(group, stage, a, lr)) for lr in {r["lr"] for r in group}] or [0])
        if have < want:
            out.append(f"{a} ({have} of {want})")
    return out


def controls_section(rows: list[dict]) -> list[str]:
    """Frozen (a, b) and the matched baselines against learned CPAF, with TOST."""
    tests = rp.protocol_tests(rows, present_pairs(rows, CONTROL_PAIRS), "own")
    if not tests:
        return []
    short = pending_seeds(rows, MATCHED, "final", rt.FINAL_SEEDS)
    lines = [
        "## Controls: frozen (a, b) and matched baselines",
        "",
        "`cpaf_*_frozen`: CPAF at Table 1's (a, b), never trained (the initial shape without "
        "learning); `relu_bias`: relu(y + c) with a learned per-element c (the untied bias a "
        "per-element b gives); `relu_wide`: ReLU FashionNet with every width multiplied so its "
        "weight count matches the per-element CPAF network (params column above); "
        "`prelu_channel`: He et al.'s channel-wise PReLU. Each row at its own tuned rate; Holm "
        "over this table, for the t-tests and for the equivalence tests.",
        "",
        *rp.judged_table(tests),
    ]
    if short:
        lines += [f"Pending: the controls' top-up to {rt.FINAL_SEEDS} seeds (seeds so far): "
                  f"{', '.join(short)}.", ""]  # fmt: skip
    return lines


def half_section(rows: list[dict]) -> list[str]:
    """CPAF learning only a (b frozen at Table 1's) or only b (a frozen), against learning
    both and against neither, at each row's own tuned rate."""
    lines = ["## What CPAF's gain is made of: learning only a, or only b", "",
             "`cpaf_*_a_only` learns the per-element scales a_i with the shifts b_i frozen at "
             "Table 1's; `cpaf_*_b_only` learns the per-element shifts b_i (an untied bias inside "
             "each term) with a_i frozen. Against learning both and against learning neither "
             "(frozen), each at its own tuned rate; Holm over this table.", ""]  # fmt: skip
    pending = pending_seeds(rows, rt.HALF_LEARNED, "final", rt.FINAL_SEEDS)
    tests = rp.protocol_tests(rows, present_pairs(rows, half_pairs()), "own")
    if tests:
        lines += rp.judged_table(tests)
        lines += [half_reading(tests), ""]
    if pending:
        lines += [f"Pending: the a-only and b-only rows at {rt.FINAL_SEEDS} seeds (seeds so "
                  f"far): {', '.join(pending)}.", ""]  # fmt: skip
    return lines


def half_reading(tests: list[dict]) -> str:
    """Per CPAF base, in words: each half-learned row against learning neither and both, then
    what the gain is made of (:func:`gain_source`)."""
    by = {(t["x"], t["y"]): t for t in tests}
    text = []
    for base in ("cpaf_sigmoid", "cpaf_relu"):
        for half, what in (("a_only", "only a"), ("b_only", "only b")):
            row = f"{base}_{half}"
            full, none = by.get((base, row)), by.get((row, f"{base}_frozen"))
            parts = []
            if none:
                parts.append(f"against frozen: {rp.call_words(none)}")
            if full:
                # full - half: "higher" means learning both is ahead of learning one.
                parts.append(f"learning both against it: {rp.call_words(full)}")
            if parts:
                text.append(f"{rf.name(base)} learning {what}: {'; '.join(parts)}.")
        source = gain_source(by, base)
        if source:
            text.append(f"So for {rf.name(base)}, {source}.")
    return " ".join(text)


def recovers(by: dict, base: str, half: str) -> bool | None:
    """Whether learning only ``half`` recovers learned CPAF's gain: True when it is
    significantly above frozen and learning both is shown equivalent to it or below it (TOST:
    never from a non-significant difference alone); False when learning both is significantly
    above it, or it is not above frozen; None when undetermined or not run."""
    full, none = by.get((base, f"{base}_{half}")), by.get((f"{base}_{half}", f"{base}_frozen"))
    if full is None or none is None or "-" in (full["call"], none["call"]):
        return None
    if full["call"] == "higher" or none["call"] in ("lower", "tie"):
        return False
    if none["call"] == "higher" and full["call"] in ("tie", "lower"):
        return True
    return None


GAIN_WORDS = {
    (False, True): "learning the shifts b alone recovers the gain and learning the scales a "
    "alone does not: the untied per-element shift (a bias inside each term) is enough",
    (True, False): "learning the scales a alone recovers the gain and learning the shifts b "
    "alone does not: the learned scales are enough",
    (True, True): "either half alone recovers the gain",
    (False, False): "neither half alone recovers the gain: it needs both a and b",
    (None, True): "learning the shifts b alone recovers the gain; whether the scales a alone "
    "do is not determined",
    (True, None): "learning the scales a alone recovers the gain; whether the shifts b alone "
    "do is not determined",
}


def gain_source(by: dict, base: str) -> str:
    """What learned CPAF's gain over frozen is made of, by rule (:func:`recovers`)."""
    key = (recovers(by, base, "a_only"), recovers(by, base, "b_only"))
    if key == (None, None) and not any((base, f"{base}_{h}") in by for h in ("a_only", "b_only")):
        return ""
    return GAIN_WORDS.get(key, "what the gain is made of is not determined at this sample size")


def long_rates(rows: list[dict]) -> dict[str, str]:
    """label -> the rate its 30-epoch row trained at, for the rows that have one."""
    labels = rf.labels_in(rows, "long", rt.LONG_ACTIVATIONS)
    return {a: rf.select(rows, "long", a)[0]["lr"] for a in labels}


def long_tests(rows: list[dict], stage: str) -> list[dict]:
    """Pairs among the 30-epoch rows: at 30 epochs (``stage="long"``) or at 10 epochs
    (``"final"``), each at the rate its 30-epoch row trained at."""
    rate = long_rates(rows)
    pairs = list(itertools.combinations(rate, 2))
    return rp.judged_tests(pairs, lambda a: rf.select(rows, stage, a, rate[a]))


def longer_tests(rows: list[dict]) -> list[dict]:
    """Each 30-epoch row against the same row at 10 epochs and the same rate, paired over the
    seeds both have (a seed gives both runs the same initial weights and data order)."""
    runs, pairs = {}, []
    for a, lr in long_rates(rows).items():
        x, y = f"{a} at {rt.LONG_EPOCHS}", f"{a} at 10"
        runs[x], runs[y] = rf.select(rows, "long", a, lr), rf.select(rows, "final", a, lr)
        pairs.append((x, y))
    return rp.judged_tests(pairs, runs.__getitem__)


def longer_sentence(tests: list[dict]) -> str:
    """What the extra epochs did to each row, in one sentence (one reading when all share it)."""
    names = [f"{rf.name(t['x'].rsplit(' at ', 1)[0])} {rf.pp(t['mean'])} pp" for t in tests]
    head = f"{rt.LONG_EPOCHS} epochs against 10, row by row (paired): "
    if len({t["call"] for t in tests}) == 1:
        return f"{head}{rp.call_words(tests[0])} for every row ({', '.join(names)})."
    calls = [rp.call_words(t) for t in tests]
    return head + "; ".join(f"{n}, {c}" for n, c in zip(names, calls, strict=True)) + "."


def ranking_holds(ten: list[dict], thirty: list[dict]) -> list[str]:
    """The pairs whose significant direction flips between 10 and 30 epochs."""
    flips = []
    for a, b in zip(ten, thirty, strict=True):
        if {a["call"], b["call"]} == {"higher", "lower"}:
            flips.append(f"{a['x']} - {a['y']}")
    return flips


def significance_changes(ten: list[dict], thirty: list[dict]) -> tuple[list[str], list[str]]:
    """``(lost, gained)``: the pairs significant at 10 epochs and not at 30, and the reverse
    (a sign flip counts in neither: :func:`ranking_holds` names it)."""
    sig = ("higher", "lower")
    pairs = [(f"{rf.name(a['x'])} - {rf.name(a['y'])}", a["call"] in sig, b["call"] in sig)
             for a, b in zip(ten, thirty, strict=True)]  # fmt: skip
    return [n for n, s10, s30 in pairs if s10 and not s30], [
        n for n, s10, s30 in pairs if s30 and not s10]  # fmt: skip


def ranking_sentence(ten: list[dict], thirty: list[dict]) -> str:
    """Whether the ranking holds from 10 to 30 epochs, and which differences lose or gain
    significance (the 30-epoch rows have fewer seeds, so less power)."""
    flips = ranking_holds(ten, thirty)
    if flips:
        text = ("The ranking does not hold: the significant difference changes sign for "
                f"{', '.join(flips)}.")  # fmt: skip
    else:
        text = (f"The ranking holds: no significant difference changes sign between 10 and "
                f"{rt.LONG_EPOCHS} epochs.")  # fmt: skip
    lost, gained = significance_changes(ten, thirty)
    n30 = max((t["n"] for t in thirty), default=0)
    n10 = max((t["n"] for t in ten), default=0)
    if lost:
        text += (f" Significant at 10 epochs but not at {rt.LONG_EPOCHS} ({n30} seeds against "
                 f"{n10}): {', '.join(lost)}.")  # fmt: skip
    if gained:
        text += f" Significant only at {rt.LONG_EPOCHS} epochs: {', '.join(gained)}."
    return text


def _long_line(rows: list[dict], label: str) -> str:
    long = rf.select(rows, "long", label)
    lr = long[0]["lr"]
    s30, s10 = rf.t_of(long), rf.t_of(rf.select(rows, "final", label, lr))
    return (f"| {label} | {lr} | {long[0]['epochs']} | {rf.pct(s30['mean'])} | {rf.ci(s30)} | "
            f"{s30['n']} | {rf.pct(s10['mean'])} | {rf.ci(s10)} | {s10['n']} |")  # fmt: skip


def long_section(rows: list[dict]) -> list[str]:
    """30-epoch training beside 10 epochs at the same rate, its pairs, whether the ranking
    holds, and each row against itself at 10 epochs."""
    lines = ["## Longer training: does the ranking hold?", "",
             f"{', '.join(rt.LONG_ACTIVATIONS)} for {rt.LONG_EPOCHS} epochs at their re-tuned "
             f"rates, {rt.LONG_SEEDS} seeds, on the test set, beside the same rows at 10 epochs "
             "and the same rate.", ""]  # fmt: skip
    labels = rf.labels_in(rows, "long", rt.LONG_ACTIVATIONS)
    pending = pending_seeds(rows, rt.LONG_ACTIVATIONS, "long", rt.LONG_SEEDS)
    if labels:
        lines += ["| row | lr | epochs | acc. (%) | 95% CI | n | acc. at 10 epochs | 95% CI | n |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        lines += [_long_line(rows, a) for a in labels] + [""]
        thirty, ten = long_tests(rows, "long"), long_tests(rows, "final")
    if labels and thirty:
        lines += [f"Pairs at {rt.LONG_EPOCHS} epochs (Holm over this table):", "",
                  *rp.judged_table(thirty), "The same pairs at 10 epochs and the same rates:",
                  "", *rp.judged_table(ten), ranking_sentence(ten, thirty), ""]  # fmt: skip
        longer = longer_tests(rows)
        lines += [f"Each row at {rt.LONG_EPOCHS} epochs against itself at 10 (same rate, paired "
                  "over its seeds; Holm over this table):", "", *rp.judged_table(longer),
                  longer_sentence(longer), ""]  # fmt: skip
    if pending:
        lines += [f"Pending: the {rt.LONG_EPOCHS}-epoch rows (seeds so far): "
                  f"{', '.join(pending)}.", ""]  # fmt: skip
    return lines
