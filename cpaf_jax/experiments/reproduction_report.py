"""REPRODUCTION.md from ``docs/reproduction/runs.csv`` alone (plus ``BENCHMARKS.json`` for the
CIFAR cost): every figure is computed here from the per-seed rows, none is typed into code.

Intervals are 95% Student-t intervals of the mean; pairwise tests are paired t-tests over seeds
(the same seed gives the same initial weights and data order for every activation), with
Holm-adjusted p-values within each table (``cpaf_jax.experiments.repro_stats``).
"""

from __future__ import annotations

import json
import math
import os

from cpaf_jax.experiments import (
    report_cost,
    report_features,
    report_figures,
    report_stages,
    report_verdict,
)
from cpaf_jax.experiments import report_format as fmt
from cpaf_jax.experiments import report_protocols as rp
from cpaf_jax.experiments import repro_stats as rs
from cpaf_jax.experiments.configs import get_config
from cpaf_jax.experiments.reproduction_plan import EXTRA, MAIN, PAPER_LR

# The checkout this package runs from; benchmarks/ sits next to cpaf_jax/ there.
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CIFAR_TRAIN_IMAGES = 50_000  # the official CIFAR-10/100 training sets
CONTROLS = ("cpaf_sigmoid_frozen", "cpaf_relu_frozen", "relu_bias", "relu_wide", "prelu_channel")
ALPHA = 0.05


_pct, _pp, _p, _ci = fmt.pct, fmt.pp, fmt.pval, fmt.ci
select, t_of, _labels = fmt.select, fmt.t_of, fmt.labels_in


def by_seed(rows: list[dict], key: str = "test_accuracy") -> dict[int, float]:
    """``{seed: value}`` of rows."""
    return {int(r["seed"]): float(r[key]) for r in rows}


def chosen_lrs(rows: list[dict]) -> dict[str, str]:
    """Each tuned label's learning rate (as in the CSV): the highest mean validation accuracy
    (ties: the smaller rate)."""
    out = {}
    for label in sorted({r["label"] for r in rows if r["stage"] == "tune"}):
        tuned = select(rows, "tune", label)
        means = {}
        for lr in sorted({r["lr"] for r in tuned}, key=float):
            means[lr] = t_of(select(rows, "tune", label, lr))["mean"]
        out[label] = max(means, key=lambda lr: (means[lr], -float(lr)))
    return out


def tune_section(rows: list[dict]) -> list[str]:
    """Mean validation accuracy per label and rate; the chosen rate in bold."""
    lines = ["## Learning rates chosen on the validation split", ""]
    chosen = chosen_lrs(rows)
    if not chosen:
        return lines + ["No tuning runs yet (`python -m train reproduce --stage tune`).", ""]
    lrs = sorted({r["lr"] for r in rows if r["stage"] == "tune"}, key=float)
    tuned = [r for r in rows if r["stage"] == "tune"]
    n_val = sorted({r["split"] for r in tuned})
    lines += [
        f"Validation accuracy (%, mean over seeds; split: {', '.join(n_val)}, images held out "
        "of the training set, never the test set); the chosen rate is in bold.",
        "",
        "| row | " + " | ".join(f"lr {lr}" for lr in lrs) + " | seeds | epochs |",
        "|---|" + "---|" * len(lrs) + "---|---|",
    ]
    for label in _labels(rows, "tune", MAIN + EXTRA + CONTROLS):
        cells = []
        for lr in lrs:
            s = t_of(select(rows, "tune", label, lr))
            cell = _pct(s["mean"]) if s["n"] else "-"
            cells.append(f"**{cell}**" if lr == chosen[label] else cell)
        group = select(rows, "tune", label)
        n = len({r["seed"] for r in group})
        ep = "/".join(sorted({r["epochs"] for r in group}))
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {n} | {ep} |")
    return lines + ["", report_stages.first_tuning_note(rows), ""]


def final_at(rows: list[dict], label: str, which: str, rates: dict | None = None) -> list:
    """The final rows of a label at its own tuned rate (``which="chosen"``; ``rates``: the
    own rates when known) or the paper's."""
    return rp.final_rows(rows, label, "own" if which == "chosen" else "paper", rates)


SOURCE_WORDS = {"retuned": "re-tuning", "first": "first tuning"}


def main_section(rows: list[dict]) -> list[str]:
    """4.2's table: mean, 95% interval and n at each row's own tuned rate (``report_protocols.
    own_rates``) and at the paper's 1e-3."""
    lines = ["## 4.2 Fashion-MNIST (Table 2), on the test set", ""]
    labels = _labels(rows, "final", MAIN + EXTRA + CONTROLS)
    if not labels:
        return lines + ["No final runs yet (`python -m train reproduce --stage final`).", ""]
    paper, (chosen, source) = get_config("fashion_mnist").paper, rp.own_rates(rows)
    lines += [
        "Accuracy in %; the paper's ELU learns its alpha, so its figure stands beside both of "
        "ours. Params: trainable weights of the whole network (activation parameters "
        "included). Own lr: the row's own tuned rate, from the re-tuning where it is finished "
        "(last column), else from the first tuning.",
        "",
        "| row | paper acc. | own lr | acc. (own lr) | 95% CI | n | acc. (lr "
        f"{PAPER_LR:g}) | 95% CI | n | loss (own lr) | params | own lr from |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in labels:
        a, b = final_at(rows, label, "chosen", chosen), final_at(rows, label, "paper")
        sa, sb, loss = t_of(a), t_of(b), t_of(a, "test_loss")
        ref = paper.get("elu" if label == "elu_learned" else label, {}).get("test_accuracy", "-")
        params = "/".join(sorted({r["params"] for r in select(rows, "final", label)}))
        loss_text = "-" if math.isnan(loss["mean"]) else f"{loss['mean']:.4f}"
        lines.append(
            f"| {label} | {ref} | {chosen.get(label, '-')} | {_pct(sa['mean'])} | {_ci(sa)} | "
            f"{sa['n']} | {_pct(sb['mean'])} | {_ci(sb)} | {sb['n']} | {loss_text} | {params} | "
            f"{SOURCE_WORDS.get(source.get(label), '-')} |"
        )
    return lines + [""]


def holm_tests(pairs, rows_of, key: str = "test_accuracy") -> list[dict]:
    """Paired tests ``first - second`` of column ``key`` by seed over ``rows_of(label)``,
    Holm-adjusted over the list of pairs."""
    tests = []
    for x, y in pairs:
        t = rs.paired(by_seed(rows_of(x), key), by_seed(rows_of(y), key))
        tests.append({"x": x, "y": y, **t})
    for t, adj in zip(tests, rs.holm([t["p"] for t in tests]), strict=True):
        t["holm"] = adj
    return tests


def _loss_diff(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:+.4f}"


def significant(tests: list[dict], sign: int) -> list[dict]:
    """The tests whose difference is significant after Holm's correction and has ``sign``
    (+1: first row higher, -1: lower)."""
    return [t for t in tests if t["holm"] < ALPHA and sign * t["mean"] > 0]


def _pair_table(tests: list[dict], fmt=_pp, unit: str = " (pp)") -> list[str]:
    lines = [
        f"| comparison | mean diff.{unit} | 95% CI{unit} | seeds | p | Holm p "
        "| significant at 5% |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in tests:
        sig = "-" if math.isnan(t["holm"]) else ("yes" if t["holm"] < ALPHA else "no")
        lines.append(
            f"| {t['x']} - {t['y']} | {fmt(t['mean'])} | {_ci(t, fmt)} | {t['n']} | "
            f"{_p(t['p'])} | {_p(t['holm'])} | {sig} |"
        )
    return lines + [""]


def pairs_section(rows: list[dict]) -> list[str]:
    """All pairs among the main activations, at each row's own tuned rate and at 1e-3, with
    their equivalence tests."""
    pairs = rp.main_pairs(rows)
    if not pairs:
        return []
    lines = ["## All pairs among the main activations", ""]
    for protocol, title in (
        ("own", "each at its own tuned rate"),
        ("paper", f"all at {PAPER_LR:g}"),
    ):
        lines += [
            f"Test accuracy, {title}: paired t-tests over the seeds both rows have; Holm's "
            f"adjustment over the {len(pairs)} comparisons of this table (t-tests and "
            "equivalence tests each).",
            "",
            *rp.judged_table(rp.protocol_tests(rows, pairs, protocol)),
        ]
    return lines


def ablation_pairs(rows: list[dict]) -> list[tuple[str, str, str]]:
    """``(first, second, kind)`` per CPAF base: per-element (a, b) against each other sharing
    at the same k (kind "sharing"), then each per-element k against k = 2, Table 1's count
    (kind "terms"); only pairs whose rows both ran."""
    cell = {(r["activation"], int(r["k"]), r["sharing"]): r["label"]
            for r in rows if r["stage"] == "ablation"}  # fmt: skip
    pairs = []
    for base in sorted({a for a, _, _ in cell}):
        ks = sorted({k for a, k, _ in cell if a == base})
        others = sorted({s for a, _, s in cell if a == base} - {"element"})
        pairs += [((base, k, "element"), (base, k, s), "sharing") for k in ks for s in others]
        pairs += [((base, k, "element"), (base, 2, "element"), "terms") for k in ks if k != 2]
    return [(cell[x], cell[y], kind) for x, y, kind in pairs if x in cell and y in cell]


def ablation_tests(rows: list[dict]) -> list[dict]:
    """``ablation_pairs`` as paired tests by seed (each with its ``"kind"``), Holm-adjusted
    over all of them."""
    pairs = ablation_pairs(rows)
    tests = holm_tests([(x, y) for x, y, _ in pairs], lambda lab: select(rows, "ablation", lab))
    return [{**t, "kind": kind} for t, (_, _, kind) in zip(tests, pairs, strict=True)]


def ablation_reading(tests: list[dict]) -> str:
    """How many sharing and k comparisons are significant, and which way, in one sentence."""

    def count(kind: str) -> str:
        group = [t for t in tests if t["kind"] == kind]
        up, down = len(significant(group, +1)), len(significant(group, -1))
        return f"{up} of {len(group)} significantly higher and {down} significantly lower"

    return (f"Per-element (a, b) against channel-wise or shared at the same k: "
            f"{count('sharing')}. Per-element k terms against k = 2: {count('terms')} (Holm "
            f"over the {len(tests)} comparisons, 5%).")  # fmt: skip


def ablation_section(rows: list[dict]) -> list[str]:
    """k = 1..4 terms x sharing, per CPAF base, then its paired tests."""
    labels = _labels(rows, "ablation", ())
    if not labels:
        return []
    lines = [
        "## Ablation: number of terms and parameter sharing (not in the paper)",
        "",
        "4.2's network on the test set at lr " + "/".join(sorted({r["lr"] for r in rows
        if r["stage"] == "ablation"})) + "; k != 2 starts from Table 1's a_i scaled by 2/k "
        "(the sum of the scales, so the initial slope and range, stay Table 1's).",
        "",
        "| activation | k | sharing | activation params | acc. (%) | 95% CI | loss | n | epochs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    key = lambda lab: (select(rows, "ablation", lab)[0]["activation"],  # noqa: E731
                       int(select(rows, "ablation", lab)[0]["k"]), lab)  # fmt: skip
    for label in sorted(labels, key=key):
        group = select(rows, "ablation", label)
        r0, s, loss = group[0], t_of(group), t_of(group, "test_loss")
        lines.append(
            f"| {r0['activation']} | {r0['k']} | {r0['sharing']} | {int(r0['activation_params']):,}"
            f" | {_pct(s['mean'])} | {_ci(s)} | {loss['mean']:.4f} | {s['n']} | {r0['epochs']} |"
        )
    tests = ablation_tests(rows)
    if not tests:
        return lines + [""]
    return lines + [
        "",
        "Paired t-tests over the seeds both rows have (same seeds, so the same network weights "
        "and data order), Holm's adjustment over this table. " + ablation_reading(tests),
        "",
        *_pair_table(tests),
    ]


PAPER_FIG14_PAIRS = 14_790  # Fig. 14 of the paper: the (a1, b1) pairs it plots


def count_section() -> list[str]:
    """Where the paper's 14,790 comes from, from our network's activation shapes."""
    from cpaf_jax.activations.registry import count_activation_params
    from cpaf_jax.models import build_model

    net = build_model("fashion_mnist", "cpaf_sigmoid")
    sizes = [math.prod(a.features_shape) for a in (net.act1, net.act2, net.act3, net.act4)]
    ours = count_activation_params(net)["cpaf_pairs"]
    terms = " + ".join(f"{n:,}" for n in sizes)
    reading = " + ".join(f"{n:,}" for n in sizes[:3] + [sizes[2]] + sizes[3:])
    exact = ours + sizes[2] == PAPER_FIG14_PAIRS
    return [
        f"## The {PAPER_FIG14_PAIRS:,} (a, b) pairs of Fig. 14",
        "",
        f"Our network has {terms} = {ours:,} per-element activations (3x3 VALID convolutions, "
        "2x2 pooling after the first two). "
        + (
            f"Every exact reading of {PAPER_FIG14_PAIRS:,} is {reading}: the paper counts one "
            f"more per-element activation on conv3's flattened {sizes[2]}-vector (or counts "
            "conv3 twice)."
            if exact
            else f"{ours:,} + {sizes[2]} is not {PAPER_FIG14_PAIRS:,}: the reading of the "
            "paper's count does not hold for this network."
        ),
        "",
    ]


def cifar_cost(bench_json: str | None = None) -> str:
    """The CIFAR runs' expected cost on the benchmarked machine, read from its results.

    Takes the training-step times of section 2 of ``BENCHMARKS.md`` from ``bench_json``
    (default: ``benchmarks/BENCHMARKS.json`` of the checkout this package runs from). Without
    that file (an installed package) the sentence points to the section instead.
    """
    path = bench_json or os.path.join(_REPO, "benchmarks", "BENCHMARKS.json")
    try:
        with open(path) as f:
            bench = json.load(f)
        rows = bench["sections"]["train_step"]["rows"]
        cifar = [r for r in rows if r["network"].startswith("CifarNet")]
        relu = [r for r in rows if r["activation"] == "relu"]
        s1 = next(r for r in relu if r["network"].startswith("CifarNet S1"))
        fash = next(r for r in relu if r["network"].startswith("FashionNet"))
    except (OSError, ValueError, KeyError, StopIteration):
        return (
            "Expected cost: section 2 of `BENCHMARKS.md` (`python -m benchmarks`) times a "
            "training step of each CIFAR structure."
        )
    epochs = get_config("cifar10", 1).epochs
    hours = [epochs * CIFAR_TRAIN_IMAGES / r["batch"] * r["step_ms"] / 3.6e6 for r in cifar]
    per_image = (s1["step_ms"] / s1["batch"]) / (fash["step_ms"] / fash["batch"])
    m, commit = bench["machine"], (bench.get("provenance") or {}).get("commit")
    at = f", commit `{commit[:12]}`" if commit else ""
    return (
        f"Expected cost, from section 2 of `BENCHMARKS.md` (`python -m benchmarks` on "
        f"{m['cpu_model']}, {m['cpu_count']} cores{at}): a Structure 1 training step with ReLU "
        f"took {s1['step_ms']:.2f} ms for {s1['batch']} images against {fash['step_ms']:.2f} ms "
        f"for {fash['batch']} images of the 4.2 network, about {per_image:.0f} times the time "
        f"per image; {epochs} epochs "
        f"of {CIFAR_TRAIN_IMAGES:,} images is then {min(hours):.1f}-{max(hours):.1f} hours of "
        "training steps per activation and seed on that machine (over the three structures "
        "and their activations), so these runs want a GPU."
    )


def cifar_section(bench_json: str | None = None) -> list[str]:
    """4.3 is not run here; its commands and cost."""
    cmds = [f"python -m train {ds} --structure {s} --seeds 5 --baseline relu --data-dir DIR"
            for ds in ("cifar10", "cifar100") for s in (1, 2, 3)]  # fmt: skip
    return [
        "## 4.3 CIFAR-10 and CIFAR-100 (Tables 3-6)",
        "",
        "CIFAR cannot be downloaded here, so these were not run. The commands:",
        "",
        "```bash",
        *cmds,
        "```",
        "",
        cifar_cost(bench_json),
        "",
    ]


def _header(rows: list[dict], source: str) -> list[str]:
    commits = sorted({r["commit"][:12] for r in rows if r["commit"]})
    dirty = sum(1 for r in rows if r["dirty"] == "True")
    return [
        "# Reproduction of Ko, Li, Ko (2022)",
        "",
        f"Generated by `python -m train reproduce --report-only` from `{source}` "
        f"({len(rows)} trained members; commits {', '.join(f'`{c}`' for c in commits) or '-'}"
        f"; {dirty} from a dirty tree). Intervals are 95% Student-t intervals of the mean; "
        "comparisons are paired t-tests over seeds (a seed gives the same initial weights and "
        "data order to every activation) with Holm-adjusted p-values within each table.",
        "",
    ]


def render(
    rows: list[dict],
    bench_json: str | None = None,
    source: str = "docs/reproduction/runs.csv",
    figures_dir: str | None = None,
) -> str:
    """REPRODUCTION.md's text from runs.csv's rows (see ``cpaf_jax.experiments.runs_csv``),
    ``bench_json`` (default: this checkout's ``benchmarks/BENCHMARKS.json``) and the figures'
    data in ``figures_dir`` (None: the figures are reported pending); ``source`` names the
    file in the header."""
    bench = bench_json or os.path.join(_REPO, "benchmarks", "BENCHMARKS.json")
    lines = _header(rows, source) + report_verdict.verdict_section(rows)
    lines += report_verdict.method_section() + report_verdict.protocols_section(rows)
    lines += report_stages.retune_section(rows) + tune_section(rows) + main_section(rows)
    lines += pairs_section(rows) + report_stages.controls_section(rows)
    lines += report_stages.half_section(rows) + report_stages.long_section(rows)
    lines += ablation_section(rows) + report_features.features_section(rows)
    lines += report_figures.figures_section(figures_dir) + count_section()
    lines += report_cost.table6_section(bench) + cifar_section(bench_json)
    return "\n".join(lines).rstrip("\n") + "\n"
