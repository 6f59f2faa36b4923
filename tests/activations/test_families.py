"""Every registered activation family through the same checks (as optax tests every optimiser
over one table): NNX module, Linen module, jit/grad/vmap of the pure function, the fused 2x2
pool, NumPy export, and what ``inspect`` reads (curves, statistics, (a, b) pairs)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cpaf_jax
import cpaf_jax.linen as cl
from cpaf_jax.activations.export import to_numpy
from cpaf_jax.experiments.inspect_cmd import layer_stats
from cpaf_jax.experiments.inspect_model import ab_pairs, learned_curves
from cpaf_jax.ops.max_pool import max_pool_2x2

FEATURES = (4, 6, 3)  # (H, W, C), even so that a 2x2 pool tiles it
NAMES = cpaf_jax.known_activations()
SHARINGS = ["element", "channel", "shared"]


def _x(seed: int = 0, shape=(2, *FEATURES)) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).normal(0.0, 2.0, shape), jnp.float32)


def _trained(name: str, sharing: str = "channel"):
    """The module with its parameters moved away from their initial values, as after training."""
    m = cpaf_jax.activation(name, FEATURES, sharing=sharing)
    rng = np.random.default_rng(1)
    for pname in m.record.params:
        var = getattr(m, pname)
        var[...] = var[...] + jnp.asarray(rng.normal(0.0, 0.2, var.shape), var.dtype)
    return m


def test_the_table_is_every_family():
    assert {"cpaf_sigmoid", "cpaf_relu", "cpaf_tanh", "prelu", "elu", "elu_learned"} <= set(NAMES)
    assert {"relu", "sigmoid", "tanh", "apl", "pau", "swish"} <= set(NAMES)
    for name in NAMES:
        fam = cpaf_jax.family(name)
        assert fam.name == name and fam.parametric == cpaf_jax.is_parametric(name)


@pytest.mark.parametrize("sharing", SHARINGS)
@pytest.mark.parametrize("name", NAMES)
def test_nnx_module_is_its_record(name, sharing):
    m = _trained(name, sharing)
    fam = m.record
    x = _x()
    z = m(x)
    assert z.shape == x.shape and z.dtype == x.dtype
    params = [getattr(m, p)[...] for p in fam.params]
    np.testing.assert_array_equal(z, fam.apply(x, *params, **dict(m.call_options)))
    shapes = fam.param_shapes(FEATURES, sharing, **dict(m.shape_options))
    assert {p: tuple(getattr(m, p).shape) for p in fam.params} == shapes
    for p in fam.params:
        assert isinstance(getattr(m, p), cpaf_jax.ActivationParam)
    # Nothing but the record's parameters is trainable, and the graph is the same per build.
    n = sum(int(v.size) for v in jax.tree.leaves(nnx.state(m, nnx.Param)))
    assert n == sum(int(np.prod(s)) for s in shapes.values())
    assert nnx.graphdef(m) == nnx.graphdef(cpaf_jax.activation(name, FEATURES, sharing=sharing))


@pytest.mark.parametrize("name", NAMES)
def test_linen_module_matches_nnx(name):
    x = _x()
    lin = cl.activation(name, sharing="channel")
    variables = lin.init(jax.random.key(0), x)
    nn_mod = cpaf_jax.activation(name, FEATURES, sharing="channel")
    params = variables.get("params", {})
    assert set(params) == set(nn_mod.record.params)
    for p in nn_mod.record.params:
        np.testing.assert_array_equal(params[p], getattr(nn_mod, p)[...])
    np.testing.assert_allclose(lin.apply(variables, x), nn_mod(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_pure_function_under_jit_grad_vmap(name):
    m = _trained(name)
    fam, call = m.record, dict(m.call_options)
    params = tuple(getattr(m, p)[...] for p in fam.params)
    x = _x()

    def f(x, *params):
        return fam.apply(x, *params, **call)

    want = f(x, *params)
    np.testing.assert_allclose(jax.jit(f)(x, *params), want, rtol=1e-6, atol=1e-6)
    # vmap over the batch gives the batched call.
    np.testing.assert_allclose(jax.vmap(lambda xi: f(xi, *params))(x), want, rtol=1e-6, atol=1e-6)
    argnums = tuple(range(1 + len(params)))
    grads = jax.jit(jax.grad(lambda *a: jnp.sum(jnp.sin(f(*a))), argnums))(x, *params)
    assert [g.shape for g in grads] == [x.shape] + [p.shape for p in params]
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    # The input gradient agrees with a central difference of the summed output.
    v = jnp.asarray(np.random.default_rng(2).normal(size=x.shape), jnp.float32)
    h = 1e-3
    fd = (jnp.sum(jnp.sin(f(x + h * v, *params))) - jnp.sum(jnp.sin(f(x - h * v, *params)))) / (
        2 * h
    )
    assert float(jnp.vdot(grads[0], v)) == pytest.approx(float(fd), rel=2e-2, abs=2e-2)


@pytest.mark.parametrize("name", NAMES)
def test_fused_pool_equals_the_composition(name):
    m = _trained(name)
    y = _x(3)
    bias = jnp.asarray([0.1, -0.2, 0.3], jnp.float32)
    np.testing.assert_allclose(
        m.max_pool_2x2(y, bias), max_pool_2x2(m(y + bias)), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name", NAMES)
def test_numpy_export_equals_the_module(name):
    m = _trained(name)
    x = _x(4)
    f = to_numpy(m)
    out = f(np.asarray(x))
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, np.asarray(m(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_inspect_reads_every_family(name):
    m = _trained(name)
    curves = learned_curves(m, elements=5)
    stats = layer_stats(m)
    if not m.record.parametric:
        assert curves == {} and stats == {}
        return
    ((y, initial, learned),) = curves.values()
    assert y.shape == (241,) and initial.shape == (241,) and learned.shape == (3, 241)
    # The initial curve is the family at its default initial values.
    fresh = cpaf_jax.activation(name, None, sharing="shared")
    np.testing.assert_allclose(initial, fresh(jnp.asarray(y)), rtol=1e-5, atol=1e-5)
    # The learned curves are the three channels' functions (in the order drawn).
    channel_curves = []
    for c in range(3):
        xc = jnp.zeros((241, *FEATURES)).at[:, 0, 0, c].set(jnp.asarray(y))
        channel_curves.append(np.asarray(m(xc))[:, 0, 0, c])
    for curve in learned:
        assert min(np.abs(curve - cc).max() for cc in channel_curves) < 1e-4
    ((info),) = stats.values()
    assert info["family"] == name and set(info["params"]) == set(m.record.params)
    for pname, cols in info["params"].items():
        var = np.asarray(getattr(m, pname)[...]).reshape(3, -1)
        assert len(cols) == var.shape[1]
        np.testing.assert_allclose([c["mean"] for c in cols], var.mean(0), rtol=1e-6)
    pairs = ab_pairs(m)
    if m.record.pairs is None:
        assert pairs == {}
    else:
        ((ab),) = pairs.values()
        np.testing.assert_array_equal(ab[..., 0], np.asarray(m.a[...]))
        np.testing.assert_array_equal(ab[..., 1], np.asarray(m.b[...]))


def test_a_new_family_is_one_record(monkeypatch):
    # A user's family: a scaled softplus with a learned scale, no module class of its own.
    from cpaf_jax.activations import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    def scaled_softplus(x, s):
        return s.astype(x.dtype) * jax.nn.softplus(x)

    record = cpaf_jax.ActivationFamily(
        name="scaled_softplus",
        apply=scaled_softplus,
        params=("s",),
        coeff_shapes=lambda: ((),),
        init=lambda: (np.asarray(0.5),),
        default_sharing="channel",
        to_numpy=lambda s: lambda x: (s * np.logaddexp(0.0, x)).astype(np.asarray(x).dtype),
    )
    cpaf_jax.register_activation(record)
    assert "scaled_softplus" in cpaf_jax.known_activations()
    x = _x()
    m = cpaf_jax.activation("scaled_softplus", FEATURES, sharing="channel")
    assert isinstance(m, cpaf_jax.Activation) and m.s.shape == (3,)
    np.testing.assert_allclose(m(x), 0.5 * jax.nn.softplus(x), rtol=1e-6)
    np.testing.assert_allclose(to_numpy(m)(np.asarray(x)), m(x), rtol=1e-5, atol=1e-6)
    lin = cl.activation("scaled_softplus")
    np.testing.assert_allclose(lin.apply(lin.init(jax.random.key(0), x), x), m(x), rtol=1e-6)
    assert set(learned_curves(m)) == {""}
    fit = cpaf_jax.fit_curve(lambda u: 2.0 * jax.nn.softplus(u), record)
    assert float(fit.params["s"]) == pytest.approx(2.0, abs=1e-4)
    with pytest.raises(TypeError, match="unexpected argument"):
        cpaf_jax.activation("scaled_softplus", FEATURES, k=3)
