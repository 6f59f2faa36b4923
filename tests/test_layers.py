"""The 2x2 max-pool: values and gradients equal the plain reshape + max, ties included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpaf_jax.layers import max_pool_2x2


def _reference(x):
    n, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, : 2 * h2, : 2 * w2].reshape(n, h2, 2, w2, 2, c).max(axis=(2, 4))


def _inputs(shape, seed, ties):
    x = jax.random.normal(jax.random.key(seed), shape, jnp.float32)
    # Rounded to halves, many windows hold their maximum twice or more.
    return jnp.round(2 * x) / 2 if ties else x


@pytest.mark.parametrize("shape", [(2, 4, 6, 3), (3, 7, 9, 2), (1, 26, 26, 16)])
@pytest.mark.parametrize("ties", [False, True])
def test_values_and_gradient_match_reshape_max(shape, ties):
    x = _inputs(shape, 0, ties)
    g = jax.random.normal(jax.random.key(1), _reference(x).shape, jnp.float32)
    out, vjp = jax.vjp(jax.jit(max_pool_2x2), x)
    ref_out, ref_vjp = jax.vjp(_reference, x)
    np.testing.assert_array_equal(out, ref_out)
    (dx,), (ref_dx,) = vjp(g), ref_vjp(g)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-6, atol=0)
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
    # Each window passes exactly one unit of gradient (shared among tied maxima).
    np.testing.assert_allclose(np.asarray(dx).sum(), 2 * 2 * 3 * 3, rtol=1e-6)


def test_vmap_and_bfloat16():
    x = _inputs((3, 2, 6, 6, 4), 3, True)
    out = jax.vmap(max_pool_2x2)(x)
    np.testing.assert_array_equal(out, jax.vmap(_reference)(x))
    xb = x[0].astype(jnp.bfloat16)
    dx = jax.grad(lambda v: jnp.sum(max_pool_2x2(v).astype(jnp.float32)))(xb)
    ref = jax.grad(lambda v: jnp.sum(_reference(v).astype(jnp.float32)))(xb)
    assert dx.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(dx, np.float32), np.asarray(ref, np.float32), rtol=1e-2)
