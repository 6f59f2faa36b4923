"""Activation learning rate and the weight-decay mask reach the right leaves."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from cpaf_jax import ActivationParam
from cpaf_jax.models import build_model
from cpaf_jax.training.optim import grouped_optimizer, param_labels, weight_mask


def split(activation):
    model = build_model("fashion_mnist", activation, seed=0)
    _, params, _ = nnx.split(model, nnx.Param, ...)
    return params


def flat(tree):
    return {
        "/".join(str(getattr(k, "key", k)) for k in path): leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


def test_labels_mark_exactly_the_activation_parameters():
    params = split("cpaf_relu")
    labels = param_labels(params)
    kinds = jax.tree.map(
        lambda v: isinstance(v, ActivationParam),
        params,
        is_leaf=lambda x: isinstance(x, nnx.Variable),
    )
    for (path, label), (_, is_act) in zip(
        jax.tree_util.tree_leaves_with_path(labels),
        jax.tree_util.tree_leaves_with_path(kinds),
        strict=True,
    ):
        assert (label == "activation") == is_act, path
    names = {p.split("/")[-1] for p, lab in flat(labels).items() if lab == "activation"}
    assert names == {"a", "b"}
    assert set(flat(weight_mask(params)).values()) == {True, False}


def kind(path: str) -> str:
    """``"activation"``, ``"bias"`` or ``"kernel"`` from a flat path (``conv1/bias/.value``)."""
    name = [p for p in path.split("/") if not p.startswith(".")][-1]
    return {"a": "activation", "b": "activation", "alpha": "activation"}.get(name, name)


def with_nonzero_biases(params, seed=1):
    """The model's parameters with biases drawn away from their zero initialisation, so that a
    decay applied to them would show."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map_with_path(
        lambda path, x: (
            jnp.asarray(rng.normal(0.5, 0.2, x.shape), x.dtype)
            if any(getattr(k, "key", None) == "bias" for k in path)
            else x
        ),
        params,
    )


@pytest.mark.parametrize("activation", ["cpaf_sigmoid", "prelu"])
def test_activation_lr_and_weight_decay_reach_the_right_leaves(activation):
    params = with_nonzero_biases(split(activation))
    # SGD with unit gradients: an update is exactly -lr, plus -lr * wd * w on kernels only.
    grads = jax.tree.map(jnp.ones_like, params)
    tx = grouped_optimizer("sgd", 0.1, activation_lr=0.01, weight_decay=0.5)
    updates, _ = tx.update(grads, tx.init(params), params)
    up, p = flat(updates), flat(params)
    seen = set()
    for path, u in up.items():
        seen.add(kind(path))
        if kind(path) == "activation":
            np.testing.assert_allclose(u, -0.01, rtol=1e-6)  # own lr, no decay
        elif kind(path) == "bias":
            assert np.all(np.asarray(p[path]) != 0)
            np.testing.assert_allclose(u, -0.1, rtol=1e-6)  # no decay on biases
        else:
            np.testing.assert_allclose(
                u, -0.1 * (1 + 0.5 * np.asarray(p[path])), rtol=1e-5, atol=1e-7
            )
    assert seen == {"activation", "bias", "kernel"}


@pytest.mark.parametrize("name", ["adam", "rmsprop", "sgd"])
def test_decay_alone_moves_kernels_only(name):
    """Zero gradients isolate the decay: every optimizer's own step is then exactly 0, so the
    update is -lr * wd * w on kernels and 0 on (non-zero) biases and activation parameters."""
    params = with_nonzero_biases(split("cpaf_relu"))
    tx = grouped_optimizer(name, 0.05, activation_lr=0.2, weight_decay=0.3)
    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    p = flat(params)
    for path, u in flat(updates).items():
        want = -0.05 * 0.3 * np.asarray(p[path]) if kind(path) == "kernel" else 0.0
        np.testing.assert_allclose(u, want, rtol=1e-6, atol=0, err_msg=path)
    mask = flat(weight_mask(params))
    assert {path: m for path, m in mask.items()} == {path: kind(path) == "kernel" for path in mask}


def _numpy_adam(grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Adam's updates (Kingma and Ba, Algorithm 1; optax defaults) for a list of gradients."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        out.append(-lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps))
    return out


def test_adamw_two_steps_match_a_float64_numpy_reference():
    lr, act_lr, wd = 1e-2, 3e-3, 0.1
    params = with_nonzero_biases(split("cpaf_relu"))
    rng = np.random.default_rng(5)
    g1, g2 = (
        jax.tree.map(lambda x, s=s: jnp.asarray(rng.normal(0, s, x.shape), x.dtype), params)
        for s in (1.0, 0.3)
    )
    tx = grouped_optimizer("adam", lr, activation_lr=act_lr, weight_decay=wd)
    state = tx.init(params)
    u1, state = tx.update(g1, state, params)
    p1 = optax.apply_updates(params, u1)
    u2, state = tx.update(g2, state, p1)
    p2 = optax.apply_updates(p1, u2)

    f0, f1, f2 = flat(params), flat(g1), flat(g2)
    for path, got in flat(p2).items():
        w0 = np.asarray(f0[path], np.float64)
        gs = [np.asarray(f1[path], np.float64), np.asarray(f2[path], np.float64)]
        rate = act_lr if kind(path) == "activation" else lr
        decay = wd if kind(path) == "kernel" else 0.0
        a1, a2 = _numpy_adam(gs, rate)
        w1 = w0 + a1 - rate * decay * w0  # AdamW: the decay uses the weight of that step
        w2 = w1 + a2 - rate * decay * w1
        # optax runs in float32 and forms Adam's bias corrections there (1 - 0.999 in float32
        # is 1.3e-5 off, so an update is up to ~1e-5 off relative): allow 2e-5 of each of the
        # two updates, plus the rounding of the float32 parameters.
        atol = 2 * 2e-5 * rate + 2.0**-23 * float(np.abs(w0).max())
        np.testing.assert_allclose(got, w2, rtol=0, atol=atol, err_msg=path)
        if kind(path) == "kernel":  # the decay is far beyond that tolerance
            assert np.max(np.abs(rate * decay * w0)) > 100 * atol


def test_grouped_adam_keeps_activation_params_fixed_with_zero_lr():
    params = split("cpaf_relu")
    grads = jax.tree.map(lambda x: jnp.full_like(x, 0.3), params)
    tx = grouped_optimizer("adam", 1e-2, activation_lr=0.0, weight_decay=1e-2)
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    a_old = np.asarray(params["act1"]["a"][...])
    np.testing.assert_array_equal(np.asarray(new["act1"]["a"][...]), a_old)
    assert not np.allclose(
        np.asarray(new["conv1"]["kernel"][...]), np.asarray(params["conv1"]["kernel"][...])
    )
