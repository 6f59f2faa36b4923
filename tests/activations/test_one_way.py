"""Every way of building a family's layer gives the same layer: the registry (the one way), the
record's ``build``, the family's NNX class, and the Linen function and class, each with the
record's own default sharing, parameter shapes and initial values (one table over every
registered family)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cpaf_jax
import cpaf_jax.linen as cl

FEATURES = (4, 6, 3)
NAMES = cpaf_jax.known_activations()
X = jnp.asarray(np.random.default_rng(0).normal(0.0, 2.0, (2, *FEATURES)), jnp.float32)


def _values(layer) -> dict[str, np.ndarray]:
    return {p: np.asarray(getattr(layer, p)[...]) for p in layer.record.params}


def _linen_values(module) -> dict[str, np.ndarray]:
    params = module.init(jax.random.key(0), X).get("params", {})
    return {p: np.asarray(v) for p, v in params.items()}


def _linen_class(record):
    """The generated Linen class of the record's NNX class, with the record-selecting field."""
    if record.module is None:
        return None
    nnx_cls = getattr(record.module, "func", record.module)
    bound = dict(getattr(record.module, "keywords", {}))
    cls = getattr(cl, nnx_cls.__name__, None)
    return None if cls is None else (lambda: cls(**bound))


@pytest.mark.parametrize("name", NAMES)
def test_every_way_gives_the_records_default_layer(name):
    record = cpaf_jax.family(name)
    want_shapes = record.param_shapes(FEATURES, record.default_sharing)
    want = {p: np.broadcast_to(v, want_shapes[p]) for p, v in record.initial_values().items()}
    nnx_ways = {
        "cpaf_jax.activation": cpaf_jax.activation(name, FEATURES),
        "record.build": record.build(FEATURES),
    }
    if record.module is not None:
        nnx_ways["NNX class"] = record.module(features_shape=FEATURES)
    for way, layer in nnx_ways.items():
        assert layer.record is record, way
        got = _values(layer)
        assert {p: v.shape for p, v in got.items()} == want_shapes, way
        for p in want:
            np.testing.assert_allclose(got[p], want[p], rtol=1e-6, err_msg=f"{way}: {p}")
    linen_ways = {"cpaf_jax.linen.activation": cl.activation(name)}
    make = _linen_class(record)
    if make is not None:
        linen_ways["Linen class"] = make()
    for way, module in linen_ways.items():
        got = _linen_values(module)
        assert {p: v.shape for p, v in got.items()} == want_shapes, way
        for p in want:
            np.testing.assert_allclose(got[p], want[p], rtol=1e-6, err_msg=f"{way}: {p}")


def test_the_default_sharing_differs_by_family():
    # What the table above checks would be vacuous if every family shared alike.
    sharings = {cpaf_jax.family(n).default_sharing for n in ("pau", "prelu", "cpaf_relu")}
    assert sharings == {"shared", "channel", "element"}
    assert cpaf_jax.activation("pau", FEATURES).p.shape == (6,)
    assert cpaf_jax.PAU(FEATURES).p.shape == (6,)
    assert cl.activation("pau").init(jax.random.key(0), X)["params"]["p"].shape == (6,)


@pytest.mark.parametrize("name", [n for n in NAMES if cpaf_jax.family(n).module is not None])
def test_each_nnx_class_has_its_generated_linen_class(name):
    record = cpaf_jax.family(name)
    nnx_cls = getattr(record.module, "func", record.module)
    if nnx_cls.__name__ in ("Sigmoid", "Tanh", "ReLU"):
        assert callable(getattr(cl, nnx_cls.__name__))  # parameter-free factories
        return
    cls = getattr(cl, nnx_cls.__name__)
    assert issubclass(cls, cl.Activation) and cls.__module__ == "cpaf_jax.activations.linen"
    layer = cls(**dict(getattr(record.module, "keywords", {})))
    chosen, kwargs = layer.spec()
    assert chosen is record
    # The fields' defaults are the record's options; initial values and sharing default to the
    # record's (None).
    options = dict(record.shape_options + record.call_options)
    assert {n: kwargs[n] for n in options} == options
    assert all(kwargs[f"{p}_init"] is None for p in record.params)
    assert layer.sharing is None


def test_a_linen_class_passes_its_fields_to_the_record():
    layer = cl.CPAF(base="relu", k=3, sharing="channel", a_init=2.0)
    params = layer.init(jax.random.key(0), X)["params"]
    assert params["a"].shape == (3, 3) and float(params["a"][0, 0]) == 2.0
    assert layer.spec()[0] is cpaf_jax.family("cpaf_relu")
    assert cl.PAU(degrees=(3, 2)).init(jax.random.key(0), X)["params"]["q"].shape == (2,)
