"""``cpaf-train swap-study``: CPAF and PAU swapped into trained ReLU networks, then fine-tuned.

One command: experiment 4.2's network (FashionNet) is trained with ReLU for
``--pretrain-epochs`` epochs (one member per seed, the reproduction's ReLU learning rate
1e-3), each seed's network is swapped to CPAF-sigmoid and CPAF-ReLU (k=4, per channel) and
PAU (``cpaf_jax.swap_activations`` on 512 training images), and each swapped network trains
its activation parameters alone for ``--epochs`` epochs (``cpaf-train finetune --train
activations``), against the ReLU network trained ``--epochs`` more epochs (``--to relu
--train all``; the optimiser starts afresh in both arms). Per seed and phase, the test
accuracy and loss go to a CSV (``--csv``, with the commit they were measured at) and the page
(``--page``) is regenerated from that CSV alone (``--render-only`` redoes just that).

Phases: ``pretrained`` (ReLU before any swap), ``swapped`` (right after the swap),
``finetuned`` (after the activation-only epochs), ``continued`` (ReLU after the more epochs).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys

from cpaf_jax.experiments import atomic
from cpaf_jax.experiments.stats import paired_difference, summarize

FAMILIES = {
    "cpaf_sigmoid": {"k": 4, "sharing": "channel"},
    "cpaf_relu": {"k": 4, "sharing": "channel"},
    "pau": {},
}
FIELDS = ("commit", "seed", "family", "options", "phase", "epochs", "test_accuracy", "test_loss")


def _rows(result: dict, family: str, options: str, commit: str, pre: int, more: int) -> list:
    rows = []
    for r in result["runs"]:
        phases = [("swapped", pre, r["swapped"]), ("finetuned", pre + more, r["finetuned"])]
        if family == "relu":
            phases = [("pretrained", pre, r["before"]), ("continued", pre + more, r["finetuned"])]
        for phase, epochs, m in phases:
            rows.append({
                "commit": commit, "seed": r["seed"], "family": family, "options": options,
                "phase": phase, "epochs": epochs, "test_accuracy": f"{m['test_accuracy']:.6f}",
                "test_loss": f"{m['test_loss']:.6f}",
            })  # fmt: skip
    return rows


def _continue(folder: str, resume: bool) -> bool:
    """Whether a run goes on from its checkpoints in ``folder`` (asked for, and there are some)."""
    return resume and os.path.isdir(os.path.join(folder, "checkpoints"))


def run_study(
    out: str, seeds: int, pretrain_epochs: int, epochs: int, subset, resume: bool = False
) -> list[dict]:
    """Trains, swaps and fine-tunes (see the module docstring); returns the CSV rows.

    With ``resume``, each run with checkpoints under ``out`` continues from its last one (a
    finished run is only evaluated), so an interrupted study loses at most an epoch per run.
    """
    from cpaf_jax.experiments.cli import main as train_main
    from cpaf_jax.experiments.finetune import FinetuneOptions, finetune
    from cpaf_jax.provenance import provenance

    commit = provenance().get("commit") or "unknown"
    cut = ["--train-subset", str(subset)] if subset else []
    argv = ["fashion_mnist", "--activations", "relu", "--seeds", str(seeds), "--lr", "1e-3"]
    argv += ["--epochs", str(pretrain_epochs), "--eval-every", "0", "--no-plots", "--no-progress"]
    source = os.path.join(out, "pretrain", "relu")
    again = "--resume" if _continue(source, resume) else "--overwrite"
    status = train_main([*argv, *cut, "--out", os.path.join(out, "pretrain"), again])
    if status:
        raise RuntimeError(f"pretraining failed with status {status}")
    rows = []
    for fam, options in [("relu", {}), *FAMILIES.items()]:
        opts = FinetuneOptions(
            source=source, family=fam, out=os.path.join(out, fam), epochs=epochs,
            train="all" if fam == "relu" else "activations",
            family_options={k: v for k, v in options.items() if k != "sharing"},
            sharing=options.get("sharing"), train_subset=subset, progress=False,
            resume=_continue(os.path.join(out, fam, fam), resume),
        )  # fmt: skip
        text = ",".join(f"{k}={v}" for k, v in options.items())
        rows += _rows(finetune(opts), fam, text, commit, pretrain_epochs, epochs)
    return rows


def write_csv(path: str, rows: list[dict]) -> None:
    """Writes the rows (``FIELDS``) atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    atomic.write_text(path, buf.getvalue())


def read_csv(path: str) -> list[dict]:
    """The rows of a study CSV."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _by_seed(rows, family: str, phase: str) -> dict[int, float]:
    return {
        int(r["seed"]): 100 * float(r["test_accuracy"])
        for r in rows
        if r["family"] == family and r["phase"] == phase
    }


def _mean(values: dict) -> str:
    s = summarize(list(values.values()))
    return f"{s['mean']:.2f} [{s['ci95_low']:.2f}, {s['ci95_high']:.2f}]"


def _diff(a: dict, b: dict) -> str:
    d = paired_difference(a, b)
    return f"{d['mean']:+.2f} [{d['ci95_low']:+.2f}, {d['ci95_high']:+.2f}], p={d['p_value']:.3g}"


def render(rows: list[dict], csv_name: str) -> str:
    """The study's page (Markdown) from its CSV rows alone."""
    pre, cont = _by_seed(rows, "relu", "pretrained"), _by_seed(rows, "relu", "continued")
    epochs = {r["phase"]: r["epochs"] for r in rows if r["family"] == "relu"}
    commits = sorted({r["commit"] for r in rows})
    lines = [
        "# Swapping CPAF into a trained network",
        "",
        f"Experiment 4.2's network trained with ReLU for {epochs.get('pretrained')} epoch(s) "
        f"on Fashion-MNIST, {len(pre)} seeds; each seed's network swapped "
        "(`cpaf_jax.swap_activations`, fitted on 512 training images) and its activation "
        f"parameters alone trained up to epoch {epochs.get('continued')}, against the ReLU "
        "network trained as many more epochs (every weight). Test accuracy in %, mean over "
        "seeds [95% interval]; differences are paired by seed (paired t-test).",
        "",
        f"ReLU: {_mean(pre)} after pretraining, {_mean(cont)} after the more epochs.",
        "",
        "| family | options | right after the swap | swap - ReLU before | fine-tuned "
        "| fine-tuned - ReLU trained on | largest drop at the swap |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for fam in sorted({r["family"] for r in rows} - {"relu"}):
        swapped, tuned = _by_seed(rows, fam, "swapped"), _by_seed(rows, fam, "finetuned")
        options = next(r["options"] for r in rows if r["family"] == fam) or "defaults"
        worst = min(swapped[s] - pre[s] for s in swapped if s in pre)
        lines.append(
            f"| {fam} | {options} | {_mean(swapped)} | {_diff(swapped, pre)} | {_mean(tuned)} "
            f"| {_diff(tuned, cont)} | {worst:+.2f} |"
        )
    # The command that measured the rows, its settings read back from them.
    pre_epochs, cont_epochs = int(epochs["pretrained"]), int(epochs["continued"])
    command = (
        f"python -m train swap-study --seeds {len(pre)} --pretrain-epochs {pre_epochs} "
        f"--epochs {cont_epochs - pre_epochs} --out DIR"
    )
    lines += [
        "",
        "The optimiser (Adam, learning rate 1e-3, batch 128) starts afresh in both arms. "
        "Largest drop: the worst seed's change in accuracy right after the swap.",
        "",
        f"Per-seed data: `{csv_name}` (measured at commit {', '.join(commits)} by `{command}`); "
        "this page is generated from it by `python -m train swap-study --render-only`.",
        "",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``cpaf-train swap-study``."""
    p = argparse.ArgumentParser(prog="cpaf-train swap-study", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/swap_study", help="where the runs go")
    p.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    p.add_argument("--pretrain-epochs", type=int, default=1, help="ReLU epochs (default 1)")
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs N (default 1)")
    p.add_argument("--train-subset", type=int, help="use the first N training images")
    p.add_argument("--csv", default="docs/swap/runs.csv", help="the per-seed CSV")
    p.add_argument("--page", default="docs/swap_study.md", help="the generated page")
    p.add_argument("--render-only", action="store_true", help="regenerate the page from --csv")
    p.add_argument("--resume", action="store_true", help="continue the runs under --out")
    return p


def main(argv: list[str]) -> int:
    """``cpaf-train swap-study``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if min(args.seeds, args.pretrain_epochs, args.epochs) < 1:
        print("error: --seeds, --pretrain-epochs and --epochs must be >= 1", file=sys.stderr)
        return 2
    if not args.render_only:
        rows = run_study(
            args.out, args.seeds, args.pretrain_epochs, args.epochs, args.train_subset, args.resume
        )
        write_csv(args.csv, rows)
    rows = read_csv(args.csv)
    atomic.write_text(args.page, render(rows, args.csv))
    print(f"{args.csv}: {len(rows)} rows; page: {args.page}")
    return 0


__all__ = ["FAMILIES", "FIELDS", "main", "read_csv", "render", "run_study", "write_csv"]
