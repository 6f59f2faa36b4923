"""``python -m train reproduce``: rerun the paper's experiments and write ``REPRODUCTION.md``.

Runs, each into its own folder under ``--out`` (default ``runs/reproduction``):

* ``fashion_mnist``: experiment 4.2, seven activations, ``--seeds`` seeds each;
* ``mnist_features``: experiment 4.1's network on MNIST if it is available, else on
  Fashion-MNIST (said in the document);
* ``ablation_k{K}_{sharing}``: CPAF on 4.2 with k = 1..4 terms and per-element, per-channel or
  shared parameters.

Every number in the document is read from the ``results.json`` of the command it names; the
plots are copied next to the document (``--doc-dir``). ``--only NAME[,NAME]`` reruns parts, and
``--report-only`` rebuilds the document from existing results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from cpaf_jax.experiments.configs import get_config
from cpaf_jax.experiments.report import summary_by_activation

SEVEN = ("prelu", "elu", "cpaf_sigmoid", "cpaf_relu", "relu", "sigmoid", "tanh")
FOUR_1 = ("sigmoid", "relu", "cpaf_sigmoid", "cpaf_relu")
ABLATION_ACTIVATION = "cpaf_relu"
CIFAR_TRAIN_IMAGES = 50_000  # the official CIFAR-10/100 training sets
# The checkout this package runs from; benchmarks/ sits next to cpaf_jax/ there.
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cmd(args: list[str]) -> str:
    return "python -m train " + " ".join(args)


def plan(
    seeds: int,
    epochs: int,
    ablation_epochs: int,
    ablation_seeds: int,
    mnist: bool,
    eval_every: int,
    features_epochs: int,
):
    """The commands to run, as (name, argv) pairs."""
    ev = ["--eval-every", str(eval_every)]
    fm = ["fashion_mnist", "--activations", ",".join(SEVEN), "--seeds", str(seeds)]
    fm += ["--epochs", str(epochs), "--baseline", "prelu"] + ev
    mf = ["mnist_features", "--activations", ",".join(FOUR_1), "--seeds", str(seeds)]
    mf += ["--epochs", str(features_epochs), "--baseline", "relu"] + ev
    if not mnist:
        mf += ["--dataset", "fashion_mnist"]
    runs = [("fashion_mnist", fm), ("mnist_features", mf)]
    for k in (1, 2, 3, 4):
        for sharing in ("element", "channel", "shared"):
            argv = ["fashion_mnist", "--activations", ABLATION_ACTIVATION, "--k", str(k)]
            argv += ["--sharing", sharing, "--seeds", str(ablation_seeds)]
            argv += ["--epochs", str(ablation_epochs), "--eval-every", "0", "--no-plots"]
            runs.append((f"ablation_k{k}_{sharing}", argv))
    return runs


def _load(out: str, name: str) -> dict | None:
    path = os.path.join(out, name, "results.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _pct(s: dict) -> str:
    if s["n"] > 1:
        return f"{s['mean'] * 100:.2f} ± {s['std'] * 100:.2f}"
    return f"{s['mean'] * 100:.2f}"


def _loss(s: dict) -> str:
    return f"{s['mean']:.3f} ± {s['std']:.3f}" if s["n"] > 1 else f"{s['mean']:.3f}"


def cifar_cost(bench_json: str | None = None) -> str:
    """The CIFAR runs' expected cost on the benchmarked machine, read from its results.

    Takes the training-step times of section 2 of ``BENCHMARKS.md`` from ``bench_json``
    (default: ``benchmarks/BENCHMARKS.json`` of the checkout this package runs from), so the
    figures always match the committed benchmark run. Without that file (an installed
    package) the sentence points to the section instead.
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


class _Plots:
    """Copies a part's PNGs beside REPRODUCTION.md and returns their links."""

    def __init__(self, out: str, doc: str, doc_dir: str):
        os.makedirs(doc_dir, exist_ok=True)
        self.out, self.doc_dir = out, doc_dir
        self.rel = os.path.relpath(os.path.abspath(doc_dir), os.path.dirname(os.path.abspath(doc)))

    def lines(self, name: str, figures) -> list[str]:
        """``![caption](link)`` lines for each ``(png, new name, caption)`` that exists."""
        out = []
        for png, new, cap in figures:
            src = os.path.join(self.out, name, png)
            if os.path.exists(src):
                shutil.copyfile(src, os.path.join(self.doc_dir, new))
                out += [f"![{cap}]({self.rel}/{new})", ""]
        return out


_FMNIST_FIGURES = (
    ("test_loss.png", "fmnist_test_loss.png", "Test loss (Fig. 13)"),
    ("ab_scatter_cpaf_sigmoid.png", "fmnist_ab_cpaf_sigmoid.png",
     "Learned (a, b) of CPAF-sigmoid (Fig. 14)"),
    ("shapes_cpaf_sigmoid.png", "fmnist_shapes_cpaf_sigmoid.png",
     "Learned CPAF-sigmoid curves against the initial one"),
    ("shapes_cpaf_relu.png", "fmnist_shapes_cpaf_relu.png", "Learned CPAF-ReLU curves"),
)  # fmt: skip
_FEATURES_FIGURES = (
    ("test_loss.png", "features_test_loss.png", "Test loss (Fig. 10)"),
    ("features_2d.png", "features_2d.png", "2-D features, 200 test images per class (Fig. 11)"),
)


def _fmnist_table(res: dict, cfg, command: str, out: str) -> list[str]:
    env, st = res["environment"], res["settings"]
    summary = summary_by_activation(res["runs"])
    lines = [
        f"Command: `{command}` (results in "
        f"`{os.path.join(out, 'fashion_mnist', 'results.json')}`).",
        "",
        f"{st['epochs']} epochs, {st['optimizer']} lr {st['learning_rate']}, batch "
        f"{st['batch_size']}, {st['train_images']} training / {st['test_images']} test "
        f"images, on {env['backend']} ({env['device']}), jax {env['jax']}.",
        "",
        "| activation | paper acc. (%) | ours acc. (%) | 95% CI | paper loss | "
        "ours loss | seeds | s/epoch* |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for act in SEVEN:
        if act not in summary:
            continue
        s, paper = summary[act], cfg.paper.get(act, {})
        acc = s["test_accuracy"]
        eps = [x for r in res["runs"] if r["activation"] == act
               for x in (r["epoch_seconds"][1:] or r["epoch_seconds"])]  # fmt: skip
        lines.append(
            f"| {act} | {paper.get('test_accuracy', '-')} | {_pct(acc)} | "
            f"[{acc['ci95_low'] * 100:.2f}, {acc['ci95_high'] * 100:.2f}] | "
            f"{paper.get('test_loss', '-')} | {_loss(s['test_loss'])} | {acc['n']} | "
            f"{sum(eps) / max(len(eps), 1):.1f} |"
        )
    return lines + [
        "",
        "*s/epoch: the epoch time of each activation's engine run (all its seeds together), "
        "measured while other jobs shared the 2 cores; compare only roughly.",
    ]


def _fmnist_pairs(res: dict) -> list[str]:
    from cpaf_jax.experiments.stats import paired_difference

    acc_by = {}
    for r in res["runs"]:
        acc_by.setdefault(r["activation"], {})[r["seed"]] = r["test_accuracy"]
    lines = [
        "",
        "Paired differences in test accuracy (percentage points, same seeds):",
        "",
        "| comparison | mean | 95% CI | significant at 5% |",
        "|---|---|---|---|",
    ]
    for cp in ("cpaf_sigmoid", "cpaf_relu"):
        for base in ("prelu", "elu", "relu"):
            if cp in acc_by and base in acc_by:
                d = paired_difference(acc_by[cp], acc_by[base])
                lines.append(
                    f"| {cp} - {base} | {d['mean'] * 100:+.2f} | [{d['ci95_low'] * 100:+.2f}, "
                    f"{d['ci95_high'] * 100:+.2f}] | {'yes' if d['significant'] else 'no'} |"
                )
    counts = next(
        (r["activation_params"] for r in res["runs"] if r["activation"] == "cpaf_sigmoid"), None
    )
    if counts:
        lines += [
            "",
            f"Fig. 14 counts 14,790 (a1, b1) pairs; our network has "
            f"{counts['cpaf_pairs']:,} (3x3 VALID convolutions, 2x2 pooling; the paper "
            "does not say where its other 36 come from).",
            "",
        ]
    return lines


def _time_to_accuracy(res: dict, cfg) -> list[str]:
    tta = [(r["activation"], r["time_to_accuracy"]) for r in res["runs"]]
    lines = [
        f"Time to {cfg.time_to_accuracy:.0%} test accuracy (Table 6's question, "
        "training seconds, mean over seeds that reached it):",
        "",
        "| activation | seconds | reached |",
        "|---|---|---|",
    ]
    for act in SEVEN:
        ts = [t for a, t in tta if a == act and t is not None]
        n = sum(1 for a, _ in tta if a == act)
        if n:
            mean = f"{sum(ts) / len(ts):.1f}" if ts else "-"
            lines.append(f"| {act} | {mean} | {len(ts)}/{n} |")
    return (
        lines
        + ["", "Settings the paper leaves open:", ""]
        + [f"- {k}: {v}" for k, v in cfg.chosen.items()]
        + [""]
    )


def _fmnist_section(out: str, commands: dict, plots: _Plots) -> list[str]:
    lines = ["## 4.2 Fashion-MNIST against other parametric activations (Table 2, Fig. 13-14)", ""]
    res = _load(out, "fashion_mnist")
    if res is None:
        return lines + ["Not run yet: `" + commands["fashion_mnist"] + "`", ""]
    cfg = get_config("fashion_mnist")
    lines += _fmnist_table(res, cfg, commands["fashion_mnist"], out)
    lines += _fmnist_pairs(res)
    lines += plots.lines("fashion_mnist", _FMNIST_FIGURES)
    return lines + _time_to_accuracy(res, cfg)


def _features_section(out: str, commands: dict, plots: _Plots) -> list[str]:
    lines = ["## 4.1 Feature extraction (Fig. 9-11)", ""]
    res = _load(out, "mnist_features")
    if res is None:
        return lines + ["Not run yet: `" + commands["mnist_features"] + "`", ""]
    cfg = get_config("mnist_features")
    ds = res["settings"]["dataset"]
    lines += [f"Command: `{commands['mnist_features']}`.", ""]
    if ds != "mnist":
        lines += [
            f"MNIST cannot be downloaded here, so this ran on **{ds}** with the same "
            "network; with tfds and a network, `python -m train mnist_features` runs "
            "it on MNIST.",
            "",
        ]
    lines += [
        "| activation | paper test loss (MNIST) | ours test loss | ours acc. (%) | seeds |",
        "|---|---|---|---|---|",
    ]
    for act, s in summary_by_activation(res["runs"]).items():
        lines.append(
            f"| {act} | {cfg.paper.get(act, {}).get('test_loss', '-')} | "
            f"{_loss(s['test_loss'])} | {_pct(s['test_accuracy'])} | "
            f"{s['test_accuracy']['n']} |"
        )
    return lines + [""] + plots.lines("mnist_features", _FEATURES_FIGURES)


def _cifar_section() -> list[str]:
    lines = [
        "## 4.3 CIFAR-10 and CIFAR-100 (Tables 3-6, Fig. 15)",
        "",
        "CIFAR cannot be downloaded here and no GPU was lent to this session, so these were "
        "not run. The commands are ready and tested end to end on small CIFAR-format data "
        "(`tests/test_training.py::test_cifar_command_end_to_end_on_cifar_format_data`):",
        "",
        "```bash",
    ]
    lines += [f"python -m train {ds} --structure {s} --seeds 5 --baseline relu --data-dir DIR"
              for ds in ("cifar10", "cifar100") for s in (1, 2, 3)]  # fmt: skip
    return lines + [
        "```",
        "",
        cifar_cost()
        + " Table 6's question is answered from the `time_to_accuracy` field of each run in "
        "`results.json`.",
        "",
    ]


def _ablation_section(out: str, commands: dict) -> list[str]:
    lines = ["## Ablation: number of terms and parameter sharing (not in the paper)", ""]
    rows = []
    for k in (1, 2, 3, 4):
        for sharing in ("element", "channel", "shared"):
            r = _load(out, f"ablation_k{k}_{sharing}")
            for act, s in summary_by_activation(r["runs"] if r else []).items():
                n_par = next(
                    x["activation_params"]["scalars"] for x in r["runs"] if x["activation"] == act
                )
                rows.append(
                    f"| {act} | {k} | {sharing} | {n_par:,} | {_pct(s['test_accuracy'])} "
                    f"| {_loss(s['test_loss'])} | {s['test_accuracy']['n']} |"
                )
    if not rows:
        return lines + ["Not run yet.", ""]
    ep = (_load(out, "ablation_k1_element") or {}).get("settings", {}).get("epochs", "?")
    return lines + [
        f"Experiment 4.2's network, {ep} epochs each; command for one cell: "
        f"`{commands.get('ablation_k2_channel', '')}`.",
        "",
        "Initial values for k != 2 scale Table 1's a_i by 2/k "
        "(`cpaf_jax.activations.initializers`), so the sum of the scales, and with it the "
        "initial slope and range, is Table 1's for every k.",
        "",
        "| activation | k | sharing | activation params | acc. (%) | loss | seeds |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def render(out: str, doc: str, doc_dir: str, commands: dict[str, str]) -> str:
    """REPRODUCTION.md from the results under ``out``; copies plots into ``doc_dir``."""
    plots = _Plots(out, doc, doc_dir)
    lines = [
        "# Reproduction of Ko, Li, Ko (2022)",
        "",
        "Every number below is read from the `results.json` written by the command above "
        "its table (`python -m train reproduce` runs them all and rewrites this file). "
        "Spread is the standard deviation over seeds; intervals are 95% Student-t "
        "intervals of the mean; significance is a paired test over the same seeds.",
        "",
    ]
    lines += _fmnist_section(out, commands, plots)
    lines += _features_section(out, commands, plots)
    lines += _cifar_section()
    lines += _ablation_section(out, commands)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``python -m train reproduce [options]``; returns the exit status."""
    p = argparse.ArgumentParser(
        prog="python -m train reproduce",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="runs/reproduction")
    p.add_argument("--doc", default="REPRODUCTION.md")
    p.add_argument("--doc-dir", default="docs/reproduction", help="where the plots are copied")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--eval-every", type=int, default=200, help="test-loss curve interval")
    p.add_argument("--ablation-epochs", type=int, default=2)
    p.add_argument("--ablation-seeds", type=int, default=3)
    p.add_argument("--train-subset", type=int, help="for a quick trial")
    p.add_argument("--only", help="comma-separated parts to run (default: all)")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--resume", action="store_true", help="keep finished runs and sweeps")
    p.add_argument("--features-epochs", type=int, help="epochs of 4.1 (default: --epochs)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    from cpaf_jax.data import find_dataset
    from cpaf_jax.experiments.cli import main as train_main
    from cpaf_jax.experiments.cli import split_cpu_devices

    split_cpu_devices(0)

    mnist = find_dataset("mnist") is not None
    steps = plan(
        args.seeds,
        args.epochs,
        args.ablation_epochs,
        args.ablation_seeds,
        mnist,
        args.eval_every,
        args.features_epochs or args.epochs,
    )
    # Each part's folder: continued with --resume, else replaced (only once it succeeds).
    extra = ["--resume"] if args.resume else ["--overwrite"]
    extra += (["--train-subset", str(args.train_subset)] if args.train_subset else []) + (
        ["--no-progress"] if args.no_progress else []
    )
    commands = {}
    only = set(args.only.split(",")) if args.only else None
    for name, argv_ in steps:
        full = argv_ + ["--out", os.path.join(args.out, name)] + extra
        commands[name] = _cmd([a for a in full if a not in ("--resume", "--overwrite")])
        if args.report_only or (only and name not in only and name.split("_k")[0] not in only):
            continue
        print(f"== {commands[name]}", file=sys.stderr)
        rc = train_main(full)
        if rc != 0:
            return rc
    with open(args.doc, "w") as f:
        f.write(render(args.out, args.doc, args.doc_dir, commands))
    print(f"wrote {args.doc}")
    return 0
