"""APL, PAU and Swish: values and gradients against NumPy formulas written out here, in every
sharing mode; PAU's denominator; modules, registry and input checks."""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cpaf_jax
from cpaf_jax.activations import apl as _apl
from cpaf_jax.activations import pau as _pau
from cpaf_jax.activations import swish as _swish
from cpaf_jax.ops.sharing import param_shape

# The three families' modules as one namespace (what cpaf_jax.activations.extra was).
ea = types.SimpleNamespace(**{**vars(_apl), **vars(_pau), **vars(_swish)})

FEATURES = (4, 5, 3)  # per-example (H, W, C)
BATCH = 2
SHARINGS = ["element", "channel", "shared", (0,), (0, 2)]

# --------------------------------------------------------------------------------------------
# Independent NumPy references (float64), derivatives by hand.


def np_relu(u):
    return np.maximum(u, 0.0)


def np_sigmoid(u):
    return 1.0 / (1.0 + np.exp(-u))


def apl_ref(x, a, b):
    """Value and partials (per element, before any reduction) of relu(x) + sum a relu(b - x)."""
    xs = x[..., None]
    hinge = np_relu(b - xs)
    on = (b - xs > 0).astype(float)
    f = np_relu(x) + np.sum(a * hinge, axis=-1)
    df_dx = (x > 0).astype(float) - np.sum(a * on, axis=-1)
    df_da = hinge
    df_db = a * on
    return f, df_dx, df_da, df_db


def pau_ref(x, p, q):
    m, n = p.shape[-1] - 1, q.shape[-1]
    xs = x[..., None]
    jp = np.arange(m + 1)
    kq = np.arange(1, n + 1)
    P = np.sum(p * xs**jp, axis=-1)
    Q = 1.0 + np.sum(np.abs(q) * np.abs(xs) ** kq, axis=-1)
    dP = np.sum(p[..., 1:] * jp[1:] * xs ** (jp[1:] - 1), axis=-1)
    dQ = np.sum(np.abs(q) * kq * np.abs(xs) ** (kq - 1), axis=-1) * np.sign(x)
    df_dx = dP / Q - P * dQ / Q**2
    df_dp = xs**jp / Q[..., None]
    df_dq = -(P / Q**2)[..., None] * np.sign(q) * np.abs(xs) ** kq
    return P / Q, df_dx, df_dp, df_dq


def swish_ref(x, beta):
    s = np_sigmoid(beta * x)
    f = x * s
    df_dx = s + beta * x * s * (1 - s)
    df_dbeta = x * x * s * (1 - s)
    return f, df_dx, df_dbeta


def reduce_to(g, shape):
    """Sums a per-element gradient over the axes a parameter of ``shape`` is shared along."""
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def _x(rng, dtype=np.float64):
    # Away from 0 so no kink (APL at b_s is measure-zero anyway, PAU's |x| at 0) is hit.
    x = rng.normal(0.0, 1.5, (BATCH, *FEATURES))
    x = np.where(np.abs(x) < 1e-3, 0.5, x)
    return x.astype(dtype)


def _check_grads(fn, x, params, refs, w):
    """Compares fn and jax.grad of sum(w * fn(x, *params)) with the NumPy partials, reduced."""
    f_ref, dx_ref, *dp_ref = refs

    @jax.jit  # one compile instead of many eager op dispatches
    def value_and_grads(x, *p):
        argnums = tuple(range(1 + len(p)))
        return fn(x, *p), jax.grad(lambda x, *p: jnp.sum(w * fn(x, *p)), argnums)(x, *p)

    f, grads = value_and_grads(jnp.asarray(x), *(jnp.asarray(p) for p in params))
    np.testing.assert_allclose(f, f_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads[0], w * dx_ref, rtol=1e-9, atol=1e-12)
    for g, ref, p in zip(grads[1:], dp_ref, params, strict=True):
        wp = w[..., None] if ref.ndim > w.ndim else w
        np.testing.assert_allclose(g, reduce_to(wp * ref, p.shape), rtol=1e-9, atol=1e-10)


# --------------------------------------------------------------------------------------------
# Values and gradients, every sharing mode.


@pytest.mark.parametrize("sharing", SHARINGS)
def test_apl_values_and_grads(sharing, rng, x64):
    ps = param_shape(FEATURES, sharing)
    x = _x(rng)
    a = rng.normal(0.0, 0.7, ps + (3,))
    b = rng.normal(0.0, 1.0, ps + (3,))
    w = rng.normal(size=x.shape)
    _check_grads(ea.apl, x, (a, b), apl_ref(x, a, b), w)


@pytest.mark.parametrize("sharing", SHARINGS)
def test_pau_values_and_grads(sharing, rng, x64):
    ps = param_shape(FEATURES, sharing)
    x = _x(rng)
    p = rng.normal(0.0, 0.5, ps + (6,))
    q = rng.normal(0.0, 0.5, ps + (4,))
    w = rng.normal(size=x.shape)
    _check_grads(ea.pau, x, (p, q), pau_ref(x, p, q), w)


@pytest.mark.parametrize("sharing", SHARINGS)
def test_swish_values_and_grads(sharing, rng, x64):
    ps = param_shape(FEATURES, sharing)
    x = _x(rng)
    beta = rng.uniform(0.2, 2.0, ps)
    w = rng.normal(size=x.shape)
    _check_grads(ea.swish, x, (beta,), swish_ref(x, beta), w)


def test_special_cases(rng, x64):
    x = _x(rng)
    # APL with all a = 0 is ReLU; swish with beta = 1 is SiLU.
    np.testing.assert_allclose(ea.apl(x, np.zeros(2), np.ones(2)), np_relu(x))
    np.testing.assert_allclose(ea.swish(x, np.asarray(1.0)), jax.nn.silu(x), rtol=1e-12)
    # PAU with p = (0, 1) and q = 0 is the identity.
    np.testing.assert_allclose(ea.pau(x, np.array([0.0, 1.0]), np.zeros(3)), x)


REFS = {ea.apl: apl_ref, ea.pau: pau_ref, ea.swish: swish_ref}


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize(
    "fn,params",
    [
        (ea.apl, (np.array([0.3, -0.2]), np.array([-0.5, 0.5]))),
        (ea.pau, (np.array(ea.PAU_LEAKY_RELU_P), np.array(ea.PAU_LEAKY_RELU_Q))),
        (ea.swish, (np.array(1.3),)),
    ],
)
def test_low_precision_keeps_dtype(fn, params, dtype, rng):
    x = _x(rng, np.float32)
    xd, ps = jnp.asarray(x, dtype), [jnp.asarray(p, jnp.float32) for p in params]
    out = fn(xd, *ps)
    assert out.dtype == dtype and out.shape == x.shape
    # The float64 NumPy formula on the very same (rounded) inputs.
    x64 = np.asarray(xd.astype(jnp.float32), np.float64)
    ref = REFS[fn](x64, *(np.asarray(p, np.float64) for p in ps))[0]
    # Computed in float32 (for bfloat16 too) and rounded once to the output dtype: within half
    # an ulp, 2^-8 relative for bfloat16's 8 significant bits, 2^-24 for float32; plus the
    # float32 evaluation's own error, a few float32 ulps of the largest term.
    half_ulp = 2.0**-8 if dtype == jnp.bfloat16 else 2.0**-24
    atol = 8 * 2.0**-24 * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(np.asarray(out, np.float64), ref, rtol=half_ulp, atol=atol)


# --------------------------------------------------------------------------------------------
# PAU's safe denominator.


def test_pau_denominator_never_below_one(rng):
    x = np.concatenate([np.linspace(-1e3, 1e3, 20001), [0.0, -0.0, 1e-30, -1e-30]])
    qs = [rng.normal(0.0, s, 4) for s in (0.1, 1.0, 10.0, 1e3)]
    qs += [
        np.zeros(4),
        -np.ones(4) * 1e4,  # all negative: 1 + sum q_k x^k would cross zero
        np.array([-1.0, 1.0, -1.0, 1.0]),  # alternating: q(x) = 0 at x = 1 for the raw sum
        np.array([-2.0, 1.0, 0.0, 0.0]),  # 1 - 2x + x^2 = (1 - x)^2 = 0 at x = 1 without abs
        np.array([-1e-8, 0.0, 0.0, -1e-8]),
    ]

    @jax.jit
    def run(x, p, q):
        grads = jax.grad(lambda x, p, q: jnp.sum(ea.pau(x, p, q)), argnums=(0, 1, 2))(x, p, q)
        return ea.pau_denominator(x, q), ea.pau(x, p, q), grads

    xs = jnp.asarray(x, jnp.float32)
    for q in qs:
        p = jnp.asarray(rng.normal(size=6), jnp.float32)
        den, out, grads = run(xs, p, jnp.asarray(q, jnp.float32))
        assert np.asarray(den).min() >= 1.0, q
        assert np.all(np.isfinite(out)), q
        for g in grads:
            assert np.all(np.isfinite(g)), q


def test_pau_zero_coefficient_still_learns():
    # d|q|/dq is +1 at 0 in JAX, so a zero denominator coefficient is not stuck: with P(x) = x
    # and Q = 1 at q = 0, d/dq_k sum_x P/Q = -sum_x P(x) |x|^k = -sum_x x^(k+1) (x > 0).
    x = np.linspace(0.5, 2, 9)
    g = jax.grad(lambda q: jnp.sum(ea.pau(jnp.asarray(x, jnp.float32), jnp.array([0.0, 1.0]), q)))(
        jnp.zeros(2)
    )
    np.testing.assert_allclose(g, [-np.sum(x**2), -np.sum(x**3)], rtol=1e-6)


def test_pau_default_init_is_the_published_leaky_relu_fit():
    p, q = ea.pau_default_init((5, 4))
    np.testing.assert_array_equal(p, ea.PAU_LEAKY_RELU_P)
    np.testing.assert_array_equal(q, ea.PAU_LEAKY_RELU_Q)
    x = np.linspace(-3, 3, 1001)
    f, *_ = pau_ref(x, p, q)
    target = np.where(x > 0, x, 0.01 * x)
    assert np.max(np.abs(f - target)) < 0.035


# --------------------------------------------------------------------------------------------
# Modules.


@pytest.mark.parametrize("sharing", SHARINGS)
def test_modules_match_functions_and_describe(sharing, rng):
    ps = param_shape(FEATURES, sharing)
    x = jnp.asarray(_x(rng, np.float32))
    apl_m = ea.APL(FEATURES, hinges=3, sharing=sharing)
    pau_m = ea.PAU(FEATURES, sharing=sharing)
    swish_m = ea.Swish(FEATURES, sharing=sharing)
    assert apl_m.a.shape == apl_m.b.shape == ps + (3,)
    assert pau_m.p.shape == ps + (6,) and pau_m.q.shape == ps + (4,)
    assert swish_m.beta.shape == ps
    for mod, fn, names in [
        (apl_m, ea.apl, ("a", "b")),
        (pau_m, ea.pau, ("p", "q")),
        (swish_m, ea.swish, ("beta",)),
    ]:
        for name in names:
            var = getattr(mod, name)
            assert isinstance(var, cpaf_jax.ActivationParam)
            var[...] = jnp.asarray(rng.normal(0.0, 0.5, var.shape), jnp.float32)
        vals = [getattr(mod, n)[...] for n in names]
        np.testing.assert_allclose(mod(x), fn(x, *vals), rtol=1e-6)
        d = mod.describe()
        assert d["family"] == mod.family
        assert d["features_shape"] == FEATURES
        assert d["sharing"] == cpaf_jax.ops.sharing.sharing_name(sharing)
    assert apl_m.describe()["hinges"] == 3
    assert apl_m.describe()["param_shape"] == ps + (3,)
    assert pau_m.describe()["degrees"] == (5, 4)
    assert pau_m.describe()["param_shape"] == {"p": ps + (6,), "q": ps + (4,)}
    assert swish_m.describe()["param_shape"] == ps


def test_module_defaults(rng):
    x = jnp.asarray(_x(rng, np.float32))
    apl_m = ea.APL(FEATURES)
    np.testing.assert_allclose(apl_m.a[...], 0.0)
    np.testing.assert_allclose(apl_m.b[0, 0, 0], [-1.0, 1.0])
    np.testing.assert_allclose(apl_m(x), jax.nn.relu(x))  # a = 0: starts as ReLU
    pau_m = ea.PAU()
    assert pau_m.p.shape == (6,) and pau_m.describe()["sharing"] == "shared"
    np.testing.assert_allclose(pau_m.p[...], ea.PAU_LEAKY_RELU_P, rtol=1e-7)
    swish_m = ea.Swish(FEATURES)
    assert swish_m.beta.shape == (3,)
    np.testing.assert_allclose(swish_m(x), jax.nn.silu(x), rtol=1e-6)
    a_init, b_init = ea.apl_paper_initializers()
    paper = ea.APL(FEATURES, hinges=5, a_init=a_init, b_init=b_init, rngs=nnx.Rngs(0))
    assert np.all(np.abs(paper.a[...]) <= 0.2) and 0.3 < np.std(paper.b[...]) < 0.7


def test_modules_train_with_nnx_grad(rng):
    """nnx.grad through each module equals the closed-form gradient of mean(f(x)^2)."""
    x = jnp.asarray(_x(rng, np.float32))
    x64 = np.asarray(x, np.float64)
    modules = {
        "apl": (ea.APL(FEATURES, a_init=0.1), ("a", "b"), apl_ref),
        "pau": (ea.PAU(FEATURES), ("p", "q"), pau_ref),
        "swish": (ea.Swish(FEATURES), ("beta",), swish_ref),
    }
    for name, (mod, names, ref) in modules.items():
        grads = nnx.jit(nnx.grad(lambda m: jnp.mean(m(x) ** 2)))(mod)
        params = [np.asarray(getattr(mod, n)[...], np.float64) for n in names]
        f, _, *partials = ref(x64, *params)
        w = 2 * f / f.size  # d mean(f^2) / df
        for n, p, d in zip(names, params, partials, strict=True):
            wp = w[..., None] if d.ndim > w.ndim else w
            want = reduce_to(wp * d, p.shape)
            got = np.asarray(getattr(grads, n)[...], np.float64)
            scale = max(1e-3, float(np.abs(want).max()))
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale, err_msg=name)


def test_registry_builds_all_three():
    for name in ("apl", "pau", "swish"):
        assert name in cpaf_jax.known_activations()
        assert cpaf_jax.is_parametric(name)
    apl_m = cpaf_jax.activation("apl", FEATURES, sharing="channel", hinges=4)
    assert isinstance(apl_m, ea.APL) and apl_m.a.shape == (3, 4)
    pau_m = cpaf_jax.activation("pau", FEATURES, sharing="shared")
    assert isinstance(pau_m, ea.PAU) and pau_m.q.shape == (4,)
    swish_m = cpaf_jax.activation("swish", FEATURES)  # the record's default: per channel
    assert isinstance(swish_m, ea.Swish) and swish_m.beta.shape == FEATURES[-1:]
    y = jnp.ones((BATCH, *FEATURES))
    for mod in (apl_m, pau_m, swish_m):
        assert mod(y).shape == y.shape


# --------------------------------------------------------------------------------------------
# Bad inputs.


def test_bad_inputs_raise():
    x = jnp.ones((BATCH, *FEATURES))
    with pytest.raises(ValueError, match="same shape"):
        ea.apl(x, jnp.ones((3, 2)), jnp.ones((3, 3)))
    with pytest.raises(ValueError, match="broadcast"):
        ea.apl(x, jnp.ones((4, 2)), jnp.ones((4, 2)))  # 4 channels against 3
    with pytest.raises(ValueError, match="coefficient axis"):
        ea.apl(x, jnp.ones(()), jnp.ones(()))
    with pytest.raises(ValueError, match="more feature axes"):
        ea.apl(jnp.ones((3,)), jnp.ones((2, 3, 2)), jnp.ones((2, 3, 2)))
    with pytest.raises(ValueError, match="leading shape"):
        ea.pau(x, jnp.ones((3, 6)), jnp.ones((4,)))
    with pytest.raises(ValueError, match="broadcast"):
        ea.pau(x, jnp.ones((5, 6)), jnp.ones((5, 4)))
    with pytest.raises(ValueError, match="empty"):
        ea.pau(x, jnp.ones((6,)), jnp.ones((0,)))
    with pytest.raises(ValueError, match="broadcast"):
        ea.swish(x, jnp.ones((2,)))
    with pytest.raises(TypeError, match="floating"):
        ea.swish(jnp.ones((3,), jnp.int32), jnp.ones(()))
    with pytest.raises(ValueError, match="built for features"):
        ea.APL(FEATURES)(jnp.ones((BATCH, 4, 5, 2)))
    with pytest.raises(ValueError, match="built for features"):
        ea.PAU(FEATURES, sharing="channel")(jnp.ones((BATCH, 3)))
    with pytest.raises(ValueError, match="built for features"):
        ea.Swish(FEATURES)(jnp.ones((BATCH, 5, 4, 3)))
    with pytest.raises(ValueError, match="hinges"):
        ea.APL(FEATURES, hinges=0)
    with pytest.raises(ValueError, match="degrees"):
        ea.PAU(degrees=(5, 0))
    with pytest.raises(ValueError, match="does not broadcast"):
        ea.APL(FEATURES, a_init=[1.0, 2.0, 3.0])  # 3 values for 2 hinges
    with pytest.raises(ValueError, match="features_shape"):
        ea.Swish(None, sharing="channel")
    with pytest.raises(ValueError, match="unknown sharing"):
        ea.PAU(FEATURES, sharing="layer")


# --------------------------------------------------------------------------------------------
# Linen.


def test_linen_modules_match(rng):
    from cpaf_jax.activations import linen as extra_linen

    x = jnp.asarray(_x(rng, np.float32))
    for cls, kw, fn, names in [
        (extra_linen.APL, {"sharing": "channel"}, ea.apl, ("a", "b")),
        (extra_linen.PAU, {}, ea.pau, ("p", "q")),
        (extra_linen.Swish, {"sharing": "element"}, ea.swish, ("beta",)),
    ]:
        mod = cls(**kw)
        variables = mod.init(jax.random.key(0), x)
        params = variables["params"]
        np.testing.assert_allclose(mod.apply(variables, x), fn(x, *(params[n] for n in names)))
    v = extra_linen.APL(sharing="channel").init(jax.random.key(0), x)["params"]
    assert v["a"].shape == (3, 2)
    v = extra_linen.Swish(sharing="element").init(jax.random.key(0), x)["params"]
    assert v["beta"].shape == FEATURES
    assert extra_linen.activation("pau").option("degrees") == (5, 4)
