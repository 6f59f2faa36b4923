"""REPRODUCTION.md from ``docs/reproduction/runs.csv`` alone (plus ``BENCHMARKS.json`` for the
CIFAR cost): every figure is computed here from the per-seed rows, none is typed into code.

Intervals are 95% Student-t intervals of the mean; pairwise tests are paired t-tests over seeds
(the same seed gives the same initial weights and data order for every activation), with
Holm-adjusted p-values within each table (``cpaf_jax.experiments.repro_stats``).
"""

from __future__ import annotations

import itertools
import json
import math
import os

from cpaf_jax.experiments import repro_stats as rs
from cpaf_jax.experiments.configs import get_config
from cpaf_jax.experiments.reproduction_plan import EXTRA, FEATURES_ACTIVATIONS, MAIN, PAPER_LR

# The checkout this package runs from; benchmarks/ sits next to cpaf_jax/ there.
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CIFAR_TRAIN_IMAGES = 50_000  # the official CIFAR-10/100 training sets
CONTROLS = ("cpaf_sigmoid_frozen", "cpaf_relu_frozen", "relu_bias", "relu_wide", "prelu_channel")
#: (row, the row it is a control for): frozen (a, b) against learned; matched baselines.
CONTROL_PAIRS = (
    ("cpaf_sigmoid", "cpaf_sigmoid_frozen"), ("cpaf_relu", "cpaf_relu_frozen"),
    ("cpaf_sigmoid", "relu_bias"), ("cpaf_relu", "relu_bias"),
    ("cpaf_sigmoid", "relu_wide"), ("cpaf_relu", "relu_wide"),
    ("cpaf_sigmoid", "prelu_channel"), ("cpaf_relu", "prelu_channel"),
)  # fmt: skip
ALPHA = 0.05


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 100:.2f}"


def _pp(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 100:+.2f}"


def _p(p: float) -> str:
    if math.isnan(p):
        return "-"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _ci(s: dict, fmt=_pct) -> str:
    return "-" if math.isnan(s["low"]) else f"[{fmt(s['low'])}, {fmt(s['high'])}]"


def select(rows: list[dict], stage: str, label: str, lr: str | None = None) -> list[dict]:
    """The rows of a stage and label (at one learning rate, as written in the CSV)."""
    return [
        r for r in rows
        if r["stage"] == stage and r["label"] == label and (lr is None or r["lr"] == lr)
    ]  # fmt: skip


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


def t_of(rows: list[dict], key: str = "test_accuracy") -> dict:
    """``t_interval`` of a column of rows."""
    return rs.t_interval([float(r[key]) for r in rows])


def _labels(rows: list[dict], stage: str, order) -> list[str]:
    present = {r["label"] for r in rows if r["stage"] == stage}
    return [x for x in order if x in present] + sorted(present - set(order))


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
    return lines + [""]


def final_at(rows: list[dict], label: str, which: str) -> list[dict]:
    """The final rows of a label at its chosen rate (``which="chosen"``) or the paper's."""
    lr = chosen_lrs(rows).get(label) if which == "chosen" else f"{PAPER_LR:g}"
    return select(rows, "final", label, lr) if lr is not None else []


def main_section(rows: list[dict]) -> list[str]:
    """4.2's table: mean, 95% interval and n at the chosen rate and at the paper's 1e-3."""
    lines = ["## 4.2 Fashion-MNIST (Table 2), on the test set", ""]
    labels = _labels(rows, "final", MAIN + EXTRA + CONTROLS)
    if not labels:
        return lines + ["No final runs yet (`python -m train reproduce --stage final`).", ""]
    paper, chosen = get_config("fashion_mnist").paper, chosen_lrs(rows)
    lines += [
        "Accuracy in %; the paper's ELU learns its alpha, so its figure stands beside both of "
        "ours. Params: trainable weights of the whole network (activation parameters "
        "included).",
        "",
        "| row | paper acc. | chosen lr | acc. (chosen lr) | 95% CI | n | acc. (lr "
        f"{PAPER_LR:g}) | 95% CI | n | loss (chosen lr) | params |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in labels:
        a, b = final_at(rows, label, "chosen"), final_at(rows, label, "paper")
        sa, sb, loss = t_of(a), t_of(b), t_of(a, "test_loss")
        ref = paper.get("elu" if label == "elu_learned" else label, {}).get("test_accuracy", "-")
        params = "/".join(sorted({r["params"] for r in select(rows, "final", label)}))
        loss_text = "-" if math.isnan(loss["mean"]) else f"{loss['mean']:.4f}"
        lines.append(
            f"| {label} | {ref} | {chosen.get(label, '-')} | {_pct(sa['mean'])} | {_ci(sa)} | "
            f"{sa['n']} | {_pct(sb['mean'])} | {_ci(sb)} | {sb['n']} | {loss_text} | {params} |"
        )
    return lines + [""]


def pair_tests(rows: list[dict], pairs, which: str) -> list[dict]:
    """Paired tests ``first - second`` by seed for each pair of final rows, Holm-adjusted over
    the list."""
    return holm_tests(pairs, lambda label: final_at(rows, label, which))


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


#: The main activations in the order pairs are formed: CPAF first, so a difference reads
#: "CPAF minus the other".
PAIR_ORDER = ("cpaf_sigmoid", "cpaf_relu", *(a for a in MAIN if not a.startswith("cpaf")))


def main_pairs(rows: list[dict]) -> list[tuple[str, str]]:
    """Every pair among the main activations that has final runs (tanh included)."""
    present = [a for a in PAIR_ORDER if select(rows, "final", a)]
    return list(itertools.combinations(present, 2))


def pairs_section(rows: list[dict]) -> list[str]:
    """All pairs among the main activations, at the chosen rates and at 1e-3."""
    pairs = main_pairs(rows)
    if not pairs:
        return []
    lines = ["## All pairs among the main activations", ""]
    for which, title in (("chosen", "each at its chosen rate"), ("paper", f"all at {PAPER_LR:g}")):
        lines += [
            f"Test accuracy, {title}: paired t-tests over the seeds both rows have; Holm's "
            f"adjustment over the {len(pairs)} comparisons of this table.",
            "",
            *_pair_table(pair_tests(rows, pairs, which)),
        ]
    return lines


def control_tests(rows: list[dict]) -> list[dict]:
    """Learned CPAF against each control that has final runs, Holm-adjusted over them."""
    pairs = [(x, y) for x, y in CONTROL_PAIRS if select(rows, "final", y)]
    return pair_tests(rows, pairs, "chosen")


def controls_section(rows: list[dict]) -> list[str]:
    """Frozen (a, b) and the matched baselines against learned CPAF."""
    tests = control_tests(rows)
    if not tests:
        return []
    return [
        "## Controls: frozen (a, b) and matched baselines",
        "",
        "`cpaf_*_frozen`: CPAF at Table 1's (a, b), never trained (the initial shape without "
        "learning); `relu_bias`: relu(y + c) with a learned per-element c (the untied bias a "
        "per-element b gives); `relu_wide`: ReLU FashionNet with every width multiplied so its "
        "weight count matches the per-element CPAF network (params column above); "
        "`prelu_channel`: He et al.'s channel-wise PReLU. At each row's chosen rate; Holm over "
        "this table.",
        "",
        *_pair_table(tests),
    ]


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


def features_section(rows: list[dict]) -> list[str]:
    """4.1's losses on the dataset we ran, beside the paper's MNIST losses, labelled as such."""
    labels = _labels(rows, "features", FEATURES_ACTIVATIONS)
    if not labels:
        return []
    paper = get_config("mnist_features").paper
    data = "/".join(sorted({r["dataset"] for r in rows if r["stage"] == "features"}))
    lines = [
        "## 4.1 Feature extraction (Fig. 9-10)",
        "",
        f"MNIST cannot be downloaded here: ours ran on {data}, the paper's on MNIST, so the "
        "loss columns are not comparable (the table's headers say which is which).",
        "",
        f"| activation | paper test loss (MNIST) | our test loss ({data}) | 95% CI | our acc. "
        f"(%, {data}) | n | epochs |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in labels:
        group = select(rows, "features", label)
        loss, acc = t_of(group, "test_loss"), t_of(group)
        ci = "-" if math.isnan(loss["low"]) else f"[{loss['low']:.4f}, {loss['high']:.4f}]"
        lines.append(
            f"| {label} | {paper.get(label, {}).get('test_loss', '-')} | {loss['mean']:.4f} | "
            f"{ci} | {_pct(acc['mean'])} | {loss['n']} | {group[0]['epochs']} |"
        )
    tests = features_tests(rows)
    if not tests:
        return lines + [""]
    return lines + [
        "",
        "The paper's claim here is CPAF's lower test loss: paired t-tests of our test loss "
        f"({data}) by seed, CPAF minus each other activation (negative: CPAF lower), Holm over "
        "this table.",
        "",
        *_pair_table(tests, _loss_diff, ""),
    ]


def features_tests(rows: list[dict]) -> list[dict]:
    """4.1's test loss, each CPAF minus each other activation that ran, Holm-adjusted."""
    labels = _labels(rows, "features", FEATURES_ACTIVATIONS)
    cpafs = [a for a in labels if a.startswith("cpaf")]
    pairs = [(x, y) for x in cpafs for y in labels if y not in cpafs]
    return holm_tests(pairs, lambda lab: select(rows, "features", lab), "test_loss")


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


_NAMES = {"cpaf_sigmoid": "CPAF-sigmoid", "cpaf_relu": "CPAF-ReLU", "prelu": "PReLU",
          "elu_learned": "learned-alpha ELU", "elu": "ELU (alpha = 1)", "relu": "ReLU",
          "tanh": "tanh", "cpaf_sigmoid_frozen": "frozen CPAF-sigmoid",
          "cpaf_relu_frozen": "frozen CPAF-ReLU", "relu_bias": "learned-bias ReLU",
          "relu_wide": "parameter-matched wide ReLU",
          "prelu_channel": "channel-wise PReLU"}  # fmt: skip


def sentence(t: dict) -> str:
    """One comparison in words: direction, size with its interval, Holm p, significance."""
    x, y = _NAMES.get(t["x"], t["x"]), _NAMES.get(t["y"], t["y"])
    word = "higher" if t["mean"] > 0 else "lower" if t["mean"] < 0 else "equal to"
    sig = "significant" if t["holm"] < ALPHA else "not significant"
    return (
        f"{x}'s accuracy is {word} than {y}'s by {abs(t['mean']) * 100:.2f} pp "
        f"{_ci(t, _pp)}, Holm-adjusted p = {_p(t['holm'])}: {sig} at 5%."
    )


def claim_verdict(tests: list[dict]) -> str:
    """The paper's claim (CPAF beats PReLU and ELU on 4.2) judged by explicit rules: supported
    if every CPAF-vs-PReLU/ELU difference is significantly positive, contradicted if any is
    significantly negative, partly supported if some are significantly positive, otherwise not
    supported."""
    up, down = significant(tests, +1), significant(tests, -1)
    if down:
        return ("The data contradict the paper's claim that CPAF is more accurate than PReLU "
                "and ELU on Fashion-MNIST: at least one of those differences is significantly "
                "negative after Holm's correction.")  # fmt: skip
    if len(up) == len(tests):
        return ("The data support the paper's claim that CPAF is more accurate than PReLU and "
                "ELU on Fashion-MNIST: every such difference is significantly positive after "
                "Holm's correction.")  # fmt: skip
    if up:
        return ("The data support the paper's claim only in part: "
                f"{len(up)} of the {len(tests)} CPAF-versus-PReLU/ELU differences are "
                "significantly positive after Holm's correction, the others are not.")  # fmt: skip
    return ("The data do not support the paper's claim that CPAF is more accurate than PReLU "
            "and ELU on Fashion-MNIST: no such difference is significant after Holm's "
            "correction, so the paper's gaps are not reproduced at this sample size.")  # fmt: skip


def matched_verdict(tests: list[dict]) -> str:
    """What the matched baselines (the controls of ``CONTROL_PAIRS`` that are not frozen CPAF)
    say, by rule: learned CPAF significantly ahead of all of them, of some, or of none (then its
    gain over ReLU cannot be credited to its trained shape rather than to what the baselines
    also add: a per-element bias, a learned slope, or the same number of weights)."""
    up = significant(tests, +1)
    if not up:
        return ("No matched baseline is significantly less accurate than learned CPAF, so these "
                "data cannot credit CPAF's trained shape, rather than the bias, slope or weights "
                "the baselines also add, for its gain over ReLU.")  # fmt: skip
    if len(up) == len(tests):
        return ("Learned CPAF is significantly more accurate than every matched baseline, so its "
                "gain is more than the bias, slope or weights they add.")  # fmt: skip
    ahead = sorted({_NAMES.get(t["y"], t["y"]) for t in up})
    return (f"Learned CPAF is significantly more accurate than {', '.join(ahead)} only, not "
            "than every matched baseline.")  # fmt: skip


def _paper_gap(t: dict) -> str:
    paper = get_config("fashion_mnist").paper
    px = paper.get(t["x"], {}).get("test_accuracy")
    py = paper.get("elu" if t["y"] == "elu_learned" else t["y"], {}).get("test_accuracy")
    if px is None or py is None or math.isnan(t["low"]):
        return ""
    gap = px - py
    inside = t["low"] * 100 <= gap <= t["high"] * 100
    return (f" The paper's gap for this pair, {gap:+.2f} pp, is "
            f"{'inside' if inside else 'outside'} our interval.")  # fmt: skip


def _control_sentences(tests: list[dict]) -> list[str]:
    """The verdict's clauses on frozen (a, b) and on the matched baselines."""
    shown = [t for t in tests if t["n"] >= 2]
    matched = [t for t in shown if not t["y"].endswith("_frozen")]
    text = []
    for t in (t for t in shown if t not in matched):
        learned = "matters" if t["holm"] < ALPHA else "makes no significant difference"
        text.append(f"{sentence(t)} Learning (a, b) {learned} here.")
    text += [f"{sentence(t)[:-1]} ({t['n']} paired seeds)." for t in matched]
    return text + [matched_verdict(matched)] if matched else text


def verdict_section(rows: list[dict]) -> list[str]:
    """The verdict paragraph, every clause chosen by a rule from the tests."""
    tests = {(t["x"], t["y"]): t for t in pair_tests(rows, main_pairs(rows), "chosen")}
    claim = [tests[p] for p in itertools.product(("cpaf_sigmoid", "cpaf_relu"),
             ("prelu", "elu_learned")) if p in tests]  # fmt: skip
    if not claim:
        return []
    text = [sentence(t) + _paper_gap(t) for t in claim]
    text.append(claim_verdict(claim))
    for x in ("cpaf_sigmoid", "cpaf_relu"):
        if (x, "tanh") in tests:
            text.append(sentence(tests[(x, "tanh")]))
    text += _control_sentences(control_tests(rows))
    n = min(t["n"] for t in claim)
    text.append(
        f"(At least {n} paired seeds per comparison with PReLU and ELU, each activation at its "
        "learning rate chosen on the validation split.)"
    )
    return ["## Verdict", "", " ".join(text), ""]


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
    """REPRODUCTION.md's text from runs.csv's rows (see ``cpaf_jax.experiments.runs_csv``);
    ``source`` names the file in the header."""
    lines = _header(rows, source) + verdict_section(rows) + tune_section(rows) + main_section(rows)
    lines += pairs_section(rows) + controls_section(rows) + ablation_section(rows)
    lines += features_section(rows) + count_section() + cifar_section(bench_json)
    return "\n".join(lines).rstrip("\n") + "\n"
