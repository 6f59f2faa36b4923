"""Training loop, checkpoints and resume, divergence, and the ``python -m train`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from fakes import cifar_batches, subset, write_cifar_archive, write_idx_dataset

from cpaf_jax import compile_options
from cpaf_jax.data import Dataset, load_dataset
from cpaf_jax.experiments.command import main
from cpaf_jax.models import build_model
from cpaf_jax.training import TrainConfig, TrainingDiverged, fit
from cpaf_jax.training.optim import make_optimizer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fashion() -> Dataset:
    """The real Fashion-MNIST, as CI installs it (Debian's dataset-fashion-mnist)."""
    return load_dataset("fashion_mnist")


def leaves(state) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves((state.params, state.opt_state))]


# ------------------------------------------------------------------------- learning, real data


@pytest.mark.parametrize("activation", ["cpaf_relu", "prelu"])
def test_brief_training_on_real_fashion_mnist_reaches_80_percent(fashion, activation):
    """One epoch on the 60,000 real training images (468 steps of 128), Adam 2e-3, scored on
    the full 10,000-image test set. Measured here: 0.83-0.85 over seeds 0 and 1."""
    model = build_model("fashion_mnist", activation, seed=0)
    res = fit(model, fashion, make_optimizer("adam", 2e-3), TrainConfig(epochs=1, progress=False))
    assert len(fashion.test_labels) == 10_000
    assert res.test_accuracy >= 0.80, f"{activation}: {res.test_accuracy:.4f}"
    assert res.steps == 60_000 // 128


def test_training_is_deterministic_for_a_seed(fashion):
    data = subset(fashion, 512, 256)
    cfg = TrainConfig(epochs=1, batch_size=64, seed=3, progress=False)
    tx = make_optimizer("adam", 1e-3)
    runs = [fit(build_model("fashion_mnist", "cpaf_sigmoid", seed=3), data, tx, cfg) for _ in "ab"]
    for x, y in zip(leaves(runs[0].state), leaves(runs[1].state), strict=True):
        np.testing.assert_array_equal(x, y)
    assert runs[0].test_loss == runs[1].test_loss


# ------------------------------------------------------------------------- checkpoints, resume


class Killed(Exception):
    pass


def test_resume_after_interruption_matches_uninterrupted_run(fashion, tmp_path):
    data = subset(fashion, 640, 200)

    def run(out, resume=False, kill_after=None):
        def on_epoch_end(epoch, state):
            if kill_after is not None and epoch == kill_after:
                raise Killed

        cfg = TrainConfig(
            epochs=3,
            batch_size=64,
            seed=1,
            eval_every=4,
            out_dir=str(out),
            resume=resume,
            progress=False,
        )
        model = build_model("fashion_mnist", "cpaf_relu", seed=1)
        return fit(model, data, make_optimizer("adam", 1e-3), cfg, on_epoch_end=on_epoch_end)

    full = run(tmp_path / "full")
    with pytest.raises(Killed):
        run(tmp_path / "killed", kill_after=1)
    assert (tmp_path / "killed" / "checkpoints" / "1").is_dir()
    resumed = run(tmp_path / "killed", resume=True)
    assert resumed.steps == full.steps
    for x, y in zip(leaves(full.state), leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(x, y)
    assert resumed.test_loss == full.test_loss

    # The resumed log holds each record once, in the same order as the uninterrupted one.
    def recs(p):
        return [
            (r["kind"], r["step"])
            for r in map(json.loads, p.read_text().splitlines())
            if r["kind"] != "epoch"
        ]

    assert recs(tmp_path / "killed" / "metrics.jsonl") == recs(tmp_path / "full" / "metrics.jsonl")


def test_nan_loss_stops_the_run_naming_step_and_checkpoint(fashion, tmp_path):
    data = subset(fashion, 256, 64)
    cfg = TrainConfig(
        epochs=1, batch_size=64, seed=0, out_dir=str(tmp_path), progress=False, log_every=1
    )
    fit(build_model("fashion_mnist", "relu", seed=0), data, make_optimizer("adam", 1e-3), cfg)
    # Epoch 2 resumes from the epoch-1 checkpoint on poisoned images: its first step, step 4
    # (4 steps per epoch, counted from 0), must stop the run.
    bad = Dataset(**{**data.__dict__, "train_images": np.full_like(data.train_images, np.nan)})
    cfg2 = TrainConfig(**{**cfg.__dict__, "epochs": 2, "resume": True})
    with pytest.raises(TrainingDiverged) as info:
        fit(build_model("fashion_mnist", "relu", seed=0), bad, make_optimizer("adam", 1e-3), cfg2)
    err = info.value
    assert err.step == 4
    assert err.checkpoint and err.checkpoint.endswith("checkpoints/1")
    assert "step 4" in str(err) and "checkpoints/1" in str(err)
    log = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["kind"] == "diverged" and log[-1]["step"] == 4


def test_nan_in_first_epoch_reports_no_checkpoint(fashion):
    data = subset(fashion, 128, 64)
    images = data.train_images.copy()
    images[:] = np.inf
    bad = Dataset(**{**data.__dict__, "train_images": images})
    with pytest.raises(TrainingDiverged, match="step 0 .*none"):
        model = build_model("fashion_mnist", "cpaf_sigmoid", seed=0)
        fit(model, bad, make_optimizer("adam", 1e-3), TrainConfig(epochs=1, batch_size=64))


# ------------------------------------------------------------------------- the command


def test_help_lists_experiments_and_options():
    out = subprocess.run(
        [sys.executable, "-m", "train", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    for word in (
        "mnist_features",
        "fashion_mnist",
        "cifar10",
        "cifar100",
        "--epochs",
        "--activations",
        "--seed",
        "--batch-size",
        "--train-subset",
        "--data-dir",
        "--out",
        "--resume",
        "--seeds",
    ):
        assert word in out


def test_fashion_mnist_command_writes_results_report_and_plots(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "fashion_mnist",
            "--train-subset",
            "512",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--activations",
            "cpaf_sigmoid,prelu",
            "--eval-every",
            "4",
            "--out",
            str(out),
            "--no-progress",
            "--seeds",
            "2",
            "--baseline",
            "prelu",
        ]
    )
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert len(res["runs"]) == 4
    for run in res["runs"]:
        for key in (
            "activation",
            "seed",
            "test_accuracy",
            "test_loss",
            "epochs",
            "wall_seconds",
            "images_per_second",
        ):
            assert key in run
        assert 0.0 <= run["test_accuracy"] <= 1.0
        assert run["curve"], "eval_every should give a test-loss curve"
    assert res["settings"]["train_images"] == 512 and res["environment"]["jax"]
    assert res["environment"]["compiler_options"] == compile_options.compiler_options()
    assert res["summary"]["cpaf_sigmoid"]["test_accuracy"]["n"] == 2
    assert "cpaf_sigmoid" in res["comparisons"]
    report = (out / "report.md").read_text()
    assert "87.92" in report and "86.69" in report  # the paper's numbers beside ours
    for png in ("test_loss.png", "ab_scatter_cpaf_sigmoid.png", "shapes_cpaf_sigmoid.png"):
        assert (out / png).stat().st_size > 1000
    pairs = res["runs"][0]["activation_params"]["cpaf_pairs"]
    assert pairs == 14_754
    assert "cpaf_sigmoid" in capsys.readouterr().out


def test_mnist_features_command_on_idx_files(tmp_path):
    write_idx_dataset(tmp_path / "data" / "mnist", n_train=96, n_test=40)
    out = tmp_path / "out"
    rc = main(
        [
            "mnist_features",
            "--data-dir",
            str(tmp_path / "data"),
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--activations",
            "relu,cpaf_relu",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert [r["activation"] for r in res["runs"]] == ["relu", "cpaf_relu"]
    assert res["settings"]["dataset"] == "mnist"
    assert (out / "features_2d.png").stat().st_size > 1000


@pytest.mark.parametrize("structure", [1, 2, 3])
def test_cifar_command_end_to_end_on_cifar_format_data(tmp_path, structure):
    batches, _, _ = cifar_batches("cifar10")
    write_cifar_archive(tmp_path / "data", "cifar10", batches)
    out = tmp_path / "out"
    rc = main(
        [
            "cifar10",
            "--structure",
            str(structure),
            "--data-dir",
            str(tmp_path / "data"),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--activations",
            "cpaf_relu",
            "--out",
            str(out),
            "--no-progress",
            "--no-plots",
        ]
    )
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["model_kwargs"]["structure"] == structure
    assert res["settings"]["optimizer"] == "rmsprop"
    assert np.isfinite(res["runs"][0]["test_loss"])


def test_missing_data_fails_with_the_ways_to_get_it_and_no_download(
    tmp_path, monkeypatch, capsys, no_download
):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    rc = main(["cifar100", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
    assert no_download["download"] == []  # offline (sockets raise): the CLI gives up at once
    assert rc == 2
    err = capsys.readouterr().err
    assert "cifar-100-python.tar.gz" in err and "tfds" in err.lower() and "--data-dir" in err


def test_unknown_activation_is_rejected(capsys):
    assert main(["fashion_mnist", "--activations", "cpaf_foo"]) == 2
    assert "cpaf_relu" in capsys.readouterr().err


def test_checkpoint_restores_an_identical_model_without_its_config(fashion, tmp_path):
    from cpaf_jax.experiments.restore import restore_model

    out = tmp_path / "out"
    rc = main(
        [
            "fashion_mnist",
            "--train-subset",
            "256",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--activations",
            "cpaf_relu",
            "--k",
            "3",
            "--sharing",
            "channel",
            "--out",
            str(out),
            "--no-progress",
            "--no-plots",
            "--eval-every",
            "0",
        ]
    )
    assert rc == 0
    restored = restore_model(out / "cpaf_relu")
    assert restored.act1.k == 3 and restored.act1.sharing == "channel"
    assert restored.act1.a.shape == (16, 3)
    res = json.loads((out / "results.json").read_text())
    # The restored model reproduces the run's test loss exactly.
    from cpaf_jax.training import evaluate

    loss, _ = evaluate(restored, fashion.test_images, fashion.test_labels, 1000)
    assert loss == pytest.approx(res["runs"][0]["test_loss"], rel=1e-6)

    # Inspection restores the same model from the run folder and plots its curves.
    assert main(["inspect", str(out / "cpaf_relu")]) == 0
    assert (out / "cpaf_relu" / "inspect_shapes.png").stat().st_size > 1000
    # A learned layer exports to a NumPy function with the same values.
    from cpaf_jax.activations.export import to_numpy

    x = np.random.default_rng(0).normal(size=(4, 26, 26, 16)).astype(np.float32)
    np.testing.assert_allclose(
        to_numpy(restored.act1)(x), np.asarray(restored.act1(x)), rtol=1e-5, atol=1e-5
    )


def test_inspect_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_seeds_run_as_a_sweep_with_statistics_and_grid_plot(tmp_path):
    out = tmp_path / "out"
    argv = [
        "fashion_mnist",
        "--train-subset",
        "256",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--activations",
        "cpaf_relu,relu",
        "--seeds",
        "3,7",
        "--init-a",
        "0.5,1",
        "--eval-every",
        "0",
        "--out",
        str(out),
        "--no-progress",
        "--baseline",
        "relu",
    ]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    cp = [r for r in res["runs"] if r["activation"] == "cpaf_relu"]
    assert len(cp) == 4 and {r["seed"] for r in cp} == {3, 7}
    assert sorted({r["init_a"][0] for r in cp}) == [0.5, 1.0]
    assert all(r["engine"]["members"] == 4 for r in cp)
    relu = [r for r in res["runs"] if r["activation"] == "relu"]
    assert len(relu) == 2 and all(r["init_a"] is None for r in relu)
    s = res["summary"]["relu"]["test_accuracy"]
    assert s["n"] == 2 and s["ci95_low"] <= s["mean"] <= s["ci95_high"]
    assert (out / "ab_grid_cpaf_relu.png").stat().st_size > 1000
    # --resume keeps finished sweeps instead of training them again.
    before = (out / "results.json").read_text()
    assert main(argv + ["--resume", "--no-plots"]) == 0
    after = json.loads((out / "results.json").read_text())
    assert [r["test_accuracy"] for r in after["runs"]] == [
        r["test_accuracy"] for r in json.loads(before)["runs"]
    ]


def test_parameter_trajectories_are_logged_and_plotted(tmp_path):
    out = tmp_path / "out"
    argv = ["fashion_mnist", "--train-subset", "256", "--epochs", "1", "--batch-size", "32"]
    argv += ["--activations", "cpaf_sigmoid", "--trajectory-every", "3", "--eval-every", "0"]
    assert main(argv + ["--out", str(out), "--no-progress"]) == 0
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    traj = [r for r in recs if r["kind"] == "trajectory"]
    assert [r["step"] for r in traj] == [1, 3, 6]
    first, last = traj[0]["layers"]["act1/a"], traj[-1]["layers"]["act1/a"]
    assert first["mean"] == pytest.approx([4.0, 4.0], abs=0.05)  # Table 1, after one step
    assert last["mean"] != first["mean"] and len(last["std"]) == 2
    assert set(traj[0]["layers"]) == {f"act{i}/{p}" for i in range(1, 5) for p in "ab"}
    assert (out / "trajectory_cpaf_sigmoid.png").stat().st_size > 1000


def test_cpu_devices_option_is_checked():
    from cpaf_jax.experiments.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["fashion_mnist", "--cpu-devices", "-1"])
    assert build_parser().parse_args(["fashion_mnist", "--cpu-devices", "2"]).cpu_devices == 2
    assert build_parser().parse_args(["fashion_mnist"]).cpu_devices == 0  # one per core
