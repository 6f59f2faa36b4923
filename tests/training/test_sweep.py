"""Tests of the training engine's sweeps (``cpaf_jax.training``): members reproduce single
runs, are isolated, and every strategy and the sharded sweep give the same results.

Small and fast on 2 CPU cores: 512 real Fashion-MNIST training images (4 steps of 128 per
epoch), 256 test images, 1 epoch; compiled sweeps are shared through module fixtures.

Why SGD and 4 steps for the vmap comparisons: a vmapped convolution is a grouped convolution
whose float32 sums run in another order than the plain one (differences ~1e-7 relative). With
Adam, the first update is ``lr * g / (|g| + eps)``, so a bias gradient that is a near-cancelling
sum gets a relative error of 1e-2 and the run drifts by ~lr per step; with piecewise-linear
activations a kink can flip after a few steps as well. SGD over 4 steps keeps the runs within
float tolerance; the loop strategy is compared bit for bit (it runs fit's exact program).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from fakes import real_fashion_mnist_subset

from cpaf_jax import compile_options
from cpaf_jax.data import Dataset
from cpaf_jax.experiments.paper import build_member_model, run_sweep
from cpaf_jax.training import (
    Member,
    TrainConfig,
    fit,
    init_states,
    make_optimizer,
    member_epoch_indices,
)
from cpaf_jax.training.members import member_tx
from cpaf_jax.training.state import make_train_step

# The paper's 4.1 network (conv 16-8-4-2) on Fashion-MNIST images: the same code paths as
# FashionNet at a fraction of the compile time.
KIND, ACT, OPT = "mnist_features", "cpaf_relu", "sgd"
RTOL, ATOL = 1e-5, 1e-6
GOOD = [
    Member(seed=0, lr=0.05),
    Member(seed=1, lr=0.1, inits={"a": (0.5, 1.5), "b": {"acts.0": (0.5, -0.5), "*": (1.0, 0.0)}}),
]
# lr = 1e6: the first update puts every weight near +-1e5 and the next forward pass overflows
# float32, so this member fails at step 1 or 2, deterministically.
BAD = Member(seed=2, lr=1e6, label="diverges")
MEMBERS = [GOOD[0], BAD, GOOD[1]]


@pytest.fixture(scope="module")
def small():
    return real_fashion_mnist_subset(512, 256)


def _sweep(data, members, strategy, **kw):
    return run_sweep(
        KIND,
        ACT,
        members,
        data,
        epochs=1,
        batch_size=128,
        optimizer=OPT,
        strategy=strategy,
        eval_batch_size=256,
        progress=False,
        **kw,
    )


@pytest.fixture(scope="module")
def sweeps(small):
    """The same three members (one diverging) under each strategy, plus vmap without BAD."""
    return {
        "vmap": _sweep(small, MEMBERS, "vmap"),
        "loop": _sweep(small, MEMBERS, "loop"),
        "chunked": _sweep(small, MEMBERS, "chunked", chunk_size=2),  # 3 -> 2 chunks, 1 dummy
        "vmap_good": _sweep(small, GOOD, "vmap"),
    }


@pytest.fixture(scope="module")
def fit_good1(small):
    m = GOOD[1]
    cfg = TrainConfig(epochs=1, batch_size=128, seed=m.seed, eval_batch_size=256, progress=False)
    return fit(build_member_model(KIND, ACT, m), small, make_optimizer(OPT, m.lr), cfg)


def _assert_trees_close(a, b, rtol=RTOL, atol=ATOL, exact=False):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if exact:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def test_member_matches_single_fit_run(sweeps, fit_good1):
    """Member 2 (seed 1, lr 0.1, per-layer a/b) of the vmapped sweep == fit with those settings."""
    res = sweeps["vmap"]
    st = res.member_state(2)
    _assert_trees_close(st.params, fit_good1.state.params)
    _assert_trees_close(st.others, fit_good1.state.others)
    np.testing.assert_allclose(res.test_loss[2], fit_good1.test_loss, rtol=RTOL)
    np.testing.assert_allclose(res.test_accuracy[2], fit_good1.test_accuracy, atol=1e-9)
    assert res.failed_step[2] is None
    assert int(st.step) == fit_good1.steps == 4
    # The per-layer override reached acts.0 only; the "*" value the others.
    model = build_member_model(KIND, ACT, GOOD[1])
    np.testing.assert_array_equal(np.asarray(model.acts[0].b[...]).reshape(-1, 2)[-1], [0.5, -0.5])
    np.testing.assert_array_equal(np.asarray(model.acts[2].b[...]).reshape(-1, 2)[0], [1.0, 0.0])
    np.testing.assert_array_equal(np.asarray(model.acts[3].a[...]).reshape(-1, 2)[0], [0.5, 1.5])
    # The loop strategy runs fit's own step: bit for bit the same.
    _assert_trees_close(sweeps["loop"].member_state(2).params, fit_good1.state.params, exact=True)
    assert sweeps["loop"].test_loss[2] == pytest.approx(fit_good1.test_loss, rel=1e-12)


def test_diverging_member_is_isolated_and_frozen(sweeps, small):
    for name in ("vmap", "loop", "chunked"):
        res = sweeps[name]
        f = res.failed_step[1]
        assert f is not None and 1 <= f < 4, (name, res.failed_step)
        assert res.failed_step[0] is None and res.failed_step[2] is None
        assert np.isnan(res.test_accuracy[1]) and np.isfinite(res.test_accuracy[[0, 2]]).all()
        assert any(r["kind"] == "diverged" and r["step"] == f for r in res.history[1])
    # Frozen: its final params are those after exactly f good steps of its own run.
    f = sweeps["loop"].failed_step[1]
    graphdef, (state,) = init_states(
        [BAD], lambda m: build_member_model(KIND, ACT, m), member_tx(OPT)
    )
    tx = member_tx(OPT)(BAD)
    step = compile_options.jit(make_train_step(graphdef, tx))  # as the sweep compiles it
    idx = member_epoch_indices([BAD.seed], 0, len(small.train_labels), 4, 128)[0]
    images, labels = jax.numpy.asarray(small.train_images), jax.numpy.asarray(small.train_labels)
    for i in range(f):
        state = step(state, images, labels, idx[i])
    assert int(state.failed_step) == -1
    _assert_trees_close(sweeps["loop"].member_state(1).params, state.params, exact=True)
    # (after an update of lr = 1e6, float32 rounding of the gradient shows up at ~1e-7 * lr)
    _assert_trees_close(sweeps["vmap"].member_state(1).params, state.params, rtol=1e-4, atol=0.1)
    # The others: exactly what a sweep without the diverging member gives.
    ref = sweeps["vmap_good"]
    for j, k in ((0, 0), (2, 1)):
        _assert_trees_close(sweeps["vmap"].member_state(j).params, ref.member_state(k).params)
        np.testing.assert_allclose(sweeps["vmap"].test_loss[j], ref.test_loss[k], rtol=RTOL)


def test_strategies_agree(sweeps):
    ref = sweeps["loop"]
    for name in ("vmap", "chunked"):
        res = sweeps[name]
        assert res.strategy == name
        assert res.failed_step == ref.failed_step
        for j in (0, 2):
            _assert_trees_close(res.member_state(j).params, ref.member_state(j).params)
        # The diverged member's frozen weights are ~1e5 after its lr = 1e6 update.
        _assert_trees_close(res.member_state(1).params, ref.member_state(1).params, 1e-4, 0.1)
        np.testing.assert_allclose(res.test_loss, ref.test_loss, rtol=RTOL, equal_nan=True)
        np.testing.assert_allclose(res.test_accuracy, ref.test_accuracy, equal_nan=True)
        np.testing.assert_array_equal(np.asarray(res.state.step), [4, 4, 4])
    assert sweeps["chunked"].chunk_size == 2


def _synthetic(n=128):
    """A stand-in dataset for tests that must not depend on the real one (the rule checks)."""
    x, y = np.zeros((n, 28, 28, 1), np.float32), np.zeros((n,), np.int32)
    return Dataset("fashion_mnist", x, y, x, y, 10, "synthetic", (0.0,), (1.0,))


def test_auto_is_loop_on_cpu_and_errors():
    from cpaf_jax.training.executors import rule_strategy

    assert rule_strategy("cpu", 8, 1) == ("loop", 1)
    assert rule_strategy("gpu", 6, 4) == ("vmap", 8)
    # 512 MiB per member, 90% of 4 GiB usable: 8 members do not fit, 4 do.
    assert rule_strategy("gpu", 8, 1, lambda c: c << 29, 4 << 30) == ("chunked", 4)
    with pytest.raises(ValueError, match="activation parameters are none"):
        build_member_model(KIND, "relu", Member(0, inits={"a": 1.0}))
    with pytest.raises(ValueError, match="unknown strategy"):
        _sweep(_synthetic(), GOOD[:1], "fastest")


_SHARDED_SCRIPT = textwrap.dedent(
    """
    import dataclasses, json, sys
    import jax
    jax.config.update("jax_num_cpu_devices", 8)
    import numpy as np
    from cpaf_jax.data import load_dataset
    from cpaf_jax.training.meshes import data_mesh, data_parallel_train_step, member_mesh, replicate
    from cpaf_jax.training.meshes import shard_batch
    from cpaf_jax.experiments.paper import build_member_model, run_sweep
    from cpaf_jax.training import Member, TrainConfig, init_states, member_epoch_indices, train
    from cpaf_jax.training.members import member_tx

    assert jax.device_count() == 8, jax.devices()
    kind, act = "mnist_features", "cpaf_sigmoid"
    ds = load_dataset("fashion_mnist", allow_download=False)
    ds = dataclasses.replace(ds, train_images=ds.train_images[:256],
                             train_labels=ds.train_labels[:256],
                             test_images=ds.test_images[:128], test_labels=ds.test_labels[:128])
    members = [Member(seed=s, lr=0.05 * (s + 1)) for s in range(3)]
    out = {}
    runs = (
        ("plain", "loop", None),
        ("sharded", "vmap", member_mesh()),
        # 3 members on 2 devices: whole members side by side (m % 2).
        ("loop_spread", "loop", member_mesh(jax.devices()[:2])),
    )
    for name, strategy, mesh in runs:
        res = run_sweep(kind, act, members, ds, epochs=1, batch_size=128, optimizer="sgd",
                        strategy=strategy, mesh=mesh, eval_batch_size=128, progress=False)
        out[name] = {"params": [np.asarray(x).tolist() for x in jax.tree.leaves(res.params)],
                     "loss": res.test_loss.tolist(), "n": int(res.state.step.shape[0])}
    # Data parallel: member 0's two steps with its batch split over the 8 devices.
    g, (s0,) = init_states(members[:1], lambda m: build_member_model(kind, act, m),
                           member_tx("sgd"))
    tx = member_tx("sgd")(members[0])
    idx = member_epoch_indices([0], 0, 256, 2, 128)[0]
    mesh = data_mesh()
    step = data_parallel_train_step(g, tx, mesh)
    state, x, y = replicate((s0, ds.train_images, ds.train_labels), mesh)
    for i in range(2):
        state = step(state, x, y, shard_batch(idx[i], mesh))
    out["dp"] = [np.asarray(v).tolist() for v in jax.tree.leaves(state.params)]
    # The engine's data parallelism: member 0 as a whole run, its batches split over 8.
    cfg = TrainConfig(epochs=1, optimizer="sgd", eval_batch_size=128, progress=False,
                    strategy="data_parallel")
    res = train(members[:1], lambda m: build_member_model(kind, act, m), ds, cfg, mesh=mesh)
    r = res.run(0)
    out["fit_dp"] = {"params": [np.asarray(v).tolist() for v in jax.tree.leaves(r.state.params)],
                     "loss": r.test_loss,
                     "strategy": res.strategy, "steps": r.steps}
    json.dump(out, open(sys.argv[1], "w"))
    """
)


def test_sharded_sweep_equals_unsharded(tmp_path, small):
    """8 simulated CPU devices: a sharded sweep (3 members padded to 8), the loop strategy with
    members spread over 2 devices, a data-parallel step and a data-parallel ``fit`` (its batch
    split over 8, a looser tolerance for the reordered sums) equal the single-device results
    (the loop strategy, i.e. plain runs)."""
    script, out = tmp_path / "sharded.py", tmp_path / "out.json"
    script.write_text(_SHARDED_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, str(script), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    for name in ("sharded", "loop_spread"):
        assert res[name]["n"] == res["plain"]["n"] == 3, name
        for a, b in zip(res[name]["params"], res["plain"]["params"], strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(res[name]["loss"], res["plain"]["loss"], rtol=RTOL)
    # Whole members on one device each run fit's exact program: bit for bit.
    assert res["loop_spread"]["params"] == res["plain"]["params"]
    for a, b in zip(res["dp"], res["plain"]["params"], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b)[0], rtol=RTOL, atol=ATOL)
    assert res["fit_dp"]["strategy"] == "data_parallel" and res["fit_dp"]["steps"] == 2
    for a, b in zip(res["fit_dp"]["params"], res["plain"]["params"], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b)[0], rtol=1e-4, atol=ATOL)
    np.testing.assert_allclose(res["fit_dp"]["loss"], res["plain"]["loss"][0], rtol=1e-4)
