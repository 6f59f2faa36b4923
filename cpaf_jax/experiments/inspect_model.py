"""Read a trained model's activations: learned (a, b) pairs, curves, 2-D features."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from cpaf_jax.activations.initializers import default_terms
from cpaf_jax.activations.modules import CPAF, PReLU, prelu
from cpaf_jax.ops.functional import cpaf


def activation_layers(model: nnx.Module) -> dict[str, nnx.Module]:
    """Parametric activation modules by their path in the model (``"act1"``, ``"acts/0"``)."""
    out = {}
    for path, node in nnx.iter_graph(model):
        if isinstance(node, CPAF | PReLU):
            out["/".join(str(p) for p in path)] = node
    return out


def ab_pairs(model: nnx.Module) -> dict[str, np.ndarray]:
    """Learned CPAF parameters per layer as ``[n_elements, k, 2]`` arrays of (a_i, b_i)."""
    out = {}
    for name, layer in activation_layers(model).items():
        if isinstance(layer, CPAF):
            a = np.asarray(layer.a[...]).reshape(-1, layer.k)
            b = np.asarray(layer.b[...]).reshape(-1, layer.k)
            out[name] = np.stack([a, b], axis=-1)
    return out


def learned_curves(
    model: nnx.Module, *, elements: int = 24, lo: float = -6.0, hi: float = 6.0, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Curves of ``elements`` randomly chosen activation elements per layer, and the initial one.

    Returns:
      layer -> (``[m]`` inputs, ``[m]`` initial curve, ``[e, m]`` learned curves).
    """
    rng = np.random.default_rng(seed)
    y = np.linspace(lo, hi, 241, dtype=np.float32)
    out = {}
    for name, layer in activation_layers(model).items():
        if isinstance(layer, CPAF):
            a = np.asarray(layer.a[...]).reshape(-1, layer.k)
            b = np.asarray(layer.b[...]).reshape(-1, layer.k)
            pick = rng.choice(len(a), size=min(elements, len(a)), replace=False)
            yy = jnp.broadcast_to(jnp.asarray(y), (len(pick), len(y)))
            learned = cpaf(
                yy, jnp.asarray(a[pick])[:, None, :], jnp.asarray(b[pick])[:, None, :], layer.base
            )
            a0, b0 = default_terms(layer.base, layer.k)
            init = cpaf(
                jnp.asarray(y),
                jnp.asarray(a0, jnp.float32),
                jnp.asarray(b0, jnp.float32),
                layer.base,
            )
            out[name] = (y, np.asarray(init), np.asarray(learned))
        else:
            alpha = np.asarray(layer.alpha[...]).reshape(-1)
            pick = rng.choice(len(alpha), size=min(elements, len(alpha)), replace=False)
            learned = np.asarray(prelu(jnp.asarray(y)[None, :], jnp.asarray(alpha[pick])[:, None]))
            init = np.asarray(prelu(jnp.asarray(y), jnp.asarray(0.25)))
            out[name] = (y, init, learned)
    return out


def feature_points(model, images: np.ndarray, labels: np.ndarray, per_class: int = 200):
    """Fig. 11: the 2-D features of ``per_class`` test images of each class.

    Returns:
      ``([n, 2]`` float32 features, ``[n]`` int labels).
    """
    picks = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])
    z = np.asarray(model.features(jnp.asarray(images[picks])))
    return z, labels[picks]
