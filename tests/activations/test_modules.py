"""Tests of the NNX and Linen modules, the baselines and the activation registry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cpaf_jax
import cpaf_jax.activations.linen as cl
from cpaf_jax import CPAF, PReLU

H, W, C = 3, 4, 5
FEATURES = (H, W, C)
X_SHAPE = (2,) + FEATURES


# ---------------------------------------------------------------------------------------------
# Small NumPy float64 references (the full one, with derivatives, is in test_functional.py).


def np_cpaf(y, a, b, base):
    y, a, b = (np.asarray(v, np.float64) for v in (y, a, b))
    u = y[..., None] - b
    if base == "sigmoid":  # Eq. 2
        terms = a / (1 + np.exp(-u)) - a / 2
    elif base == "relu":  # Eq. 3
        terms = np.where(u > 0, a * u - a / 2, -a / 2)
    elif base == "tanh":
        terms = a * np.tanh(u)
    else:
        raise AssertionError(base)
    return terms.sum(-1)


def np_cpaf_partials(y, a, b, base):
    """Per element and term: (dz/da_i, dz/db_i) of ``np_cpaf``, by hand (Eq. 2, 3)."""
    y, a, b = (np.asarray(v, np.float64) for v in (y, a, b))
    u = y[..., None] - b
    if base == "sigmoid":
        s = 1 / (1 + np.exp(-u))
        return s - 0.5, -a * s * (1 - s)
    if base == "relu":
        return np.where(u > 0, u, 0.0) - 0.5, -a * (u > 0)
    raise AssertionError(base)


def reduce_to(g, shape):
    """Sums per-element values over the axes a parameter of ``shape`` is broadcast along."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def np_prelu(x, alpha):
    x = np.asarray(x, np.float64)
    return np.where(x > 0, x, np.asarray(alpha, np.float64) * x)


def np_elu(x, alpha=1.0):
    x = np.asarray(x, np.float64)
    return np.where(x > 0, x, alpha * (np.exp(x) - 1))


def np_sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


def assert_close(actual, expected, rtol=2e-5):
    actual = np.asarray(jnp.asarray(actual, jnp.float32), np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    atol = rtol * max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


@pytest.fixture
def x(rng):
    return jnp.asarray(rng.normal(size=X_SHAPE) * 3.0, jnp.float32)


# Parameter shape (before the term axis) per sharing, for features (H, W, C).
SHARING_PARAM_SHAPES = [
    ("element", FEATURES),
    ("channel", (C,)),
    ("shared", ()),
    ((0,), (H, 1, 1)),
    ((1,), (W, 1)),
    ((0, 2), (H, 1, C)),
    ((-1,), (C,)),
]
SHARING_IDS = ["element", "channel", "shared", "axes0", "axes1", "axes02", "axes-1"]


# ---------------------------------------------------------------------------------------------
# NNX CPAF.


@pytest.mark.parametrize(
    "base,a_expected,b_expected",
    [("sigmoid", (4.0, 4.0), (2.0, -2.0)), ("relu", (1.0, 1.0), (1.0, -1.0))],
)
@pytest.mark.parametrize("sharing", ["element", "channel", "shared"])
def test_default_init_is_table1(base, a_expected, b_expected, sharing):
    m = CPAF(FEATURES, k=2, base=base, sharing=sharing)
    a, b = np.asarray(m.a[...]), np.asarray(m.b[...])
    assert a.dtype == np.float32 and a.shape[-1] == 2
    np.testing.assert_array_equal(a, np.broadcast_to(a_expected, a.shape))
    np.testing.assert_array_equal(b, np.broadcast_to(b_expected, b.shape))
    assert cpaf_jax.TABLE1[base] == (a_expected, b_expected)


@pytest.mark.parametrize(
    "base,k,a_expected,b_expected",
    [
        # For k != 2 each a_i is Table 1's times 2 / k, so sum_i a_i stays Table 1's (issue 17).
        ("sigmoid", 1, [8.0], [0.0]),
        ("sigmoid", 3, [8 / 3] * 3, [2.0, 0.0, -2.0]),
        ("relu", 4, [0.5] * 4, [1.0, 1 / 3, -1 / 3, -1.0]),
        ("tanh", 2, [1.0, 1.0], [1.0, -1.0]),
    ],
)
def test_default_init_other_k(base, k, a_expected, b_expected):
    m = CPAF(FEATURES, k=k, base=base, sharing="channel")
    assert m.a.shape == (C, k)
    np.testing.assert_allclose(np.asarray(m.a[...]), np.broadcast_to(a_expected, (C, k)))
    np.testing.assert_allclose(np.asarray(m.b[...]), np.broadcast_to(b_expected, (C, k)), rtol=1e-6)


@pytest.mark.parametrize("sharing,p_shape", SHARING_PARAM_SHAPES, ids=SHARING_IDS)
def test_param_shapes_per_sharing(x, sharing, p_shape):
    m = CPAF(FEATURES, k=3, base="relu", sharing=sharing)
    assert m.a.shape == p_shape + (3,) and m.b.shape == p_shape + (3,)
    assert isinstance(m.a, cpaf_jax.ActivationParam) and isinstance(m.a, nnx.Param)
    assert cpaf_jax.param_shape(FEATURES, sharing) == p_shape
    z = m(x)
    assert z.shape == X_SHAPE and z.dtype == x.dtype
    assert_close(z, np_cpaf(x, m.a[...], m.b[...], "relu"))
    assert m.describe()["param_shape"] == p_shape + (3,)


def test_dense_features_as_int(rng):
    m = CPAF(30, k=2, base="sigmoid")
    assert m.a.shape == (30, 2)
    y = jnp.asarray(rng.normal(size=(4, 30)), jnp.float32)
    assert_close(m(y), np_cpaf(y, m.a[...], m.b[...], "sigmoid"))


def test_shared_needs_no_features(x):
    m = CPAF(k=2, base="sigmoid", sharing="shared")
    assert m.a.shape == (2,)
    assert_close(m(x), np_cpaf(x, [4.0, 4.0], [2.0, -2.0], "sigmoid"))


def test_init_constant_sequence_array():
    a_arr = np.arange(C * 3, dtype=np.float32).reshape(C, 3) / 10
    m = CPAF(FEATURES, k=3, sharing="channel", a_init=a_arr, b_init=[0.5, -0.5, 0.25])
    np.testing.assert_array_equal(np.asarray(m.a[...]), a_arr)
    np.testing.assert_array_equal(np.asarray(m.b[...]), np.broadcast_to([0.5, -0.5, 0.25], (C, 3)))
    m = CPAF(FEATURES, k=2, sharing="element", a_init=1.5, b_init=0)
    np.testing.assert_array_equal(np.asarray(m.a[...]), np.full(FEATURES + (2,), 1.5))
    np.testing.assert_array_equal(np.asarray(m.b[...]), np.zeros(FEATURES + (2,)))
    assert m.b.dtype == jnp.float32
    # jax array, and a different parameter dtype.
    m = CPAF(
        FEATURES, k=2, sharing="shared", a_init=jnp.asarray([2.0, 3.0]), param_dtype=jnp.bfloat16
    )
    assert m.a.dtype == jnp.bfloat16 and m.b.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(m.a[...], np.float32), [2.0, 3.0])


def test_init_callable_uses_rngs():
    init = nnx.initializers.normal(stddev=0.5)
    m = CPAF(FEATURES, k=2, sharing="channel", a_init=init, b_init=init, rngs=nnx.Rngs(7))
    rngs = nnx.Rngs(7)
    key_a, key_b = rngs.params(), rngs.params()
    np.testing.assert_array_equal(np.asarray(m.a[...]), np.asarray(init(key_a, (C, 2))))
    np.testing.assert_array_equal(np.asarray(m.b[...]), np.asarray(init(key_b, (C, 2))))
    assert not np.array_equal(np.asarray(m.a[...]), np.asarray(m.b[...]))
    # Only a random: b keeps Table 1.
    m = CPAF(FEATURES, k=2, a_init=init, rngs=nnx.Rngs(0))
    assert m.a.shape == FEATURES + (2,) and np.std(np.asarray(m.a[...])) > 0.1
    np.testing.assert_array_equal(np.asarray(m.b[..., 1]), -2.0)


def test_init_errors():
    with pytest.raises(ValueError, match="needs rngs"):
        CPAF(FEATURES, k=2, a_init=nnx.initializers.normal())
    with pytest.raises(ValueError, match="does not broadcast to the parameter shape"):
        CPAF(FEATURES, k=2, sharing="channel", b_init=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="returned shape"):
        CPAF(FEATURES, k=2, a_init=lambda key, shape, dtype: jnp.zeros((1,)), rngs=nnx.Rngs(0))


@pytest.mark.parametrize("impl", cpaf_jax.IMPLEMENTATIONS)
@pytest.mark.parametrize("base", ["sigmoid", "relu"])
def test_module_equals_functional(x, base, impl):
    m = CPAF(
        FEATURES,
        k=3,
        base=base,
        sharing="channel",
        implementation=impl,
        a_init=nnx.initializers.normal(1.0),
        b_init=nnx.initializers.normal(1.0),
        rngs=nnx.Rngs(1),
    )
    want = cpaf_jax.cpaf(x, m.a[...], m.b[...], base, implementation=impl)
    np.testing.assert_array_equal(np.asarray(m(x)), np.asarray(want))
    jitted = nnx.jit(lambda m, x: m(x))(m, x)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(want), rtol=1e-6, atol=1e-6)
    assert_close(want, np_cpaf(x, m.a[...], m.b[...], base))


@pytest.mark.parametrize("sharing", ["element", "channel"])
@pytest.mark.parametrize("base", ["sigmoid", "relu"])
def test_nnx_grad_reaches_a_and_b(rng, x, base, sharing):
    m = CPAF(FEATURES, k=2, base=base, sharing=sharing)
    g = jnp.asarray(rng.normal(size=X_SHAPE), jnp.float32)

    def loss(model):
        return jnp.sum(g * model(x))

    grads = nnx.grad(loss)(m)
    ga, gb = grads["a"][...], grads["b"][...]
    assert ga.shape == m.a.shape and gb.shape == m.b.shape
    # The closed form: dL/da_i = sum over what shares a_i of g * dz/da_i (and so for b).
    da, db = np_cpaf_partials(x, m.a[...], m.b[...], base)
    gw = np.asarray(g, np.float64)[..., None]
    assert_close(ga, reduce_to(gw * da, m.a.shape), rtol=2e-5)
    assert_close(gb, reduce_to(gw * db, m.b.shape), rtol=2e-5)

    # One SGD step on the activation parameters alone lowers the loss.
    before = float(loss(m))
    params = nnx.state(m, cpaf_jax.ActivationParam)
    nnx.update(m, jax.tree.map(lambda p, d: p - 1e-3 * d, params, grads))
    assert float(loss(m)) < before


def test_bfloat16_input_keeps_dtype(x):
    m = CPAF(FEATURES, k=2, base="sigmoid", sharing="channel")
    xb = x.astype(jnp.bfloat16)
    z = m(xb)
    assert z.dtype == jnp.bfloat16
    # Against float64 on the same rounded input: computed in float32, rounded once to
    # bfloat16, so within half a bfloat16 ulp (2^-8 relative) plus float32's own error.
    ref = np_cpaf(np.asarray(xb.astype(jnp.float32)), m.a[...], m.b[...], "sigmoid")
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(
        np.asarray(z, np.float64), ref, rtol=2.0**-8, atol=8 * 2.0**-24 * scale
    )


def test_float64_module(x64, rng):
    """Under jax.enable_x64 (the x64 fixture), float64 parameters and inputs stay float64."""
    m = CPAF(FEATURES, k=2, base="sigmoid", sharing="channel", param_dtype=jnp.float64)
    assert m.a.dtype == jnp.float64
    y = jnp.asarray(rng.normal(size=X_SHAPE) * 3.0, jnp.float64)
    z = m(y)
    assert z.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(z), np_cpaf(y, m.a[...], m.b[...], "sigmoid"), rtol=1e-12)
    grads = nnx.grad(lambda mod: jnp.sum(mod(y)))(m)
    assert grads["a"][...].dtype == jnp.float64 and grads["b"][...].dtype == jnp.float64


def test_describe_and_family():
    m = CPAF(FEATURES, k=3, base="relu", sharing=(0, 2))
    assert m.family == "cpaf_relu"
    assert m.describe() == {
        "family": "cpaf_relu",
        "k": 3,
        "sharing": "axes(0,2)",
        "features_shape": FEATURES,
        "param_shape": (H, 1, C, 3),
    }


# ---------------------------------------------------------------------------------------------
# Baselines: PReLU, ELU.


@pytest.mark.parametrize(
    "sharing,p_shape", [("channel", (C,)), ("element", FEATURES), ("shared", ())]
)
def test_prelu(rng, x, sharing, p_shape):
    m = PReLU(FEATURES, sharing=sharing)
    assert m.alpha.shape == p_shape and isinstance(m.alpha, cpaf_jax.ActivationParam)
    np.testing.assert_array_equal(np.asarray(m.alpha[...]), 0.25)
    assert_close(m(x), np_prelu(x, 0.25))
    assert_close(cpaf_jax.prelu(x, jnp.asarray(0.1)), np_prelu(x, 0.1))

    # dL/dalpha = sum over the shared axes of g * x where x <= 0.
    g = rng.normal(size=X_SHAPE)
    grads = nnx.grad(lambda mod: jnp.sum(jnp.asarray(g, jnp.float32) * mod(x)))(m)
    per_elem = np.where(np.asarray(x) > 0, 0.0, g * np.asarray(x, np.float64))
    want = per_elem.sum(0)
    if sharing == "channel":
        want = want.sum((0, 1))
    elif sharing == "shared":
        want = want.sum()
    assert_close(grads["alpha"][...], want, rtol=1e-5)


def test_prelu_custom_alpha(x):
    m = PReLU(sharing="shared", alpha_init=0.1)
    assert m.alpha.shape == ()
    assert_close(m(x), np_prelu(x, 0.1))


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_elu(x, alpha):
    m = cpaf_jax.ELU(alpha) if alpha != 1.0 else cpaf_jax.ELU()
    assert_close(m(x), np_elu(x, alpha))
    assert m.family == "elu"


# ---------------------------------------------------------------------------------------------
# Registry.

REGISTRY_EXPECTED = {
    "sigmoid": (False, np_sigmoid),
    "tanh": (False, np.tanh),
    "relu": (False, lambda x: np.maximum(x, 0)),
    "elu": (False, np_elu),
    "prelu": (True, lambda x: np_prelu(x, 0.25)),
    "cpaf_sigmoid": (True, lambda x: np_cpaf(x, [4.0, 4.0], [2.0, -2.0], "sigmoid")),
    "cpaf_relu": (True, lambda x: np_cpaf(x, [1.0, 1.0], [1.0, -1.0], "relu")),
}


@pytest.mark.parametrize("name", list(REGISTRY_EXPECTED))
@pytest.mark.parametrize("sharing", ["element", "channel"])
def test_registry_builds_expected_function(x, name, sharing):
    parametric, fn = REGISTRY_EXPECTED[name]
    assert name in cpaf_jax.known_activations()
    assert cpaf_jax.is_parametric(name) is parametric
    m = cpaf_jax.activation(name, FEATURES, sharing=sharing)
    z = m(x)
    assert z.shape == X_SHAPE and z.dtype == jnp.float32
    assert_close(z, fn(np.asarray(x, np.float64)))
    n_params = sum(v.size for v in jax.tree.leaves(nnx.state(m, cpaf_jax.ActivationParam)))
    assert (n_params > 0) is parametric
    if parametric:
        per = {"element": H * W * C, "channel": C}[sharing]
        assert n_params == per * (4 if name.startswith("cpaf") else 1)


def test_registry_passes_kwargs(x):
    m = cpaf_jax.activation("cpaf_relu", FEATURES, sharing="channel", k=3, a_init=2.0)
    assert m.a.shape == (C, 3)
    np.testing.assert_array_equal(np.asarray(m.a[...]), 2.0)
    m = cpaf_jax.activation("elu", FEATURES, alpha=0.5)
    assert_close(m(x), np_elu(x, 0.5))


def test_registry_unknown_name_lists_known():
    with pytest.raises(ValueError, match=r"unknown activation 'no_such_act'.*cpaf_relu.*prelu"):
        cpaf_jax.activation("no_such_act", FEATURES)
    with pytest.raises(ValueError, match="unknown activation 'no_such_act'"):
        cpaf_jax.is_parametric("no_such_act")
    with pytest.raises(ValueError, match="already registered"):
        cpaf_jax.register_activation(cpaf_jax.family("relu"))
    with pytest.raises(TypeError, match="ActivationFamily record"):
        cpaf_jax.register_activation("my_relu")


def test_count_activation_params():
    class Small(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(1, 2, (3, 3), padding="SAME", rngs=rngs)  # 20 weights: not counted
            self.act1 = CPAF((4, 4, 2), k=3, base="relu", sharing="channel")  # a, b: (2, 3)
            self.dense = nnx.Linear(32, 6, rngs=rngs)
            self.act2 = CPAF(6, k=2, base="sigmoid")  # a, b: (6, 2)
            self.act3 = PReLU((6,), sharing="element")  # alpha: (6,)
            self.act4 = cpaf_jax.ReLU()

        def __call__(self, x):
            h = self.act1(self.conv(x)).reshape(x.shape[0], -1)
            return self.act4(self.act3(self.act2(self.dense(h))))

    model = Small(nnx.Rngs(0))
    counts = cpaf_jax.count_activation_params(model)
    # scalars: 2*(2*3) + 2*(6*2) + 6 = 42; pairs: 2 + 6 = 8; terms: 6 + 12 = 18; layers: 3.
    assert counts == {"scalars": 42, "cpaf_pairs": 8, "cpaf_terms": 18, "layers": 3}
    # The same count from the model's state, independently of the function.
    n = sum(v.size for v in jax.tree.leaves(nnx.state(model, cpaf_jax.ActivationParam)))
    assert n == 42
    # Parameter-free activations alone count nothing.
    assert cpaf_jax.count_activation_params(cpaf_jax.ReLU()) == {
        "scalars": 0,
        "cpaf_pairs": 0,
        "cpaf_terms": 0,
        "layers": 0,
    }


# ---------------------------------------------------------------------------------------------
# Bad inputs.


def test_feature_shape_mismatch_cpaf(x):
    m = CPAF((H, W, C + 1), k=2)
    with pytest.raises(ValueError, match=r"built for features of shape \(3, 4, 6\)"):
        m(x)
    with pytest.raises(ValueError, match=r"built for features of shape \(3, 4, 6\)"):
        nnx.jit(lambda m, x: m(x))(m, x)
    with pytest.raises(ValueError, match="built for features of shape"):
        jax.eval_shape(lambda x: m(x), jax.ShapeDtypeStruct(X_SHAPE, jnp.float32))
    # Sharing per channel still checks the whole feature shape.
    m = CPAF((W, C), k=2, sharing="channel")
    with pytest.raises(ValueError, match="built for features of shape"):
        m(jnp.zeros((2, H, W + 1, C)))


def test_feature_shape_mismatch_prelu(x):
    m = PReLU((H, W, C + 1))
    with pytest.raises(ValueError, match=r"PReLU was built for features of shape \(3, 4, 6\)"):
        m(x)
    with pytest.raises(ValueError, match="PReLU was built for features of shape"):
        nnx.jit(lambda m, x: m(x))(m, x)


@pytest.mark.parametrize("k", [0, -1, 2.0])
def test_cpaf_bad_k(k):
    with pytest.raises(ValueError, match="k >= 1"):
        CPAF(FEATURES, k=k)
    with pytest.raises(ValueError, match="k >= 1"):
        cl.CPAF(k=k).init(jax.random.key(0), jnp.zeros(X_SHAPE))


@pytest.mark.parametrize("features", [0, -3, (H, 0, C)])
def test_bad_features_shape(features):
    # An int is checked like a tuple (it used to slip through to an obscure broadcast error).
    with pytest.raises(ValueError, match="features_shape must have positive sizes"):
        CPAF(features, k=2)
    with pytest.raises(ValueError, match="features_shape must have positive sizes"):
        PReLU(features)


def test_module_bad_sharing_and_base():
    with pytest.raises(ValueError, match="unknown sharing 'pixel'"):
        CPAF(FEATURES, sharing="pixel")
    with pytest.raises(ValueError, match="unknown sharing 'pixel'"):
        PReLU(FEATURES, sharing="pixel")
    with pytest.raises(ValueError, match="needs the feature shape"):
        CPAF(k=2, sharing="element")
    with pytest.raises(ValueError, match="unknown CPAF base 'no_such_act'"):
        CPAF(FEATURES, base="no_such_act")
    with pytest.raises(ValueError, match="unknown sharing 'pixel'"):
        cl.CPAF(sharing="pixel").init(jax.random.key(0), jnp.zeros(X_SHAPE))
    with pytest.raises(ValueError, match="unknown implementation 'fast'"):
        CPAF(FEATURES, implementation="fast")(jnp.zeros(X_SHAPE))


def test_linen_unknown_activation_lists_known():
    with pytest.raises(ValueError, match=r"unknown activation 'no_such_act'.*cpaf_sigmoid.*prelu"):
        cl.activation("no_such_act")


# ---------------------------------------------------------------------------------------------
# Linen modules.


@pytest.mark.parametrize("sharing,p_shape", SHARING_PARAM_SHAPES[:5], ids=SHARING_IDS[:5])
@pytest.mark.parametrize("base", ["sigmoid", "relu"])
def test_linen_cpaf_matches_nnx(x, base, sharing, p_shape):
    lin = cl.CPAF(k=2, base=base, sharing=sharing)
    variables = lin.init(jax.random.key(0), x)
    params = variables["params"]
    assert set(params) == {"a", "b"}
    nn_mod = CPAF(FEATURES, k=2, base=base, sharing=sharing)
    for name in ("a", "b"):
        assert params[name].shape == p_shape + (2,)
        assert params[name].dtype == jnp.float32
        np.testing.assert_array_equal(
            np.asarray(params[name]), np.asarray(getattr(nn_mod, name)[...])
        )
    z = lin.apply(variables, x)
    np.testing.assert_array_equal(np.asarray(z), np.asarray(nn_mod(x)))
    # Changed parameters flow through apply the same way.
    params2 = jax.tree.map(lambda p: p * 0.5 + 0.1, params)
    z2 = lin.apply({"params": params2}, x)
    assert_close(z2, np_cpaf(x, params2["a"], params2["b"], base))
    # Gradients of sum(z^2) reach a and b: the closed form 2 z dz/da_i, summed as shared.
    grads = jax.grad(lambda p: jnp.sum(lin.apply({"params": p}, x) ** 2))(params)
    z64 = np_cpaf(x, params["a"], params["b"], base)[..., None]
    da, db = np_cpaf_partials(x, params["a"], params["b"], base)
    assert_close(grads["a"], reduce_to(2 * z64 * da, params["a"].shape), rtol=2e-5)
    assert_close(grads["b"], reduce_to(2 * z64 * db, params["b"].shape), rtol=2e-5)


def test_linen_cpaf_inits_and_callable(x):
    init = nnx.initializers.normal(stddev=0.5)
    lin = cl.CPAF(k=3, sharing="channel", a_init=2.0, b_init=init)
    params = lin.init(jax.random.key(3), x)["params"]
    np.testing.assert_array_equal(np.asarray(params["a"]), np.full((C, 3), 2.0))
    assert params["b"].shape == (C, 3) and np.std(np.asarray(params["b"])) > 0.05
    lin = cl.CPAF(k=3, sharing="channel", b_init=(0.5, 0.0, -0.5))
    params = lin.init(jax.random.key(3), x)["params"]
    np.testing.assert_array_equal(
        np.asarray(params["b"]), np.broadcast_to([0.5, 0.0, -0.5], (C, 3))
    )


@pytest.mark.parametrize("sharing,p_shape", [("channel", (C,)), ("element", FEATURES)])
def test_linen_prelu_matches_nnx(x, sharing, p_shape):
    lin = cl.PReLU(sharing=sharing)
    variables = lin.init(jax.random.key(0), x)
    alpha = variables["params"]["alpha"]
    nn_mod = PReLU(FEATURES, sharing=sharing)
    assert alpha.shape == p_shape == nn_mod.alpha.shape
    np.testing.assert_array_equal(np.asarray(alpha), np.asarray(nn_mod.alpha[...]))
    np.testing.assert_array_equal(np.asarray(lin.apply(variables, x)), np.asarray(nn_mod(x)))
    assert_close(lin.apply(variables, x), np_prelu(x, 0.25))


@pytest.mark.parametrize(
    "name", ["sigmoid", "tanh", "relu", "elu", "prelu", "cpaf_sigmoid", "cpaf_relu"]
)
def test_linen_registry_matches_nnx_registry(x, name):
    lin = cl.activation(name)
    variables = lin.init(jax.random.key(0), x)
    z = lin.apply(variables, x)
    sharing = "channel" if name == "prelu" else "element"
    want = cpaf_jax.activation(name, FEATURES, sharing=sharing)(x)
    np.testing.assert_allclose(np.asarray(z), np.asarray(want), rtol=1e-6, atol=1e-6)
    assert_close(z, REGISTRY_EXPECTED[name][1](np.asarray(x, np.float64)))


def test_linen_elu_alpha(x):
    lin = cl.activation("elu", alpha=0.5)
    assert_close(lin.apply({}, x), np_elu(x, 0.5))
