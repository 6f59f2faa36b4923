"""``python -m train inspect`` on trained APL, PAU, Swish and learned-ELU runs: every activation
layer of the network is restored from the checkpoint alone and reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import write_idx_dataset

from cpaf_jax.activations.export import to_numpy
from cpaf_jax.experiments.command import main
from cpaf_jax.experiments.restore import restore_model

TRAINED = ("apl", "pau", "swish", "elu_learned")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    write_idx_dataset(root / "data", n_train=64, n_test=16)
    out = root / "out"
    argv = ["fashion_mnist", "--data-dir", str(root / "data"), "--epochs", "1"]
    argv += ["--batch-size", "16", "--activations", ",".join(TRAINED), "--out", str(out)]
    argv += ["--no-progress", "--no-plots", "--eval-every", "0"]
    assert main(argv) == 0
    return out


@pytest.mark.parametrize("name", TRAINED)
def test_inspect_reports_all_four_layers(runs, name, capsys):
    run_dir = runs / name
    capsys.readouterr()
    assert main(["inspect", str(run_dir), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out.split("\nplot: ")[0])
    assert sorted(stats) == ["act1", "act2", "act3", "act4"]
    for info in stats.values():
        assert info["family"] == name and info["params"]
    assert (run_dir / "inspect_shapes.png").stat().st_size > 1000
    # The restored layers moved away from their initial values, and export as NumPy.
    model = restore_model(run_dir)
    assert model.act1.record.name == name
    x = np.random.default_rng(0).normal(size=(2, 26, 26, 16)).astype(np.float32)
    np.testing.assert_allclose(to_numpy(model.act1)(x), np.asarray(model.act1(x)), atol=1e-5)
    trained = [np.asarray(getattr(model.act4, p)[...]) for p in model.act4.record.params]
    init = model.act4.record.initial_values(**dict(model.act4.shape_options))
    params = model.act4.record.params
    moved = [not np.allclose(t, init[p]) for t, p in zip(trained, params, strict=True)]
    assert any(moved)
