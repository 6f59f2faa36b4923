"""The parameter-free activations ReLU, sigmoid and tanh as families, and their NNX modules.

All three never decrease, so their fused 2x2-pool form pools first (``pool_first``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cpaf_jax.activations.family import Activation, ActivationFamily, pool_first


def _relu_numpy():
    def relu_numpy(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return np.maximum(x, 0).astype(x.dtype)

    return relu_numpy


def _sigmoid_numpy():
    def sigmoid_numpy(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        # 0.5 tanh(x/2) + 0.5 is the logistic function without overflow in exp.
        return (0.5 * np.tanh(0.5 * x.astype(np.float64)) + 0.5).astype(x.dtype)

    return sigmoid_numpy


def _tanh_numpy():
    def tanh_numpy(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return np.tanh(x.astype(np.float64)).astype(x.dtype)

    return tanh_numpy


class ReLU(Activation):
    """ReLU as a parameter-free NNX layer: ``[...]`` -> same shape and dtype.

    ``features_shape``, ``sharing`` and ``rngs`` are accepted (the registry passes them to
    every family) and ignored.
    """

    def __init__(self, *, features_shape=None, sharing=None, rngs=None):
        del features_shape, sharing, rngs
        super().__init__(RELU_FAMILY)


class Sigmoid(Activation):
    """Logistic sigmoid as a parameter-free NNX layer: ``[...]`` -> same shape and dtype."""

    def __init__(self, *, features_shape=None, sharing=None, rngs=None):
        del features_shape, sharing, rngs
        super().__init__(SIGMOID_FAMILY)


class Tanh(Activation):
    """``tanh`` as a parameter-free NNX layer: ``[...]`` -> same shape and dtype."""

    def __init__(self, *, features_shape=None, sharing=None, rngs=None):
        del features_shape, sharing, rngs
        super().__init__(TANH_FAMILY)


# The module classes read these at call time; each record names its class.
RELU_FAMILY = ActivationFamily(
    "relu", jax.nn.relu, module=ReLU, pool=pool_first(jax.nn.relu), to_numpy=_relu_numpy
)
SIGMOID_FAMILY = ActivationFamily(
    "sigmoid",
    jax.nn.sigmoid,
    module=Sigmoid,
    pool=pool_first(jax.nn.sigmoid),
    to_numpy=_sigmoid_numpy,
)
TANH_FAMILY = ActivationFamily(
    "tanh", jnp.tanh, module=Tanh, pool=pool_first(jnp.tanh), to_numpy=_tanh_numpy
)
