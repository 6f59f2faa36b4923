"""``python -m train reproduce --stage``: a stage's commands through the normal command path,
per-member rows into runs.csv, ``--resume`` skipping what is finished, ``final`` at the tuned
rate and 1e-3 (tiny: 256 training images, one epoch, one seed)."""

from __future__ import annotations

import json

from cpaf_jax.experiments import reproduce, runs_csv
from cpaf_jax.experiments.reproduction_plan import WIDE_RELU_WIDTH

TINY = ["--seeds", "1", "--epochs", "1", "--train-subset", "256", "--no-progress"]


def test_tune_then_final_with_resume(tmp_path, capsys):
    out, csv_path = str(tmp_path / "runs"), str(tmp_path / "runs.csv")
    common = ["--out", out, "--csv", csv_path, "--only", "relu_wide", *TINY]
    assert reproduce.main(["--stage", "tune", "--validation", "50", *common]) == 0
    res = json.loads((tmp_path / "runs" / "tune" / "relu_wide" / "results.json").read_text())
    assert res["settings"]["eval_split"] == "validation" and res["settings"]["test_images"] == 50
    assert res["settings"]["model_kwargs"]["width"] == WIDE_RELU_WIDTH
    rows = runs_csv.read(csv_path)
    assert len(rows) == 3 and {r["split"] for r in rows} == {"validation"}
    assert {r["lr"] for r in rows} == {"0.0003", "0.001", "0.003"}
    assert {r["train_images"] for r in rows} == {"256"} and all(r["commit"] for r in rows)
    # A finished command is skipped with --resume; runs.csv is unchanged.
    before = (tmp_path / "runs.csv").read_text()
    capsys.readouterr()
    assert reproduce.main(["--stage", "tune", "--validation", "50", "--resume", *common]) == 0
    assert "finished, skipped: tune/relu_wide" in capsys.readouterr().err
    assert (tmp_path / "runs.csv").read_text() == before
    # Final: the tuned rate and the paper's 1e-3, on the test set.
    best = max(rows, key=lambda r: (float(r["test_accuracy"]), -float(r["lr"])))["lr"]
    assert reproduce.main(["--stage", "final", *common]) == 0
    final = [r for r in runs_csv.read(csv_path) if r["stage"] == "final"]
    assert {r["lr"] for r in final} == {best, "0.001"}
    assert {r["split"] for r in final} == {"test"}


def test_final_needs_tuning_first(tmp_path, capsys):
    args = ["--stage", "final", "--plan", "--csv", str(tmp_path / "none.csv")]
    assert reproduce.main(args) == 2
    assert "run `python -m train reproduce --stage tune --resume` first" in capsys.readouterr().err


def test_unknown_row_is_refused_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "runs"
    assert reproduce.main(["--stage", "tune", "--only", "nope", "--out", str(out)]) == 2
    assert "--only: unknown row(s) ['nope']; known: prelu" in capsys.readouterr().err
    assert not out.exists()
