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


def first_max(acc: tuple, new: tuple) -> tuple:
    """Reducer over ``(value, index, *carried)`` tuples: keeps the larger value, on a tie the
    smaller index, and the carried entries of whichever it keeps.

    NaN counts as larger than every number, so a window holding NaN pools to NaN, as
    ``jnp.max`` does. A total order on (value, index), hence associative and commutative:
    XLA may reduce a window in any order and still picks the first maximum.
    """
    (m1, i1, *c1), (m2, i2, *c2) = acc, new
    nan1, nan2 = jnp.isnan(m1), jnp.isnan(m2)
    same = (m1 == m2) | (nan1 & nan2)
    take = (m2 > m1) | (nan2 & ~nan1) | (same & (i2 < i1))
    return (
        jnp.where(take, m2, m1),
        jnp.where(take, i2, i1),
        *(jnp.where(take, b, a) for a, b in zip(c1, c2, strict=True)),
    )


def window_argmax(values: Array, *carried: Array) -> tuple[Array, ...]:
    """Max of each 2x2 window, which entry held it, and ``carried`` arrays at that entry.

    Args:
      values: ``[N, H, W, C]``.
      carried: arrays of ``values``' shape (any dtypes) to read at each window's maximum.

    Returns:
      ``(max, sel, *picked)``, each ``[N, H // 2, W // 2, C]``: ``max`` in ``values``' dtype,
      ``sel`` int8 in 0..3 (row-major position in the window, the first maximum on ties),
      ``picked`` in each carried array's dtype. All come from one variadic reduction, so
      whatever produced ``values`` and ``carried`` (an activation XLA fuses into the loop) is
      evaluated once per element.
    """
    wins = [_windows(x) for x in (values, *carried)]
    idx = jnp.broadcast_to(jnp.arange(4, dtype=jnp.int8), wins[0].shape)
    init = (jnp.array(-jnp.inf, values.dtype), jnp.int8(4)) + tuple(
        jnp.zeros((), x.dtype) for x in carried
    )
    operands = (wins[0], idx, *wins[1:])
    return tuple(jax.lax.reduce(operands, init, first_max, (4,)))


def scatter_to_windows(g: Array, sel: Array, shape: tuple[int, ...]) -> Array:
    """The 2x2 max-pool's backward: each ``g`` to its window's selected entry, zeros elsewhere.

    Args:
      g: ``[N, H // 2, W // 2, C]``, the cotangent of the pooled output.
      sel: int8, same shape, from ``window_argmax``.
      shape: ``(N, H, W, C)`` of the pool's input (odd edges get zeros).

    Returns:
      ``[N, H, W, C]`` in ``g``'s dtype.
    """
    n, h, w, c = shape
    h2, w2 = h // 2, w // 2
    # Built in the [N, H/2, 2, W/2, 2, C] view of the input, a reshape of [N, H, W, C] with no
    # transpose, so C stays the minor axis of every operand.
    entry = jnp.array([[0, 1], [2, 3]], sel.dtype).reshape(1, 1, 2, 1, 2, 1)
    hit = sel[:, :, None, :, None, :] == entry
    dx = jnp.where(hit, g[:, :, None, :, None, :], jnp.zeros((), g.dtype))
    dx = dx.reshape(n, 2 * h2, 2 * w2, c)
    if (2 * h2, 2 * w2) != (h, w):
        dx = jnp.pad(dx, ((0, 0), (0, h - 2 * h2), (0, w - 2 * w2), (0, 0)))
    return dx


@jax.custom_vjp
def max_pool_2x2(x: Array) -> Array:
    """2x2 max-pooling with stride 2 and VALID padding (odd edges dropped), NHWC.

    Written as reshape + max rather than ``lax.reduce_window``: on XLA:CPU the backward pass of
    ``reduce_window`` (what ``flax.linen.max_pool`` uses) was most of the Fashion-MNIST
    training step (history: commit eb30b3e), and the reshape form removes nearly all of it.

    The gradient goes to the first maximum of each window (row-major order) when several
    entries tie, as with ``flax.linen.max_pool`` (``jax.grad`` of ``reduce_window``) and
    PyTorch's ``max_pool2d``. The backward pass needs only which entry that was, so that is all
    the forward pass keeps: an int8 ``[N, H//2, W//2, C]`` rather than the whole input.

    Max and position come from one variadic reduction (``window_argmax``). Computed as a max
    followed by a comparison with it, they made XLA evaluate the activation before the pool
    twice per element, which slowed the Fashion-MNIST step with CPAF-ReLU and with ReLU on
    XLA:CPU (history: measured interleaved in one process in commit b8785fc; section 2 of
    ``BENCHMARKS.md`` gives the step's cost as it is).

    Args:
      x: ``[N, H, W, C]``.

    Returns:
      ``[N, H // 2, W // 2, C]``, ``x``'s dtype.
    """
    return window_argmax(x)[0]


def _max_pool_fwd(x: Array):
    out, sel = window_argmax(x)
    return out, (sel, x.shape)


def _max_pool_bwd(res, g: Array):
    sel, shape = res
    return (scatter_to_windows(g, sel, shape),)


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


def conv_output_shape(hw: tuple[int, int], kernel: int, padding: str) -> tuple[int, int]:
    """Spatial output size of a stride-1 convolution."""
    if padding == "SAME":
        return hw
    return (hw[0] - kernel + 1, hw[1] - kernel + 1)
