"""The 2x2 max-pool: values and gradients equal ``flax.linen.max_pool``'s, ties included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from cpaf_jax.ops.max_pool import max_pool_2x2


def _reference(x):
    # reduce_window max: its gradient goes to the first maximum of each window.
    return nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")


def _inputs(shape, seed, ties):
    x = jax.random.normal(jax.random.key(seed), shape, jnp.float32)
    # Rounded to halves, many windows hold their maximum twice or more.
    return jnp.round(2 * x) / 2 if ties else x


@pytest.mark.parametrize("shape", [(2, 4, 6, 3), (3, 7, 9, 2), (1, 26, 26, 16)])
@pytest.mark.parametrize("ties", [False, True])
def test_values_and_gradient_match_flax_max_pool(shape, ties):
    x = _inputs(shape, 0, ties)
    g = jax.random.normal(jax.random.key(1), _reference(x).shape, jnp.float32)
    out, vjp = jax.vjp(jax.jit(max_pool_2x2), x)
    ref_out, ref_vjp = jax.vjp(_reference, x)
    np.testing.assert_array_equal(out, ref_out)
    (dx,), (ref_dx,) = vjp(g), ref_vjp(g)
    np.testing.assert_array_equal(dx, ref_dx)
    if ties:
        # The test must see ties, or it proves nothing about them.
        win = np.asarray(x[:, : 2 * (shape[1] // 2), : 2 * (shape[2] // 2)])
        n, h, w, c = win.shape
        win = win.reshape(n, h // 2, 2, w // 2, 2, c)
        hits = (win == np.asarray(ref_out)[:, :, None, :, None, :]).sum(axis=(2, 4))
        assert (hits > 1).any()


def test_odd_edges_get_zero_gradient():
    x = _inputs((2, 5, 7, 3), 2, False)
    dx = jax.grad(lambda v: jnp.sum(max_pool_2x2(v)))(x)
    assert np.all(np.asarray(dx)[:, 4, :, :] == 0)
    assert np.all(np.asarray(dx)[:, :, 6, :] == 0)
    # Each window passes its whole unit of gradient to one entry.
    np.testing.assert_array_equal(np.unique(np.asarray(dx)), [0.0, 1.0])
    np.testing.assert_allclose(np.asarray(dx).sum(), 2 * 2 * 3 * 3, rtol=1e-6)


def test_ties_send_the_gradient_to_the_first_maximum_in_row_major_order():
    x = jnp.array([[3.0, 1.0], [3.0, 3.0]]).reshape(1, 2, 2, 1)
    dx = jax.grad(lambda v: jnp.sum(max_pool_2x2(v)))(x)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1.0, 0.0], [0.0, 0.0]])
    x = jnp.array([[0.0, 2.0], [2.0, 1.0]]).reshape(1, 2, 2, 1)
    dx = jax.grad(lambda v: jnp.sum(max_pool_2x2(v)))(x)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0.0, 1.0], [0.0, 0.0]])


def test_nan_in_a_window_pools_to_nan():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1).at[0, 2, 3, 0].set(jnp.nan)
    out = np.asarray(max_pool_2x2(x))[0, :, :, 0]
    assert np.isnan(out[1, 1])
    np.testing.assert_array_equal(out[0], [5.0, 7.0])
    assert out[1, 0] == 13.0


def test_vmap_and_bfloat16():
    x = _inputs((3, 2, 6, 6, 4), 3, True)
    out = jax.vmap(max_pool_2x2)(x)
    np.testing.assert_array_equal(out, jax.vmap(_reference)(x))
    xb = x[0].astype(jnp.bfloat16)
    dx = jax.grad(lambda v: jnp.sum(max_pool_2x2(v).astype(jnp.float32)))(xb)
    ref = jax.grad(lambda v: jnp.sum(_reference(v).astype(jnp.float32)))(xb)
    assert dx.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(dx, np.float32), np.asarray(ref, np.float32))
