"""Tests for cpaf_jax.experiments.outdir: a finished run's folder is never lost or shared."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cpaf_jax.experiments.outdir import (
    RunFolder,
    RunFolderError,
    check_out_dir,
    holds_run,
    lock_path,
)


def fake_run(path: Path) -> Path:
    """A finished run's folder: results, metrics and one member's checkpoint."""
    (path / "cpaf_relu" / "seed0" / "checkpoints" / "1").mkdir(parents=True)
    (path / "cpaf_relu" / "seed0" / "checkpoints" / "1" / "state").write_bytes(b"\x00\x01weights")
    (path / "results.json").write_text(json.dumps({"runs": [{"seed": 0}]}))
    (path / "metrics.jsonl").write_text('{"step": 1}\n')
    return path


def snapshot(path: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``path``."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def beside(path: Path) -> list[str]:
    """Hidden entries next to ``path`` (locks, staging folders)."""
    return sorted(e.name for e in path.parent.iterdir() if e.name.startswith("."))


def test_new_folder_is_created_locked_and_released(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "exp"
    with RunFolder(str(out), command="python -m train x") as write_dir:
        assert write_dir == str(out) and out.is_dir()
        info = json.loads(Path(lock_path(str(out))).read_text())
        assert info["pid"] == os.getpid() and info["command"] == "python -m train x"
        assert info["host"] == socket.gethostname() and info["started"]
    assert not Path(lock_path(str(out))).exists()


@pytest.mark.parametrize("flags", [{}, {"resume": False, "overwrite": False}])
def test_previous_run_is_refused_without_resume_or_overwrite(tmp_path: Path, flags) -> None:
    out = fake_run(tmp_path / "exp")
    before = snapshot(out)
    with pytest.raises(RunFolderError, match="holds a previous run.*--resume.*--overwrite"):
        check_out_dir(str(out), **flags)
    with pytest.raises(RunFolderError, match="holds a previous run"):
        with RunFolder(str(out), **flags):
            pytest.fail("entered a folder holding a previous run")
    assert snapshot(out) == before and beside(out) == []


def test_non_run_folder_and_file_are_refused_even_with_flags(tmp_path: Path) -> None:
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.png").write_bytes(b"png")
    for flags in ({}, {"resume": True}, {"overwrite": True}):
        with pytest.raises(RunFolderError, match=r"not empty \(cat.png\) and holds no run"):
            check_out_dir(str(other), **flags)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(RunFolderError, match="is a file"):
        check_out_dir(str(a_file))
    with pytest.raises(RunFolderError, match="exclude each other"):
        check_out_dir(str(tmp_path / "new"), resume=True, overwrite=True)
    assert (other / "cat.png").read_bytes() == b"png"


def test_holds_run_sees_member_folders_and_ignores_hidden_files(tmp_path: Path) -> None:
    member_only = tmp_path / "m"
    (member_only / "relu" / "seed3").mkdir(parents=True)
    (member_only / "relu" / "seed3" / "metrics.jsonl").write_text("{}\n")
    assert holds_run(str(member_only))
    hidden = tmp_path / "h"
    hidden.mkdir()
    (hidden / ".gitkeep").write_text("")
    assert not holds_run(str(hidden))
    check_out_dir(str(hidden))  # only hidden files: counts as empty


def test_resume_writes_into_the_run_folder(tmp_path: Path) -> None:
    out = fake_run(tmp_path / "exp")
    with RunFolder(str(out), resume=True) as write_dir:
        assert write_dir == str(out)
        (Path(write_dir) / "results.json").write_text("{}")
    assert (out / "results.json").read_text() == "{}"


def test_overwrite_replaces_the_old_run_only_on_success(tmp_path: Path) -> None:
    out = fake_run(tmp_path / "exp")
    with RunFolder(str(out), overwrite=True) as write_dir:
        assert write_dir != str(out) and Path(write_dir).parent == out.parent
        assert (out / "results.json").exists()  # the old run stays readable meanwhile
        (Path(write_dir) / "results.json").write_text('{"new": 1}')
    assert snapshot(out).keys() == {"results.json"}
    assert json.loads((out / "results.json").read_text()) == {"new": 1}
    assert beside(out) == []


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_failed_overwrite_leaves_the_old_run(tmp_path: Path, error) -> None:
    out = fake_run(tmp_path / "exp")
    before = snapshot(out)
    with pytest.raises(error):
        with RunFolder(str(out), overwrite=True) as write_dir:
            (Path(write_dir) / "results.json").write_text("partial")
            raise error("training failed")
    assert snapshot(out) == before and beside(out) == []


def test_second_run_is_refused_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    with RunFolder(str(out), command="python -m train fashion_mnist --out exp"):
        for flags in ({}, {"resume": True}, {"overwrite": True}):
            with pytest.raises(RunFolderError) as info:
                with RunFolder(str(out), **flags):
                    pytest.fail("two runs in one folder")
            msg = str(info.value)
            assert f"pid {os.getpid()}" in msg and socket.gethostname() in msg
            assert "python -m train fashion_mnist --out exp" in msg
    assert not Path(lock_path(str(out))).exists()


def write_lock(out: Path, pid: int, host: str | None = None) -> Path:
    lock = Path(lock_path(str(out)))
    lock.parent.mkdir(parents=True, exist_ok=True)
    info = {"pid": pid, "host": host or socket.gethostname(), "command": "c", "started": "t"}
    lock.write_text(json.dumps(info))
    return lock


def test_lock_of_a_live_process_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = write_lock(out, other.pid)
        with pytest.raises(RunFolderError, match=f"pid {other.pid}.*delete .*lock"):
            with RunFolder(str(out)):
                pytest.fail("took a live run's lock")
        assert json.loads(lock.read_text())["pid"] == other.pid
    finally:
        other.kill()
        other.wait()


def test_stale_lock_is_taken_over_with_a_warning(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_lock(out, gone.pid)
    with pytest.warns(UserWarning, match=f"took over the lock.*pid {gone.pid}"):
        with RunFolder(str(out)) as write_dir:
            assert json.loads(Path(lock_path(write_dir)).read_text())["pid"] == os.getpid()
    assert not Path(lock_path(str(out))).exists()


def test_lock_from_another_host_or_unreadable_is_not_taken(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_lock(out, gone.pid, host="elsewhere.example")
    with pytest.raises(RunFolderError, match="elsewhere.example"):
        with RunFolder(str(out)):
            pass
    Path(lock_path(str(out))).write_text("{not json")
    with pytest.raises(RunFolderError, match="in use by another run"):
        with RunFolder(str(out)):
            pass


def test_swap_killed_between_renames_is_undone(tmp_path: Path) -> None:
    out = fake_run(tmp_path / "exp")
    before = snapshot(out)
    # What a run killed after moving the old folder aside (but before moving the new one in)
    # leaves behind.
    out.rename(tmp_path / ".exp.replaced")
    with pytest.warns(UserWarning, match="restored the previous run"):
        with pytest.raises(RunFolderError, match="holds a previous run"):
            with RunFolder(str(out)):
                pass
    assert snapshot(out) == before and beside(out) == []
