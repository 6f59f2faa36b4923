"""The reproduction plan as data (stages, seeds, rates, the matched width) and runs.csv."""

from __future__ import annotations

import jax
import pytest
from flax import nnx

from cpaf_jax.experiments import reproduction_plan as plan
from cpaf_jax.experiments import runs_csv
from cpaf_jax.models import build_model


def _weights(model):
    return sum(int(v.size) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_closed_form_weight_count_is_the_built_network():
    for width in (1.0, plan.WIDE_RELU_WIDTH):
        assert plan.fashion_net_weights(width) == _weights(
            build_model("fashion_mnist", "relu", width=width)
        )


def test_wide_relu_matches_the_per_element_cpaf_network():
    cpaf = _weights(build_model("fashion_mnist", "cpaf_sigmoid"))
    wide = plan.fashion_net_weights(plan.WIDE_RELU_WIDTH)
    assert abs(wide - cpaf) / cpaf < 0.01
    # No other multiple of 0.01 comes closer.
    for w in (plan.WIDE_RELU_WIDTH - 0.01, plan.WIDE_RELU_WIDTH + 0.01):
        assert abs(plan.fashion_net_weights(w) - cpaf) >= abs(wide - cpaf)


def test_stages_follow_the_issue():
    tune = plan.stage_rows("tune")
    assert all(r.lrs == plan.TUNE_LRS and r.validation for r in tune)
    assert all(r.seeds >= 3 and r.epochs == 10 for r in tune)
    final = {r.label: r for r in plan.stage_rows("final")}
    assert set(final) == {r.label for r in tune}
    assert all(final[a].seeds >= 20 for a in plan.MAIN)
    assert all(final[a].seeds >= 10 for a in plan.EXTRA)
    assert all(r.validation is None for r in final.values())
    assert {"cpaf_sigmoid_frozen", "cpaf_relu_frozen", "relu_bias"} <= set(final)
    assert final["prelu_channel"].sharing == "channel" and final["relu_wide"].width > 1
    abl = plan.stage_rows("ablation")
    assert len(abl) == 2 * 4 * 3 and all(r.seeds >= 5 and r.epochs == 10 for r in abl)
    feats = plan.stage_rows("features")
    assert "prelu" in {r.activation for r in feats}
    assert all(r.experiment == "mnist_features" and r.epochs == 10 for r in feats)
    with pytest.raises(ValueError, match="unknown stage 'x'; the stages are tune"):
        plan.stage_rows("x")


def test_argv_is_a_train_command():
    row = plan.stage_rows("tune")[-1]
    argv = row.argv("OUT")
    assert argv[:3] == ["fashion_mnist", "--activations", "prelu"]
    assert "--lrs" in argv and "--validation" in argv and argv[-2:] == ["--out", "OUT"]
    assert plan.stage_rows("final")[0].argv("O", (1e-3,))[7:9] == ["--lr", "0.001"]
    with pytest.raises(ValueError, match="no learning rate yet"):
        plan.stage_rows("final")[0].argv("O")


def _results(acc, commit="c" * 40):
    run = {"activation": "prelu", "seed": 0, "learning_rate": 1e-3, "epochs": 1,
           "sharing": "channel", "activation_kwargs": {}, "eval_split": "validation",
           "test_accuracy": acc, "test_loss": 0.5, "dataset": "fashion_mnist",
           "activation_params": {"scalars": 16 + 32 + 4 + 30}}  # fmt: skip
    settings = {"experiment": "fashion_mnist", "model": "fashion_mnist", "train_images": 64,
                "model_kwargs": {"input_shape": [28, 28, 1], "num_classes": 10}}  # fmt: skip
    return {"settings": settings, "provenance": {"commit": commit, "dirty": False}, "runs": [run]}


def test_rows_of_results_and_upsert(tmp_path):
    (row,) = runs_csv.rows_of(_results(0.5), "tune", "prelu_channel")
    assert row["split"] == "validation" and row["sharing"] == "channel" and row["k"] == ""
    assert row["params"] == str(plan.fashion_net_weights() + 82)
    assert row["commit"] == "c" * 40 and row["test_accuracy"] == "0.5"
    path = str(tmp_path / "runs.csv")
    runs_csv.write(path, [row])
    (again,) = runs_csv.rows_of(_results(0.75, "d" * 40), "tune", "prelu_channel")
    other = dict(again, seed="1")
    runs_csv.write(path, runs_csv.upsert(runs_csv.read(path), [again, other]))
    got = runs_csv.read(path)
    assert [(r["seed"], r["test_accuracy"], r["commit"][0]) for r in got] == [
        ("0", "0.75", "d"),
        ("1", "0.75", "d"),
    ]


def test_dirty_ignores_only_the_reproductions_own_outputs():
    own = {"dirty": True, "dirty_paths": ["docs/reproduction/runs.csv", "REPRODUCTION.md"]}
    assert runs_csv.code_dirty(own) is False
    code = {"dirty": True, "dirty_paths": ["docs/reproduction/runs.csv", "cpaf_jax/models.py"]}
    assert runs_csv.code_dirty(code) is True
    assert runs_csv.code_dirty({"dirty": False, "dirty_paths": []}) is False
    assert runs_csv.code_dirty({"dirty": None}) is None
    cut = {"dirty": True, "dirty_paths": ["docs/reproduction/runs.csv"] * 50}
    assert runs_csv.code_dirty(cut) is True
