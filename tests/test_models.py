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
    logits = model(x, train=True, key=jax.random.key(0)) if kind == "cifar" else model(x)
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    assert cpaf_jax.count_activation_params(model)["cpaf_pairs"] == pairs


def test_feature_net_exposes_the_2d_feature():
    model = build_model("mnist_features", "relu")
    z = model.features(jnp.ones((3, 28, 28, 1)))
    assert z.shape == (3, 2)


def test_cifar_dropout_needs_a_key_and_eval_is_deterministic():
    model = build_model("cifar", "relu", structure=3)
    x = jnp.ones((2, 32, 32, 3))
    with pytest.raises(ValueError, match="PRNG key"):
        model(x, train=True)
    assert jnp.array_equal(model(x), model(x))
    a = model(x, train=True, key=jax.random.key(0))
    b = model(x, train=True, key=jax.random.key(1))
    assert not jnp.array_equal(a, b)


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
