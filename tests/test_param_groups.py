"""Activation learning rate and the weight-decay mask reach the right leaves."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from cpaf_jax.activations.modules import ActivationParam
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


@pytest.mark.parametrize("activation", ["cpaf_sigmoid", "prelu"])
def test_activation_lr_and_weight_decay_reach_the_right_leaves(activation):
    params = split(activation)
    # SGD with unit gradients: an update is exactly -lr (plus decay on weights).
    grads = jax.tree.map(jnp.ones_like, params)
    tx = grouped_optimizer("sgd", 0.1, activation_lr=0.01, weight_decay=0.5)
    updates, _ = tx.update(grads, tx.init(params), params)
    kinds = flat(param_labels(params))
    up, p = flat(updates), flat(params)
    seen = set()
    for path, u in up.items():
        label = kinds[path.rsplit("/", 1)[0]] if path not in kinds else kinds[path]
        seen.add(label)
        if label == "activation":
            np.testing.assert_allclose(u, -0.01, rtol=1e-6)  # own lr, no decay
        else:
            np.testing.assert_allclose(
                u, -0.1 * (1 + 0.5 * np.asarray(p[path])), rtol=1e-5, atol=1e-7
            )
    assert seen == {"activation", "weight"}


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
