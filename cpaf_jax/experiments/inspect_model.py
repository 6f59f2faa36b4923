"""Read a trained model's activations: learned (a, b) pairs, curves, 2-D features.

Generic over the activation family record (``cpaf_jax.activations.family``): every
parametric family's layers are found, evaluated and plotted the same way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cpaf_jax.activations.family import Activation, unit_params


def activation_layers(model: nnx.Module) -> dict[str, Activation]:
    """Parametric activation modules by their path in the model (``"act1"``, ``"acts/0"``)."""
    out = {}
    for path, node in nnx.iter_graph(model):
        if isinstance(node, Activation) and node.record.parametric:
            out["/".join(str(p) for p in path)] = node
    return out


def ab_pairs(model: nnx.Module) -> dict[str, np.ndarray]:
    """Learned (scale, location) pairs per layer of families that have them (CPAF's (a, b)),
    as ``[n_units, k, 2]`` arrays of (a_i, b_i)."""
    out = {}
    for name, layer in activation_layers(model).items():
        pairs = layer.record.pairs
        if pairs is None:
            continue
        values = dict(zip(layer.record.params, unit_params(layer), strict=True))
        out[name] = np.stack([values[pairs[0]], values[pairs[1]]], axis=-1)
    return out


def layer_curves(
    layer: Activation, y: np.ndarray, elements: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One layer's initial curve ``[m]`` and the learned curves ``[e, m]`` of ``e = min(
    elements, units)`` randomly chosen units, at the inputs ``y`` ``[m]``."""
    record, call = layer.record, dict(layer.call_options)
    params = unit_params(layer)
    pick = rng.choice(len(params[0]), size=min(elements, len(params[0])), replace=False)
    yy = jnp.asarray(y)

    def curve(*unit):
        return record.apply(yy, *unit, **call)

    learned = jax.vmap(curve)(*(jnp.asarray(p[pick]) for p in params))
    init = record.initial_values(**dict(layer.shape_options))
    initial = curve(*(jnp.asarray(init[n], jnp.float32) for n in record.params))
    return np.asarray(initial), np.asarray(learned)


def learned_curves(
    model: nnx.Module, *, elements: int = 24, lo: float = -6.0, hi: float = 6.0, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Curves of ``elements`` randomly chosen activation units per layer, and the initial one
    (the family's default initial values).

    Returns:
      layer -> (``[m]`` inputs, ``[m]`` initial curve, ``[e, m]`` learned curves).
    """
    rng = np.random.default_rng(seed)
    y = np.linspace(lo, hi, 241, dtype=np.float32)
    out = {}
    for name, layer in activation_layers(model).items():
        initial, learned = layer_curves(layer, y, elements, rng)
        out[name] = (y, initial, learned)
    return out


def feature_points(model, images: np.ndarray, labels: np.ndarray, per_class: int = 200):
    """Fig. 11: the 2-D features of ``per_class`` test images of each class.

    Returns:
      ``([n, 2]`` float32 features, ``[n]`` int labels).
    """
    picks = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])
    z = np.asarray(model.features(jnp.asarray(images[picks])))
    return z, labels[picks]
