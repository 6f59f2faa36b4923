"""The stages derived from runs.csv: the re-tuning grid (half-decade steps, grown past an edge,
seeds no final run uses), the final rows' missing seeds at the re-tuned rates, 30-epoch rows;
their commands, and one tiny command through ``python -m train reproduce``."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from cpaf_jax.experiments import reproduce, runs_csv
from cpaf_jax.experiments import retuning as rt
from cpaf_jax.experiments.cli import parse_args
from cpaf_jax.experiments.report_stages import retune_section
from cpaf_jax.experiments.reproduction_plan import EXTRA, MAIN, PAPER_LR, stage_rows
from cpaf_jax.experiments.reproduction_report import ablation_section, chosen_lrs, tune_section
from cpaf_jax.models import build_model
from cpaf_jax.training.members import member_epoch_indices

ROOT = Path(__file__).resolve().parents[2]


def _first_round(rows: list[dict]) -> list[dict]:
    """The rows of the first round (trained at the commits of its tuning stage): the base these
    tests add second-round rows to, whatever of the second round runs.csv holds by now."""
    first = {r["commit"] for r in rows if r["stage"] == "tune"}
    return [r for r in rows if r["commit"] in first]


COMMITTED = _first_round(runs_csv.read(str(ROOT / "docs" / "reproduction" / "runs.csv")))
LABELS = [r.label for r in rt.rows_4_2("retune", lambda a: 3)]


def _retune(label, accuracy_of_rate, seeds=rt.RETUNE_SEEDS):
    """runs.csv rows of a label's re-tuning: ``accuracy_of_rate[lr]`` for every seed."""
    # Every field runs.csv requires, at values no assertion reads.
    blank = {**{c: "" for c in runs_csv.COLUMNS}, "train_images": "50000", "test_loss": "0.3",
             "activation_params": "0", "params": "1", "dataset": "fashion_mnist"}  # fmt: skip
    return [
        {**blank, "stage": "retune", "experiment": "fashion_mnist", "label": label,
         "activation": label, "lr": f"{lr:g}", "seed": str(s), "epochs": "10",
         "split": "validation", "test_accuracy": repr(acc + 1e-4 * i), "dirty": "False"}
        for lr, acc in accuracy_of_rate.items() for i, s in enumerate(seeds)
    ]  # fmt: skip


def _all_retuned(rates):
    """Finished re-tuning rows for every label, best at ``rates[label]`` (default 3e-3)."""
    rows = []
    for label in LABELS:
        best = rates.get(label, 3e-3)
        i = rt.RATE_LADDER.index(best)
        grid = set(rt.RETUNE_LRS) | set(rt.RATE_LADDER[max(i - 1, 0) : i + 2])
        rows += _retune(label, {lr: 0.9 - abs(math.log10(lr / best)) / 10 for lr in grid})
    return rows


def test_retune_grid_is_half_decades_from_3e_4_to_1e_2_on_seeds_no_final_run_uses():
    rows = rt.retune_rows(COMMITTED)
    assert [r.label for r in rows] == LABELS and len(rows) == 15 + 4
    assert set(rt.HALF_LEARNED) <= set(LABELS)
    assert set(LABELS) >= {r.label for r in stage_rows("tune")}
    assert rt.RETUNE_LRS[0] <= 3e-4 and rt.RETUNE_LRS[-1] >= 1e-2
    ratios = np.diff(np.log10(rt.RETUNE_LRS))
    assert all(0.47 < r < 0.53 for r in ratios)  # 1, 3, 10, 30...: half a decade, rounded
    i = rt.RATE_LADDER.index(rt.RETUNE_LRS[0])
    assert rt.RATE_LADDER[i : i + len(rt.RETUNE_LRS)] == rt.RETUNE_LRS
    assert all(0.47 < r < 0.53 for r in np.diff(np.log10(rt.RATE_LADDER)))
    final_seeds = {int(r["seed"]) for r in COMMITTED if r["stage"] != "tune"}
    assert final_seeds and not set(rt.RETUNE_SEEDS) & (final_seeds | set(range(rt.FINAL_SEEDS)))
    for row in rows:
        assert row.seed_values() == rt.RETUNE_SEEDS and row.lrs == rt.RETUNE_LRS
        assert row.validation == 10_000 and row.epochs == 10 and row.part == ""
    argv = rows[0].argv("OUT")
    assert argv[3:5] == ["--seeds", "1000,1001,1002"]
    assert argv[argv.index("--lrs") + 1] == "0.0003,0.001,0.003,0.01"


def test_the_command_line_trains_the_seed_values(tmp_path):
    row = rt.retune_rows([])[0]
    args, _ = parse_args(row.argv(str(tmp_path / "run")))
    assert args.seeds == (1000, 1001, 1002)
    one = dataclasses.replace(row, seeds=1)
    assert one.argv("O")[3:5] == ["--seed", "1000"]
    assert parse_args(one.argv(str(tmp_path / "one")))[0].seed == 1000
    # A seed's value, not its position, sets the data order and the initial weights.
    alone = member_epoch_indices([1001], 0, 1000, 3, 32)[0]
    np.testing.assert_array_equal(member_epoch_indices([1000, 1001], 0, 1000, 3, 32)[1], alone)
    assert not np.array_equal(member_epoch_indices([1], 0, 1000, 3, 32)[0], alone)
    w = [np.asarray(build_model("fashion_mnist", "relu", seed=s).dense.kernel[...]) for s in
         (1000, 1000, 0)]  # fmt: skip
    np.testing.assert_array_equal(w[0], w[1])
    assert not np.array_equal(w[0], w[2])


def test_grid_grows_past_an_edge_until_the_best_rate_is_inside():
    top = _retune("prelu", {1e-4 * 3: 0.80, 1e-3: 0.85, 3e-3: 0.88, 1e-2: 0.89})
    assert rt.retune_rates(top, "prelu") == (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    (grown,) = [r for r in rt.retune_rows(top) if r.part]
    assert grown.label == "prelu" and grown.lrs == (3e-2,) and grown.part == "retune-lr0.03"
    assert grown.folder("OUT") == "OUT/retune-lr0.03/retune/prelu"
    assert "prelu" not in rt.retuned_rates(top)  # 3e-2 still to run
    done = top + _retune("prelu", {3e-2: 0.87})
    assert rt.retune_rates(done, "prelu")[-1] == 3e-2 and rt.retuned_rates(done) == {
        "prelu": "0.01"
    }
    # Best at the bottom: one step down; a better 1e-4 moves it down again.
    low = _retune("tanh", {3e-4: 0.9, 1e-3: 0.8, 3e-3: 0.7, 1e-2: 0.6})
    assert rt.retune_rates(low, "tanh") == (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    lower = low + _retune("tanh", {1e-4: 0.95})
    assert rt.retune_rates(lower, "tanh")[:2] == (3e-5, 1e-4)
    # A rate where a member diverged (a seed missing) cannot be chosen: no growth past it.
    diverged = _retune("relu", {3e-4: 0.8, 1e-3: 0.85, 3e-3: 0.88})
    diverged += _retune("relu", {1e-2: 0.95}, seeds=rt.RETUNE_SEEDS[:2])
    assert rt.retune_rates(diverged, "relu") == rt.RETUNE_LRS
    assert rt.retuned_rates(diverged) == {"relu": "0.003"}


def test_chosen_rates_of_the_first_tuning_are_the_reports():
    assert rt.chosen_rates(COMMITTED, "tune") == chosen_lrs(COMMITTED)


def test_final_retuned_adds_only_the_missing_seeds():
    with pytest.raises(ValueError, match="no finished re-tuning in runs.csv for prelu"):
        rt.final_retuned_rows(COMMITTED)
    first = chosen_lrs(COMMITTED)
    # Every row keeps its first choice, except prelu and apl (moved to 1e-2).
    keep = {a: float(first[a]) for a in first}
    rows = COMMITTED + _all_retuned({**keep, "prelu": 1e-2, "apl": 1e-2})
    plan = rt.final_retuned_rows(rows)
    by = {}
    for r in plan:
        assert r.stage == "final" and r.validation is None and r.epochs == 10
        by.setdefault(r.label, []).append(r)
    # The matched baselines to 20 seeds at their rate and at 1e-3: seeds 10..19, one command.
    for label in ("relu_bias", "relu_wide", "prelu_channel"):
        (row,) = by[label]
        assert row.seed_values() == tuple(range(10, 20))
        assert row.lrs == tuple(sorted({float(first[label]), PAPER_LR}))
        assert row.argv("O")[3:5] == ["--seeds", ",".join(map(str, range(10, 20)))]
    # Half-learned CPAF: 20 seeds at both rates.
    for label in rt.HALF_LEARNED:
        (row,) = by[label]
        assert row.seed_values() == tuple(range(20)) and row.lrs == (1e-3, 3e-3)
        assert row.argv("O")[3:5] == ["--seeds", "20"]
    # A changed choice: 20 seeds at the new rate, main row or not.
    (prelu,) = by["prelu"]
    assert prelu.lrs == (1e-2,) and prelu.seed_values() == tuple(range(20))
    (apl,) = by["apl"]
    assert apl.lrs == (1e-2,) and apl.seed_values() == tuple(range(20))
    # Unchanged rows already have their seeds.
    assert set(by) == {"relu_bias", "relu_wide", "prelu_channel", "prelu", "apl",
                       *rt.HALF_LEARNED}  # fmt: skip
    members = sum(r.seeds * len(r.lrs) for r in plan)
    n_lrs = {a: len({float(first[a]), PAPER_LR}) for a in ("relu_bias", "relu_wide",
             "prelu_channel")}  # fmt: skip
    assert members == 10 * sum(n_lrs.values()) + 4 * 40 + 20 + 20
    folders = [r.folder("OUT") for r in plan]
    assert len(set(folders)) == len(folders)
    assert by["relu_wide"][0].folder("OUT").startswith("OUT/final_retuned-s10-19-lr")


def test_rates_lacking_different_seeds_are_separate_commands():
    first = chosen_lrs(COMMITTED)
    assert first["relu_bias"] == "0.003"
    rows = COMMITTED + _all_retuned({"relu_bias": 1e-2})
    plan = [r for r in rt.final_retuned_rows(rows) if r.label == "relu_bias"]
    got = sorted((r.lrs, r.seed_values()) for r in plan)
    assert got == [((1e-3,), tuple(range(10, 20))), ((1e-2,), tuple(range(20)))]
    assert len({r.folder("O") for r in plan}) == 2


def test_long_rows_train_thirty_epochs_at_the_retuned_rates():
    rows = _all_retuned({"prelu": 1e-2})
    long = rt.long_rows(rows)
    assert [r.label for r in long] == list(rt.LONG_ACTIVATIONS)
    assert {"cpaf_sigmoid", "cpaf_relu", "prelu", "elu_learned", "relu"} == set(rt.LONG_ACTIVATIONS)
    assert all(r.epochs >= 30 and r.seeds >= 10 and r.stage == "long" for r in long)
    assert {r.label: r.lrs for r in long}["prelu"] == (1e-2,)
    assert {r.label: r.lrs for r in long}["relu"] == (3e-3,)
    with pytest.raises(ValueError, match="unknown stage 'x'; the derived stages are retune"):
        rt.derived_rows("x", rows)


def test_new_csv_stages_sort_after_the_first_round_and_leave_its_rows_alone(tmp_path):
    extra = [dict(COMMITTED[0], stage=s, label="relu", seed=str(i)) for s, i in
             (("long", 0), ("retune", 1000), ("final", 19))]  # fmt: skip
    path = str(tmp_path / "runs.csv")
    runs_csv.write(path, extra + COMMITTED)
    got = runs_csv.read(path)
    assert [r["stage"] for r in got[-2:]] == ["retune", "long"]
    assert [r for r in got if r not in extra] == COMMITTED
    # Re-tuning and 30-epoch rows leave the first round's tables as they were; the re-tuning
    # gets its own section.
    more = COMMITTED + _all_retuned({}) + [dict(r, stage="long") for r in COMMITTED[:5]]
    for section in (tune_section, ablation_section):
        assert section(more) == section(COMMITTED)
    retuned = "\n".join(retune_section(more))
    assert all(f"| {label} | " in retuned for label in LABELS)
    assert "Pending" not in retuned and "Pending: no re-tuning" in "\n".join(retune_section([]))


def test_plan_of_a_derived_stage_before_its_retuning_says_what_to_run(tmp_path, capsys):
    args = ["--plan", "--csv", str(tmp_path / "none.csv")]
    assert reproduce.main(["--stage", "long", *args]) == 2
    assert "run `python -m train reproduce --stage retune --resume` first" in (
        capsys.readouterr().err
    )
    assert reproduce.main(["--stage", "retune", *args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(LABELS) and "--seeds 1000,1001,1002" in out[0]


def test_a_topped_up_final_row_lands_in_runs_csv_as_final(tmp_path, capsys):
    out, csv_path = tmp_path / "runs", str(tmp_path / "runs.csv")
    before = [r for r in COMMITTED if r["label"] == "relu_wide"]
    runs_csv.write(csv_path, before + _all_retuned({"relu_wide": 1e-3}))
    common = ["--out", str(out), "--csv", csv_path, "--only", "relu_wide", "--seeds", "1",
              "--epochs", "1", "--train-subset", "256", "--no-progress"]  # fmt: skip
    assert reproduce.main(["--stage", "final_retuned", *common]) == 0
    folder = out / "final_retuned-s10-19-lr0.001" / "final" / "relu_wide"
    res = json.loads((folder / "results.json").read_text())
    assert [r["seed"] for r in res["runs"]] == [10]
    got = runs_csv.read(csv_path)
    new = [r for r in got if r["stage"] == "final" and r["seed"] == "10"]
    assert len(new) == 1 and new[0]["label"] == "relu_wide" and new[0]["lr"] == "0.001"
    assert [r for r in got if r["stage"] == "final" and r["seed"] != "10"] == [
        r for r in before if r["stage"] == "final"
    ]
    # The plan now asks for the seeds runs.csv still lacks (a trial's one seed at a time).
    capsys.readouterr()
    assert reproduce.main(["--stage", "final_retuned", "--plan", *common]) == 0
    (cmd,) = capsys.readouterr().out.splitlines()
    assert "--seed 11 " in cmd and "final_retuned-s11-19-lr0.001/final/relu_wide" in cmd


def test_main_extra_and_half_learned_rows_keep_their_seed_targets():
    assert rt.target_seeds("prelu", "0.003", "0.003", "0.003") == 20
    assert rt.target_seeds("apl", "0.003", "0.003", "0.003") == 10
    assert rt.target_seeds("apl", "0.01", "0.01", "0.003") == 20
    assert rt.target_seeds("apl", "0.001", "0.01", "0.003") == 10
    assert rt.target_seeds("relu_wide", "0.001", "0.001", "0.001") == 20
    assert rt.target_seeds("cpaf_relu_b_only", "0.001", "0.003", None) == 20
    assert set(EXTRA) <= set(LABELS) and set(MAIN) <= set(LABELS)
