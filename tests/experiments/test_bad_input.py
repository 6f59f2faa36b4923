"""Bad input to ``python -m train``: exit status 2, one clear message, nothing of a prior run lost.

Every case points ``--out`` at a finished run's folder (results, metrics, checkpoints) and
checks afterwards that its files are byte for byte the same. The table runs in-process with
the runner and the CPU split replaced by tripwires, so it also shows that every check happens
before any data is loaded; a subset runs as real ``python -m train`` processes to show that
no traceback reaches the user.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cpaf_jax.experiments import cli
from cpaf_jax.experiments.outdir import lock_path

ROOT = Path(__file__).resolve().parents[2]
FM = ["fashion_mnist"]

# (argv, the message stderr must contain as a regex). "{prior}" is the finished run's folder,
# "{file}" a plain file, "{photos}" a non-empty folder that holds no run; "--out {prior}" is
# added where a case names no --out.
CASES = [
    (FM + ["--epochs", "0"], r"argument --epochs: expected an integer >= 1, got 0"),
    (FM + ["--epochs", "-1"], r"argument --epochs: expected an integer >= 1, got -1"),
    (FM + ["--batch-size", "0"], r"argument --batch-size: expected an integer >= 1"),
    (FM + ["--batch-size", "-5"], r"argument --batch-size: expected an integer >= 1, got -5"),
    (FM + ["--lr", "0"], r"argument --lr: expected a number > 0, got 0"),
    (FM + ["--lr", "-0.01"], r"argument --lr: expected a number > 0, got -0.01"),
    (FM + ["--lr", "nan"], r"argument --lr: expected a finite number"),
    (FM + ["--lr", "fast"], r"argument --lr: expected a number, got 'fast'"),
    (FM + ["--k", "0"], r"argument --k: expected an integer >= 1, got 0"),
    (FM + ["--train-subset", "0"], r"argument --train-subset: expected an integer >= 1"),
    (FM + ["--weight-decay", "-5"], r"argument --weight-decay: expected a number >= 0, got -5"),
    (FM + ["--eval-every", "-3"], r"argument --eval-every: expected an integer >= 0, got -3"),
    (FM + ["--trajectory-every", "0"], r"argument --trajectory-every: expected an integer >= 1"),
    (FM + ["--cpu-devices", "-1"], r"argument --cpu-devices: expected an integer >= 0"),
    (FM + ["--seeds", "3,3"], r"argument --seeds: seeds must be distinct; 3 given twice"),
    (FM + ["--seeds", "0"], r"argument --seeds: expected a count N >= 1"),
    (FM + ["--seeds", "1,,2"], r"argument --seeds: .*none empty"),
    (FM + ["--seed", "-1"], r"argument --seed: expected an integer >= 0"),
    (FM + ["--seed", "1", "--seeds", "3"], r"argument --seeds: not allowed with argument --seed"),
    (FM + ["--activations", ","], r"argument --activations: .*none empty, got ','"),
    (FM + ["--activations", "cpaf_foo"], r"argument --activations: unknown .*cpaf_foo; known:"),
    (FM + ["--activations", "relu,relu"], r"argument --activations: .*relu given twice"),
    (FM + ["--lrs", "1e-3,-1"], r"argument --lrs: expected a number > 0, got -1"),
    (FM + ["--lrs", "1e-3,1e-3"], r"argument --lrs: values must be distinct"),
    (FM + ["--lr", "1e-3", "--lrs", "1e-3,2e-3"], r"argument --lrs: not allowed with .*--lr"),
    (FM + ["--init-a", "1,x"], r"argument --init-a: expected a number, got 'x'"),
    (FM + ["--sharing", "0,7"], r"argument --sharing: expected element, channel, shared or"),
    (FM + ["--data-dir", "/nonexistent/data"], r"argument --data-dir: .* does not exist"),
    (FM + ["--structure", "2"], r"argument --structure: applies to cifar10 and cifar100 only"),
    (FM + ["--baseline", "swish"], r"argument --baseline: 'swish' is not among"),
    (FM + ["--activations", "relu", "--k", "3"], r"argument --k: applies to CPAF activations"),
    (FM + ["--resume", "--overwrite"], r"argument --overwrite: not allowed with .*--resume"),
    (["fashion"], r"argument experiment: invalid choice: 'fashion'"),
    (FM + ["--epochs", "1"], r"holds a previous run; pass --resume .*--overwrite"),
    (FM + ["--out", "{file}"], r"is a file, not a folder"),
    (FM + ["--out", "{photos}", "--overwrite"], r"is not empty \(cat.png\) and holds no run"),
    (FM + ["--init", "a4"], r"argument --init: expected NAME=VALUES such as a=4,4"),
    (FM + ["--init", "a=1,x"], r"argument --init: expected a number, got 'x'"),
    (
        FM + ["--activations", "cpaf_relu,relu", "--init", "p=1"],
        r"argument --init: 'p' is not a parameter of cpaf_relu, relu; their parameters are a, b",
    ),
    (FM + ["--init-a", "1", "--init", "a=2,2"], r"argument --init: 'a' is also set by --init-a"),
    (FM + ["--init", "b=1,-1", "--init", "b=1,-1"], r"argument --init: values given more than"),
]
# Run as real processes too: a range, an unknown name, the refusal of a finished run's folder.
SUBPROCESS_CASES = [0, 20, 33]


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """A finished run's folder, a plain file and a non-run folder."""
    prior = tmp_path / "prior"
    ckpt = prior / "cpaf_relu" / "seed0" / "checkpoints" / "1"
    ckpt.mkdir(parents=True)
    (ckpt / "state").write_bytes(bytes(range(256)))
    (prior / "checkpoints").mkdir()
    (prior / "checkpoints" / "latest").write_text("1")
    (prior / "results.json").write_text(json.dumps({"runs": [{"activation": "cpaf_relu"}]}))
    (prior / "metrics.jsonl").write_text('{"step": 1, "loss": 2.3}\n')
    (prior / "report.md").write_text("# finished\n")
    (tmp_path / "notes.txt").write_text("not a folder")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.png").write_bytes(b"png")
    return {"prior": prior, "file": tmp_path / "notes.txt", "photos": tmp_path / "photos"}


def snapshot(path: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file and folder under ``path``."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(path.rglob("*"))
    }


def expand(argv: list[str], places: dict[str, Path]) -> list[str]:
    out = [a.format(**{k: str(v) for k, v in places.items()}) for a in argv]
    return out if "--out" in out else out + ["--out", str(places["prior"])]


def assert_one_clear_error(err: str, pattern: str) -> None:
    """No traceback, one ``error:`` message, and it matches ``pattern``."""
    assert "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1, err
    assert re.search(pattern, err[err.index("error:") :], re.S), err


@pytest.mark.parametrize(("argv", "pattern"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_command_fails_before_any_work(argv, pattern, places, monkeypatch, capsys) -> None:
    def tripwire(*args, **kwargs):
        raise AssertionError("reached the run or the device setup before refusing bad input")

    monkeypatch.setattr("cpaf_jax.experiments.runner.run_experiment", tripwire)
    monkeypatch.setattr("cpaf_jax.experiments.fetch.ensure_dataset", tripwire)
    monkeypatch.setattr(cli, "split_cpu_devices", tripwire)
    before = {k: snapshot(v) for k, v in places.items() if v.is_dir()}
    assert cli.main(expand(argv, places)) == 2
    assert_one_clear_error(capsys.readouterr().err, pattern)
    assert {k: snapshot(v) for k, v in places.items() if v.is_dir()} == before
    assert not Path(lock_path(str(places["prior"]))).exists()


def train(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``python -m train ARGV`` from the repository root, as a user runs it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TFDS_DATA_DIR=str(tmp_path / "no_tfds"))
    return subprocess.run(
        [sys.executable, "-m", "train", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_bad_commands_as_processes(places, tmp_path) -> None:
    before = snapshot(places["prior"])
    for i in SUBPROCESS_CASES:
        argv, pattern = CASES[i]
        done = train(expand(argv, places), tmp_path)
        assert done.returncode == 2, (argv, done.stderr)
        assert_one_clear_error(done.stderr, pattern)
        assert snapshot(places["prior"]) == before, argv


def test_run_refused_while_another_holds_the_folder(places, tmp_path) -> None:
    before = snapshot(places["prior"])
    lock = Path(lock_path(str(places["prior"])))
    # This test's own process is alive, on this host: the lock is not stale.
    info = {"pid": os.getpid(), "host": os.uname().nodename, "command": "python -m train X"}
    lock.write_text(json.dumps(dict(info, started="2026-01-01T00:00:00+00:00")))
    done = train(FM + ["--resume", "--out", str(places["prior"])], tmp_path)
    assert done.returncode == 2
    assert_one_clear_error(done.stderr, rf"in use by another run \(pid {os.getpid()} on .*X\)")
    assert snapshot(places["prior"]) == before
    assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_failed_overwrite_keeps_the_previous_run(places, tmp_path) -> None:
    """Valid options, missing data: the run starts in a staging folder and fails there."""
    before = snapshot(places["prior"])
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["cifar10", "--data-dir", str(empty), "--out", str(places["prior"]), "--overwrite"]
    done = train(argv, tmp_path)
    assert done.returncode == 2
    assert_one_clear_error(done.stderr, r"cifar-10-python.tar.gz.*previous run in .* unchanged")
    assert snapshot(places["prior"]) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_crafted_cifar_pickle_is_refused_and_runs_nothing(tmp_path) -> None:
    class RunsShell:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "data_batch_1").write_bytes(pickle.dumps(dict(batch, evil=RunsShell()), protocol=2))
    done = train(
        ["cifar10", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "o")], tmp_path
    )
    assert done.returncode == 2
    assert_one_clear_error(done.stderr, r"data_batch_1.*refers to posix.system.*refusing")
    assert not (tmp_path / "pwned").exists()


def test_inspect_of_a_missing_folder_creates_nothing(tmp_path, capsys) -> None:
    missing = tmp_path / "nonexistent" / "run"
    from cpaf_jax.experiments.command import main

    assert main(["inspect", str(missing)]) == 2
    assert_one_clear_error(capsys.readouterr().err, r"run folder .* does not exist")
    assert not (tmp_path / "nonexistent").exists()


def test_overwrite_replaces_the_previous_run_once_finished(places, tmp_path) -> None:
    argv = FM + ["--activations", "relu", "--train-subset", "64", "--epochs", "1"]
    argv += ["--batch-size", "32", "--eval-every", "0", "--no-plots", "--no-progress"]
    done = train(argv + ["--out", str(places["prior"]), "--overwrite"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    results = json.loads((places["prior"] / "results.json").read_text())
    assert [r["activation"] for r in results["runs"]] == ["relu"]
    assert results["settings"]["train_images"] == 64
    assert not (places["prior"] / "cpaf_relu").exists()  # the old run's files are gone
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
