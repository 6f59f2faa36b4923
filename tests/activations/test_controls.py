"""The reproduction's control activations (issue 17): frozen CPAF is CPAF at its initial values
with nothing to train; relu_bias is ReLU after a learned per-element bias."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cpaf_jax
from cpaf_jax.models import build_model

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
