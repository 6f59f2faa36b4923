"""Export a learned activation to a small NumPy function of the input.

``to_numpy(layer)`` returns ``f(x: np.ndarray) -> np.ndarray`` that computes the same values as
the NNX module, with no JAX or Flax needed at run time: the parameters are copied out as NumPy
arrays and the formula is written in NumPy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cpaf_jax.activations.modules import CPAF, PReLU

_NUMPY_BASES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "sigmoid": (lambda u: 0.5 * np.tanh(0.5 * u) + 0.5, 0.5),
    "relu": (lambda u: np.maximum(u, 0.0), 0.5),
    "tanh": (np.tanh, 0.0),
}


def to_numpy(layer) -> Callable[[np.ndarray], np.ndarray]:
    """A NumPy function equal to the layer's forward pass.

    Args:
      layer: a ``cpaf_jax.CPAF`` with base sigmoid, relu or tanh, or a ``cpaf_jax.PReLU``.

    Returns:
      ``f(x)`` for ``x`` of shape ``[..., *features_shape]`` (any float dtype); the result has
      ``x``'s shape and dtype.

    Raises:
      TypeError: for a layer or base with no NumPy form.
    """
    if isinstance(layer, CPAF):
        if layer.base.name not in _NUMPY_BASES:
            raise TypeError(f"no NumPy form for CPAF base {layer.base.name!r}")
        fn, offset = _NUMPY_BASES[layer.base.name]
        a = np.asarray(layer.a[...], np.float64)
        b = np.asarray(layer.b[...], np.float64)

        def cpaf_numpy(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x)
            u = x.astype(np.float64)[..., None] - b
            return np.sum(a * (fn(u) - offset), axis=-1).astype(x.dtype)

        return cpaf_numpy
    if isinstance(layer, PReLU):
        alpha = np.asarray(layer.alpha[...], np.float64)

        def prelu_numpy(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x)
            return np.where(x > 0, x, alpha * x).astype(x.dtype)

        return prelu_numpy
    raise TypeError(f"no NumPy export for {type(layer).__name__}")
