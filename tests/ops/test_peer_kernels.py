"""APL, PAU and Swish through the one-pass CPU kernel (``cpaf_jax.ops.kernel_vjp``).

On CPU, for float32, each of the three has a custom VJP whose backward is the kernel; its
fallback (other backends, float64, ``shard_map``, second derivatives) is JAX's autodiff of the
same forward. Table-driven: every peer against its autodiff on the shapes of
``test_cpu_kernel.py`` (column blocks, 4-row steps with a remainder, regrouped narrow rows) in
every sharing and several coefficient counts.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpaf_jax.activations import apl as apl_mod
from cpaf_jax.activations import pau as pau_mod
from cpaf_jax.activations import swish as swish_mod
from cpaf_jax.ops import cpu_kernel

pytestmark = pytest.mark.skipif(
    not cpu_kernel.available(), reason="no C++ compiler: autodiff is used (tested elsewhere)"
)

SHAPES = ((7, 9, 11, 13), (64, 6, 6, 8), (33, 30), (5, 3))
SHARING = {
    "element": lambda shape: tuple(shape[1:]),
    "channel": lambda shape: (shape[-1],),
    "shared": lambda shape: (),
}


def _apl_params(rng, p, counts):
    (s,) = counts
    return rng.uniform(-1, 1, (*p, s)), rng.normal(size=(*p, s))


def _pau_params(rng, p, counts):
    m1, n = counts
    q = rng.normal(scale=0.5, size=(*p, n))
    q[..., 0] = 0.0  # d|q|/dq at 0 is +1, as JAX's
    return rng.normal(scale=0.5, size=(*p, m1)), q


def _swish_params(rng, p, counts):
    return (1.0 + 0.5 * rng.normal(size=p),)


def _autodiff(fn):
    return functools.partial(fn, implementation="autodiff")


# name -> (function, the same by autodiff, parameter maker, coefficient counts to try)
PEERS = {
    "apl": (apl_mod.apl, _autodiff(apl_mod.apl), _apl_params, ((1,), (2,), (8,))),
    "pau": (pau_mod.pau, _autodiff(pau_mod.pau), _pau_params, ((6, 4), (1, 1), (3, 8))),
    "swish": (swish_mod.swish, _autodiff(swish_mod.swish), _swish_params, ((),)),
}


def _grads(fn):
    def loss(x, g, *params):
        return jnp.sum(fn(x, *params) * g)

    return jax.jit(lambda x, g, *ps: jax.grad(loss, (0, *range(2, 2 + len(ps))))(x, g, *ps))


def _uses_kernel(fn, *args) -> bool:
    return cpu_kernel.TARGET in fn.lower(*args).as_text()


def _inputs(rng, shape):
    x = rng.normal(scale=2.0, size=shape).astype(np.float32)
    return x, rng.normal(size=shape).astype(np.float32)


def _assert_sums_close(got, want, rows):
    """Parameter gradients are sums over ``rows`` rows, here in another order: float32 rounding
    grows like ``sqrt(rows)`` times the terms' size (bounded by ``max |want| + 1`` here)."""
    scale = np.sqrt(rows) * (float(np.max(np.abs(want))) + 1.0)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("peer", tuple(PEERS))
@pytest.mark.parametrize("sharing", tuple(SHARING))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kernel_gradients_equal_autodiff(rng, peer, sharing, shape):
    fn, forward, make, counts_list = PEERS[peer]
    x, g = _inputs(rng, shape)
    rows = x.size // max(1, int(np.prod(SHARING[sharing](shape))))
    for counts in counts_list:
        params = [p.astype(np.float32) for p in make(rng, SHARING[sharing](shape), counts)]
        kernel, auto = _grads(fn), _grads(forward)
        assert _uses_kernel(kernel, x, g, *params)
        assert not _uses_kernel(auto, x, g, *params)
        got, want = kernel(x, g, *params), auto(x, g, *params)
        scale = float(np.max(np.abs(want[0]))) + 1.0
        np.testing.assert_allclose(got[0], want[0], rtol=2e-5, atol=2e-5 * scale)
        for gp, wp in zip(got[1:], want[1:], strict=True):
            assert gp.shape == wp.shape and gp.dtype == wp.dtype
            _assert_sums_close(gp, wp, rows)


@pytest.mark.parametrize("peer", tuple(PEERS))
def test_kernel_under_vmap_equals_each_member(rng, peer):
    fn, _, make, counts_list = PEERS[peer]
    x = rng.normal(size=(3, 16, 5, 5, 3)).astype(np.float32)
    g = rng.normal(size=x.shape).astype(np.float32)
    members = [make(rng, (5, 5, 3), counts_list[0]) for _ in range(3)]
    params = [np.stack(ps).astype(np.float32) for ps in zip(*members, strict=True)]
    grads = _grads(fn)
    assert _uses_kernel(jax.jit(jax.vmap(grads)), x, g, *params)
    batched = jax.vmap(grads)(x, g, *params)
    for m in range(3):
        one = grads(x[m], g[m], *(p[m] for p in params))
        for got, want in zip(batched, one, strict=True):
            np.testing.assert_allclose(got[m], want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("peer", tuple(PEERS))
def test_second_derivatives_differentiate_autodiff(rng, peer):
    """Differentiating the kernel's backward differentiates the autodiff fallback."""
    fn, forward, make, counts_list = PEERS[peer]
    x, _ = _inputs(rng, (16, 30))
    params = [jnp.asarray(p, jnp.float32) for p in make(rng, (30,), counts_list[0])]

    def hessian_sum(f):
        def inner(p0):
            return jnp.sum(jax.grad(lambda x: jnp.sum(f(x, p0, *params[1:]) ** 2))(x))

        return jax.grad(inner)(params[0])

    np.testing.assert_allclose(hessian_sum(fn), hessian_sum(forward), rtol=1e-4, atol=1e-4)


def test_apl_nan_cotangent_makes_its_input_cotangent_nan(rng):
    """The kernel multiplies by g; autodiff's selects give 0 where everything is flat."""
    x, g = _inputs(rng, (8, 40))
    a, b = (p.astype(np.float32) for p in _apl_params(rng, (40,), (2,)))
    g[3, 7] = np.nan
    dx, da, db = _grads(apl_mod.apl)(x, g, a, b)
    assert np.isnan(dx[3, 7]) and np.isfinite(np.delete(np.asarray(dx).ravel(), 3 * 40 + 7)).all()
    assert np.isnan(da[7]).all() and np.isnan(db[7]).all()


def test_bfloat16_and_float64_inputs(rng, x64):
    """bf16 inputs run the kernel in float32 and return bf16 gradients; float64 uses autodiff."""
    x, g = _inputs(rng, (16, 300))
    beta = np.ones(300, np.float32)
    grads = _grads(swish_mod.swish)
    x16, g16 = jnp.asarray(x, jnp.bfloat16), jnp.asarray(g, jnp.bfloat16)
    assert _uses_kernel(grads, x16, g16, beta)
    got = grads(x16, g16, beta)
    want = _grads(_autodiff(swish_mod.swish))(x16, g16, beta)
    assert got[0].dtype == jnp.bfloat16 and got[1].dtype == jnp.float32
    np.testing.assert_allclose(np.float32(got[0]), np.float32(want[0]), rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(got[1], want[1], rtol=2e-2, atol=2e-2 * np.sqrt(16))
    x64_, g64 = x.astype(np.float64), g.astype(np.float64)
    assert not _uses_kernel(grads, x64_, g64, beta.astype(np.float64))


def test_cases_the_kernel_does_not_compute_use_autodiff(rng):
    x, g = _inputs(rng, (8, 6))
    a, b = (p.astype(np.float32) for p in _apl_params(rng, (6,), (9,)))  # 9 hinges > 8
    assert not _uses_kernel(_grads(apl_mod.apl), x, g, a, b)
    p, q = (c.astype(np.float32) for c in _pau_params(rng, (), (9, 2)))  # 9 coefficients
    assert not _uses_kernel(_grads(pau_mod.pau), x, g, p, q)
    x3, g3 = _inputs(rng, (8, 6, 5))
    beta = np.ones((6, 1), np.float32)  # shared along an inner axis only
    assert not _uses_kernel(_grads(swish_mod.swish), x3, g3, beta)


@pytest.mark.parametrize("peer", tuple(PEERS))
def test_autodiff_implementation_supports_forward_mode(rng, peer):
    """The kernel's custom VJP has no forward mode; ``implementation="autodiff"`` has."""
    fn, auto, make, counts_list = PEERS[peer]
    x, _ = _inputs(rng, (4, 30))
    params = [jnp.asarray(p, jnp.float32) for p in make(rng, (30,), counts_list[0])]
    primal, tangent = jax.jvp(lambda x: auto(x, *params), (x,), (jnp.ones_like(x),))
    np.testing.assert_allclose(primal, fn(x, *params), rtol=1e-6, atol=1e-6)
    want = jax.grad(lambda x: jnp.sum(fn(x, *params)))(x)  # elementwise: the diagonal
    np.testing.assert_allclose(tangent, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda x: fn(x, *params), (x,), (jnp.ones_like(x),))


@pytest.mark.parametrize("peer", tuple(PEERS))
def test_an_unknown_implementation_is_one_clear_error(rng, peer):
    fn, _, make, counts_list = PEERS[peer]
    params = make(rng, (3,), counts_list[0])
    with pytest.raises(ValueError, match=f"{peer}: implementation must be one of"):
        fn(jnp.ones((2, 3)), *params, implementation="xla_vjp")


@pytest.mark.parametrize("peer", tuple(PEERS))
@pytest.mark.parametrize("shape,p_shape", [((128, 1024), (1024,)), ((2048, 64), ())], ids=str)
def test_work_split_over_threads_keeps_the_sums(rng, peer, shape, p_shape):
    """Over 65,536 elements the kernel splits the work into chunks: by column blocks for wide
    rows, by rows (each chunk with its own partial sums, added at the end) for narrow ones."""
    fn, auto, make, counts_list = PEERS[peer]
    x, g = _inputs(rng, shape)
    params = [p.astype(np.float32) for p in make(rng, p_shape, counts_list[0])]
    got, want = _grads(fn)(x, g, *params), _grads(auto)(x, g, *params)
    np.testing.assert_allclose(got[0], want[0], rtol=2e-5, atol=2e-5)
    for gp, wp in zip(got[1:], want[1:], strict=True):
        _assert_sums_close(gp, wp, x.size // max(1, int(np.prod(p_shape))))


def test_kinks_take_jax_conventions():
    """At ``x = b_s`` and ``x = 0`` APL's ReLUs have derivative 0; PAU's ``d|x|/dx`` and
    ``d|q|/dq`` are +1 at 0 and at -0.0, as JAX's."""
    x = np.array([[-1.0, -0.0, 0.0, 0.5, 1.0, 2.0]], np.float32)
    g = np.ones_like(x)
    a = np.array([[0.7, -0.3]] * 6, np.float32)
    b = np.array([[0.5, 0.0]] * 6, np.float32)  # hinges at x = 0.5 and x = 0
    for got, want in zip(
        _grads(apl_mod.apl)(x, g, a, b), _grads(_autodiff(apl_mod.apl))(x, g, a, b), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    p = np.array([0.1, 1.0, 0.5], np.float32)
    q = np.array([-0.0, 0.0, 0.3], np.float32)
    for got, want in zip(
        _grads(pau_mod.pau)(x, g, p, q), _grads(_autodiff(pau_mod.pau))(x, g, p, q), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
