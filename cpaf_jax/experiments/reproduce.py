"""``python -m train reproduce``: the paper's reproduction, stage by stage, resumable.

``--stage tune|final|ablation|features`` runs that stage's ``python -m train`` commands
(``cpaf_jax.experiments.reproduction_plan``), each into ``<out>/<stage>/<label>/``, and adds
each finished command's members to ``docs/reproduction/runs.csv``. With ``--resume`` a command
whose ``results.json`` holds every member is skipped and an interrupted one continues from its
last epoch checkpoint (so a stage can be stopped and restarted); without it a
command's folder is replaced once the new run finishes. ``final`` trains each row at the rate
chosen by ``tune`` (read from runs.csv) and at the paper's 1e-3. ``--stage
retune|final_retuned|long`` run the stages derived from runs.csv
(``cpaf_jax.experiments.retuning``): re-tuning on a wider grid, the final rows' missing seeds at
the re-tuned rates, 30-epoch training; run them in that order (each reads the one before).

``--report-only`` writes REPRODUCTION.md from runs.csv alone (and the committed data of its
figures). ``--figure-data`` retrains one seed per network of Fig. 11 and Fig. 14 and writes
that data and the PNGs under ``--figures-dir``; ``--figures`` redraws the PNGs from the data.
``--plan`` prints the commands.
``--seeds``, ``--epochs``, ``--train-subset`` and ``--validation`` override every row, for quick
trials (give them their own ``--out`` and ``--csv``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys

from cpaf_jax.experiments import atomic, runs_csv
from cpaf_jax.experiments.reproduction_plan import PAPER_LR, STAGES, Row, stage_rows
from cpaf_jax.experiments.reproduction_report import cifar_cost, render
from cpaf_jax.experiments.retuning import DERIVED_STAGES, derived_rows

__all__ = ["cifar_cost", "main", "stage_commands"]


_DESCRIPTION = """Reproduce the paper's experiments, one stage at a time.

--stage tune|final|ablation|features runs that stage's training commands (--plan lists them),
each into OUT/STAGE/LABEL/, and adds every finished run to the CSV of results. tune chooses
each activation's learning rate on a validation split; final trains 4.2 on the test set at
that rate and at the paper's 1e-3; ablation varies CPAF's k and sharing; features is 4.1.
With --resume, finished commands are skipped and an interrupted one continues from its last
epoch checkpoint, so a stage can be stopped and restarted at any time.

--report-only writes REPRODUCTION.md from the CSV alone (and the figures' data). --figure-data
retrains one seed per network of Fig. 11 and Fig. 14 and writes their data and PNGs into
--figures-dir; --figures redraws the PNGs from that data. --seeds, --epochs, --train-subset and
--validation override every row for a quick trial (give it its own --out and --csv).
"""


def _parser() -> argparse.ArgumentParser:
    from cpaf_jax.experiments.cli import positive_int

    p = argparse.ArgumentParser(
        prog="cpaf-train reproduce",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--stage", choices=STAGES + DERIVED_STAGES, help="the stage to run")
    what.add_argument("--report-only", action="store_true", help="write REPRODUCTION.md only")
    what.add_argument(
        "--figure-data",
        action="store_true",
        help="train the networks of Fig. 11 and Fig. 14 (one seed each) and write their data "
        "and PNGs into --figures-dir",
    )
    what.add_argument(
        "--figures", action="store_true", help="draw the PNGs of --figures-dir from its data"
    )
    p.add_argument("--resume", action="store_true", help="skip finished, continue interrupted")
    p.add_argument("--plan", action="store_true", help="print the stage's commands and exit")
    p.add_argument("--out", default="runs/reproduction", help="runs folder")
    p.add_argument("--csv", default="docs/reproduction/runs.csv", help="per-member results")
    p.add_argument("--doc", default="REPRODUCTION.md", help="the report to write")
    p.add_argument(
        "--figures-dir",
        default="docs/reproduction",
        help="the figures' data and PNGs (the report describes and links them)",
    )
    p.add_argument("--only", help="comma-separated row labels of the stage to run")
    p.add_argument("--seeds", type=positive_int, help="override every row's seeds (trials)")
    p.add_argument("--epochs", type=positive_int, help="override every row's epochs (trials)")
    p.add_argument("--train-subset", type=positive_int, metavar="N", help="for a quick trial")
    p.add_argument("--validation", type=positive_int, metavar="N", help="override tune's split")
    p.add_argument("--no-progress", action="store_true")
    return p


def _overridden(row: Row, args: argparse.Namespace) -> Row:
    changes = {"seeds": args.seeds, "epochs": args.epochs}
    if row.validation is not None:
        changes["validation"] = args.validation
    return dataclasses.replace(row, **{k: v for k, v in changes.items() if v is not None})


def _final_lrs(rows: list[Row], csv_path: str) -> dict[str, tuple[float, ...]]:
    """Each final row's rates: the one tune chose (from runs.csv) and the paper's 1e-3."""
    from cpaf_jax.experiments.reproduction_report import chosen_lrs

    chosen = chosen_lrs(runs_csv.read(csv_path))
    missing = [r.label for r in rows if r.label not in chosen]
    if missing:
        raise SystemExit(
            f"error: no tuning results in {csv_path} for {', '.join(missing)}; run "
            "`python -m train reproduce --stage tune --resume` first"
        )
    return {r.label: tuple(sorted({float(chosen[r.label]), PAPER_LR})) for r in rows}


def _plan_rows(args: argparse.Namespace) -> list[Row]:
    if args.stage not in DERIVED_STAGES:
        return stage_rows(args.stage)
    try:
        return derived_rows(args.stage, runs_csv.read(args.csv))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


def stage_commands(args: argparse.Namespace) -> list[tuple[Row, list[str]]]:
    """``(row, argv)`` of every command of ``args.stage`` (``--only`` rows), overrides applied."""
    rows = [_overridden(r, args) for r in _plan_rows(args)]
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {r.label for r in rows}
        if unknown:
            known = ", ".join(r.label for r in rows)
            raise SystemExit(f"error: --only: unknown row(s) {sorted(unknown)}; known: {known}")
        rows = [r for r in rows if r.label in wanted]
    lrs = _final_lrs(rows, args.csv) if args.stage == "final" else {}
    out = []
    for row in rows:
        argv = row.argv(row.folder(args.out), lrs.get(row.label))
        if args.train_subset:
            argv += ["--train-subset", str(args.train_subset)]
        out.append((row, argv + (["--no-progress"] if args.no_progress else [])))
    return out


def finished(folder: str, row: Row, n_lrs: int) -> bool:
    """Whether ``folder/results.json`` holds every member of ``row``, each with an accuracy."""
    path = os.path.join(folder, "results.json")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        runs = json.load(f).get("runs", [])
    done = [r for r in runs if r.get("test_accuracy") is not None and r["epochs"] == row.epochs]
    return len(done) == row.seeds * n_lrs


def _n_lrs(argv: list[str]) -> int:
    i = argv.index("--lrs") if "--lrs" in argv else -1
    return len(argv[i + 1].split(",")) if i >= 0 else 1


def run_stage(args: argparse.Namespace) -> int:
    """Runs the stage's commands in order; returns the first failing exit status, else 0."""
    from cpaf_jax.experiments.cli import main as train_main

    for row, argv in stage_commands(args):
        folder = row.folder(args.out)
        if args.resume and finished(folder, row, _n_lrs(argv)):
            print(f"== finished, skipped: {os.path.relpath(folder, args.out)}", file=sys.stderr)
        else:
            again = ["--resume"] if args.resume else []
            if not args.resume and os.path.isdir(folder):
                again = ["--overwrite"]
            print("== python -m train " + shlex.join(argv + again), file=sys.stderr)
            rc = train_main(argv + again)
            if rc != 0:
                return rc
        runs_csv.collect(args.csv, row.root(args.out), row.stage, [row.label])
    print(f"stage {args.stage} done; per-member results in {args.csv}", file=sys.stderr)
    return 0


def figures(args: argparse.Namespace) -> int:
    """``--figure-data``: trains the figures' networks into ``<out>/figures`` and writes their
    data into ``--figures-dir``; then (and with ``--figures`` alone) draws the PNGs there."""
    from cpaf_jax.experiments import report_figures

    if args.figure_data:
        from cpaf_jax.experiments.cli import split_cpu_devices
        from cpaf_jax.experiments.figure_data import write_figure_data

        split_cpu_devices(0)
        write_figure_data(args.csv, os.path.join(args.out, "figures"), args.figures_dir)
    for path in report_figures.draw(args.figures_dir):
        print(f"wrote {path}")
    return 0


def write_report(csv_path: str, doc: str, figures_dir: str | None = None) -> None:
    """REPRODUCTION.md (``doc``) from ``csv_path`` alone (and the figures' data in
    ``figures_dir``): checked and rendered in memory, then the file replaced whole, so a bad
    runs.csv or a failed write leaves ``doc`` as it was.

    Raises:
      runs_csv.RunsCsvError: ``csv_path`` is malformed (the message names the line and field).
      OSError: ``doc`` could not be written.
    """
    text = render(runs_csv.read(csv_path), source=csv_path, figures_dir=figures_dir)
    atomic.write_text(doc, text)
    print(f"wrote {doc} from {csv_path}")


def main(argv: list[str]) -> int:
    """``python -m train reproduce [options]``; returns the exit status (2: bad input)."""
    try:
        args = _parser().parse_args(argv)
        if args.report_only:
            write_report(args.csv, args.doc, args.figures_dir)
            return 0
        if args.figure_data or args.figures:
            return figures(args)
        if args.plan:
            for _, cmd in stage_commands(args):
                print("python -m train " + shlex.join(cmd))
            return 0
        from cpaf_jax.experiments.cli import split_cpu_devices

        split_cpu_devices(0)
        return run_stage(args)
    except (runs_csv.RunsCsvError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # argparse's exit, or a message naming the bad option
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 2
        return 0 if e.code is None else e.code
