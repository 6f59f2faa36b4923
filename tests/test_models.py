"""The paper's networks: shapes, activation counts, and graphs that sweeps can stack."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import cpaf_jax
from cpaf_jax.models import build_model


@pytest.mark.parametrize("activation", cpaf_jax.known_activations())
def test_same_network_for_every_seed(activation):
    # Sweeps stack members' states, which needs equal graph definitions: any per-instance
    # Python object (a lambda, say) in a module would break that.
    g0 = nnx.graphdef(build_model("mnist_features", activation, seed=0))
    g1 = nnx.graphdef(build_model("mnist_features", activation, seed=1))
    assert g0 == g1


@pytest.mark.parametrize(
    ("kind", "kwargs", "shape", "pairs"),
    [
        ("mnist_features", {}, (2, 28, 28, 1), 26 * 26 * 16 + 11 * 11 * 8 + 3 * 3 * 4 + 2),
        ("fashion_mnist", {}, (2, 28, 28, 1), 14_754),
        ("cifar", {"structure": 1}, (2, 32, 32, 3), 2 * (32 + 64 + 128)),
        ("cifar", {"structure": 2}, (2, 32, 32, 3), 2 * (32 + 64 + 64) + 2 * 512),
    ],
)
def test_networks_give_logits_and_count_their_activations(kind, kwargs, shape, pairs):
    model = build_model(kind, "cpaf_sigmoid", **kwargs)
    x = jnp.ones(shape)
    logits = model(x)  # the mode a model is built in: train (dropout from its own rngs)
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    assert cpaf_jax.count_activation_params(model)["cpaf_pairs"] == pairs


def test_feature_net_exposes_the_2d_feature():
    model = build_model("mnist_features", "relu")
    z = model.features(jnp.ones((3, 28, 28, 1)))
    assert z.shape == (3, 2)


def test_cifar_dropout_follows_train_and_eval_with_keys_from_its_own_rngs():
    model = build_model("cifar", "relu", structure=3, seed=0)
    x = jnp.ones((2, 32, 32, 3))
    model.eval()
    assert jnp.array_equal(model(x), model(x))
    model.train()
    a, b = model(x), model(x)  # the stream's counter moves: a new mask every call
    assert not jnp.array_equal(a, b)
    again = build_model("cifar", "relu", structure=3, seed=0)
    again.train()
    assert jnp.array_equal(again(x), a)  # the same seed draws the same masks
    other = build_model("cifar", "relu", structure=3, seed=1)
    other.train()
    assert not jnp.array_equal(other(x), a)


def test_cifar_dropout_does_not_move_the_weights_of_a_seed():
    # Dropout forks its key from the same rngs; built last, it leaves every weight as the
    # network without dropout draws it.
    kw = {"structure": 3, "seed": 4}
    with_dropout = nnx.state(build_model("cifar", "relu", **kw), nnx.Param)
    without = nnx.state(
        build_model("cifar", "relu", conv_dropout=0.0, fc_dropout=0.0, **kw), nnx.Param
    )
    assert jax.tree.all(jax.tree.map(jnp.array_equal, with_dropout, without))


def test_unknown_model_and_bad_structure():
    with pytest.raises(ValueError, match="known models"):
        build_model("resnet", "relu")
    with pytest.raises(ValueError, match="structure"):
        build_model("cifar", "relu", structure=4)


NETWORKS = [
    ("mnist_features", {}),
    ("fashion_mnist", {}),
    ("cifar", {"structure": 1}),
    ("cifar", {"structure": 2}),
    ("cifar", {"structure": 3}),
]


def _weights(model) -> dict:
    """Every parameter that is not an activation's, by path."""
    not_act = nnx.All(nnx.Param, nnx.Not(cpaf_jax.ActivationParam))
    flat = nnx.to_flat_state(nnx.state(model, not_act))
    return {path: v[...] for path, v in flat}


@pytest.mark.parametrize(("kind", "kwargs"), NETWORKS, ids=lambda v: str(v))
def test_every_activation_starts_from_the_same_weights(kind, kwargs):
    # The paper trains every activation from identically initialised W (issue 17, part 1):
    # constant-initialised activation parameters must draw no key from the model's stream.
    for seed in (0, 1):
        want = _weights(build_model(kind, "relu", seed=seed, **kwargs))
        assert len(want) >= 4
        for name in cpaf_jax.known_activations():
            got = _weights(build_model(kind, name, seed=seed, **kwargs))
            assert got.keys() == want.keys(), name
            for path in want:
                assert jnp.array_equal(got[path], want[path]), (name, path)
    other = _weights(build_model(kind, "relu", seed=1, **kwargs))
    first = _weights(build_model(kind, "relu", seed=0, **kwargs))
    assert any(not jnp.array_equal(other[p], first[p]) for p in first)
