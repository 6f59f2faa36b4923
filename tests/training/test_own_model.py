"""A model of one's own, written as the Flax NNX tutorial writes it, through the engine.

The model has ``nnx.Conv``, ``nnx.BatchNorm``, ``nnx.Dropout``, ``nnx.Linear`` and a CPAF layer
from ``cpaf_jax.activation``, and ``__call__(self, x)`` only. A sweep of (a, b) initial values
x seeds runs in one vmapped engine call on plain arrays of real Fashion-MNIST (512 training,
256 test images, 1 epoch of 8 steps). SGD keeps a vmapped run within float tolerance of the
plain single run (see ``test_sweep``'s notes on Adam and grouped convolutions).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from fakes import real_fashion_mnist_subset
from flax import nnx

import cpaf_jax
from cpaf_jax.training import Member, TrainConfig, train
from cpaf_jax.training.state import init_state

ROOT = Path(__file__).resolve().parents[2]
INIT_A = {"a": (1.0, 1.0), "b": (0.5, -0.5)}
INIT_B = {"a": (2.0, 0.5), "b": (1.0, -1.0)}


class CNN(nnx.Module):
    """The NNX tutorial's CNN, narrower, with CPAF after the first convolution."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 8, kernel_size=(3, 3), rngs=rngs)
        self.batch_norm1 = nnx.BatchNorm(8, rngs=rngs)
        self.act1 = cpaf_jax.activation("cpaf_relu", features_shape=(28, 28, 8))
        self.conv2 = nnx.Conv(8, 16, kernel_size=(3, 3), rngs=rngs)
        self.batch_norm2 = nnx.BatchNorm(16, rngs=rngs)
        self.linear1 = nnx.Linear(7 * 7 * 16, 64, rngs=rngs)
        self.dropout = nnx.Dropout(rate=0.3, rngs=rngs)
        self.linear2 = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x):
        x = nnx.avg_pool(self.act1(self.batch_norm1(self.conv1(x))), (2, 2), (2, 2))
        x = nnx.avg_pool(nnx.relu(self.batch_norm2(self.conv2(x))), (2, 2), (2, 2))
        x = x.reshape(x.shape[0], -1)
        x = self.dropout(nnx.relu(self.linear1(x)))
        return self.linear2(x)


def seeded(m: Member) -> CNN:
    return CNN(rngs=nnx.Rngs(m.seed))


@pytest.fixture(scope="module")
def arrays():
    ds = real_fashion_mnist_subset(512, 256)
    return (ds.train_images, ds.train_labels), (ds.test_images, ds.test_labels)


def _train(members, model, arrays, strategy):
    (train_xy, test_xy) = arrays
    cfg = TrainConfig(
        epochs=1,
        batch_size=64,
        optimizer="sgd",
        eval_batch_size=256,
        progress=False,
        strategy=strategy,
    )
    return train(members, model, train_xy, cfg, eval_data=test_xy)


SWEEP = [Member(seed=s, lr=0.05, inits=i) for s in (0, 1) for i in (INIT_A, INIT_B)]


@pytest.fixture(scope="module")
def sweep(arrays):
    return _train(SWEEP, seeded, arrays, "vmap")


def _close(a, b, rtol=1e-4, atol=1e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_a_sweep_of_inits_and_seeds_is_one_call_and_member_0_is_its_single_run(sweep, arrays):
    assert sweep.strategy == "vmap" and sweep.test_loss.shape == (4,)
    assert np.isfinite(sweep.test_loss).all() and sweep.failed_step == [None] * 4
    alone = _train(SWEEP[:1], seeded, arrays, "loop")
    assert abs(sweep.test_loss[0] - alone.test_loss[0]) < 1e-4
    _close(sweep.member_state(0).params, alone.member_state(0).params)
    _close(sweep.member_state(0).others, alone.member_state(0).others)


def test_the_inits_reach_the_layer_and_different_inits_give_different_runs(sweep):
    init_a = sweep.model(0).act1.a[...]
    init_b = sweep.model(1).act1.a[...]
    # One epoch of SGD moves the scales a little from where each member started.
    np.testing.assert_allclose(np.asarray(init_a).mean(axis=(0, 1, 2)), [1.0, 1.0], atol=0.1)
    np.testing.assert_allclose(np.asarray(init_b).mean(axis=(0, 1, 2)), [2.0, 0.5], atol=0.1)
    for s in (0, 2):  # same seed, other initial values
        assert abs(sweep.test_loss[s] - sweep.test_loss[s + 1]) > 1e-4
    assert abs(sweep.test_loss[0] - sweep.test_loss[2]) > 1e-4  # same inits, other seed


def test_a_sweep_member_is_the_single_run_of_its_seed(sweep, arrays):
    # Member 2 (seed 1) alone: a sweep in which every member drew member 0's dropout keys
    # would differ here by far more than float tolerance.
    alone = _train(SWEEP[2:3], seeded, arrays, "loop")
    assert abs(sweep.test_loss[2] - alone.test_loss[0]) < 1e-4
    _close(sweep.member_state(2).params, alone.member_state(0).params)


def test_dropout_keys_come_from_each_members_own_rngs(arrays):
    # The same weights, shuffling and inits (seed 0); only the dropout stream's seed differs.
    dropout_seed = {"d1": 1, "d2": 2, "d1 again": 1}
    members = [Member(seed=0, lr=0.05, label=k) for k in dropout_seed]

    def model(m):
        return CNN(rngs=nnx.Rngs(params=0, dropout=dropout_seed[m.label]))

    res = _train(members, model, arrays, "vmap")
    assert res.test_loss[0] == pytest.approx(res.test_loss[2], rel=1e-6)
    _close(res.member_state(0).params, res.member_state(2).params, rtol=1e-6, atol=1e-7)
    assert abs(res.test_loss[0] - res.test_loss[1]) > 1e-4
    # The streams' counters moved once per step (one dropout call per step).
    counts = jax.tree.leaves(res.member_state(1).others)
    assert any(np.asarray(c).dtype == np.uint32 and int(c) == 8 for c in counts)


def test_the_seed_is_folded_into_the_models_own_keys():
    model = CNN(rngs=nnx.Rngs(0))
    tx = optax.sgd(0.1)
    keys = [jax.tree.leaves(init_state(model, tx, s)[1].rngs) for s in (0, 1, 0)]
    assert len(keys[0]) == 1  # the dropout layer's stream
    assert not np.array_equal(keys[0][0], keys[1][0])
    np.testing.assert_array_equal(keys[0][0], keys[2][0])


class PauNet(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(4, 8, rngs=rngs)
        self.act = cpaf_jax.activation("pau", features_shape=(8,))
        self.out = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(self.act(self.linear(x)))[:, 0]


def _regression(n: int, seed: int):
    x = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    return x, np.sin(x.sum(-1)).astype(np.float32)


def test_pau_inits_any_arrays_and_a_loss_of_ones_own(tmp_path):
    def squared(pred, y):
        return (pred - y) ** 2

    def abs_error(pred, y):
        return jnp.abs(pred - y)

    p0 = np.linspace(0.1, 0.6, 6)
    members = [Member(seed=0, lr=1e-2, inits={"p": p0, "q": 0.0}), Member(seed=0, lr=1e-2)]
    test = _regression(64, 1)
    res = train(
        members,
        PauNet(rngs=nnx.Rngs(0)),
        _regression(256, 0),
        TrainConfig(epochs=2, batch_size=32, progress=False),
        eval_data=test,
        loss_fn=squared,
        metric_fn=abs_error,
    )
    model = res.model(0)
    pred = np.asarray(model(test[0]))
    np.testing.assert_allclose(res.test_loss[0], np.mean((pred - test[1]) ** 2), rtol=1e-5)
    np.testing.assert_allclose(res.test_accuracy[0], np.mean(np.abs(pred - test[1])), rtol=1e-5)
    assert abs(res.test_loss[0] - res.test_loss[1]) > 1e-6  # the inits mattered
    # 16 Adam steps from p0 stay near it (and far from PAU's default, a leaky ReLU fit).
    p = np.asarray(model.act.p[...])  # [8, 6]: activation() builds PAU per element here
    np.testing.assert_allclose(p, np.broadcast_to(p0, p.shape), atol=0.2)


def test_inits_are_checked_against_the_family_record():
    with pytest.raises(ValueError, match=r"are \['p', 'q'\]"):
        train([Member(inits={"a": 1.0})], PauNet(rngs=nnx.Rngs(0)), _regression(128, 0),
              eval_data=_regression(8, 1))  # fmt: skip
    with pytest.raises(ValueError, match="does not broadcast"):
        train([Member(inits={"p": np.ones(5)})], PauNet(rngs=nnx.Rngs(0)), _regression(128, 0),
              eval_data=_regression(8, 1))  # fmt: skip
    with pytest.raises(ValueError, match="eval_data"):
        train([Member()], PauNet(rngs=nnx.Rngs(0)), _regression(128, 0))


def test_a_given_module_is_copied_not_changed():
    model = PauNet(rngs=nnx.Rngs(0))
    before = np.asarray(model.act.p[...]).copy()
    res = train(
        [Member(inits={"p": 0.25})],
        model,
        _regression(64, 0),
        TrainConfig(epochs=1, batch_size=32, progress=False),
        eval_data=_regression(8, 1),
        loss_fn=lambda p, y: (p - y) ** 2,
        metric_fn=lambda p, y: jnp.abs(p - y),
    )
    np.testing.assert_array_equal(np.asarray(model.act.p[...]), before)
    assert res.failed_step == [None]


def test_old_spellings_map_onto_inits_and_warn():
    with pytest.warns(DeprecationWarning, match="inits"):
        m = Member(seed=1, a_init=(4.0, 4.0), b_init=2.0)
    assert m.inits == {"a": (4.0, 4.0), "b": 2.0} and m.a_init is None
    assert m.label == Member(seed=1, inits={"a": (4.0, 4.0), "b": 2.0}).label
    # Array values label members apart, so that a sweep over them needs no labels of its own.
    big = [Member(inits={"a": np.full((3, 4, 2), v)}).label for v in (1.0, 2.0)]
    assert big[0] != big[1] and Member(inits={"p": np.arange(3.0)}).label.endswith("p=(0,1,2)")
    import cpaf_jax.training as training

    for old, new in (("SweepMember", Member), ("FitConfig", TrainConfig)):
        with pytest.warns(DeprecationWarning, match=old):
            assert getattr(training, old) is new
    with pytest.warns(DeprecationWarning, match="run_sweep"):
        from cpaf_jax.training import run_sweep
    from cpaf_jax.experiments.paper import run_sweep as paper_sweep

    assert run_sweep is paper_sweep
    assert "run_sweep" not in training.__all__ and "SweepMember" not in training.__all__


def test_training_imports_nothing_of_the_papers_networks():
    code = (
        "import sys, cpaf_jax.training, cpaf_jax.training.engine, cpaf_jax.training.restore\n"
        "bad = [m for m in sys.modules if m in ('cpaf_jax.models', 'cpaf_jax.experiments')]\n"
        "assert not bad, bad\n"
        "assert cpaf_jax.training.__file__.startswith(sys.argv[1]), cpaf_jax.training.__file__\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ROOT)], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
