"""``cpaf-train finetune``: a trained run's networks swapped and fine-tuned through the engine,
end to end on a tiny run (two seeds, 512 real Fashion-MNIST images, one epoch)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from cpaf_jax.activations.family import ActivationParam
from cpaf_jax.experiments.command import main
from cpaf_jax.experiments.restore import restore_model

TINY = ["--train-subset", "512", "--batch-size", "64", "--no-progress"]


@pytest.fixture(scope="module")
def relu_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("relu_run")
    argv = ["fashion_mnist", "--activations", "relu", "--seeds", "2", "--epochs", "1"]
    argv += TINY + ["--eval-every", "0", "--no-plots", "--out", str(out / "run")]
    assert main(argv) == 0
    return out / "run" / "relu"


def _kernels(model) -> list[np.ndarray]:
    return [np.asarray(model.conv1.kernel[...]), np.asarray(model.dense.kernel[...])]


def test_activations_only_changes_activation_parameters_alone(relu_run, tmp_path, capsys):
    out = tmp_path / "ft"
    argv = ["finetune", "--from", str(relu_run), "--to", "cpaf_relu", "--k", "2"]
    argv += ["--sharing", "channel", "--epochs", "1", "--calibration", "128", "--out", str(out)]
    assert main(argv + TINY) == 0
    assert "| seed=0,lr=0.001 |" in capsys.readouterr().out
    result = json.loads((out / "finetune.json").read_text())
    assert [r["seed"] for r in result["runs"]] == [0, 1]
    for r in result["runs"]:
        # CPAF-ReLU contains ReLU: the swap keeps the accuracy (to a borderline image or two).
        assert r["swapped"]["test_accuracy"] == pytest.approx(
            r["before"]["test_accuracy"], abs=2e-4
        )
        assert 0.0 < r["finetuned"]["test_accuracy"] <= 1.0
        assert [layer["path"] for layer in r["layers"]] == ["act1", "act2", "act3", "act4"]
    for member, seed in ((0, 0), (1, 1)):
        source = restore_model(relu_run, member=seed)
        tuned = restore_model(out / "cpaf_relu", member=member)  # the checkpoint restores
        assert tuned.act1.family == "cpaf_relu" and tuned.act1.a.shape == (16, 2)
        for before, after in zip(_kernels(source), _kernels(tuned), strict=True):
            np.testing.assert_array_equal(before, after)  # weights frozen
    fresh = restore_model(out / "cpaf_relu")
    params = jax.tree.leaves(jax.tree.map(np.asarray, _act_state(fresh)))
    assert params and all(np.all(np.isfinite(p)) for p in params)


def _act_state(model):
    from flax import nnx

    return nnx.state(model, ActivationParam)


def test_train_all_and_a_sweep_of_initial_values(relu_run, tmp_path):
    out = tmp_path / "all"
    argv = ["finetune", "--from", str(relu_run), "--to", "pau", "--train", "all", "--seed", "1"]
    argv += ["--lrs", "1e-3,3e-4", "--epochs", "1", "--calibration", "64", "--out", str(out)]
    assert main(argv + TINY) == 0
    result = json.loads((out / "finetune.json").read_text())
    assert [(r["seed"], r["lr"]) for r in result["runs"]] == [(1, 1e-3), (1, 3e-4)]
    source, tuned = restore_model(relu_run, member=1), restore_model(out / "pau", member=0)
    assert not np.array_equal(_kernels(source)[0], _kernels(tuned)[0])  # weights trained


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--to", "relu"], r"relu has no parameters; pass --train all"),
        (["--to", "pau", "--k", "3"], r"pau takes no k"),
        (["--to", "nope"], r"unknown activation 'nope'"),
        (["--to", "pau", "--init", "a=1"], r"pau's parameters are \['p', 'q'\]"),
    ],
)
def test_bad_input_is_one_clear_error(relu_run, tmp_path, capsys, extra, message):
    argv = ["finetune", "--from", str(relu_run), "--out", str(tmp_path / "x")] + extra
    assert main(argv) == 2
    assert len(__import__("re").findall(message, capsys.readouterr().err)) == 1


def test_a_seed_the_run_lacks_is_named(relu_run, tmp_path, capsys):
    argv = ["finetune", "--from", str(relu_run), "--to", "pau", "--seed", "7"]
    assert main(argv + ["--out", str(tmp_path / "x")] + TINY) == 2
    assert "has no member of seed 7; its seeds are [0, 1]" in capsys.readouterr().err


def test_the_guides_finetune_commands_parse(tmp_path, monkeypatch):
    import re
    import shlex
    from pathlib import Path

    from cpaf_jax.experiments.finetune import options_from

    page = (Path(__file__).resolve().parents[2] / "docs" / "swap.md").read_text()
    lines = [ln for ln in re.findall(r"^cpaf-train finetune .*$", page, flags=re.M)]
    assert len(lines) == 2
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "relu" / "relu").mkdir(parents=True)
    parsed = [options_from(shlex.split(ln)[2:]) for ln in lines]
    assert (parsed[0].family, parsed[0].train, parsed[0].family_options) == (
        "cpaf_sigmoid",
        "activations",
        {"k": 4},
    )
    assert parsed[1].seeds == (0, 1) and parsed[1].learning_rates == (1e-3, 3e-4)
