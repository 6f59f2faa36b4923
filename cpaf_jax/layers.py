"""Small layers the paper's networks need, written for speed on every backend."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _windows(x: Array) -> Array:
    """``[N, H, W, C] -> [N, H//2, W//2, C, 4]``: each 2x2 window's values (odd edges dropped)."""
    n, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    x = x[:, : 2 * h2, : 2 * w2, :].reshape(n, h2, 2, w2, 2, c)
    return x.transpose(0, 1, 3, 5, 2, 4).reshape(n, h2, w2, c, 4)


@jax.custom_vjp
def max_pool_2x2(x: Array) -> Array:
    """2x2 max-pooling with stride 2 and VALID padding (odd edges dropped), NHWC.

    Written as reshape + max rather than ``lax.reduce_window``: on XLA:CPU the backward pass of
    ``reduce_window`` (what ``flax.linen.max_pool`` uses) took 23 of a 30 ms training step of
    the Fashion-MNIST network, and the reshape form removes nearly all of it.

    The backward pass needs only which entries of each window were the maximum, so that is
    all the forward pass keeps: 4 bits per window, in a uint8 ``[N, H//2, W//2, C]``, instead
    of the whole input, which otherwise stays alive until the backward pass. That took the
    compiled Fashion-MNIST training step (batch 128, compiled with XLA's default options at
    the time) from 23.7 to 18.2 MB with ReLU and from 30.7 to 25.6 MB with CPAF-sigmoid, and
    the step was no slower (``python -m benchmarks``, sections 2-3). Ties share the gradient
    equally, as ``jax.grad`` of ``jnp.max`` does.

    The max and the bits come from one variadic reduction. Computed as a max followed by a
    comparison with it, they made XLA evaluate the activation before the pool twice per
    element: the Fashion-MNIST step with CPAF-ReLU took 15.9 ms that way against 13.2 ms this
    way, with ReLU 10.9 against 9.9 ms (XLA:CPU, 2 cores, interleaved in one process).

    Args:
      x: ``[N, H, W, C]``.

    Returns:
      ``[N, H // 2, W // 2, C]``, ``x``'s dtype.
    """
    return jnp.max(_windows(x), axis=-1)


def _max_and_ties(acc, new):
    # Reducer over (value, bit set) pairs: the larger value keeps its bits, equal values pool
    # theirs. Associative and commutative, so XLA may reduce the window in any order.
    (m1, b1), (m2, b2) = acc, new
    bits = jnp.where(m1 > m2, b1, jnp.where(m2 > m1, b2, b1 | b2))
    return jnp.maximum(m1, m2), bits


def _max_pool_fwd(x: Array):
    # One variadic reduction yields the max and the bits together, so whatever produced x
    # (an activation XLA fuses into this loop) is evaluated once per element, not once for
    # the max and again for the comparison with it.
    win = _windows(x)
    onehot = jnp.broadcast_to(jnp.uint8(1) << jnp.arange(4, dtype=jnp.uint8), win.shape)
    init = (jnp.array(-jnp.inf, x.dtype), jnp.uint8(0))
    out, bits = jax.lax.reduce((win, onehot), init, _max_and_ties, (4,))
    return out, (bits, x.shape)


def _max_pool_bwd(res, g: Array):
    bits, shape = res
    n, h, w, c = shape
    h2, w2 = h // 2, w // 2
    hit = ((bits[..., None] >> jnp.arange(4, dtype=jnp.uint8)) & 1).astype(g.dtype)
    share = hit * (g / jnp.sum(hit, axis=-1))[..., None]  # [N, H2, W2, C, 4]
    dx = share.reshape(n, h2, w2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(n, 2 * h2, 2 * w2, c)
    if (2 * h2, 2 * w2) != (h, w):
        dx = jnp.pad(dx, ((0, 0), (0, h - 2 * h2), (0, w - 2 * w2), (0, 0)))
    return (dx,)


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


def conv_output_shape(hw: tuple[int, int], kernel: int, padding: str) -> tuple[int, int]:
    """Spatial output size of a stride-1 convolution."""
    if padding == "SAME":
        return hw
    return (hw[0] - kernel + 1, hw[1] - kernel + 1)
