"""``--resume`` continues a run only on the data it trained on and with every activation it
trained: other data or a dropped activation is refused with one message, the run untouched."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from fakes import write_idx_dataset

from cpaf_jax.experiments import cli

BASE = ["fashion_mnist", "--epochs", "1", "--batch-size", "32", "--eval-every", "0"]
QUIET = ["--no-progress", "--no-plots", "--cpu-devices", "1"]


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def prior(tmp_path_factory) -> dict[str, Path]:
    """A finished run of relu on 64 fake Fashion-MNIST images, and a second data folder of the
    same size with other labels."""
    root = tmp_path_factory.mktemp("resume")
    write_idx_dataset(root / "data", n_train=64, n_test=16, seed=0)
    write_idx_dataset(root / "other", n_train=64, n_test=16, seed=1)
    out = root / "prior"
    argv = BASE + ["--activations", "relu", "--data-dir", str(root / "data"), "--out", str(out)]
    assert cli.main(argv + QUIET) == 0
    return {"out": out, "data": root / "data", "other": root / "other"}


def _copy(prior, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(prior["out"], out)
    return out


REFUSED = {
    "train subset": (["--train-subset", "32"], r"train_images: 64 -> 32"),
    "validation split": (["--validation", "16"], r"eval_split: 'test' -> 'validation'"),
    "other files": (["--data-dir", "{other}"], r"data_source: .*train_labels_sha256"),
    "other dataset": (["--dataset", "mnist"], r"dataset: 'fashion_mnist' -> 'mnist'"),
    "activation dropped": (["--activations", "prelu"], r"without relu.*--activations relu,prelu"),
}


@pytest.mark.parametrize("case", tuple(REFUSED))
def test_resume_on_other_data_or_without_an_activation_is_refused(prior, tmp_path, capsys, case):
    change, pattern = REFUSED[case]
    out = _copy(prior, tmp_path)
    before = snapshot(out)
    argv = BASE + ["--activations", "relu", "--data-dir", str(prior["data"])]
    argv += [a.format(other=prior["other"]) for a in change] + ["--out", str(out), "--resume"]
    # argparse keeps the last of a repeated option: the change wins.
    assert cli.main(argv + QUIET) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err
    assert snapshot(out) == before


def test_checkpoints_alone_hold_a_resume_to_its_data(prior, tmp_path, capsys):
    """Interrupted before its first results.json: the checkpoint's data identity decides."""
    out = _copy(prior, tmp_path)
    (out / "results.json").unlink()
    argv = BASE + ["--activations", "relu", "--data-dir", str(prior["other"])]
    assert cli.main(argv + ["--out", str(out), "--resume"] + QUIET) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "data train_labels_sha256" in err, err


def test_an_activation_added_on_resume_keeps_the_others_results(prior, tmp_path):
    out = _copy(prior, tmp_path)
    before = json.loads((out / "results.json").read_text())["runs"]
    argv = BASE + ["--activations", "relu,prelu", "--data-dir", str(prior["data"])]
    assert cli.main(argv + ["--out", str(out), "--resume"] + QUIET) == 0
    after = json.loads((out / "results.json").read_text())
    assert [r["activation"] for r in after["runs"]] == ["relu", "prelu"]
    for key in ("seed", "test_accuracy", "test_loss", "final_train_loss", "failed_step"):
        assert after["runs"][0][key] == before[0][key], key
    assert after["settings"]["activations"] == ["relu", "prelu"]
    assert (
        after["settings"]["train_labels_sha256"]
        == json.loads((prior["out"] / "results.json").read_text())["settings"][
            "train_labels_sha256"
        ]
    )
