"""PReLU's and the learned ELU's closed-form custom VJPs against JAX's autodiff of the same
forward, for every sharing, and the materialised copy that stays out of YNN fusions."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpaf_jax.activations.elu import learned_elu
from cpaf_jax.activations.prelu import prelu
from cpaf_jax.ops.reductions import (
    materialize,
    materialize_pair,
    reduced_axes,
    unbroadcast_many,
)

X_SHAPE = (16, 6, 5, 4)
# Per element, per channel, shared, and shared along an inner axis only (no row plan).
PARAM_SHAPES = [(6, 5, 4), (4,), (), (6, 1, 4)]
FAMILIES = [("prelu", prelu, (-0.5, 1.5)), ("elu_learned", learned_elu, (0.2, 2.0))]


def _inputs(p_shape, lo_hi, dtype=jnp.float32):
    kx, kp, kg = jax.random.split(jax.random.key(3), 3)
    x = 2.0 * jax.random.normal(kx, X_SHAPE, jnp.float32)
    # Exact zeros and ties: the branch point of both functions.
    x = x.at[0].set(0.0).at[1, :2].set(-0.0)
    p = jax.random.uniform(kp, p_shape, jnp.float32, *lo_hi)
    g = jax.random.normal(kg, X_SHAPE, jnp.float32)
    return x.astype(dtype), p, g.astype(dtype)


def _grads(fn, implementation, x, p, g):
    loss = lambda x, p: jnp.sum(fn(x, p, implementation=implementation) * g)  # noqa: E731
    return jax.jit(jax.grad(loss, (0, 1)))(x, p)


@pytest.mark.parametrize("name,fn,lo_hi", FAMILIES)
@pytest.mark.parametrize("p_shape", PARAM_SHAPES)
def test_closed_vjp_matches_autodiff(name, fn, lo_hi, p_shape):
    x, p, g = _inputs(p_shape, lo_hi)
    np.testing.assert_array_equal(fn(x, p), fn(x, p, implementation="autodiff"))
    dx, dp = _grads(fn, "custom_vjp", x, p, g)
    ex, ep = _grads(fn, "autodiff", x, p, g)
    assert dx.dtype == x.dtype and dp.shape == p.shape and dp.dtype == p.dtype
    # The input cotangent is elementwise: equal; the parameter sums differ in order only.
    np.testing.assert_allclose(dx, ex, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dp, ep, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name,fn,lo_hi", FAMILIES)
def test_closed_vjp_second_derivatives_and_bfloat16(name, fn, lo_hi):
    x, p, g = _inputs((4,), lo_hi)

    def grad_p(impl):
        return lambda p: jnp.sum(jax.grad(lambda x: jnp.sum(fn(x, p, implementation=impl)))(x))

    np.testing.assert_allclose(
        jax.grad(grad_p("custom_vjp"))(p), jax.grad(grad_p("autodiff"))(p), rtol=1e-5, atol=1e-4
    )
    xb, _, gb = _inputs((4,), lo_hi, jnp.bfloat16)
    dx, dp = _grads(fn, "custom_vjp", xb, p, gb)
    ex, ep = _grads(fn, "autodiff", xb.astype(jnp.float32), p, gb.astype(jnp.float32))
    assert dx.dtype == jnp.bfloat16 and dp.dtype == jnp.float32
    np.testing.assert_allclose(dx.astype(jnp.float32), ex, rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(dp, ep, rtol=1e-2, atol=1e-2)


def test_closed_vjp_rejects_an_unknown_implementation():
    with pytest.raises(ValueError, match="implementation"):
        prelu(jnp.ones(3), jnp.float32(0.25), implementation="kernel")


def test_materialize_is_exact_and_stays_an_xla_loop():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 1024)), jnp.float32)
    x = x.at[0, :4].set(jnp.asarray([-0.0, jnp.nan, jnp.inf, -jnp.inf]))
    out = jax.jit(materialize)(x)
    np.testing.assert_array_equal(out, x)
    assert bool(jnp.signbit(out[0, 0]))
    # Large enough for XLA:CPU's defaults to hand an add reduction to YNNPACK; this one is a
    # product, which stays XLA's own loop.
    hlo = jax.jit(materialize).lower(x).compile().as_text()
    assert "ynn_fusion" not in hlo


def test_materialize_pair_is_exact_one_loop_and_differentiable():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(64, 1024)), jnp.float32).at[0, :3].set([-0.0, jnp.nan, 7.0])
    y = jnp.asarray(rng.integers(-5, 5, size=(64, 1024)), jnp.int32)
    ox, oy = jax.jit(materialize_pair)(x, y)
    np.testing.assert_array_equal(ox, x)
    np.testing.assert_array_equal(oy, y)
    assert ox.dtype == x.dtype and oy.dtype == y.dtype and bool(jnp.signbit(ox[0, 0]))
    # Both written by one fusion from the same operands, never handed to YNNPACK.
    hlo = jax.jit(lambda v: materialize_pair(jnp.tanh(v), v + 1.0)).lower(x).compile().as_text()
    assert "ynn_fusion" not in hlo
    assert len(re.findall(r"= \(f32\[64,1024\]\S*, f32\[64,1024\]\S*\) fusion\(", hlo)) == 1

    def f(v):
        p, q = materialize_pair(v**2, 3.0 * v)
        return jnp.sum(p * q)

    v = jnp.array([1.0, -2.0])
    np.testing.assert_allclose(jax.grad(f)(v), 9.0 * v**2)
    np.testing.assert_allclose(jax.grad(lambda v: jnp.sum(jax.grad(f)(v)))(v), 18.0 * v)


@pytest.mark.parametrize(
    "x_shape,shape",
    [((64, 6, 5), (6, 5)), ((37, 6, 5), (6, 5)), ((16, 9, 9, 4), (4,)), ((24, 3), ())],
)
def test_a_lone_sum_is_exact_in_every_layout(x_shape, shape):
    # One gradient alone: split in halves of rows over wide rows, regrouped over narrow ones.
    x = jax.random.normal(jax.random.key(1), x_shape, jnp.float32)
    (got,) = jax.jit(lambda x: unbroadcast_many([x], shape))(x)
    want = np.sum(np.asarray(x, np.float64), axis=reduced_axes(x_shape, shape)).reshape(shape)
    assert got.shape == shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_plain_lone_sum_table():
    from cpaf_jax.ops.closed_vjp import plain_lone_sum

    x = (128, 26, 26, 16)
    # (parameter shape, YNN fusions on) -> one plain reduction
    table = [
        ((16,), True, True),  # per channel: regrouped rows
        ((), True, True),  # shared
        ((16,), False, False),
        ((26, 26, 16), True, False),  # per element: the staged sums under both
        ((26, 26, 16), False, False),
        ((26, 1, 16), True, False),  # shared along an inner axis: no row plan
    ]
    for p_shape, ynn, want in table:
        assert plain_lone_sum(x, p_shape, ynn) is want, (p_shape, ynn)


def test_closed_vjp_gradients_agree_under_both_compilations():
    from cpaf_jax import compile_options

    x, p, g = _inputs((4,), (-0.5, 1.5))
    loss = lambda x, p: jnp.sum(prelu(x, p) * g)  # noqa: E731
    plain = jax.jit(jax.grad(loss, (0, 1)))(x, p)
    ours = compile_options.jit(jax.grad(loss, (0, 1)))(x, p)
    for a, b in zip(plain, ours, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
