"""Sums of parameter gradients over the axes a parameter is shared along, shaped for XLA:CPU.

A parametric activation's parameter gradient is an elementwise product (the cotangent times a
partial derivative) summed over the batch, and for shared parameters over space as well. On
XLA:CPU how that sum is written decides what it costs:

* one reduction over many rows (``[N, M] -> [M]`` with the producer fused in) is emitted as a
  scalar loop per output element;
* a reduction over at most 8 rows with a few outputs is unrolled and vectorised along the
  kept axis (seen in the emitted LLVM IR), so ``RowPlan.sums`` folds the rows 8 at a time, a few
  gradients per reduction, until few rows remain;
* with few kept elements (per channel: ``M = C``; shared: ``M = 1``) the vector lanes would go
  unused, so rows are first regrouped into wider ones (``[N, M] -> [N / f, f * M]``) and the
  ``f`` partial sums added at the end; otherwise the kept axes stay as they are, so that an
  input's producer fused into the sums (a max-pool's backward) needs no index arithmetic.
* a single sum's stages would be merged back into one reduction by XLA, so a lone gradient
  (a one-parameter activation's, ``cpaf_jax.ops.closed_vjp``) over unregrouped rows is summed
  as two halves of its rows in one variadic reduction (``_fold``'s ``split``).

Every function here is exact (sums in another order: float rounding only) and differentiable.
``python -m benchmarks --only activation`` measures the layer built on them (section 1).

``unbroadcast_many`` serves any parametric activation's parameter gradients from its list of
per-element products and the parameter's shape. On CPU, CPAF and the activations whose records
name a form of the one-pass kernel compute theirs in it instead (``cpaf_jax.ops.kernel_vjp``),
which uses ``row_plan``'s view.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

Array = jax.Array

#: Rows summed per stage: XLA:CPU unrolls and vectorises a reduction over at most this many.
STAGE = 8
#: Gradients summed by one reduction: more outputs per loop stopped it from vectorising.
GROUP = 4
#: Regroup rows until a row has at least this many elements (vector lanes times unrolling).
MIN_COLUMNS = 128


def _add_tuples(xs, ys):
    return tuple(x + y for x, y in zip(xs, ys, strict=True))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def sum_many(xs: tuple[Array, ...], axes: tuple[int, ...]) -> tuple[Array, ...]:
    """``tuple(jnp.sum(x, axes) for x in xs)`` as one variadic reduction (one pass over inputs).

    Args:
      xs: same-shaped arrays.
      axes: the axes to sum over.

    Returns:
      one sum per input, each of ``xs[0]``'s shape without ``axes``, in its input's dtype.
    """
    zeros = tuple(jnp.zeros((), x.dtype) for x in xs)
    return tuple(jax.lax.reduce(tuple(xs), zeros, _add_tuples, axes))


@sum_many.defjvp
def _sum_many_jvp(axes, primals, tangents):
    # A variadic reduce has no autodiff rule; sums are linear, so plain (transposable) sums
    # carry the tangents. Only higher-order derivatives go through here.
    (xs,), (ts,) = primals, tangents
    return sum_many(xs, axes), tuple(jnp.sum(t, axis=axes) for t in ts)


@jax.custom_jvp
def materialize(x: Array) -> Array:
    """``x``, computed once into its own buffer instead of inside each loop that reads it.

    XLA fuses cheap elementwise producers into every consumer but does not fuse a reduction
    into the loops that read it, so this exact reduction (``x * 1`` over a stacked axis) makes
    XLA write ``x`` once, fused with whatever produces it. It is a product, not a sum: with
    XLA:CPU's default (YNN) fusions an add, max or min reduction over a large input goes to
    YNNPACK, which wrote the stacked pair out and summed it again on one thread (most of
    CPAF's cost over ReLU in a plain-JAX step under ``jax.jit``); a product reduction stays
    XLA's own loop, fused with its producer, under every setting.

    Args:
      x: any shape and dtype.

    Returns:
      ``x``, same shape, dtype and values (``-0.0`` and NaNs included).
    """
    return jnp.prod(jnp.stack([x, jnp.ones_like(x)]), axis=0)


@materialize.defjvp
def _materialize_jvp(primals, tangents):
    # The identity's tangent; written once as well when the tangent is a large array.
    (x,), (t,) = primals, tangents
    return materialize(x), t


@jax.custom_jvp
def materialize_pair(x: Array, y: Array) -> tuple[Array, Array]:
    """``(x, y)``, both written by one loop: ``materialize`` for two same-shaped arrays.

    One variadic product reduction, so that two arrays computed from the same operands (CPAF's
    output and its input, both from a convolution plus a bias) are written in one pass over
    those operands instead of two.

    Args:
      x, y: arrays of one shape (any dtypes).

    Returns:
      ``(x, y)``, their shapes, dtypes and values.
    """
    ops = (jnp.stack([x, jnp.ones_like(x)]), jnp.stack([y, jnp.ones_like(y)]))
    inits = (jnp.ones((), x.dtype), jnp.ones((), y.dtype))
    return tuple(jax.lax.reduce(ops, inits, _products, (0,)))


def _products(acc, new):
    return acc[0] * new[0], acc[1] * new[1]


@materialize_pair.defjvp
def _materialize_pair_jvp(primals, tangents):
    return materialize_pair(*primals), tangents


def reduced_axes(x_shape: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes of ``x_shape`` that broadcasting added or expanded to reach it from ``shape``."""
    lead = len(x_shape) - len(shape)
    return tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and x_shape[lead + i] != 1
    )


def _regroup(n: int, m: int) -> int:
    """The factor ``f`` (a power of 2 dividing ``n``) that widens ``[n, m]`` rows to
    ``[n / f, f * m]``, keeping at least ``STAGE`` rows."""
    f = 1
    while f * m < MIN_COLUMNS and n % (2 * f) == 0 and n // (2 * f) >= STAGE:
        f *= 2
    return f


def _fold(group: tuple[Array, ...], split: bool = False) -> tuple[Array, ...]:
    """Same-shaped ``[R, M]`` arrays summed over their rows, ``STAGE`` rows per reduction.

    ``split``: a single array is summed as its two halves of rows in one variadic reduction.
    XLA merges the stages of a single reduction back into one, which XLA:CPU runs after
    writing out its fused product (with YNN fusions on, in YNNPACK); two halves keep the
    stages with the product fused into the first (measured faster on rows of a layer's
    elements; slower on regrouped rows).
    """
    r = group[0].shape[0]
    if split and len(group) == 1 and r % 2 == 0 and r >= 2 * STAGE:
        half = r // 2
        top, bottom = _fold((group[0][:half], group[0][half:]))
        return (top + bottom,)
    if r <= STAGE:
        return sum_many(group, (0,))
    rest = r % STAGE
    if rest:
        # The rows that do not fill a stage are summed on their own and added at the end.
        head = _fold(tuple(x[: r - rest] for x in group), split)
        tail = sum_many(tuple(x[r - rest :] for x in group), (0,))
        return tuple(h + t for h, t in zip(head, tail, strict=True))
    return _fold(sum_many(tuple(x.reshape((r // STAGE, STAGE, *x.shape[1:])) for x in group), (1,)))


@dataclasses.dataclass(frozen=True)
class RowPlan:
    """How an input ``[*L, *M]`` is viewed as rows to sum over its leading axes ``L``.

    The view is ``[rows, *M]``: the ``n = prod(L)`` summed rows with the kept axes as they
    are, so whatever produced the input (a max-pool's backward, say) maps onto it without
    index arithmetic. When a row is short (``m = prod(M)`` below ``MIN_COLUMNS``: per channel,
    shared) rows are regrouped ``f`` at a time into ``[n / f, f * m]`` instead, so that a row
    fills the vector lanes. Compute the per-element products in this view, with the parameters
    laid out by ``tile``, and sum them with ``sums``.

    Attributes:
      rows: rows of the view, ``n / f``.
      f: rows of the original grouped into one row of the view (1: not regrouped).
      kept: ``M``, the shape each sum is returned in.
    """

    rows: int
    f: int
    kept: tuple[int, ...]

    @property
    def row_shape(self) -> tuple[int, ...]:
        return self.kept if self.f == 1 else (self.f * math.prod(self.kept),)

    def view(self, x: Array) -> Array:
        """``[*L, *M] -> [rows, *row_shape]`` (a reshape, free)."""
        return x.reshape((self.rows, *self.row_shape))

    def tile(self, p: Array) -> Array:
        """Parameters ``[*P, k]`` (``P`` broadcasting to ``M``) -> ``[k, *row_shape]``,
        matching ``view``'s rows, term axis first, written once (``materialize``): read in
        place by the loops that use them, a strided term axis or a tiling costs index
        arithmetic per element."""
        k = p.shape[-1]
        # Over the kept axes P equals M; any longer P is 1 along the summed axes.
        p = jnp.moveaxis(p.reshape((*self.kept, k)), -1, 0)
        if self.f > 1:
            p = jnp.tile(p.reshape(k, -1), (1, self.f))
        return materialize(p)

    def sums(self, xs: list[Array]) -> list[Array]:
        """Same-shaped ``[rows, *row_shape]`` arrays summed over the original's leading axes:
        one ``kept``-shaped sum per input, ``GROUP`` of them per pass, ``STAGE`` rows per
        stage."""
        out = []
        for i in range(0, len(xs), GROUP):
            part = _fold(tuple(xs[i : i + GROUP]), split=self.f == 1)
            if self.f > 1:
                part = sum_many(tuple(s.reshape(self.f, -1) for s in part), (0,))
            out += [s.reshape(self.kept) for s in part]
        return out


def row_plan(x_shape: tuple[int, ...], p_shape: tuple[int, ...]) -> RowPlan | None:
    """The ``RowPlan`` for summing ``x_shape`` down to a parameter of shape ``p_shape``, or
    ``None`` when nothing is summed, the summed axes do not all lead (a parameter shared along
    an inner axis only), or the input is empty."""
    x_shape = tuple(x_shape)
    axes = reduced_axes(x_shape, tuple(p_shape))
    r = len(axes)
    if not axes or axes != tuple(range(r)) or not math.prod(x_shape):
        return None
    n, kept = math.prod(x_shape[:r]), x_shape[r:]
    f = _regroup(n, math.prod(kept))
    return RowPlan(rows=n // f, f=f, kept=kept)


def unbroadcast_many(xs: list[Array], shape: tuple[int, ...]) -> list[Array]:
    """``[sum of x over the axes broadcasting added to reach it from shape, for x in xs]``.

    The gradient of a parameter of shape ``shape`` used against a larger input: for
    same-shaped ``xs`` (per-element products of the cotangent and a partial derivative).
    When the summed axes lead (batch; batch and space for per-channel or shared parameters)
    they are summed as ``row_plan`` lays them out; otherwise (a parameter shared along an
    inner axis only) by one variadic reduction.

    Args:
      xs: same-shaped arrays ``[..., *F]``.
      shape: the parameter's shape, a suffix of ``F`` with 1s where it is shared.

    Returns:
      one array of ``shape`` per input, in its dtype.
    """
    x_shape = tuple(xs[0].shape)
    axes = reduced_axes(x_shape, shape)
    if not axes:
        return [x.reshape(shape) for x in xs]
    plan = row_plan(x_shape, shape)
    if plan is not None:
        return [s.reshape(shape) for s in plan.sums([plan.view(x) for x in xs])]
    return [s.reshape(shape) for s in sum_many(tuple(xs), axes)]
