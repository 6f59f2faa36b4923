"""Fused activation + 2x2 max-pool: the same values and gradients as the composition.

The reference is ``flax.linen.max_pool`` (``reduce_window``, whose gradient goes to the first
maximum of a window) applied to ``cpaf(y + bias, ..., implementation="unrolled")``, which
JAX differentiates by itself: none of the custom VJPs under test takes part in it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

import cpaf_jax
from cpaf_jax import models
from cpaf_jax.ops import fused_pool as pooling
from cpaf_jax.ops.fused_pool import activation_max_pool_2x2, cpaf_max_pool_2x2
from cpaf_jax.ops.max_pool import max_pool_2x2

N, H, W, C, K = 3, 7, 6, 4, 2  # odd H: the last row is dropped by the pool

PARAM_SHAPES = {
    "element": (H, W, C),
    "channel": (C,),
    "shared": (),
    "rows": (H, 1, C),
}


def _reference(y, a, b, base, bias):
    z = cpaf_jax.cpaf(y + bias, a, b, base, implementation="unrolled")
    return nn.max_pool(z, (2, 2), strides=(2, 2), padding="VALID")


def _np_fused(y, a, b, base, bias):
    """Float64 NumPy: ``max_pool_2x2(cpaf(y + bias))`` and a function of ``g`` giving the
    gradients (y, a, b, bias), each window's gradient going to its first maximum.

    Also returns a bound on how far an evaluation may be that rounds ``y + bias`` to bfloat16
    (the pooled max over each window of ``2^-8 |y + bias| |dz/du|``, first order)."""
    y, a, b, bias = (np.asarray(jnp.asarray(v, jnp.float32), np.float64) for v in (y, a, b, bias))
    u = y + bias
    t = u[..., None] - b
    if base == "sigmoid":  # Eq. 2
        s = 1 / (1 + np.exp(-t))
        terms, dz_dt, dz_da = a * (s - 0.5), a * s * (1 - s), s - 0.5
    elif base == "relu":  # Eq. 3
        terms, dz_dt, dz_da = (
            np.where(t > 0, a * t - a / 2, -a / 2),
            a * (t > 0),
            np.where(t > 0, t, 0.0) - 0.5,
        )
    else:
        raise AssertionError(base)
    z, dz_du = terms.sum(-1), dz_dt.sum(-1)
    n, h, w, c = z.shape
    h2, w2 = h // 2, w // 2

    def windows(v):  # [N, H, W, C] -> [N, H/2, W/2, C, 4], window entries in row-major order
        v = v[:, : 2 * h2, : 2 * w2].reshape(n, h2, 2, w2, 2, c)
        return v.transpose(0, 1, 3, 5, 2, 4).reshape(n, h2, w2, c, 4)

    win = windows(z)
    bound = windows(2.0**-8 * np.abs(u) * np.abs(dz_du)).max(-1)

    def grads(g):
        onehot = np.arange(4) == win.argmax(-1)[..., None]
        gz = np.zeros_like(z)
        gz[:, : 2 * h2, : 2 * w2] = (
            (onehot * np.asarray(g, np.float64)[..., None])
            .reshape(n, h2, w2, c, 2, 2)
            .transpose(0, 1, 4, 2, 5, 3)
            .reshape(n, 2 * h2, 2 * w2, c)
        )
        gy = gz * dz_du
        return (
            gy,
            _reduce_to(gz[..., None] * dz_da, a.shape),
            _reduce_to(-gz[..., None] * dz_dt, b.shape),
            _reduce_to(gy, bias.shape),
        )

    return win.max(-1), grads, bound


def _reduce_to(g, shape):
    g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def _inputs(p_shape, seed=0, ties=False, dtype=jnp.float32):
    ks = jax.random.split(jax.random.key(seed), 5)
    y = jax.random.normal(ks[0], (N, H, W, C), dtype)
    if ties:
        # Halves and one value per location: many windows hold their maximum more than once.
        y = jnp.round(2 * y) / 2
        a = jnp.broadcast_to(jnp.array([1.5, 0.7]), p_shape + (K,))
        b = jnp.broadcast_to(jnp.array([0.4, -0.6]), p_shape + (K,))
    else:
        a = 1 + 0.5 * jax.random.normal(ks[1], p_shape + (K,))
        b = jax.random.normal(ks[2], p_shape + (K,))
    bias = 0.3 * jax.random.normal(ks[3], (C,))
    g = jax.random.normal(ks[4], (N, H // 2, W // 2, C))
    return y, a, b, bias, g


def _value_and_grads(fn, y, a, b, bias, g):
    def loss(y, a, b, bias):
        return jnp.sum(fn(y, a, b, bias).astype(jnp.float32) * g)

    return jax.value_and_grad(loss, argnums=(0, 1, 2, 3))(y, a, b, bias)


def _assert_grads_match_the_composition(base, y, a, b, bias, g, atol=2e-5):
    """Gradients of the fused op and of ``_reference`` agree; returns both losses."""
    fused = jax.jit(lambda y, a, b, bias: cpaf_max_pool_2x2(y, a, b, base, bias=bias))
    v, grads = _value_and_grads(fused, y, a, b, bias, g)
    rv, rgrads = _value_and_grads(
        lambda y, a, b, bias: _reference(y, a, b, base, bias), y, a, b, bias, g
    )
    for name, got, want in zip(("y", "a", "b", "bias"), grads, rgrads, strict=True):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=atol, err_msg=name)
    return v, rv


@pytest.mark.parametrize("base", ["sigmoid", "relu", "tanh", jnp.sin])
@pytest.mark.parametrize("sharing", list(PARAM_SHAPES))
def test_matches_the_composition(base, sharing):
    y, a, b, bias, g = _inputs(PARAM_SHAPES[sharing])
    v, rv = _assert_grads_match_the_composition(base, y, a, b, bias, g)
    np.testing.assert_allclose(v, rv, rtol=1e-5)


@pytest.mark.parametrize("n, pieces", [(4, 2), (6, 3), (32, 2), (5, 2)])
@pytest.mark.parametrize("base", ["sigmoid", "relu"])
def test_per_element_backward_in_batch_pieces_matches_the_composition(n, pieces, base, monkeypatch):
    # Per-element parameters: the backward pass loops over pieces of the batch and sums each
    # piece's rows in stages of 8 (32 rows in 2 pieces: 16 -> 2 -> 1). A batch the pieces do
    # not divide (5) runs in one piece.
    monkeypatch.setattr(pooling, "_BATCH_PIECES", pieces)
    y, a, b, bias, _ = _inputs(PARAM_SHAPES["element"], seed=7)
    y = jax.random.normal(jax.random.key(8), (n, H, W, C))
    g = jax.random.normal(jax.random.key(9), (n, H // 2, W // 2, C))
    _assert_grads_match_the_composition(base, y, a, b, bias, g, atol=5e-5)


@pytest.mark.parametrize("sharing", ["element", "channel"])
def test_a_nan_cotangent_stays_where_it_is(sharing):
    # Per channel, the recomputed terms are tied to the cotangent by adding 0 where it is not
    # NaN; per element, they are computed inside the loop over batch pieces. Either way a NaN
    # at one pooled position makes that window's gradients NaN, as autodiff of the
    # composition does, and leaves the other positions' input gradients finite.
    y, a, b, bias, g = _inputs(PARAM_SHAPES[sharing], seed=6)
    g = g.at[0, 1, 1, 2].set(jnp.nan)
    fused = jax.jit(lambda y, a, b, bias: cpaf_max_pool_2x2(y, a, b, "sigmoid", bias=bias))
    (gy, *_), (ry, *_) = (
        _value_and_grads(f, y, a, b, bias, g)[1]
        for f in (fused, lambda y, a, b, bias: _reference(y, a, b, "sigmoid", bias))
    )
    np.testing.assert_array_equal(np.isnan(gy), np.isnan(ry))
    assert np.isnan(gy).sum() == 1


@pytest.mark.parametrize("base", ["sigmoid", "relu"])
def test_ties_go_to_the_first_maximum(base):
    y, a, b, bias, g = _inputs(PARAM_SHAPES["element"], seed=1, ties=True)
    z = cpaf_jax.cpaf(y + bias, a, b, base)
    win = np.asarray(z)[:, : 2 * (H // 2)].reshape(N, H // 2, 2, W // 2, 2, C)
    top = win.max(axis=(2, 4), keepdims=True)
    assert ((win == top).sum(axis=(2, 4)) > 1).any(), "the inputs must hold ties"
    _assert_grads_match_the_composition(base, y, a, b, bias, g)


def test_without_bias_and_with_a_scalar_bias():
    y, a, b, _, g = _inputs((C,))
    out = cpaf_max_pool_2x2(y, a, b, "sigmoid")
    np.testing.assert_allclose(out, _reference(y, a, b, "sigmoid", 0.0), rtol=1e-6)
    fused = lambda y, a, b, s: cpaf_max_pool_2x2(y, a, b, "relu", bias=s)
    s = jnp.float32(0.25)
    _, grads = _value_and_grads(fused, y, a, b, s, g)
    _, rgrads = _value_and_grads(lambda y, a, b, s: _reference(y, a, b, "relu", s), y, a, b, s, g)
    assert grads[3].shape == ()
    np.testing.assert_allclose(grads[3], rgrads[3], rtol=1e-5)


@pytest.mark.parametrize("base", ["sigmoid", "relu"])
def test_bfloat16_input_with_float32_bias(base):
    y, a, b, bias, g = _inputs(PARAM_SHAPES["element"])
    yb = y.astype(jnp.bfloat16)
    out = cpaf_max_pool_2x2(yb, a, b, base, bias=bias)
    assert out.dtype == jnp.float32  # the dtype of y + bias
    _, grads = _value_and_grads(
        lambda y, a, b, s: cpaf_max_pool_2x2(y, a, b, base, bias=s), yb, a, b, bias, g
    )
    assert [x.dtype for x in grads] == [jnp.bfloat16, jnp.float32, jnp.float32, jnp.float32]
    # Against float64 on the same rounded y: y + bias is float32 here, so the float32 results
    # carry float32 error only, and dL/dy is rounded once to bfloat16 (half an ulp, 2^-8).
    ref, ref_grads, _ = _np_fused(yb, a, b, base, bias)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    for name, got, want in zip(("y", "a", "b", "bias"), grads, ref_grads(g), strict=True):
        got = np.asarray(got, np.float64)
        scale = float(np.abs(want).max())
        rtol = 2.0**-8 if name == "y" else 1e-5
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-5 * scale, err_msg=name)


def test_bfloat16_throughout_keeps_y_and_matches():
    y, a, b, bias, g = _inputs(PARAM_SHAPES["channel"])
    y, bias = y.astype(jnp.bfloat16), bias.astype(jnp.bfloat16)
    out = cpaf_max_pool_2x2(y, a, b, "sigmoid", bias=bias)
    assert out.dtype == jnp.bfloat16  # y's dtype, as in cpaf
    # Float64 on the same rounded y and bias. Two bfloat16 roundings are allowed: of y + bias
    # (first order: 2^-8 |u| |dz/du|, the largest in the window) and of the result (half an
    # ulp, 2^-8 |z|); the float32 evaluation in between adds a few float32 ulps.
    ref, _, bound = _np_fused(y, a, b, "sigmoid", bias)
    err = np.abs(np.asarray(out, np.float64) - ref)
    allowed = 2.0**-8 * np.abs(ref) + bound * (1 + 2.0**-7) + 1e-6
    assert np.all(err <= allowed), float(np.max(err - allowed))


def test_vmap_over_members_equals_a_loop():
    ys, as_, bs, biases = [], [], [], []
    for seed in range(3):
        y, a, b, bias, _ = _inputs(PARAM_SHAPES["element"], seed=seed)
        ys.append(y), as_.append(a), bs.append(b), biases.append(bias)
    ys, as_, bs, biases = map(jnp.stack, (ys, as_, bs, biases))

    def loss(y, a, b, bias):
        return jnp.sum(cpaf_max_pool_2x2(y, a, b, "sigmoid", bias=bias) ** 2)

    grad = jax.grad(loss, argnums=(0, 1, 2, 3))
    batched = jax.jit(jax.vmap(grad))(ys, as_, bs, biases)
    for m in range(3):
        one = grad(ys[m], as_[m], bs[m], biases[m])
        for got, want in zip(batched, one, strict=True):
            np.testing.assert_allclose(got[m], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(y=jnp.zeros((2, 4, 4))), "must be \\[N, H, W, C\\]"),
        (dict(y=jnp.zeros((2, 1, 4, 4))), "smaller than one 2x2 window"),
        (dict(bias=jnp.zeros((3,))), "bias must have shape \\(4,\\)"),
        (dict(a=jnp.zeros((5, 2))), "do not broadcast"),
    ],
)
def test_bad_input_says_what_to_do(bad, match):
    args = dict(y=jnp.zeros((2, 4, 4, 4)), a=jnp.ones((4, 2)), b=jnp.zeros((4, 2)), bias=None)
    args.update(bad)
    if "a" in bad:
        args["b"] = jnp.zeros(bad["a"].shape)
    with pytest.raises(ValueError, match=match):
        cpaf_max_pool_2x2(args["y"], args["a"], args["b"], "sigmoid", bias=args["bias"])


def test_integer_input_is_rejected():
    with pytest.raises(TypeError, match="floating"):
        cpaf_max_pool_2x2(jnp.zeros((1, 2, 2, 1), jnp.int32), jnp.ones((2,)), jnp.zeros((2,)))


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("cpaf_sigmoid", {}),
        ("cpaf_relu", {"sharing": "channel"}),
        ("cpaf_sigmoid", {"implementation": "unrolled"}),
        ("relu", {}),
        ("sigmoid", {}),
        ("tanh", {}),
        ("elu", {}),
        ("prelu", {}),
        ("swish", {}),
    ],
)
def test_activation_dispatch_matches_the_composition(name, kwargs):
    y, _, _, bias, g = _inputs(PARAM_SHAPES["element"], seed=2)
    act = cpaf_jax.activation(name, (H, W, C), rngs=nnx.Rngs(0), **kwargs)

    def fused(y, bias):
        return jnp.sum(activation_max_pool_2x2(act, y, bias) * g)

    def composed(y, bias):
        return jnp.sum(max_pool_2x2(act(y + bias)) * g)

    v, grads = jax.value_and_grad(fused, argnums=(0, 1))(y, bias)
    rv, rgrads = jax.value_and_grad(composed, argnums=(0, 1))(y, bias)
    np.testing.assert_allclose(v, rv, rtol=1e-5)
    for got, want in zip(grads, rgrads, strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_dispatch_checks_the_feature_shape():
    act = cpaf_jax.activation("cpaf_relu", (H, W, C), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="CPAF"):
        activation_max_pool_2x2(act, jnp.zeros((1, 8, 8, C)))


def _plain_forward(model, x):
    """The networks' forward pass written as conv -> activation -> pool, nothing fused."""
    if isinstance(model, models.FashionNet):
        x = max_pool_2x2(model.act1(model.conv1(x)))
        x = max_pool_2x2(model.act2(model.conv2(x)))
        x = model.act3(model.conv3(x)).reshape(x.shape[0], -1)
        return model.out(model.act4(model.dense(x)))
    if isinstance(model, models.MnistFeatureNet):
        for conv, act, pool in zip(model.convs, model.acts, model.pools, strict=True):
            x = act(conv(x))
            x = max_pool_2x2(x) if pool else x
        return model.head(x.reshape(x.shape[0], -1))
    assert model.structure == 2  # no batch norm: every pool follows an activation
    for i, (conv, act) in enumerate(zip(model.convs, model.acts, strict=True)):
        x = act(conv(x))
        x = max_pool_2x2(x) if i % 2 == 1 else x
    x = x.reshape(x.shape[0], -1)
    for fc, act in zip(model.fcs, model.fc_acts, strict=True):
        x = act(fc(x))
    return model.out(x)


@pytest.mark.parametrize(
    "kind, activation, kwargs, shape",
    [
        ("fashion_mnist", "cpaf_sigmoid", {}, (4, 28, 28, 1)),
        ("fashion_mnist", "cpaf_relu", {}, (4, 28, 28, 1)),
        ("fashion_mnist", "relu", {}, (4, 28, 28, 1)),
        ("mnist_features", "cpaf_relu", {}, (4, 28, 28, 1)),
        ("cifar", "cpaf_sigmoid", {"structure": 2}, (2, 32, 32, 3)),
    ],
)
def test_networks_equal_their_unfused_forward(kind, activation, kwargs, shape):
    # Inference: the plain forward has no dropout, so compare in eval mode (Flax's idiom: a
    # model is built in train mode).
    model = models.build_model(kind, activation, seed=3, **kwargs)
    model.eval()
    x = jax.random.uniform(jax.random.key(4), shape)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def value_and_grad(forward):
        def loss(params):
            return jnp.sum(forward(nnx.merge(graphdef, params, rest), x) ** 2)

        return jax.jit(jax.value_and_grad(loss))(params)

    v, grads = value_and_grad(lambda m, x: m(x))
    rv, rgrads = value_and_grad(_plain_forward)
    np.testing.assert_allclose(v, rv, rtol=1e-5)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(rgrads), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    unfused = models.build_model(kind, activation, seed=3, fuse_pooling=False, **kwargs)
    unfused.eval()
    np.testing.assert_allclose(unfused(x), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["cpaf_sigmoid", "cpaf_relu"])
def test_network_gradient_needs_less_memory_than_the_unfused_forward(activation):
    # Compiled memory is deterministic. The unfused network keeps the first layer's whole
    # [128, 26, 26, 16] pre-activation (or XLA's k tanh tensors) for the backward pass; the
    # fused one keeps quarter-size arrays.
    model = models.build_model("fashion_mnist", activation, seed=0)
    x = jnp.zeros((128, 28, 28, 1))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def temp_bytes(forward):
        def loss(params):
            return jnp.sum(forward(nnx.merge(graphdef, params, rest), x))

        compiled = jax.jit(jax.grad(loss)).lower(params).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    fused, plain = temp_bytes(lambda m, x: m(x)), temp_bytes(_plain_forward)
    assert fused < 0.9 * plain, (fused, plain)


@pytest.mark.parametrize("activation", ["cpaf_sigmoid", "cpaf_relu"])
def test_training_step_memory_within_a_quarter_of_relus(activation):
    # Compiled memory is deterministic. The fused blocks keep y at each window's maximum (a
    # quarter of the layer) and recompute the terms in the backward pass, half the batch at
    # a time; the step's peak stays within 1.25x ReLU's, the goal of section 2's table.
    from cpaf_jax.training import optim
    from cpaf_jax.training import state as train_state

    def step_bytes(act):
        model = models.build_model("fashion_mnist", act, seed=0)
        tx = optim.make_optimizer("adam", 1e-3)
        graphdef, state = train_state.init_state(model, tx, 0)
        step = jax.jit(train_state.make_train_step(graphdef, tx), donate_argnums=0)
        images, labels = jnp.zeros((128, 28, 28, 1)), jnp.zeros((128,), jnp.int32)
        m = step.lower(state, images, labels, jnp.arange(128)).compile().memory_analysis()
        return m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes

    assert step_bytes(activation) <= 1.25 * step_bytes("relu")
