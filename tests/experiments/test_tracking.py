"""Experiment tracking with fake writers: no TensorBoard, W&B or network needed."""

from __future__ import annotations

import os
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from cpaf_jax.experiments import tracking
from cpaf_jax.experiments.cli import build_parser


class FakeWriter:
    def __init__(self, logdir):
        self.logdir = logdir
        self.scalars = []
        self.closed = False

    def add_scalar(self, tag, value, step):
        assert type(value) is float
        self.scalars.append((tag, value, step))

    def close(self):
        self.closed = True


class FakeWandbRun:
    def __init__(self, **kwargs):
        self.init_kwargs = kwargs
        self.logged = []
        self.finished = False

    def log(self, data, step):
        assert all(type(v) is float for v in data.values())
        self.logged.append((data, step))

    def finish(self):
        self.finished = True


def test_null_tracker_is_the_default_and_does_nothing(tmp_path):
    tracker = tracking.make_tracker("none", out=str(tmp_path))
    assert isinstance(tracker, tracking.NullTracker)
    assert isinstance(tracker, tracking.Tracker)
    tracker.log("relu/seed0", 1, {"loss": 1.0})
    tracker.close()
    assert list(tmp_path.iterdir()) == []
    args = build_parser().parse_args(["fashion_mnist"])
    assert args.track == "none"


def test_tensorboard_tracker_one_writer_per_run(tmp_path):
    writers = []

    def factory(logdir):
        writers.append(FakeWriter(logdir))
        return writers[-1]

    tracker = tracking.TensorBoardTracker(str(tmp_path / "tb"), writer_factory=factory)
    assert isinstance(tracker, tracking.Tracker)
    tracker.log("relu/seed0", 10, {"train_loss": jnp.float32(0.5), "test_accuracy": 0.25})
    tracker.log("cpaf_relu/seed0", 10, {"train_loss": np.float64(0.75)})
    tracker.log("relu/seed0", 20, {"train_loss": 0.125})
    assert [w.logdir for w in writers] == [
        os.path.join(str(tmp_path / "tb"), "relu/seed0"),
        os.path.join(str(tmp_path / "tb"), "cpaf_relu/seed0"),
    ]
    assert writers[0].scalars == [
        ("train_loss", 0.5, 10),
        ("test_accuracy", 0.25, 10),
        ("train_loss", 0.125, 20),
    ]
    assert writers[1].scalars == [("train_loss", 0.75, 10)]
    tracker.close()
    assert all(w.closed for w in writers)


def test_wandb_tracker_one_run_per_name(tmp_path):
    runs = []

    def init(**kwargs):
        runs.append(FakeWandbRun(**kwargs))
        return runs[-1]

    tracker = tracking.WandbTracker("proj", {"epochs": 1}, init=init)
    tracker.log("relu/seed0", 5, {"test_loss": jnp.asarray(1.5)})
    tracker.log("relu/seed0", 6, {"test_loss": 1.25})
    tracker.log("relu/seed1", 5, {"test_loss": 2.0})
    assert [r.init_kwargs["name"] for r in runs] == ["relu/seed0", "relu/seed1"]
    assert runs[0].init_kwargs["project"] == "proj"
    assert runs[0].init_kwargs["config"] == {"epochs": 1}
    assert runs[0].logged == [({"test_loss": 1.5}, 5), ({"test_loss": 1.25}, 6)]
    assert runs[1].logged == [({"test_loss": 2.0}, 5)]
    tracker.close()
    assert all(r.finished for r in runs)


@pytest.mark.parametrize(("kind", "module"), [("tensorboard", "tensorboardX"), ("wandb", "wandb")])
def test_missing_package_names_the_extra(monkeypatch, tmp_path, kind, module):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(tracking.TrackingUnavailable, match=rf'cpaf-jax\[{kind}\]"') as err:
        tracking.make_tracker(kind, out=str(tmp_path))
    assert f"--track {kind}" in str(err.value) and module in str(err.value)
    assert issubclass(tracking.TrackingUnavailable, ImportError)


def test_unknown_tracker_and_cli_choices(tmp_path):
    with pytest.raises(ValueError, match="--track must be one of none, tensorboard, wandb"):
        tracking.make_tracker("mlflow", out=str(tmp_path))
    track = next(a for a in build_parser()._actions if a.dest == "track")
    assert tuple(track.choices) == tracking.TRACKERS
