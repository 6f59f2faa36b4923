"""Export a learned activation to a small NumPy function of the input.

``to_numpy(layer)`` returns ``f(x: np.ndarray) -> np.ndarray`` that computes the same values as
the NNX module, with no JAX or Flax needed at run time: the parameters are copied out as
float64 NumPy arrays and the family's ``to_numpy`` form (``ActivationFamily.to_numpy``) writes
the formula in NumPy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cpaf_jax.activations.family import Activation


def to_numpy(layer) -> Callable[[np.ndarray], np.ndarray]:
    """A NumPy function equal to the layer's forward pass.

    Args:
      layer: an activation module of any registered family (``cpaf_jax.activation(...)``,
        ``cpaf_jax.CPAF``, ``cpaf_jax.PAU``...).

    Returns:
      ``f(x)`` for ``x`` of shape ``[..., *features_shape]`` (any float dtype); the result has
      ``x``'s shape and dtype.

    Raises:
      TypeError: not an activation module, or a family (e.g. CPAF with a user-defined base)
        with no NumPy form.
    """
    if not isinstance(layer, Activation):
        raise TypeError(f"no NumPy export for {type(layer).__name__}: not an activation module")
    record = layer.record
    if record.to_numpy is None:
        raise TypeError(f"no NumPy form for activation family {record.name!r}")
    params = (np.asarray(v, np.float64) for v in layer.param_values())
    return record.to_numpy(*params, **dict(layer.call_options))
