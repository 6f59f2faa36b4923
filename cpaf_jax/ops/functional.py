"""CPAF as pure functions: one parametric term, the k-term sum, and its implementations.

Shapes follow NumPy broadcasting with the term axis last:

* ``y``: any shape ``[..., *F]`` (channels last for conv features), any float dtype.
* ``a``, ``b``: ``[*P, k]`` where ``P`` broadcasts against the trailing axes of ``y``:
  ``(k,)`` shares one set of terms over everything, ``(C, k)`` is per channel for
  channels-last ``y``, ``(H, W, C, k)`` is per element.
* output: ``y``'s shape and dtype.

Four implementations compute the same function and gradients:

* ``"custom_vjp"`` (the default): the k terms unrolled into one elementwise expression; the
  backward pass saves only ``(y, a, b)``, recomputes ``f(y - b_i) - offset`` and ``f'(y - b_i)``
  and applies the closed forms. The 2k parameter gradients are reduced to ``a``'s shape by
  *one* variadic reduction, so ``y`` and the cotangent are read once for all of them and no
  activation-sized temporary is written. On XLA:CPU this is what makes CPAF cheap: 2k separate
  batch reductions each materialise their inputs (``BENCHMARKS.md`` section 1 times both).
* ``"custom_vjp_per_term"``: the same custom VJP with one ``jnp.sum`` per parameter gradient
  (the previous default; kept to measure against).
* ``"unrolled"``: the same forward, differentiated by JAX's autodiff.
* ``"naive"``: broadcast ``y[..., None]`` against ``[..., k]`` parameters and sum; the
  literal reading of Eq. 7-9, kept as a reference.

``benchmarks/activation.py`` measures them against each other and against ReLU.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from cpaf_jax.ops.bases import Base, resolve_base
from cpaf_jax.ops.vma import match_vma

Array = jax.Array
BaseLike = str | Base | Callable[[Array], Array]

IMPLEMENTATIONS = ("custom_vjp", "custom_vjp_per_term", "unrolled", "naive")
DEFAULT_IMPLEMENTATION = "custom_vjp"


# --------------------------------------------------------------------------------------------
# Validation (runs at trace time: shapes and dtypes are static).


def _check_float(name: str, x: Array) -> None:
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"cpaf: {name} must be a floating array, got dtype {x.dtype}")


def check_param_suffix(
    fn: str,
    x_shape,
    p_shape,
    full_shape,
    *,
    what: str = "parameters",
    arg: str = "y",
    expected: str = "[*P, k]",
    examples: str = "",
) -> None:
    """Checks that a parameter's feature shape ``P`` broadcasts against ``x`` without enlarging it.

    Shared by CPAF and the other parametric activations: ``P`` (the parameter shape without its
    coefficient axis) must be a suffix of ``x``'s shape, each axis equal or 1.

    Args:
      fn: the calling function's name, for the message.
      x_shape: shape of the input, ``[..., *F]``.
      p_shape: the parameter's feature shape ``P``.
      full_shape: the parameter's whole shape (``P`` plus any coefficient axis), for the message.
      what, arg, expected, examples: wording of the message (what the parameters are called, the
        input's name, the expected layout, example shapes).

    Raises:
      ValueError: ``P`` has more axes than ``x``, or an axis that is neither 1 nor ``x``'s.
    """
    x_shape, p_shape, full = tuple(x_shape), tuple(p_shape), tuple(full_shape)
    eg = f", e.g. {examples}" if examples else ""
    if len(p_shape) > len(x_shape):
        raise ValueError(
            f"{fn}: {what} of shape {full} have more feature axes than {arg}{x_shape}; "
            f"{what} are {expected} with P matching the trailing axes of {arg}"
        )
    for i, (pd, xd) in enumerate(zip(reversed(p_shape), reversed(x_shape), strict=False)):
        if pd not in (1, xd):
            axis = len(x_shape) - 1 - i
            raise ValueError(
                f"{fn}: {what} of shape {full} do not broadcast against {arg}{x_shape}: axis "
                f"{axis} of {arg} has size {xd} but the parameters have {pd} there. Expected "
                f"{expected} with P a suffix of {arg}'s shape (or 1s){eg}"
            )


def check_params(y: Array, a: Array, b: Array) -> int:
    """Checks CPAF inputs and returns k, the number of terms.

    Raises:
      ValueError: if ``a`` and ``b`` differ in shape, have no term axis, have ``k = 0``, or
        do not broadcast against ``y[..., None]`` without enlarging ``y``.
    """
    a_shape, b_shape, y_shape = tuple(a.shape), tuple(b.shape), tuple(y.shape)
    if a_shape != b_shape:
        raise ValueError(
            f"cpaf: a and b must have the same shape [..., k], got a{a_shape} and b{b_shape}"
        )
    if len(a_shape) == 0:
        raise ValueError(
            "cpaf: a and b need a trailing term axis of size k, e.g. shape (k,), (C, k) or "
            "(H, W, C, k); got scalars (use cpaf_jax.parametric for a single scalar term)"
        )
    k = a_shape[-1]
    if k == 0:
        raise ValueError("cpaf: k = 0 terms (a and b have an empty last axis); k must be >= 1")
    check_param_suffix(
        "cpaf",
        y_shape,
        a_shape[:-1],
        a_shape,
        expected="[*P, k]",
        examples=f"{y_shape[-1:] + (k,)} per channel or {y_shape[1:] + (k,)} per element",
    )
    return k


def _prepare(y, a, b):
    y, a, b = jnp.asarray(y), jnp.asarray(a), jnp.asarray(b)
    _check_float("y", y)
    _check_float("a", a)
    _check_float("b", b)
    k = check_params(y, a, b)
    return y, a, b, k


def _compute_dtype(y: Array, a) -> jnp.dtype:
    # Low-precision activations are computed in float32 inside the fused kernel, which costs
    # nothing on memory traffic and keeps sums of k terms accurate. ``a`` is an array or a dtype
    # (``parametric`` passes the parameters' result dtype).
    dt = jnp.result_type(y.dtype, getattr(a, "dtype", a))
    if jnp.finfo(dt).bits < 32:
        dt = jnp.float32
    return dt


def _unbroadcast(x: Array, shape: tuple[int, ...]) -> Array:
    """Sums ``x`` over the axes that broadcasting added or expanded to reach it from ``shape``."""
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and x.shape[lead + i] != 1
    )
    if axes:
        x = jnp.sum(x, axis=axes)
    return x.reshape(shape)


def _reduced_axes(x_shape: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    lead = len(x_shape) - len(shape)
    return tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and x_shape[lead + i] != 1
    )


def _add_tuples(xs, ys):
    return tuple(x + y for x, y in zip(xs, ys, strict=True))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _sum_many(xs: tuple[Array, ...], axes: tuple[int, ...]) -> tuple[Array, ...]:
    """``tuple(jnp.sum(x, axes) for x in xs)`` as one variadic reduction (one pass over inputs).

    XLA fuses the elementwise producers of every operand into that single reduction loop.
    """
    zeros = tuple(jnp.zeros((), x.dtype) for x in xs)
    return tuple(jax.lax.reduce(tuple(xs), zeros, _add_tuples, axes))


@_sum_many.defjvp
def _sum_many_jvp(axes, primals, tangents):
    # A variadic reduce has no autodiff rule; sums are linear, so plain (transposable) sums
    # carry the tangents. Only higher-order derivatives of cpaf go through here.
    (xs,), (ts,) = primals, tangents
    return _sum_many(xs, axes), tuple(jnp.sum(t, axis=axes) for t in ts)


_SPLIT = 8
_MIN_ROWS_TO_SPLIT = 1024


def _sum_leading_rows(xs: tuple[Array, ...]) -> tuple[Array, ...]:
    """Sums same-shaped ``[N, K]`` arrays over their rows, ``_SPLIT`` rows at a time.

    XLA:CPU reduces ``[N, K] -> [K]`` in one pass as K strided columns, which is slow when N is
    large. Folding the rows in stages, ``[8, N/8, K] -> [N/8, K]`` while N is a multiple of 8
    and at least 64, then one final column sum, made the per-channel CPAF parameter
    gradients and the CIFAR Structure 1 step with per-channel CPAF faster on XLA:CPU
    (history: measured against the one-pass sum it replaced in commit 4e6b5f5).
    Only the first stage reads the activation-sized inputs; later stages read 1/8 as much.
    The partial sums cost memory, ``N/8 * K`` per gradient, and with per-element parameters
    (N = batch) the whole Fashion-MNIST step was no faster, so ``_unbroadcast_many`` folds
    only when there are at least ``_MIN_ROWS_TO_SPLIT`` rows.
    """
    n = xs[0].shape[0]
    while n % _SPLIT == 0 and n >= 8 * _SPLIT:
        xs = _sum_many(tuple(x.reshape((_SPLIT, n // _SPLIT) + x.shape[1:]) for x in xs), (0,))
        n //= _SPLIT
    return _sum_many(tuple(xs), (0,))


def materialize(x: Array) -> Array:
    """``x``, computed once into its own buffer instead of inside each loop that reads it.

    XLA fuses cheap elementwise producers into every consumer but does not fuse a reduction
    into the loops that read it, so this exact sum (``x + 0`` over a stacked axis) makes XLA
    write ``x`` once. On XLA:CPU reduction loops are not vectorised: whatever is fused into them
    runs one element at a time, so a cotangent that a sum over the batch reads is cheaper
    computed beforehand, in a vectorised loop.

    Args:
      x: any shape and dtype.

    Returns:
      ``x``, same shape, dtype and values.
    """
    return jnp.sum(jnp.stack([x, jnp.zeros_like(x)]), axis=0)


def _stages_rows(x_shape: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether ``_unbroadcast_many`` sums ``x_shape`` to ``shape`` in stages over leading rows."""
    axes = _reduced_axes(x_shape, shape)
    r = len(axes)
    n = math.prod(x_shape[:r])
    return bool(axes) and axes == tuple(range(r)) and n % _SPLIT == 0 and n >= _MIN_ROWS_TO_SPLIT


def _unbroadcast_many(xs: list[Array], shape: tuple[int, ...]) -> list[Array]:
    """``[_unbroadcast(x, shape) for x in xs]`` for same-shaped ``xs``, in one reduction."""
    x_shape = tuple(xs[0].shape)
    axes = _reduced_axes(x_shape, shape)
    if not axes:
        return [x.reshape(shape) for x in xs]
    if _stages_rows(x_shape, shape):
        # The summed axes lead (batch; batch and space for per-channel or shared parameters):
        # view them as rows of an [N, K] matrix and fold the rows in stages.
        rows = tuple(x.reshape(math.prod(x_shape[: len(axes)]), -1) for x in xs)
        return [s.reshape(shape) for s in _sum_leading_rows(rows)]
    return [s.reshape(shape) for s in _sum_many(tuple(xs), axes)]


# --------------------------------------------------------------------------------------------
# One term.


def parametric(y: Array, a, b, base: BaseLike = "sigmoid") -> Array:
    """One parametric term ``s_(a,b)(y) = a * (f(y - b) - offset)`` (Eq. 2, 3).

    Args:
      y: input, any shape, floating dtype.
      a: scale; scalar or array broadcasting against ``y``.
      b: location; scalar or array broadcasting against ``y``.
      base: ``"sigmoid"`` (Eq. 2), ``"relu"`` (Eq. 3), ``"tanh"``, a ``Base`` or an
        elementwise callable (offset 0). See ``cpaf_jax.ops.bases``.

    Returns:
      ``y``'s dtype, the broadcast shape of ``y``, ``a`` and ``b`` (``y``'s shape when the
      parameters broadcast against it).
    """
    base = resolve_base(base)
    y = jnp.asarray(y)
    _check_float("y", y)
    a, b = jnp.asarray(a), jnp.asarray(b)
    dt = _compute_dtype(y, jnp.result_type(a, b) if a.ndim or b.ndim else y)
    u = y.astype(dt) - b.astype(dt)
    return (a.astype(dt) * (base.fn(u) - base.offset)).astype(y.dtype)


# --------------------------------------------------------------------------------------------
# The k-term sum, three ways.


def _centered_terms_and_sum(yc: Array, a: Array, b: Array, base: Base) -> tuple[list[Array], Array]:
    """The k centred terms ``f(yc - b_i) - offset`` and ``z = sum_i a_i * term_i``, unrolled.

    ``yc`` is already in the compute dtype; results are in that dtype.
    """
    dt = yc.dtype
    hs, z = [], None
    for i in range(a.shape[-1]):
        h = base.centered(yc - b[..., i].astype(dt))
        term = a[..., i].astype(dt) * h
        hs.append(h)
        z = term if z is None else z + term
    return hs, z


def _forward_unrolled(y: Array, a: Array, b: Array, base: Base) -> Array:
    _, z = _centered_terms_and_sum(y.astype(_compute_dtype(y, a)), a, b, base)
    return z.astype(y.dtype)


def _forward_naive(y: Array, a: Array, b: Array, base: Base) -> Array:
    dt = _compute_dtype(y, a)
    u = y.astype(dt)[..., None] - b.astype(dt)
    return jnp.sum(a.astype(dt) * (base.fn(u) - base.offset), axis=-1).astype(y.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _cpaf_custom(y: Array, a: Array, b: Array, base: Base) -> Array:
    return _forward_unrolled(y, a, b, base)


def _cpaf_custom_fwd(y, a, b, base):
    # Only the inputs are saved: f(y - b_i) is cheaper to recompute than to store k
    # activation-sized tensors.
    return _forward_unrolled(y, a, b, base), (y, a, b)


def _cpaf_custom_bwd(base, res, g):
    y, a, b = res
    dt = _compute_dtype(y, a)
    p_shape = a.shape[:-1]
    if _stages_rows(tuple(y.shape), p_shape):
        # What produced g (a pool's backward, batch norm's, dropout's mask) would otherwise be
        # recomputed inside the staged sums, one element at a time, which slowed the CIFAR
        # Structure 1 step with per-channel CPAF (history: measured in commit 738c491).
        g = materialize(g)
    yc, gc = y.astype(dt), g.astype(dt)
    k = a.shape[-1]
    gy = None
    per_a, per_b = [], []
    for i in range(k):
        ai = a[..., i].astype(dt)
        fc, df = base.centered_and_df(yc - b[..., i].astype(dt))
        t = gc * df
        gy = ai * t if gy is None else gy + ai * t
        per_a.append(gc * fc)
        per_b.append(t)
    # One pass over (y, g) for all 2k parameter gradients; a_i is constant along the reduced
    # axes, so it multiplies the b-gradient after the reduction.
    sums = _unbroadcast_many(per_a + per_b, p_shape)
    ga = jnp.stack(sums[:k], axis=-1).astype(a.dtype)
    gb = (-a.astype(dt) * jnp.stack(sums[k:], axis=-1)).astype(b.dtype)
    return gy.astype(y.dtype), ga, gb


_cpaf_custom.defvjp(_cpaf_custom_fwd, _cpaf_custom_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _cpaf_custom_per_term(y: Array, a: Array, b: Array, base: Base) -> Array:
    return _forward_unrolled(y, a, b, base)


def _cpaf_custom_per_term_bwd(base, res, g):
    y, a, b = res
    dt = _compute_dtype(y, a)
    yc, gc = y.astype(dt), g.astype(dt)
    p_shape = a.shape[:-1]
    gy = None
    ga, gb = [], []
    for i in range(a.shape[-1]):
        ai = a[..., i].astype(dt)
        u = yc - b[..., i].astype(dt)
        fu = base.fn(u)
        t = gc * base.df(u, fu)
        gy = ai * t if gy is None else gy + ai * t
        ga.append(_unbroadcast(gc * (fu - base.offset), p_shape))
        # a_i is constant along the reduced axes, so it is applied after the reduction.
        gb.append(-ai * _unbroadcast(t, p_shape))
    gy = gy.astype(y.dtype)
    ga = jnp.stack(ga, axis=-1).astype(a.dtype)
    gb = jnp.stack(gb, axis=-1).astype(b.dtype)
    return gy, ga, gb


_cpaf_custom_per_term.defvjp(_cpaf_custom_fwd, _cpaf_custom_per_term_bwd)


def cpaf(
    y: Array,
    a: Array,
    b: Array,
    base: BaseLike = "sigmoid",
    *,
    implementation: str | None = None,
) -> Array:
    """Combined parametric activation ``z = sum_i a_i * (f(y - b_i) - offset)`` (Eq. 7-9).

    Args:
      y: pre-activation, shape ``[..., *F]``, floating dtype (float32, bfloat16, float64...).
      a: scales, shape ``[*P, k]`` with ``P`` broadcasting against the trailing axes of ``y``:
        ``(k,)`` shared, ``(C, k)`` per channel, ``(*F, k)`` per element.
      b: locations, same shape as ``a``.
      base: ``"sigmoid"`` (Eq. 2), ``"relu"`` (Eq. 3), ``"tanh"``, a ``cpaf_jax.Base`` or any
        elementwise callable; see ``cpaf_jax.ops.bases`` for the offset of each.
      implementation: ``"custom_vjp"`` (default), ``"custom_vjp_per_term"``, ``"unrolled"`` or
        ``"naive"``; all give the same values and gradients, they differ in speed and memory.

    Returns:
      ``z``, with ``y``'s shape and dtype.

    Raises:
      ValueError: at trace time, for ``a``/``b`` shapes that differ, ``k = 0``, parameters that
        do not broadcast against ``y``, an unknown base or implementation.
    """
    base = resolve_base(base)
    y, a, b, _ = _prepare(y, a, b)
    y, a, b = match_vma(y, a, b)  # replicated a, b under a batch-split shard_map
    impl = implementation or DEFAULT_IMPLEMENTATION
    if impl == "custom_vjp":
        return _cpaf_custom(y, a, b, base)
    if impl == "custom_vjp_per_term":
        return _cpaf_custom_per_term(y, a, b, base)
    if impl == "unrolled":
        return _forward_unrolled(y, a, b, base)
    if impl == "naive":
        return _forward_naive(y, a, b, base)
    raise ValueError(f"cpaf: unknown implementation {impl!r}; choose one of {IMPLEMENTATIONS}")


def cpaf_terms(y: Array, a: Array, b: Array, base: BaseLike = "sigmoid") -> Array:
    """The k terms ``z_i = s_(a_i,b_i)(y)`` before summing.

    Returns:
      shape ``y.shape + (k,)``, ``y``'s dtype. Materialises ``k`` copies of ``y``: meant for
      inspection and the closed forms, not for training.
    """
    base = resolve_base(base)
    y, a, b, _ = _prepare(y, a, b)
    dt = _compute_dtype(y, a)
    u = y.astype(dt)[..., None] - b.astype(dt)
    return (a.astype(dt) * (base.fn(u) - base.offset)).astype(y.dtype)


# --------------------------------------------------------------------------------------------
# Closed-form partial derivatives (Eq. 10-12 and their counterparts for other bases).


def cpaf_partials(
    y: Array, a: Array, b: Array, base: BaseLike = "sigmoid"
) -> tuple[Array, Array, Array]:
    """Elementwise partial derivatives of ``z = cpaf(y, a, b)``.

    For the sigmoid base, with ``s_i = sigmoid(y - b_i)`` (Eq. 10-12, in the form that does not
    divide by ``a_i`` and so stays finite at ``a_i = 0``)::

        dz/dy   = sum_i a_i s_i (1 - s_i)
        dz/da_i = s_i - 1/2
        dz/db_i = -a_i s_i (1 - s_i)

    For the ReLU base, with ``h_i = [y > b_i]``::

        dz/dy   = sum_i a_i h_i
        dz/da_i = relu(y - b_i) - 1/2
        dz/db_i = -a_i h_i

    and in general ``dz/da_i = f(y - b_i) - offset``, ``dz/db_i = -a_i f'(y - b_i)``.

    Args:
      y: shape ``[..., *F]``.
      a, b: shape ``[*P, k]``.
      base: as in ``cpaf``.

    Returns:
      ``(dz_dy, dz_da, dz_db)`` with shapes ``y.shape``, ``y.shape + (k,)``, ``y.shape + (k,)``:
      the derivative at each element, before any reduction over the batch. The gradient of a
      loss follows by multiplying with the upstream cotangent and summing over the axes the
      parameters are shared along.
    """
    base = resolve_base(base)
    y, a, b, _ = _prepare(y, a, b)
    dt = _compute_dtype(y, a)
    u = y.astype(dt)[..., None] - b.astype(dt)
    fu = base.fn(u)
    dfu = base.df(u, fu)
    ac = a.astype(dt)
    dz_da = jnp.broadcast_to(fu - base.offset, u.shape)
    dz_db = -ac * dfu
    dz_dy = jnp.sum(ac * dfu, axis=-1)
    return dz_dy.astype(y.dtype), dz_da.astype(a.dtype), dz_db.astype(b.dtype)


def paper_sigmoid_partials(y: Array, a: Array, b: Array) -> tuple[Array, Array, Array]:
    """Eq. 10-12 of the paper exactly as written, in terms of the terms ``z_i``::

        dz/da_i = sigmoid(y - b_i) - 1/2
        dz/db_i = (4 z_i^2 - a_i^2) / (4 a_i)
        dz/dy   = sum_i (a_i^2 - 4 z_i^2) / (4 a_i)

    These divide by ``a_i`` and are undefined at ``a_i = 0``; ``cpaf_partials`` is the form to
    use. Kept to check that the two agree wherever ``a_i != 0``.

    Args:
      y: shape ``[..., *F]``; a, b: shape ``[*P, k]``, every ``a_i != 0``.

    Returns:
      as ``cpaf_partials``: ``dz/dy`` with ``y``'s shape, ``dz/da`` and ``dz/db`` of shape
      ``y.shape + (k,)``.
    """
    y, a, b, _ = _prepare(y, a, b)
    z = cpaf_terms(y, a, b, "sigmoid")
    dz_da = jax.nn.sigmoid(y[..., None] - b) - 0.5
    dz_db = (4 * z * z - a * a) / (4 * a)
    dz_dy = jnp.sum((a * a - 4 * z * z) / (4 * a), axis=-1)
    return dz_dy, dz_da, dz_db
