"""The reproduction's control activations (issue 17): frozen CPAF is CPAF at its initial values
with nothing to train; relu_bias is ReLU after a learned per-element bias."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cpaf_jax
from cpaf_jax.activations.controls import half_learned_family
from cpaf_jax.models import build_model
from cpaf_jax.ops.bases import RELU

FEATURES = (4, 6, 3)


def _x(seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(0.0, 3.0, (2, *FEATURES)), jnp.float32)


@pytest.mark.parametrize("base", ["sigmoid", "relu"])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_frozen_cpaf_is_cpaf_at_its_initial_values(base, k):
    learned = cpaf_jax.activation(f"cpaf_{base}", FEATURES, sharing="element", k=k)
    frozen = cpaf_jax.activation(f"cpaf_{base}_frozen", FEATURES, k=k)
    x = _x()
    np.testing.assert_allclose(frozen(x), learned(x), rtol=1e-6, atol=1e-6)
    assert not cpaf_jax.is_parametric(f"cpaf_{base}_frozen")
    assert jax.tree.leaves(nnx.state(frozen, nnx.Param)) == []


def test_frozen_network_trains_no_activation_parameter_and_keeps_the_weights():
    frozen = build_model("fashion_mnist", "cpaf_sigmoid_frozen", seed=3)
    learned = build_model("fashion_mnist", "cpaf_sigmoid", seed=3)
    assert cpaf_jax.count_activation_params(frozen)["scalars"] == 0
    assert cpaf_jax.count_activation_params(learned)["scalars"] == 4 * 14_754
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 28, 28, 1)), jnp.float32)
    # Same weights for a seed, same function at the start: the two nets agree until trained.
    np.testing.assert_allclose(frozen(x), learned(x), rtol=1e-5, atol=1e-5)


def test_relu_bias_is_relu_after_an_untied_bias():
    m = cpaf_jax.activation("relu_bias", FEATURES)
    assert m.c.shape == FEATURES and bool(jnp.all(m.c[...] == 0))
    x = _x(1)
    np.testing.assert_array_equal(m(x), jax.nn.relu(x))
    c = jnp.asarray(np.random.default_rng(2).normal(size=FEATURES), jnp.float32)
    m.c[...] = c
    np.testing.assert_allclose(m(x), jnp.maximum(x + c, 0.0), rtol=1e-6)
    g = jax.grad(lambda c: jnp.sum(cpaf_jax.family("relu_bias").apply(x, c)))(c)
    np.testing.assert_array_equal(g, jnp.sum((x + c) > 0, axis=0).astype(jnp.float32))


@pytest.mark.parametrize("base", ["sigmoid", "relu"])
@pytest.mark.parametrize("learned", ["a", "b"])
def test_half_learned_cpaf_is_cpaf_with_the_other_parameter_held(base, learned):
    name = f"cpaf_{base}_{learned}_only"
    m = cpaf_jax.activation(name, FEATURES, k=3)
    held = "b" if learned == "a" else "a"
    assert m.record.params == (learned,) and getattr(m, learned).shape == (*FEATURES, 3)
    full = cpaf_jax.activation(f"cpaf_{base}", FEATURES, sharing="element", k=3)
    x = _x(3)
    np.testing.assert_allclose(m(x), full(x), rtol=1e-6, atol=1e-6)
    # Move the learned parameter: the output is full CPAF with that value and the other one
    # still at its initial value.
    moved = getattr(full, learned)[...] + jnp.asarray(
        np.random.default_rng(4).normal(0.0, 0.3, (*FEATURES, 3)), jnp.float32
    )
    getattr(m, learned)[...] = moved
    getattr(full, learned)[...] = moved
    np.testing.assert_allclose(m(x), full(x), rtol=1e-5, atol=1e-5)
    # Only the learned parameter is trainable; its gradient is full CPAF's for it.
    assert cpaf_jax.count_activation_params(m)["scalars"] == 3 * int(np.prod(FEATURES))
    assert cpaf_jax.count_activation_params(m)["cpaf_pairs"] == 0
    fam, ffam = m.record, full.record
    g = jax.grad(lambda p: jnp.sum(jnp.sin(fam.apply(x, p))))(moved)
    args = {learned: moved, held: getattr(full, held)[...]}
    want = jax.grad(lambda p: jnp.sum(jnp.sin(ffam.apply(x, **{**args, learned: p}))))(moved)
    np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)


def test_half_learned_network_counts_half_of_cpafs_parameters_and_keeps_the_weights():
    a_only = build_model("fashion_mnist", "cpaf_relu_a_only", seed=3)
    learned = build_model("fashion_mnist", "cpaf_relu", seed=3)
    assert cpaf_jax.count_activation_params(a_only)["scalars"] == 2 * 14_754
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 28, 28, 1)), jnp.float32)
    np.testing.assert_allclose(a_only(x), learned(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="learned must be 'a' or 'b'"):
        half_learned_family(RELU, "c")
