"""ELU with a learned alpha ("elu_learned", issue 17 part 6) beside the fixed-alpha "elu", and
CPAF's initial values for k != 2 (issue 17 part 7)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cpaf_jax
from cpaf_jax.ops.sharing import param_shape

FEATURES = (3, 4, 5)


def np_elu(x, alpha):
    x = np.asarray(x, np.float64)
    return np.where(x > 0, x, alpha * (np.exp(x) - 1))


def reduce_to(g, shape):
    """Sums a per-element ``[*F]`` gradient over the axes a parameter of ``shape`` shares."""
    full = (1,) * (g.ndim - len(shape)) + tuple(shape)
    axes = tuple(i for i, d in enumerate(full) if d == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


@pytest.mark.parametrize("sharing", ["element", "channel", "shared", (0,)])
def test_learned_elu_values_and_alpha_gradient(sharing, rng):
    m = cpaf_jax.activation("elu_learned", FEATURES, sharing=sharing)
    ps = param_shape(FEATURES, sharing)
    assert isinstance(m, cpaf_jax.LearnedELU) and m.alpha.shape == ps
    np.testing.assert_array_equal(m.alpha[...], 1.0)  # Clevert et al.'s alpha
    x = jnp.asarray(rng.normal(0.0, 2.0, (2, *FEATURES)), jnp.float32)
    np.testing.assert_allclose(m(x), np_elu(x, 1.0), rtol=1e-6, atol=1e-6)
    # At alpha = 1 it is the fixed ELU.
    np.testing.assert_array_equal(m(x), cpaf_jax.activation("elu", FEATURES)(x))
    m.alpha[...] = jnp.asarray(rng.uniform(0.2, 2.0, ps), jnp.float32)
    np.testing.assert_allclose(m(x), np_elu(x, np.asarray(m.alpha[...])), rtol=1e-6, atol=1e-6)
    # dL/dalpha = sum over shared axes of g * (exp(x) - 1) where x <= 0.
    g = rng.normal(size=x.shape)
    grads = nnx.grad(lambda mod: jnp.sum(jnp.asarray(g, jnp.float32) * mod(x)))(m)
    per = np.where(np.asarray(x) > 0, 0.0, g * np.expm1(np.asarray(x, np.float64))).sum(0)
    np.testing.assert_allclose(grads["alpha"][...], reduce_to(per, ps), rtol=1e-4, atol=1e-4)


def test_learned_elu_is_its_own_parametric_activation():
    assert cpaf_jax.is_parametric("elu_learned") and not cpaf_jax.is_parametric("elu")
    assert cpaf_jax.LearnedELU(FEATURES).describe()["sharing"] == "element"
    # Large negative inputs keep finite gradients (no inf * 0 from the branch not taken).
    x = jnp.asarray([-1e4, -3.0, 0.0, 2.0, 1e4])
    g = jax.grad(lambda x, a: jnp.sum(cpaf_jax.learned_elu(x, a)), argnums=(0, 1))(x, 1.5)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in g)
    with pytest.raises(ValueError, match="broadcast"):
        cpaf_jax.learned_elu(jnp.ones((2, 3)), jnp.ones((4,)))


@pytest.mark.parametrize("base,scale", [("sigmoid", 4.0), ("relu", 1.0), ("tanh", 1.0)])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_cpaf_init_keeps_table1_size_for_any_k(base, scale, k):
    a, b = cpaf_jax.default_terms(cpaf_jax.resolve_base(base), k)
    # sum_i a_i is Table 1's 2A at every k; at k = 2 the values are Table 1's exactly.
    assert a.sum() == pytest.approx(2 * scale)
    if k == 2:
        loc = 2.0 if base == "sigmoid" else 1.0
        assert (tuple(a), tuple(b)) == ((scale, scale), (loc, -loc))
    m = cpaf_jax.CPAF(None, k=k, base=base, sharing="shared")
    far = jnp.asarray([-50.0, 50.0, 51.0])
    z = np.asarray(m(far), np.float64)
    if base == "relu":  # the slope right of every location is sum a_i = 2, as Table 1's
        assert z[2] - z[1] == pytest.approx(2.0, rel=1e-5)
    else:  # the range is Table 1's: (-A, A) with the sigmoid base, (-2A, 2A) with tanh
        half = scale if base == "sigmoid" else 2 * scale
        np.testing.assert_allclose(z[:2], [-half, half], rtol=1e-5)
