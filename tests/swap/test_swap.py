"""``swap_activations``: every family fitted in place of a trained network's activations.

Tolerance: on the calibration batch, the root mean square of the swapped network's logits
minus the original's is at most ``tol`` times the root mean square of the original's (a small
random MLP with two ReLU layers and a leaky ReLU). Families that contain ReLU and leaky ReLU
(CPAF-ReLU, APL, PReLU) match them exactly; PAU and Swish closely; a sum of k=4 sigmoids or
tanhs is bounded, so it can follow ReLU's linear growth only over part of the inputs' range,
and each of the three layers adds its error (measured: about 0.16 for CPAF-sigmoid, 0.13 for
CPAF-tanh, 0.03 for PAU, 0.013 for Swish).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cpaf_jax

# (family, options, relative tolerance on the logits)
CASES = [
    ("cpaf_sigmoid", {"k": 4, "sharing": "channel"}, 0.25),
    ("cpaf_relu", {"k": 4, "sharing": "channel"}, 1e-4),
    ("cpaf_tanh", {"k": 4}, 0.2),
    ("pau", {}, 0.06),
    ("apl", {"sharing": "channel"}, 1e-4),
    ("swish", {}, 0.03),
    ("prelu", {}, 1e-4),
]


class Mlp(nnx.Module):
    """Activations held three ways: a stateless function, a library layer in a list, and a
    partial of a stateless function."""

    def __init__(self, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(6, 16, rngs=rngs)
        self.act = nnx.relu
        self.l2 = nnx.Linear(16, 12, rngs=rngs)
        self.acts = nnx.List([cpaf_jax.ReLU()])
        self.l3 = nnx.Linear(12, 8, rngs=rngs)
        self.last = functools.partial(jax.nn.leaky_relu, negative_slope=0.01)
        self.out = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        x = self.act(self.l1(x))
        x = self.acts[0](self.l2(x))
        return self.out(self.last(self.l3(x)))


def _rms(v) -> float:
    return float(np.sqrt(np.mean(np.square(v))))


@pytest.fixture(scope="module")
def mlp():
    return Mlp(nnx.Rngs(0)), jax.random.normal(jax.random.key(1), (256, 6))


@pytest.mark.parametrize(("name", "options", "tol"), CASES, ids=[c[0] for c in CASES])
def test_the_swapped_model_matches_the_original_on_the_calibration_batch(mlp, name, options, tol):
    model, x = mlp
    before = np.asarray(model(x))
    res = cpaf_jax.swap_activations(model, name, x, **options)
    after = np.asarray(res.model(x))
    assert type(res.model) is Mlp
    assert _rms(after - before) <= tol * _rms(before)
    assert [f.path for f in res.layers] == ["act", "acts.0", "last"]
    assert [f.source for f in res.layers] == ["relu", "relu", "leaky_relu"]
    for f in res.layers:
        assert f.family == name and np.isfinite(f.rms_error) and f.rms_error <= f.max_error
    for path in ("act", "last"):
        assert isinstance(getattr(res.model, path), cpaf_jax.Activation)
    assert res.model.acts[0].family == name
    assert res.layers[0].features_shape == (16,)


def test_the_original_model_is_unchanged(mlp):
    model, x = mlp
    before = jax.tree.map(np.asarray, nnx.state(model))
    out = np.asarray(model(x))
    res = cpaf_jax.swap_activations(model, "cpaf_relu", x, k=2, steps=20, restarts=2)
    assert model.act is nnx.relu and isinstance(model.acts[0], cpaf_jax.ReLU)
    assert res.model.act is not model.act
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, nnx.state(model)), before)
    np.testing.assert_array_equal(np.asarray(model(x)), out)
    # The weights are shared in value, not in identity: training the copy leaves the original.
    res.model.l1.kernel[...] = res.model.l1.kernel[...] + 1.0
    np.testing.assert_array_equal(np.asarray(model.l1.kernel[...]), before["l1"]["kernel"][...])


def test_the_fit_is_weighted_by_each_channels_inputs(mlp):
    model, x = mlp
    res = cpaf_jax.swap_activations(model, "prelu", x, sharing="channel", steps=40, restarts=2)
    alpha = np.asarray(res.model.act.alpha[...])
    assert alpha.shape == (16,)  # per channel, from the measured features
    assert np.max(np.abs(alpha)) < 0.05  # ReLU's slope left of zero is 0 in every channel
    leaky = np.asarray(res.model.last.alpha[...])
    np.testing.assert_allclose(leaky, 0.01, atol=0.01)


def test_gain_keeps_each_layers_output_variance(mlp):
    model, x = mlp
    plain = cpaf_jax.swap_activations(model, "cpaf_sigmoid", x, k=1, steps=30, restarts=2)
    kept = cpaf_jax.swap_activations(model, "cpaf_sigmoid", x, k=1, steps=30, restarts=2, gain=True)
    assert any(abs(f.var_after / f.var_before - 1) > 0.01 for f in plain.layers)
    for f in kept.layers:
        assert f.var_after == pytest.approx(f.var_before, rel=1e-3)
        assert f.gain != 1.0


def test_gain_refits_a_family_without_a_linear_parameter(mlp):
    model, x = mlp
    res = cpaf_jax.swap_activations(model, "swish", x, steps=30, restarts=2, gain=True)
    for f in res.layers:
        assert f.var_after == pytest.approx(f.var_before, rel=0.1)


def test_a_parameter_free_family_goes_in_as_it_is(mlp):
    model, x = mlp
    res = cpaf_jax.swap_activations(model, "relu", x)
    assert res.layers[0].rms_error == 0.0 and res.layers[1].max_error == 0.0
    assert res.layers[2].max_error > 0.0  # leaky ReLU's negative side is gone


class Hidden(nnx.Module):
    def __init__(self, rngs):
        self.l = nnx.Linear(2, 2, rngs=rngs)

    def __call__(self, x):
        return jax.nn.relu(self.l(x))


class Twice(nnx.Module):
    def __init__(self, rngs):
        self.l = nnx.Linear(2, 2, rngs=rngs)
        self.act = jnp.tanh

    def __call__(self, x):
        return self.act(self.act(self.l(x)))


def test_errors_name_what_cannot_be_swapped():
    x = jnp.ones((4, 2))
    with pytest.raises(ValueError, match="plain functions inside __call__"):
        cpaf_jax.swap_activations(Hidden(nnx.Rngs(0)), "pau", x)
    with pytest.raises(ValueError, match="called 2 times"):
        cpaf_jax.swap_activations(Twice(nnx.Rngs(0)), "pau", x)
    with pytest.raises(ValueError, match="unknown activation"):
        cpaf_jax.swap_activations(Twice(nnx.Rngs(0)), "nope", x)
    with pytest.raises(TypeError, match="unexpected argument"):
        cpaf_jax.swap_activations(Twice(nnx.Rngs(0)), "pau", x, k=3)


def test_a_cpaf_record_of_any_base_and_the_report_table(mlp):
    model, x = mlp
    res = cpaf_jax.swap_activations(model, cpaf_jax.cpaf_family("tanh"), x, k=2, steps=20)
    assert res.model.act.family == "cpaf_tanh" and res.model.act.a.shape == (16, 2)
    table = res.table()
    assert table.count("\n") == 2 + len(res.layers) - 1 and "| act | relu | cpaf_tanh |" in table


class Deep(nnx.Module):
    def __init__(self):
        self.acts = nnx.List([cpaf_jax.Tanh() for _ in range(11)])

    def __call__(self, x):
        for act in self.acts:
            x = act(x)
        return x


def test_layers_come_in_the_models_order():
    res = cpaf_jax.swap_activations(Deep(), "relu", jnp.ones((2, 3)))
    assert [f.path for f in res.layers] == [f"acts.{i}" for i in range(11)]
    assert all(isinstance(a, cpaf_jax.ReLU) for a in res.model.acts)
