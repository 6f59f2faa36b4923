"""Small layers the paper's networks need, written for speed on every backend."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def max_pool_2x2(x: Array) -> Array:
    """2x2 max-pooling with stride 2 and VALID padding (odd edges dropped), NHWC.

    Written as reshape + max rather than ``lax.reduce_window``: on XLA:CPU the backward pass of
    ``reduce_window`` (what ``flax.linen.max_pool`` uses) took 23 of a 30 ms training step of
    the Fashion-MNIST network; this form brings the whole step to about 9 ms, and it is no
    slower on GPU.

    Args:
      x: ``[N, H, W, C]``.

    Returns:
      ``[N, H // 2, W // 2, C]``, ``x``'s dtype.
    """
    n, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    x = x[:, : 2 * h2, : 2 * w2, :]
    return jnp.max(x.reshape(n, h2, 2, w2, 2, c), axis=(2, 4))


def conv_output_shape(hw: tuple[int, int], kernel: int, padding: str) -> tuple[int, int]:
    """Spatial output size of a stride-1 convolution."""
    if padding == "SAME":
        return hw
    return (hw[0] - kernel + 1, hw[1] - kernel + 1)
