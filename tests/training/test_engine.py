"""The one training engine: a single run is a sweep of one; resume, groups, isolation.

Small and fast: the paper's 4.1 network (conv 16-8-4-2) on 512 real Fashion-MNIST training
images (4 steps of 128 per epoch) and 256 test images.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import chex
import jax
import numpy as np
import pytest
from fakes import real_fashion_mnist_subset

from cpaf_jax.experiments.command import main
from cpaf_jax.experiments.paper import build_member_model
from cpaf_jax.training import Member, ResumeMismatch, TrainConfig, executors, train

ROOT = Path(__file__).resolve().parents[2]
KIND, ACT = "mnist_features", "cpaf_relu"


@pytest.fixture(scope="module")
def small():
    return real_fashion_mnist_subset(512, 256)


def _train(data, members, out=None, **kw):
    cfg = TrainConfig(**{"epochs": 1, "eval_batch_size": 256, "progress": False,
                         "out_dir": None if out is None else str(out), **kw})  # fmt: skip
    return train(members, lambda m: build_member_model(KIND, ACT, m), data, cfg)


def _leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _assert_same(a, b):
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_single_run_is_a_sweep_of_one_and_traces_its_step_once(small, monkeypatch):
    make = executors.make_train_step
    monkeypatch.setattr(
        executors,
        "make_train_step",
        lambda g, tx, *fns: chex.assert_max_traces(make(g, tx, *fns), n=1),
    )
    members = [Member(seed=0, lr=1e-3), Member(seed=1, lr=2e-3)]
    sweep = _train(small, members, epochs=2, strategy="loop")
    chex.clear_trace_counter()
    single = _train(small, members[1:], epochs=2)
    _assert_same(sweep.member_state(1).params, single.member_state(0).params)
    assert sweep.test_loss[1] == single.test_loss[0]
    assert single.run(0).steps == 8 and sweep.strategy == single.strategy == "loop"


def test_groups_and_decay_apply_to_every_member_count(small):
    """Activation learning rate and weight decay: a member of a sweep equals the single run
    with the same settings, and the settings change the result."""
    grouped = Member(seed=1, lr=1e-3, activation_lr=2e-2)
    sweep = _train(small, [Member(seed=0, lr=1e-3, activation_lr=2e-2), grouped],
                   weight_decay=0.5)  # fmt: skip
    single = _train(small, [grouped], weight_decay=0.5)
    _assert_same(sweep.member_state(1).params, single.member_state(0).params)
    plain = _train(small, [Member(seed=1, lr=1e-3)])
    decay_only = _train(small, [Member(seed=1, lr=1e-3)], weight_decay=0.5)
    acts_only = _train(small, [grouped])
    for other in (plain, decay_only, acts_only):
        assert any(not np.array_equal(x, y) for x, y in
                   zip(_leaves(single.params), _leaves(other.params), strict=True))  # fmt: skip
    # Each flag reached the optimizer state: the activation group's own rate, and the decay.
    state = single.member_state(0).opt_state
    rates = {k: float(v.inner_state.hyperparams["learning_rate"])
             for k, v in state.inner_states.items()}  # fmt: skip
    assert rates == pytest.approx({"weight": 1e-3, "activation": 2e-2})
    assert float(state.inner_states["weight"].inner_state.hyperparams["weight_decay"]) == 0.5


def test_a_diverging_member_leaves_the_others_bit_identical(small):
    good = [Member(seed=0, lr=0.05), Member(seed=1, lr=0.1)]
    bad = Member(seed=2, lr=1e6, label="diverges")
    mixed = _train(small, [good[0], bad, good[1]], optimizer="sgd", strategy="loop")
    alone = _train(small, good, optimizer="sgd", strategy="loop")
    assert mixed.failed_step[1] is not None and mixed.failed_step[0] is None
    for j, k in ((0, 0), (2, 1)):
        _assert_same(mixed.member_state(j).params, alone.member_state(k).params)
        assert mixed.test_loss[j] == alone.test_loss[k]


def test_resume_of_a_finished_run_trains_nothing(small, tmp_path, monkeypatch):
    members = [Member(seed=0), Member(seed=1)]
    done = _train(small, members, tmp_path)
    log = (tmp_path / "metrics.jsonl").read_text()

    def no_step(self, i):
        raise AssertionError("a finished run trained again")

    monkeypatch.setattr(executors.LoopExecutor, "step", no_step)
    again = _train(small, members, tmp_path, resume=True)
    _assert_same(done.state.params, again.state.params)
    np.testing.assert_array_equal(done.test_loss, again.test_loss)
    assert again.epoch_seconds == done.epoch_seconds
    assert (tmp_path / "metrics.jsonl").read_text() == log


def test_resume_applies_a_new_learning_rate_and_refuses_other_members(small, tmp_path):
    _train(small, [Member(seed=0, lr=1e-3)], tmp_path)
    res = _train(small, [Member(seed=0, lr=3e-4)], tmp_path, epochs=2, resume=True)
    lr = res.member_state(0).opt_state.hyperparams["learning_rate"]
    assert float(lr) == pytest.approx(3e-4)
    assert len(res.epoch_seconds) == 2 and res.run(0).steps == 8
    with pytest.raises(ResumeMismatch, match="members"):
        _train(small, [Member(seed=5, lr=3e-4)], tmp_path, epochs=3, resume=True)
    with pytest.raises(ResumeMismatch, match="batch_size"):
        _train(small, [Member(seed=0, lr=3e-4)], tmp_path, epochs=3, resume=True, batch_size=64)


def test_a_corrupt_latest_checkpoint_falls_back_to_the_one_before(small, tmp_path):
    members = [Member(seed=0)]
    full = _train(small, members, tmp_path / "full", epochs=2)
    _train(small, members, tmp_path / "run", epochs=2)
    state_dir = tmp_path / "run" / "checkpoints" / "2" / "state"
    for f in state_dir.rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="could not be read"):
        res = _train(small, members, tmp_path / "run", epochs=2, resume=True)
    _assert_same(res.state.params, full.state.params)


def _count_steps(monkeypatch) -> list:
    calls = []
    step = executors.LoopExecutor.step

    def counting(self, i):
        calls.append(i)
        return step(self, i)

    monkeypatch.setattr(executors.LoopExecutor, "step", counting)
    return calls


def test_the_fallback_checkpoint_retrains_only_the_epochs_after_it(small, tmp_path, monkeypatch):
    """Epoch 2's checkpoint unreadable: the run resumes from epoch 1's and trains epoch 2's 4
    steps again, not 8 from scratch (which a deterministic run would end at the same params)."""
    members = [Member(seed=0)]
    _train(small, members, tmp_path, epochs=2)
    for f in (tmp_path / "checkpoints" / "2" / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    calls = _count_steps(monkeypatch)
    with pytest.warns(UserWarning, match="could not be read"):
        res = _train(small, members, tmp_path, epochs=2, resume=True)
    assert len(calls) == 4 and res.run(0).steps == 8


def test_resume_applies_a_new_activation_rate_to_the_grouped_optimizer(small, tmp_path):
    _train(small, [Member(seed=0, lr=1e-3, activation_lr=2e-2)], tmp_path)
    res = _train(small, [Member(seed=0, lr=1e-3, activation_lr=5e-3)], tmp_path, epochs=2,
                 resume=True)  # fmt: skip
    state = res.member_state(0).opt_state
    rates = {k: float(v.inner_state.hyperparams["learning_rate"])
             for k, v in state.inner_states.items()}  # fmt: skip
    assert rates == pytest.approx({"weight": 1e-3, "activation": 5e-3})
    assert res.run(0).steps == 8


def test_sweep_killed_in_its_second_epoch_resumes_without_retraining_the_first(
    tmp_path, jax_subprocess_env
):
    """A real SIGKILL of a two-member ``python -m train`` sweep once epoch 1's checkpoint
    exists, then ``--resume``: it trains epochs 2-3 only and ends where the uninterrupted
    sweep ends."""
    args = ["fashion_mnist", "--seeds", "2", "--activations", "cpaf_relu", "--train-subset",
            "6400", "--batch-size", "64", "--epochs", "3", "--eval-every", "0",
            "--no-plots"]  # fmt: skip
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "train", *args, "--no-progress", "--out", str(killed)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=jax_subprocess_env)  # fmt: skip
    ckpts = killed / "cpaf_relu" / "checkpoints"
    deadline = time.monotonic() + 300
    # Orbax writes commit_success.txt last: before it the checkpoint is not complete (and a
    # resume would rightly ignore it and start over).
    while not (ckpts / "1" / "commit_success.txt").exists():
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (ckpts / "2").exists(), "the kill came too late to interrupt epoch 2"
    resumed = subprocess.run([sys.executable, "-m", "train", *args, "--out", str(killed),
                              "--resume"], cwd=ROOT, capture_output=True, text=True,
                             timeout=600, env=jax_subprocess_env)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "epoch 1/3" not in resumed.stderr, resumed.stderr[-3000:]
    assert "epoch 2/3" in resumed.stderr, resumed.stderr[-3000:]
    assert main([*args, "--no-progress", "--out", str(tmp_path / "full")]) == 0
    a = json.loads((killed / "results.json").read_text())["runs"]
    b = json.loads((tmp_path / "full" / "results.json").read_text())["runs"]
    assert [r["test_loss"] for r in a] == [r["test_loss"] for r in b] and len(a) == 2
    assert len(a[0]["epoch_seconds"]) == 3


def _tiny_command(out, *extra):
    return ["fashion_mnist", "--activations", "relu", "--train-subset", "256", "--batch-size",
            "64", "--eval-every", "0", "--no-plots", "--no-progress", "--out", str(out),
            *extra]  # fmt: skip


def test_a_full_disk_ends_the_command_in_one_line_keeping_the_last_checkpoint(
    tmp_path, monkeypatch, capsys
):
    from cpaf_jax.training import checkpoints

    save = checkpoints.Checkpointer.save

    def full_after_one(self, epoch, state, meta):
        if epoch > 1:
            raise OSError(28, "No space left on device")
        return save(self, epoch, state, meta)

    monkeypatch.setattr(checkpoints.Checkpointer, "save", full_after_one)
    assert main(_tiny_command(tmp_path / "o", "--epochs", "2")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len([x for x in err if x.startswith("error:")]) == 1
    assert "no space left" in err[-1] and "checkpoints/1" in err[-1]
    assert (tmp_path / "o" / "relu" / "checkpoints" / "1").is_dir()


def test_a_learning_rate_that_does_not_learn_is_reported(tmp_path, capsys):
    assert main(_tiny_command(tmp_path / "o", "--epochs", "1", "--lr", "100")) in (0, 3)
    err = capsys.readouterr().err
    assert "learning rate may be too high" in err or "NaN/Inf" in err
