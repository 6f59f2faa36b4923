"""Tests of the pure CPAF functions against an independent NumPy float64 reference.

The reference below is written from the paper's equations (Ko, Li, Ko 2022; /work/shared/SPEC.md
section 1), not from the library:

    sigmoid base (Eq. 2): s_(a,b)(y) = a / (1 + exp(-(y - b))) - a/2
    ReLU base    (Eq. 3): s_(a,b)(y) = a (y - b) - a/2  if y > b,  -a/2  otherwise
    CPAF         (Eq. 7): z = sum_i s_(a_i, b_i)(y)

with the derivatives worked out by hand. For a scalar loss ``L = sum(g * z)`` the gradient of a
parameter is ``g * dz/dparam`` summed over the axes the parameter is shared along.
"""

from __future__ import annotations

import contextlib
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import cpaf_jax
from cpaf_jax import cpaf

IMPLS = cpaf_jax.IMPLEMENTATIONS
BASES = ("sigmoid", "relu")

# Feature map of one example (H, W, C): all sizes differ so a swapped axis cannot pass.
N, H, W, C = 2, 3, 4, 5
Y_SHAPE = (N, H, W, C)

# Parameter shape [*P, k] for each sharing mode.
SHARING_SHAPES = {
    "shared": lambda k: (k,),
    "channel": lambda k: (C, k),
    "element": lambda k: (H, W, C, k),
    "axes_h": lambda k: (H, 1, 1, k),
    "axes_w": lambda k: (W, 1, k),
}
# The full matrix runs the four layouts of the issue; axes_w is exercised by other tests.
MATRIX_SHARINGS = ("shared", "channel", "element", "axes_h")
# Composition tests: both code paths (custom VJP, autodiff) with both bases between them.
COMPOSE_CASES = [
    pytest.param("sigmoid", "custom_vjp", id="sigmoid-custom_vjp"),
    pytest.param("relu", "custom_vjp", id="relu-custom_vjp"),
    pytest.param("sigmoid", "unrolled", id="sigmoid-unrolled"),
    pytest.param("relu", "naive", id="relu-naive"),
]


# ---------------------------------------------------------------------------------------------
# NumPy float64 reference.


def _sigmoid(u):
    return 1.0 / (1.0 + np.exp(-u))


def ref_terms(y, a, b, base):
    """z_i = s_(a_i, b_i)(y), shape y.shape + (k,)."""
    y, a, b = (np.asarray(v, np.float64) for v in (y, a, b))
    u = y[..., None] - b
    if base == "sigmoid":  # Eq. 2
        return a / (1.0 + np.exp(-u)) - a / 2
    if base == "relu":  # Eq. 3
        return np.where(u > 0, a * u - a / 2, -a / 2)
    if base == "tanh":
        return a * np.tanh(u)
    if base == "softplus":
        return a * np.log1p(np.exp(u))
    raise AssertionError(base)


def ref_cpaf(y, a, b, base):
    """Eq. 7: the sum of the k terms."""
    return ref_terms(y, a, b, base).sum(-1)


def ref_partials(y, a, b, base):
    """Elementwise (dz/dy, dz/da_i, dz/db_i), shapes y.shape, y.shape + (k,), y.shape + (k,)."""
    y, a, b = (np.asarray(v, np.float64) for v in (y, a, b))
    u = y[..., None] - b
    if base == "sigmoid":
        s = _sigmoid(u)
        dy = a * s * (1 - s)
        da = s - 0.5
    elif base == "relu":
        h = (u > 0).astype(np.float64)
        dy = a * h
        da = np.where(u > 0, u - 0.5, -0.5)
    elif base == "tanh":
        t = np.tanh(u)
        dy = a * (1 - t * t)
        da = t
    elif base == "softplus":
        dy = a * _sigmoid(u)
        da = np.log1p(np.exp(u))
    else:
        raise AssertionError(base)
    da = np.broadcast_to(da, u.shape)
    dy = np.broadcast_to(dy, u.shape)
    return dy.sum(-1), da, -dy


def ref_second_derivative_y(y, a, b, base):
    """d^2 z / dy^2 elementwise."""
    y, a, b = (np.asarray(v, np.float64) for v in (y, a, b))
    u = y[..., None] - b
    if base == "sigmoid":
        s = _sigmoid(u)
        return (a * s * (1 - s) * (1 - 2 * s)).sum(-1)
    if base == "relu":
        return np.zeros(y.shape)
    raise AssertionError(base)


def reduce_to(x, shape):
    """Sums x over the axes along which a parameter of ``shape`` is shared."""
    lead = x.ndim - len(shape)
    x = x.sum(axis=tuple(range(lead)))
    for i, d in enumerate(shape):
        if d == 1:
            x = x.sum(axis=i, keepdims=True)
    assert x.shape == tuple(shape), (x.shape, shape)
    return x


def ref_grads(y, a, b, g, base):
    """Gradients of L = sum(g * z) with respect to y, a and b."""
    dy, da, db = ref_partials(y, a, b, base)
    g = np.asarray(g, np.float64)
    shape = np.shape(a)
    return g * dy, reduce_to(g[..., None] * da, shape), reduce_to(g[..., None] * db, shape)


# ---------------------------------------------------------------------------------------------
# Helpers.


def make_inputs(rng, y_shape, p_shape, dtype=np.float32, kink_gap=1e-2):
    """Random y, a, b (a of both signs), with y kept away from every kink y = b_i."""
    a = (rng.normal(size=p_shape) * 2.0).astype(dtype)
    b = (rng.normal(size=p_shape) * 1.5).astype(dtype)
    y = (rng.normal(size=y_shape) * 2.5).astype(dtype)
    for _ in range(100):
        near = (np.abs(y[..., None].astype(np.float64) - b) < kink_gap).any(-1)
        if not near.any():
            break
        y = np.where(near, y + 0.037, y).astype(dtype)
    else:
        raise AssertionError("could not move y away from the kinks")
    g = rng.normal(size=y_shape).astype(dtype)
    return y, a, b, g


def assert_close(actual, expected, rtol=2e-5, atol=None, err_msg=""):
    actual = np.asarray(jnp.asarray(actual, jnp.float32)) if _is_low(actual) else actual
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape, err_msg)
    if atol is None:
        atol = rtol * max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=err_msg)


def _is_low(x):
    return hasattr(x, "dtype") and x.dtype == jnp.bfloat16


def loss_fn(base, impl):
    def loss(y, a, b, g):
        return jnp.sum(g * cpaf(y, a, b, base, implementation=impl))

    return loss


# ---------------------------------------------------------------------------------------------
# The reference itself: the hand-written derivatives agree with finite differences, so a bug
# shared by the reference and the library cannot hide.


@pytest.mark.parametrize("base", ["sigmoid", "relu", "tanh", "softplus"])
def test_reference_derivatives_match_finite_differences(rng, base):
    y, a, b, _ = make_inputs(rng, (7,), (7, 3), np.float64, kink_gap=1e-2)
    eps = 1e-6
    dy, da, db = ref_partials(y, a, b, base)
    num_dy = (ref_cpaf(y + eps, a, b, base) - ref_cpaf(y - eps, a, b, base)) / (2 * eps)
    np.testing.assert_allclose(dy, num_dy, rtol=1e-6, atol=1e-8)
    for i in range(3):
        e = np.zeros_like(a)
        e[:, i] = eps
        num_da = (ref_cpaf(y, a + e, b, base) - ref_cpaf(y, a - e, b, base)) / (2 * eps)
        num_db = (ref_cpaf(y, a, b + e, base) - ref_cpaf(y, a, b - e, base)) / (2 * eps)
        np.testing.assert_allclose(da[:, i], num_da, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(db[:, i], num_db, rtol=1e-6, atol=1e-8)


def test_reference_matches_paper_values():
    # Table 1, sigmoid base at y = 0: 4/(1+e^-(-2)) - 2 + 4/(1+e^-2) - 2 = 0 by symmetry;
    # ReLU base at y = 3: (1*(3-1) - 1/2) + (1*(3+1) - 1/2) = 5.
    np.testing.assert_allclose(
        ref_cpaf([0.0], [4.0, 4.0], [2.0, -2.0], "sigmoid"), [0.0], atol=1e-12
    )
    # y = 2: the first term is 0, the second 4 / (1 + e^-4) - 2.
    np.testing.assert_allclose(
        ref_cpaf([2.0], [4.0, 4.0], [2.0, -2.0], "sigmoid"), [4 / (1 + np.exp(-4.0)) - 2]
    )
    np.testing.assert_allclose(ref_cpaf([3.0], [1.0, 1.0], [1.0, -1.0], "relu"), [5.0])
    np.testing.assert_allclose(ref_cpaf([0.0], [1.0, 1.0], [1.0, -1.0], "relu"), [0.0])
    np.testing.assert_allclose(ref_cpaf([-5.0], [1.0, 1.0], [1.0, -1.0], "relu"), [-1.0])


# ---------------------------------------------------------------------------------------------
# Values and gradients: both bases, k = 1..4, every sharing mode, every implementation.


@functools.cache
def _value_and_vjp_all(base):
    """jit(y, a, b, g -> {impl: (z, dL/dy, dL/da, dL/db)}) for L = sum(g * z).

    All implementations go into one program: the tests of the different implementations get
    the same inputs (same seed, same shapes), so they share one compilation, which is what
    the matrix below spends its time on.
    """

    def f(y, a, b, g):
        out = {}
        for impl in IMPLS:
            f_impl = functools.partial(cpaf, base=base, implementation=impl)
            z, vjp = jax.vjp(f_impl, y, a, b)
            out[impl] = (z, *vjp(g))
        return out

    return jax.jit(f)


def value_and_vjp(base, impl):
    """(y, a, b, g) -> (z, dL/dy, dL/da, dL/db) of one implementation, jitted."""
    return lambda y, a, b, g: _value_and_vjp_all(base)(y, a, b, g)[impl]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("sharing", MATRIX_SHARINGS)
@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("base", BASES)
def test_values_and_grads_match_numpy(rng, base, k, sharing, impl):
    p_shape = SHARING_SHAPES[sharing](k)
    y, a, b, g = make_inputs(rng, Y_SHAPE, p_shape)
    z, gy, ga, gb = value_and_vjp(base, impl)(y, a, b, g)
    assert z.shape == Y_SHAPE and z.dtype == jnp.float32
    assert ga.shape == p_shape and gb.shape == p_shape
    assert_close(z, ref_cpaf(y, a, b, base), err_msg="z")
    ry, ra, rb = ref_grads(y, a, b, g, base)
    assert_close(gy, ry, err_msg="dL/dy")
    assert_close(ga, ra, rtol=5e-5, err_msg="dL/da")
    assert_close(gb, rb, rtol=5e-5, err_msg="dL/db")


# A user base: a plain callable (derivative by forward-mode autodiff inside the custom VJP) and
# a cpaf_jax.Base carrying its own derivative.
OTHER_BASES = {
    "tanh": ("tanh", "tanh"),
    "softplus": (jax.nn.softplus, "softplus"),
    "softplus_base": (
        cpaf_jax.Base("softplus_d", jax.nn.softplus, 0.0, lambda u, fu: jax.nn.sigmoid(u)),
        "softplus",
    ),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("base", list(OTHER_BASES))
def test_other_bases_match_numpy(rng, base, impl):
    base_arg, ref_name = OTHER_BASES[base]
    y, a, b, g = make_inputs(rng, Y_SHAPE, (C, 2))
    z, *grads = value_and_vjp(base_arg, impl)(y, a, b, g)
    assert_close(z, ref_cpaf(y, a, b, ref_name))
    for got, want in zip(grads, ref_grads(y, a, b, g, ref_name), strict=True):
        assert_close(got, want, rtol=5e-5)


@pytest.mark.parametrize("base", ["sigmoid", "relu", "tanh"])
def test_cpaf_terms_match_numpy(rng, base):
    y, a, b, _ = make_inputs(rng, Y_SHAPE, (W, 1, 3))
    terms = cpaf_jax.cpaf_terms(y, a, b, base)
    assert terms.shape == Y_SHAPE + (3,)
    assert_close(terms, ref_terms(y, a, b, base))
    assert_close(terms.sum(-1), cpaf(y, a, b, base))


@pytest.mark.parametrize("base", BASES)
def test_parametric_single_term_matches_paper(rng, base):
    y, a, b, _ = make_inputs(rng, (4, C), (C, 1))
    # Scalar parameters (Eq. 2 / Eq. 3 with one (a, b)).
    got = cpaf_jax.parametric(y, 1.5, -0.25, base)
    assert got.dtype == jnp.float32
    assert_close(got, ref_terms(y, [1.5], [-0.25], base)[..., 0])
    # Per-channel array parameters.
    got = cpaf_jax.parametric(y, a[:, 0], b[:, 0], base)
    assert_close(got, ref_terms(y, a, b, base)[..., 0])


# ---------------------------------------------------------------------------------------------
# Closed-form partial derivatives.


def _partials_bases():
    return {
        "sigmoid": "sigmoid",
        "relu": "relu",
        "tanh": "tanh",
        "softplus": jax.nn.softplus,
    }


@pytest.mark.parametrize("base", list(_partials_bases()))
def test_cpaf_partials_match_autodiff_per_element(rng, base):
    """With per-element parameters and no batch axis, grad of sum(z) is the elementwise partial."""
    base = _partials_bases()[base]
    y, a, b, _ = make_inputs(rng, (H, C), (H, C, 3))
    # Autodiff of the "unrolled" implementation, which does not use the closed forms.
    total = lambda y, a, b: jnp.sum(cpaf(y, a, b, base, implementation="unrolled"))
    (dy, da, db), (gy, ga, gb) = jax.jit(
        lambda y, a, b: (
            cpaf_jax.cpaf_partials(y, a, b, base),
            jax.grad(total, argnums=(0, 1, 2))(y, a, b),
        )
    )(y, a, b)
    assert dy.shape == (H, C) and da.shape == (H, C, 3) and db.shape == (H, C, 3)
    assert_close(dy, gy)
    assert_close(da, ga)
    assert_close(db, gb)


@pytest.mark.parametrize("base", list(_partials_bases()))
def test_cpaf_partials_match_jacobians_shared(rng, base):
    """With shared (k,) parameters, the Jacobian dz/da has shape y.shape + (k,): the partials."""
    base = _partials_bases()[base]
    y, a, b, _ = make_inputs(rng, (2, C), (3,))
    dy, da, db = cpaf_jax.cpaf_partials(y, a, b, base)
    assert da.shape == (2, C, 3)
    # Forward mode on the autodiff implementation, reverse mode on the custom VJP.
    fwd = lambda y, a, b: cpaf(y, a, b, base, implementation="unrolled")
    rev = lambda y, a, b: cpaf(y, a, b, base, implementation="custom_vjp")
    jacs = jax.jit(
        lambda y, a, b: (
            jax.jacfwd(fwd, argnums=(0, 1, 2))(y, a, b),
            jax.jacrev(rev, argnums=(0, 1, 2))(y, a, b),
        )
    )(y, a, b)
    for jy, ja, jb in jacs:
        assert_close(da, ja)
        assert_close(db, jb)
        assert_close(dy, np.einsum("ijij->ij", np.asarray(jy)))


@pytest.mark.parametrize("base", BASES)
def test_cpaf_partials_match_numpy(rng, base):
    y, a, b, _ = make_inputs(rng, Y_SHAPE, (C, 2))
    for got, want in zip(
        cpaf_jax.cpaf_partials(y, a, b, base), ref_partials(y, a, b, base), strict=True
    ):
        assert_close(got, want)


def test_paper_sigmoid_partials_equal_cpaf_partials(rng):
    y, a, b, _ = make_inputs(rng, Y_SHAPE, (C, 2))
    paper = cpaf_jax.paper_sigmoid_partials(y, a, b)
    ours = cpaf_jax.cpaf_partials(y, a, b, "sigmoid")
    for p, o, r in zip(paper, ours, ref_partials(y, a, b, "sigmoid"), strict=True):
        # Eq. 11-12 cancel (4 z^2 - a^2) in float32: absolute tolerance scaled by |a|.
        assert_close(p, o, rtol=1e-4, atol=1e-5 * float(np.abs(a).max()) * 2)
        assert_close(p, r, rtol=1e-4, atol=1e-5 * float(np.abs(a).max()) * 2)


def test_paper_sigmoid_partials_undefined_at_zero_a_where_cpaf_partials_is_finite(rng):
    y, a, b, _ = make_inputs(rng, (4, C), (C, 2))
    a[0, 1] = 0.0
    paper_dy, _, paper_db = cpaf_jax.paper_sigmoid_partials(y, a, b)
    dy, da, db = cpaf_jax.cpaf_partials(y, a, b, "sigmoid")
    assert not np.isfinite(np.asarray(paper_db)[:, 0, 1]).any()
    assert not np.isfinite(np.asarray(paper_dy)[:, 0]).any()
    assert np.isfinite(np.asarray(dy)).all() and np.isfinite(np.asarray(db)).all()
    assert_close(db, ref_partials(y, a, b, "sigmoid")[2])
    # Where a != 0 the two still agree.
    assert_close(np.asarray(paper_dy)[:, 1:], np.asarray(dy)[:, 1:], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# a_i = 0: the custom VJP must not divide by a.


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("base", BASES)
def test_zero_scale_gradients_finite_and_correct(rng, base, impl):
    y, a, b, g = make_inputs(rng, Y_SHAPE, (C, 3))
    a[0, :] = 0.0  # channel 0: every term off
    a[2, 1] = 0.0  # one term of channel 2
    a[4, 0] = -0.0
    z, *grads = value_and_vjp(base, impl)(y, a, b, g)
    assert_close(z, ref_cpaf(y, a, b, base))
    np.testing.assert_array_equal(np.asarray(z)[..., 0], 0.0)
    for name, got, want in zip("yab", grads, ref_grads(y, a, b, g, base), strict=True):
        assert np.isfinite(np.asarray(got)).all(), f"non-finite dL/d{name} at a = 0"
        assert_close(got, want, rtol=5e-5, err_msg=f"dL/d{name}")
    # All-zero a: the output and dL/dy vanish, dL/da does not.
    _, gy, ga, gb = value_and_vjp(base, impl)(y, np.zeros_like(a), b, g)
    assert np.isfinite(np.asarray(ga)).all() and np.abs(np.asarray(ga)).max() > 0
    np.testing.assert_array_equal(np.asarray(gy), 0.0)
    np.testing.assert_array_equal(np.asarray(gb), 0.0)


# ---------------------------------------------------------------------------------------------
# dtypes.

DTYPE_CASES = [
    # (y dtype, parameter dtype); float32 with float32 is the main matrix above.
    ("bfloat16", "float32"),
    ("bfloat16", "bfloat16"),
    ("float32", "bfloat16"),
    ("float64", "float32"),
    ("float64", "float64"),
]


@pytest.mark.parametrize("y_dtype,p_dtype", DTYPE_CASES)
@pytest.mark.parametrize("impl", IMPLS)
def test_dtypes_preserved(rng, y_dtype, p_dtype, impl):
    base = "sigmoid"  # dtype handling does not depend on the base; this one has a transcendental
    needs_x64 = "float64" in (y_dtype, p_dtype)
    with jax.enable_x64(True) if needs_x64 else contextlib.nullcontext():
        y, a, b, g = make_inputs(rng, Y_SHAPE, (C, 2), np.float64, kink_gap=5e-2)
        y, g = jnp.asarray(y, y_dtype), jnp.asarray(g, y_dtype)
        a, b = jnp.asarray(a, p_dtype), jnp.asarray(b, p_dtype)
        assert y.dtype == jnp.dtype(y_dtype) and a.dtype == jnp.dtype(p_dtype)

        z, gy, ga, gb = value_and_vjp(base, impl)(y, a, b, g)
        assert z.dtype == y.dtype
        assert gy.dtype == y.dtype
        assert ga.dtype == a.dtype and gb.dtype == b.dtype

        # Against the reference evaluated on the very same (rounded) inputs.
        y64, a64, b64, g64 = (
            np.asarray(jnp.asarray(v, jnp.float32), np.float64)
            if v.dtype == jnp.bfloat16
            else np.asarray(v, np.float64)
            for v in (y, a, b, g)
        )
        ref = ref_cpaf(y64, a64, b64, base)
        rgy, rga, rgb = ref_grads(y64, a64, b64, g64, base)
        # The tolerance is that of each result's own dtype: float64 results must really be
        # computed in float64 (even with float32 parameters), and bfloat16 inputs must not
        # cost float32 results (the parameter gradients) any accuracy.
        tol = {jnp.float64: 1e-12, jnp.float32: 5e-5, jnp.bfloat16: 2.0**-7}
        assert_close(z, ref, rtol=tol[z.dtype.type])
        assert_close(gy, rgy, rtol=tol[gy.dtype.type])
        assert_close(ga, rga, rtol=tol[ga.dtype.type])
        assert_close(gb, rgb, rtol=tol[gb.dtype.type])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("base", BASES)
def test_bfloat16_close_to_float32(rng, base, impl):
    y, a, b, g = make_inputs(rng, Y_SHAPE, (H, W, C, 2), kink_gap=5e-2)
    y16, g16 = jnp.asarray(y, jnp.bfloat16), jnp.asarray(g, jnp.bfloat16)
    y32, g32 = y16.astype(jnp.float32), g16.astype(jnp.float32)
    f = value_and_vjp(base, impl)
    z16, *grads16 = f(y16, a, b, g16)
    z32, *grads32 = f(y32, a, b, g32)
    assert z16.dtype == jnp.bfloat16 and z32.dtype == jnp.float32
    assert grads16[0].dtype == jnp.bfloat16 and grads16[1].dtype == jnp.float32
    assert_close(z16, z32, rtol=2.0**-7)
    for got, want in zip(grads16, grads32, strict=True):
        assert_close(got, want, rtol=2.0**-7)


def test_enable_x64_is_a_context_manager():
    before = jnp.asarray(1.0).dtype
    with jax.enable_x64(True):
        assert jnp.asarray(np.float64(1.0)).dtype == jnp.float64
        z = cpaf(jnp.ones((2, 3), jnp.float64), jnp.ones((3, 2)), jnp.zeros((3, 2)))
        assert z.dtype == jnp.float64
    assert jnp.asarray(1.0).dtype == before


# ---------------------------------------------------------------------------------------------
# Composition with JAX transformations.


class TransformVariantsTest(parameterized.TestCase):
    """chex variants: the same checks with and without jit."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(("sigmoid", "custom_vjp"), ("relu", "naive"))
    def test_grad_under_variant(self, base, impl):
        rng = np.random.default_rng(1)
        y, a, b, g = make_inputs(rng, Y_SHAPE, SHARING_SHAPES["axes_w"](2))
        grad = self.variant(jax.grad(loss_fn(base, impl), argnums=(0, 1, 2)))
        for got, want in zip(grad(y, a, b, g), ref_grads(y, a, b, g, base), strict=True):
            assert_close(got, want, rtol=5e-5)
        value = self.variant(lambda y, a, b: cpaf(y, a, b, base, implementation=impl))
        assert_close(value(y, a, b), ref_cpaf(y, a, b, base))


@pytest.mark.parametrize("base,impl", COMPOSE_CASES)
def test_vmap_over_y(rng, base, impl):
    y, a, b, _ = make_inputs(rng, (3,) + Y_SHAPE, (C, 2))
    f = lambda y: cpaf(y, a, b, base, implementation=impl)
    # Over the leading axis and over a feature axis (which then is not the parameters' axis).
    both = jax.jit(lambda y: (jax.vmap(f)(y), jax.vmap(f, in_axes=1, out_axes=1)(y)))
    lead, inner = both(y)
    assert_close(lead, ref_cpaf(y, a, b, base))
    assert_close(inner, ref_cpaf(y, a, b, base))


@pytest.mark.parametrize("base,impl", COMPOSE_CASES)
def test_vmap_over_params(rng, base, impl):
    # 3 per-channel parameter sets, all with y away from their kinks.
    y, a, b, g = make_inputs(rng, Y_SHAPE, (C, 3 * 2))
    a, b = (v.reshape(C, 3, 2).transpose(1, 0, 2).copy() for v in (a, b))
    f = lambda y, a, b: cpaf(y, a, b, base, implementation=impl)
    grad = jax.grad(loss_fn(base, impl), argnums=(0, 1, 2))

    @jax.jit
    def run(y, a, b, g):
        # vmap of the function, and vmap of grad under jit.
        return (
            jax.vmap(f, in_axes=(None, 0, 0))(y, a, b),
            jax.vmap(jax.jit(grad), in_axes=(None, 0, 0, None))(y, a, b, g),
        )

    z, (gy, ga, gb) = run(y, a, b, g)
    assert z.shape == (3,) + Y_SHAPE and gy.shape == (3,) + Y_SHAPE and ga.shape == a.shape
    for m in range(3):
        assert_close(z[m], ref_cpaf(y, a[m], b[m], base))
        ry, ra, rb = ref_grads(y, a[m], b[m], g, base)
        assert_close(gy[m], ry)
        assert_close(ga[m], ra, rtol=5e-5)
        assert_close(gb[m], rb, rtol=5e-5)


@pytest.mark.parametrize("base,impl", COMPOSE_CASES)
def test_per_example_grad_vmap(rng, base, impl):
    """vmap(grad) over the batch: per-example parameter gradients sum to the batch gradient."""
    y, a, b, g = make_inputs(rng, Y_SHAPE, (C, 2))
    grad = jax.grad(loss_fn(base, impl), argnums=(1, 2))
    ga, gb = jax.jit(jax.vmap(grad, in_axes=(0, None, None, 0)))(y, a, b, g)
    assert ga.shape == (N, C, 2)
    for n in range(N):
        _, ra, rb = ref_grads(y[n], a, b, g[n], base)
        assert_close(ga[n], ra, rtol=5e-5)
        assert_close(gb[n], rb, rtol=5e-5)


@pytest.mark.parametrize("base,impl", COMPOSE_CASES)
def test_second_derivatives(rng, base, impl):
    """Reverse over reverse and forward over reverse work for every implementation; plain
    forward mode (jvp) is not defined for jax.custom_vjp and raises TypeError."""
    y, a, b, _ = make_inputs(rng, (6,), (2,), kink_gap=5e-2)
    f = lambda y: cpaf(y, a, b, base, implementation=impl)
    total = lambda y: jnp.sum(f(y))
    d2, hess = jax.jit(
        lambda y: (jax.vmap(jax.grad(jax.grad(lambda t: f(t[None])[0])))(y), jax.hessian(total)(y))
    )(y)
    assert_close(d2, ref_second_derivative_y(y, a, b, base), rtol=5e-5)
    assert_close(hess, np.diag(ref_second_derivative_y(y, a, b, base)), rtol=5e-5)

    tangent = rng.normal(size=y.shape).astype(np.float32)
    if impl == "custom_vjp":
        with pytest.raises(TypeError, match="forward-mode"):
            jax.jvp(f, (y,), (tangent,))
    else:
        z, dz = jax.jit(lambda y, t: jax.jvp(f, (y,), (t,)))(y, tangent)
        assert_close(z, ref_cpaf(y, a, b, base))
        assert_close(dz, ref_partials(y, a, b, base)[0] * tangent)


# Values and gradients under a real 8-device shard_map (batch split, parameters replicated):
# tests/ops/test_multidevice.py, in a fresh process (this one has a single CPU device).


# ---------------------------------------------------------------------------------------------
# Bad inputs fail at trace time with a message naming the problem.

_Y = jax.ShapeDtypeStruct(Y_SHAPE, jnp.float32)


def _spec(shape, dtype=jnp.float32):
    return jax.ShapeDtypeStruct(shape, dtype)


BAD_INPUTS = [
    pytest.param((C, 2), (C, 3), {}, "a and b must have the same shape", id="a_b_shapes_differ"),
    pytest.param((4, 2), (4, 2), {}, "do not broadcast against y", id="no_broadcast_channel"),
    pytest.param((H, 5, C, 2), (H, 5, C, 2), {}, "axis 2 of y has size 4", id="no_broadcast_w"),
    pytest.param(
        (1, 1, H, W, C, 2), (1, 1, H, W, C, 2), {}, "more feature axes", id="too_many_axes"
    ),
    pytest.param((C, 0), (C, 0), {}, "k = 0", id="k_zero"),
    pytest.param((), (), {}, "trailing term axis", id="scalar_params"),
    pytest.param((C, 2), (C, 2), {"base": "swish"}, "unknown CPAF base 'swish'", id="bad_base"),
    pytest.param(
        (C, 2),
        (C, 2),
        {"implementation": "fast"},
        r"unknown implementation 'fast'.*custom_vjp",
        id="bad_implementation",
    ),
]


@pytest.mark.parametrize("a_shape,b_shape,kwargs,message", BAD_INPUTS)
def test_bad_inputs_raise_at_trace_time(a_shape, b_shape, kwargs, message):
    f = functools.partial(cpaf, **kwargs)
    a, b = _spec(a_shape), _spec(b_shape)
    with pytest.raises(ValueError, match=message):
        jax.jit(f).lower(_Y, a, b)
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(f, _Y, a, b)
    with pytest.raises(ValueError, match=message):
        f(jnp.zeros(Y_SHAPE), jnp.ones(a_shape), jnp.ones(b_shape))


@pytest.mark.parametrize("fn", [cpaf_jax.cpaf_partials, cpaf_jax.cpaf_terms])
def test_bad_shapes_raise_in_other_entry_points(fn):
    with pytest.raises(ValueError, match="do not broadcast against y"):
        jax.eval_shape(fn, _Y, _spec((4, 2)), _spec((4, 2)))
    with pytest.raises(ValueError, match="k = 0"):
        jax.eval_shape(fn, _Y, _spec((C, 0)), _spec((C, 0)))


def test_integer_inputs_rejected():
    with pytest.raises(TypeError, match="floating"):
        jax.eval_shape(cpaf, _spec(Y_SHAPE, jnp.int32), _spec((C, 2)), _spec((C, 2)))


def test_valid_shapes_trace():
    """The validation accepts every documented layout (and the 1-broadcast ones)."""
    for p in [(2,), (C, 2), (W, C, 2), (H, W, C, 2), (N, H, W, C, 2), (1, 1, C, 2), (H, 1, 1, 2)]:
        out = jax.eval_shape(cpaf, _Y, _spec(p), _spec(p))
        assert out.shape == Y_SHAPE and out.dtype == jnp.float32


def test_unknown_sharing_rejected():
    with pytest.raises(ValueError, match="unknown sharing 'pixel'"):
        cpaf_jax.param_shape((H, W, C), "pixel")
    with pytest.raises(ValueError, match="out of range"):
        cpaf_jax.param_shape((H, W, C), (3,))


@pytest.mark.parametrize(
    "sharing,expected",
    [
        ("element", (H, W, C)),
        ("channel", (C,)),
        ("shared", ()),
        ((0,), (H, 1, 1)),
        ((-1,), (C,)),
        ((1,), (W, 1)),
        ((0, 2), (H, 1, C)),
        ((), ()),
    ],
)
def test_param_shape(sharing, expected):
    assert cpaf_jax.param_shape((H, W, C), sharing) == expected


@pytest.mark.parametrize(
    "y_shape,p_shape",
    [
        ((16, 8, 8, 4), (4, 2)),  # per channel: 1024 rows regrouped 32 to a row, 4 stages
        ((16, 8, 8, 4), (2,)),  # shared: one column regrouped into rows of 128
        ((16, 8, 8, 4), (1, 2)),
        ((16, 8, 8, 4), (8, 8, 4, 2)),  # per element: 16 rows, two stages
        ((13, 9, 4), (9, 4, 2)),  # 13 rows: a stage of 8 and 5 left over
        ((100, 3), (3, 2)),  # 100 rows regrouped to 50 x 6: stages with remainders
    ],
)
def test_staged_parameter_sums_match_autodiff(y_shape, p_shape):
    """The default VJP sums the parameter gradients in staged passes (``RowPlan``); they equal
    autodiff's plain sums for layouts with regrouping, several stages and leftover rows."""
    from cpaf_jax.ops.reductions import row_plan

    plan = row_plan(y_shape, p_shape[:-1])
    assert plan is not None and plan.rows * np.prod(plan.row_shape) == np.prod(y_shape)
    y = jax.random.normal(jax.random.key(0), y_shape)
    g = jax.random.normal(jax.random.key(1), y_shape)
    a = 1.0 + 0.1 * jax.random.normal(jax.random.key(2), p_shape)
    b = 0.3 * jax.random.normal(jax.random.key(3), p_shape)
    for base in ("relu", "sigmoid", "tanh"):
        grads = {
            impl: jax.grad(
                lambda y, a, b, impl=impl, base=base: jnp.sum(
                    cpaf(y, a, b, base, implementation=impl) * g
                ),
                argnums=(0, 1, 2),
            )(y, a, b)
            for impl in ("custom_vjp", "naive")
        }
        for x, ref in zip(grads["custom_vjp"], grads["naive"], strict=True):
            np.testing.assert_allclose(x, ref, rtol=2e-5, atol=2e-4)


@pytest.mark.parametrize(
    "x_shape,shape",
    [
        ((128, 5, 3), (5, 3)),
        ((64, 4, 4, 16), (16,)),
        ((1000,), ()),
        ((7, 3, 2), (3, 1)),
        ((2, 3), (2, 3)),
    ],
)
def test_unbroadcast_many_equals_jnp_sum(x_shape, shape):
    from cpaf_jax.ops.reductions import reduced_axes, unbroadcast_many

    xs = [jax.random.normal(jax.random.key(i), x_shape, jnp.float32) for i in range(5)]
    got = jax.jit(lambda xs: unbroadcast_many(xs, shape))(xs)
    axes = reduced_axes(x_shape, shape)
    for x, s in zip(xs, got, strict=True):
        assert s.shape == shape
        np.testing.assert_allclose(
            s, np.sum(np.asarray(x, np.float64), axis=axes).reshape(shape), rtol=1e-5, atol=1e-4
        )


def test_materialize_returns_its_input_exactly():
    from cpaf_jax.ops.reductions import materialize

    for x in (jnp.arange(12.0).reshape(3, 4) - 5.5, jnp.array([1, -2, 3], jnp.int32)):
        out = jax.jit(materialize)(x)
        assert out.dtype == x.dtype and out.shape == x.shape
        np.testing.assert_array_equal(out, x)
    g = jax.grad(lambda v: jnp.sum(materialize(v) ** 2))(jnp.array([1.0, -3.0]))
    np.testing.assert_array_equal(g, [2.0, -6.0])
