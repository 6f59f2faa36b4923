"""A run that its environment fails (a full or read-only disk, a failed checkpoint, Ctrl-C) ends
with one line, leaves no temporary file, and keeps what it had written.

The disk's failures are injected at the boundary the code writes through (``os`` as the
atomic writer and the lock see it, orbax's save), since tests may run as root, whom a
read-only folder does not stop.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pytest
from fakes import write_idx_dataset

from cpaf_jax.experiments import atomic, cli, faults, outdir
from cpaf_jax.experiments.outdir import lock_path

ROOT = Path(__file__).resolve().parents[2]
BASE = ["fashion_mnist", "--activations", "relu", "--batch-size", "32", "--eval-every", "0"]
QUIET = ["--no-progress", "--no-plots", "--cpu-devices", "1"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fake_fashion")
    write_idx_dataset(folder, n_train=64, n_test=16)
    return folder


def _argv(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return BASE + ["--epochs", "1", "--data-dir", str(data_dir), "--out", str(out), *QUIET, *extra]


def _error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("error:")]


def _leftovers(folder: Path) -> list[str]:
    """Temporary files under ``folder`` and beside it (the lock's)."""
    return sorted(str(p) for p in folder.parent.rglob("*") if p.name.endswith(".tmp"))


class _FullDisk:
    """``os`` whose ``replace`` fails as on a full disk (``os`` as ``atomic`` sees it)."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def replace(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), src)


def test_a_failed_replace_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")
    monkeypatch.setattr(atomic, "os", _FullDisk())
    with pytest.raises(OSError, match="No space left") as caught:
        atomic.write_text(str(target), "new")
    assert caught.value.filename == str(target)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.mark.parametrize("debug", (False, True), ids=("log", "debug"))
def test_a_full_disk_writing_results_is_one_error_line(data_dir, tmp_path, monkeypatch, capsys,
                                                        debug):  # fmt: skip
    out = tmp_path / "run"
    monkeypatch.setattr(atomic, "os", _FullDisk())
    assert cli.main(_argv(data_dir, out, *(["--debug"] if debug else []))) == 1
    err = capsys.readouterr().err
    if debug:
        assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("error: ")
    else:
        (line,) = _error_lines(err)
        assert f"cannot write {out}/results.json: No space left on device" in line, line
        assert f"(details: {out}/{faults.LOG_NAME})" in line
        assert "Traceback" in (out / faults.LOG_NAME).read_text()
    assert _leftovers(out) == [] and not Path(lock_path(str(out))).exists()
    assert not (out / "results.json").exists()


def test_a_checkpoint_orbax_cannot_write_is_one_error_line(data_dir, tmp_path, monkeypatch,
                                                            capsys, caplog):  # fmt: skip
    """Any orbax failure (not only a full disk); orbax's own log records go to the log file."""
    from cpaf_jax.training import checkpoints

    def failing_save(self, epoch, state, meta):
        logging.getLogger("absl").error("orbax: a write thread raised\nTraceback: ...")
        raise ValueError("INTERNAL: tensorstore write failed\n  more detail\n  and more")

    monkeypatch.setattr(checkpoints.Checkpointer, "save", failing_save)
    out = tmp_path / "run"
    assert cli.main(_argv(data_dir, out)) == 1
    (line,) = _error_lines(capsys.readouterr().err)
    assert f"could not write checkpoint {out}/relu/checkpoints/1" in line, line
    assert "ValueError: INTERNAL: tensorstore write failed)" in line
    assert "a write thread raised" not in caplog.text
    log = (out / faults.LOG_NAME).read_text()
    assert "a write thread raised" in log and "more detail" in log
    assert _leftovers(out) == [] and not Path(lock_path(str(out))).exists()


def test_a_full_disk_taking_the_lock_leaves_no_temporary_file(data_dir, tmp_path, monkeypatch,
                                                               capsys):  # fmt: skip
    def full(obj, f):
        f.write("{")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outdir.json, "dump", full)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the log goes there
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "run"
    assert cli.main(_argv(data_dir, out)) == 1
    (line,) = _error_lines(capsys.readouterr().err)
    assert "No space left on device" in line
    (log,) = (tmp_path / "tmp").iterdir()
    assert f"(details: {log})" in line and "Traceback" in log.read_text()
    assert _leftovers(out) == [] and not Path(lock_path(str(out))).exists()


def test_an_earlier_run_survives_a_failed_resume_write(data_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert cli.main(_argv(data_dir, out)) == 0
    before = (out / "results.json").read_text()
    monkeypatch.setattr(atomic, "os", _FullDisk())
    assert cli.main(_argv(data_dir, out, "--resume")) == 1
    assert len(_error_lines(capsys.readouterr().err)) == 1
    assert (out / "results.json").read_text() == before
    assert json.loads(before)["runs"][0]["activation"] == "relu"


def test_ctrl_c_during_start_up_exits_130_with_one_line(data_dir, tmp_path, jax_subprocess_env):
    """Ctrl-C once the run folder is locked: the data load, the model build, the first
    compilation. Before, the interpreter's teardown crashed in most tries (exit 139)."""
    out = tmp_path / "run"
    argv = BASE + ["--epochs", "50", "--data-dir", str(data_dir), "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "train", *argv, "--no-progress"], cwd=ROOT,
                            env=jax_subprocess_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    lock = Path(lock_path(str(out)))
    deadline = time.monotonic() + 300
    while not lock.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted"), err[-3000:]
    assert not lock.exists() and _leftovers(out) == []


@pytest.mark.parametrize("processes", (1, 2))
def test_a_barrier_failed_by_a_lost_process_is_not_a_write_error(tmp_path, monkeypatch, processes):
    """With several processes a failed barrier of the write means a process is gone: it
    reaches the command as such (which exits with the lost-process status); alone, any
    failure is a checkpoint that could not be written."""
    from jax.errors import JaxRuntimeError

    from cpaf_jax.training import checkpoints

    cfg = types.SimpleNamespace(out_dir=str(tmp_path), checkpoint=True, resume=False,
                                batch_size=8, optimizer="adam", weight_decay=0.0)  # fmt: skip
    run = checkpoints.RunCheckpoints(cfg, [], {})

    def failing_save(self, epoch, state, meta):
        raise JaxRuntimeError("INTERNAL: Barrier failed: UNAVAILABLE: Task 1 heartbeat timeout")

    monkeypatch.setattr(checkpoints.Checkpointer, "save", failing_save)
    monkeypatch.setattr(checkpoints.jax, "process_count", lambda: processes)
    if processes > 1:
        with pytest.raises(JaxRuntimeError, match="heartbeat timeout"):
            run.save(1, {}, {})
    else:
        with pytest.raises(checkpoints.CheckpointWriteError, match="could not write checkpoint"):
            run.save(1, {}, {})
    assert not (tmp_path / "checkpoints" / "1").exists()
