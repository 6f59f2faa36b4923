"""``python -m train`` over two real processes on this machine (CPU collectives over gloo).

Each process is the command a user starts on one host, with ``--coordinator``,
``--num-processes 2`` and its ``--process-id``; both write into one ``--out``. Every process
runs under a timeout, so a hang fails the test instead of blocking the suite.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cpaf_jax.experiments.cli import main

ROOT = Path(__file__).resolve().parents[2]
# Small but real: Fashion-MNIST, 2 members, 2 epochs of 10 steps, scored on 500 held-out images.
COMMON = [
    "fashion_mnist", "--activations", "cpaf_relu", "--seeds", "2", "--epochs", "2",
    "--train-subset", "640", "--validation", "500", "--batch-size", "64", "--eval-every", "0",
    "--no-plots", "--no-progress", "--cpu-devices", "1", "--process-timeout", "120",
]  # fmt: skip
TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(env, out: Path, argvs: list[list[str]]) -> list[subprocess.Popen]:
    """One process per ``argvs`` entry (its own options after ``COMMON``), all meeting at one
    fresh port and writing into ``out``."""
    port, n = _free_port(), len(argvs)
    procs = []
    for i, extra in enumerate(argvs):
        cmd = [sys.executable, "-m", "train", *COMMON, "--out", str(out), *extra]
        cmd += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n)]
        cmd += ["--process-id", str(i)]
        procs.append(
            subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    return procs


def _finish(procs: list[subprocess.Popen], timeout: float = TIMEOUT_S) -> list[tuple[int, str]]:
    """``(exit status, stderr)`` of each process; kills them all and fails on a timeout."""
    deadline, out = time.monotonic() + timeout, []
    try:
        for p in procs:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            out.append((p.returncode, err))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"a process did not finish within {timeout} s (a hang)")
    return out


def _ok(results: list[tuple[int, str]]) -> None:
    for i, (rc, err) in enumerate(results):
        assert rc == 0, f"process {i} exited {rc}:\n{err[-3000:]}"


def _runs(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())["runs"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, jax_subprocess_env) -> Path:
    """The command in one process with two CPU devices, members vmapped over both (the
    program each device runs with two processes): its ``--out``."""
    out = tmp_path_factory.mktemp("one") / "run"
    cmd = [sys.executable, "-m", "train", *COMMON, "--out", str(out)]
    cmd += ["--cpu-devices", "2", "--sweep-strategy", "vmap"]
    done = subprocess.run(
        cmd, cwd=ROOT, env=jax_subprocess_env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _same_runs(out: Path, reference: Path, tolerance: float = 0.0) -> None:
    runs, ref = _runs(out), _runs(reference)
    assert [r["seed"] for r in runs] == [r["seed"] for r in ref] == [0, 1]
    for a, b in zip(runs, ref, strict=True):
        assert abs(a["test_accuracy"] - b["test_accuracy"]) <= tolerance, (a, b)
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=tolerance, abs=0), (a, b)
        if not tolerance:
            assert a["acc_curve"] == b["acc_curve"] and a["curve"] == b["curve"]


def test_two_processes_write_one_result_equal_to_one_process(
    one_process, tmp_path, jax_subprocess_env
):
    out = tmp_path / "run"
    _ok(_finish(_start(jax_subprocess_env, out, [[], []])))
    # Exactly one results.json, written by process 0, with the members of both processes.
    assert sorted(tmp_path.rglob("results.json")) == [out / "results.json"]
    env = json.loads((out / "results.json").read_text())["environment"]
    assert env["process_count"] == 2 and env["device_count"] == 2
    # Measured equal to the last bit; the bound is the one users are promised: the same
    # training up to the order of float sums.
    _same_runs(out, one_process, tolerance=0.002)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len((one_process / "metrics.jsonl").read_text().splitlines())
    assert not list(tmp_path.glob(".*lock")), "the lock was released"


def test_killed_at_an_epoch_boundary_the_other_stops_and_both_resume_to_the_uninterrupted_run(
    one_process, tmp_path, jax_subprocess_env
):
    out = tmp_path / "run"
    procs = _start(jax_subprocess_env, out, [["--epochs", "3"], ["--epochs", "3"]])
    first = out / "cpaf_relu" / "checkpoints" / "1"  # orbax renames it in place when complete
    deadline = time.monotonic() + TIMEOUT_S
    while not first.is_dir() and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs]
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGKILL)
    procs[1].communicate(timeout=60)
    # Process 0 notices at its next exchange with process 1 and stops by itself, saying so.
    ((rc, err),) = _finish(procs[:1], timeout=120)
    assert rc == 4 and "lost the others" in err and "--resume" in err, err[-2000:]
    assert first.is_dir() and not (out / "results.json").exists(), "stopped before the end"
    # Resumed to the uninterrupted run's 2 epochs: both processes continue from epoch 1.
    _ok(_finish(_start(jax_subprocess_env, out, [["--resume"], ["--resume"]])))
    _same_runs(out, one_process)


def test_processes_started_with_other_settings_are_refused_at_once(tmp_path, jax_subprocess_env):
    out = tmp_path / "run"
    results = _finish(_start(jax_subprocess_env, out, [["--lr", "1e-3"], ["--lr", "2e-3"]]), 120)
    for rc, err in results:
        assert rc == 2, err[-2000:]
        assert "different settings" in err and "lr: 0.001 vs 0.002" in err, err[-2000:]
    assert not (out / "results.json").exists() and not (out / "cpaf_relu").exists()


def test_a_process_whose_peer_never_arrives_stops_with_a_message(tmp_path, jax_subprocess_env):
    port = _free_port()
    cmd = [sys.executable, "-m", "train", *COMMON, "--out", str(tmp_path / "run")]
    cmd += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0"]
    cmd += ["--process-timeout", "3"]
    done = subprocess.run(
        cmd, cwd=ROOT, env=jax_subprocess_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 4, done.stderr[-2000:]
    assert "not every process arrived" in done.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--coordinator", "h:1"], r"needs --num-processes, --process-id too"),
        (["--num-processes", "2", "--process-id", "0"], r"needs --coordinator too"),
        (["--coordinator", "h", "--num-processes", "2", "--process-id", "0"], r"HOST:PORT"),
        (["--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"], r"0\.\.1"),
        (["--distributed", "--process-id", "0"], r"--distributed: detects --process-id"),
        (["--distributed", "--sweep-strategy", "loop"], r"several processes use auto"),
        (["--distributed", "--no-sweep"], r"several processes use auto"),
    ],
)
def test_process_options_are_checked_before_anything_starts(tmp_path, capsys, extra, message):
    import re

    argv = ["fashion_mnist", "--out", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not os.path.exists(tmp_path / "o")
