"""CPAF as pure functions: one parametric term, the k-term sum, and its implementations.

Shapes follow NumPy broadcasting with the term axis last:

* ``y``: any shape ``[..., *F]`` (channels last for conv features), any float dtype.
* ``a``, ``b``: ``[*P, k]`` where ``P`` broadcasts against the trailing axes of ``y``:
  ``(k,)`` shares one set of terms over everything, ``(C, k)`` is per channel for
  channels-last ``y``, ``(H, W, C, k)`` is per element.
* output: ``y``'s shape and dtype.

Four implementations compute the same function and gradients:

* ``"custom_vjp"`` (the default): the k terms unrolled into one elementwise expression; the
  backward pass saves only ``(y, a, b)`` and evaluates the closed forms (Eq. 10-12). On CPU,
  for float32 computations (bfloat16 and float16 inputs are computed in float32), the sigmoid
  and tanh bases and ``1 <= k <= 8``, it is one pass of the C++ kernel of
  ``cpaf_jax.ops.cpu_kernel`` over ``y`` and the cotangent that writes the input cotangent and
  accumulates the 2k parameter sums. Everywhere else (the ReLU base, whose terms are cheap
  enough that fusing the cotangent's producer wins; other backends, ``shard_map``, float64, a
  user's base, no compiler) it is the XLA backward of ``"xla_vjp"``; second derivatives always
  differentiate that one.
* ``"xla_vjp"``: the same custom VJP with the XLA backward: two passes over ``y`` and the
  cotangent, one writing the input cotangent, the other evaluating the terms again and summing
  the 2k parameter gradients over the axes the parameters are shared along, 8 rows at a time,
  a few gradients per pass (``cpaf_jax.ops.reductions``), which XLA:CPU runs as vector code. XLA
  fuses the cotangent's producer (a max-pool's backward) into both passes, which the kernel,
  needing it written out, cannot.
* ``"unrolled"``: the same forward, differentiated by JAX's autodiff (supports ``jax.jvp``).
* ``"naive"``: broadcast ``y[..., None]`` against ``[..., k]`` parameters and sum; the
  literal reading of Eq. 7-9, kept as a reference (supports ``jax.jvp``).

``benchmarks/activation.py`` measures them against each other and against ReLU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from cpaf_jax import host_memory
from cpaf_jax.ops import kernel_vjp
from cpaf_jax.ops import reductions as R
from cpaf_jax.ops.bases import BASES, RELU, Base, resolve_base
from cpaf_jax.ops.dtypes import compute_dtype
from cpaf_jax.ops.vma import match_vma

Array = jax.Array
BaseLike = str | Base | Callable[[Array], Array]

IMPLEMENTATIONS = ("custom_vjp", "xla_vjp", "unrolled", "naive")
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


def _unbroadcast(x: Array, shape: tuple[int, ...]) -> Array:
    """Sums ``x`` over the axes that broadcasting added or expanded to reach it from ``shape``."""
    axes = R.reduced_axes(tuple(x.shape), shape)
    if axes:
        x = jnp.sum(x, axis=axes)
    return x.reshape(shape)


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
    dt = compute_dtype(y, jnp.result_type(a, b) if a.ndim or b.ndim else y)
    u = y.astype(dt) - b.astype(dt)
    return (a.astype(dt) * (base.fn(u) - base.offset)).astype(y.dtype)


# --------------------------------------------------------------------------------------------
# The k-term sum, three ways.


def _centered_terms_and_sum(yc: Array, a: Array, b: Array, base: Base) -> tuple[list[Array], Array]:
    """The k centred terms ``f(yc - b_i) - offset`` and ``z = sum_i a_i * term_i``, unrolled.

    ``yc`` is already in the compute dtype; results are in that dtype.
    """
    dt = yc.dtype
    at, bt = _terms_first(a.astype(dt)), _terms_first(b.astype(dt))
    hs, z = [], None
    for i in range(a.shape[-1]):
        h = base.centered(yc - bt[i])
        term = at[i] * h
        hs.append(h)
        z = term if z is None else z + term
    return hs, z


def _forward_unrolled(y: Array, a: Array, b: Array, base: Base) -> Array:
    _, z = _centered_terms_and_sum(y.astype(compute_dtype(y, a)), a, b, base)
    return z.astype(y.dtype)


def _forward_naive(y: Array, a: Array, b: Array, base: Base) -> Array:
    dt = compute_dtype(y, a)
    u = y.astype(dt)[..., None] - b.astype(dt)
    return jnp.sum(a.astype(dt) * (base.fn(u) - base.offset), axis=-1).astype(y.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _cpaf_custom(y: Array, a: Array, b: Array, base: Base) -> Array:
    return _forward_unrolled(y, a, b, base)


def _cpaf_custom_fwd(y, a, b, base):
    # Only the inputs are saved: f(y - b_i) is cheaper to recompute than to store k
    # activation-sized tensors. With a transcendental base the output is written once
    # (``materialize``): fused into several consumers (a max-pool and its backward's mask),
    # XLA kept the k terms alive to the backward pass instead of z. On CPU it is written
    # together with y, which the backward reads: when y is computed (a convolution plus its
    # bias), XLA otherwise read the convolution's output twice, once for y and once for z, in
    # the plain-JAX 4.2 step of BENCHMARKS.md section 2b; where y is already a buffer of its
    # own (a layer timed alone, section 1b) this writes a copy of it. A ReLU base is cheap
    # enough for XLA to recompute z from y where it is needed, which keeps less alive; but on
    # CPU z is written once all the same (both custom VJPs share this forward): a reshape
    # max-pool's backward (max, tie count, select: three fusions) recomputed z in each, and
    # the plain-JAX 4.2 step was faster with z written once, for one more activation-sized
    # array (BENCHMARKS.md section 2b).
    z = _forward_unrolled(y, a, b, base)
    if base is not RELU:
        z, y = jax.lax.platform_dependent(
            z, y, cpu=R.materialize_pair, default=lambda z, y: (R.materialize(z), y)
        )
        return z, (y, a, b)
    return jax.lax.platform_dependent(z, cpu=R.materialize, default=lambda z: z), (y, a, b)


def _input_cotangent(base: Base, y: Array, g: Array, a: Array, b: Array) -> Array:
    """``sum_i a_i g f'(y - b_i)``, in ``y``'s (compute) dtype; ``a``, ``b`` are ``[k, ...]``
    (term axis first), broadcasting against ``y``."""
    gy = None
    for i in range(a.shape[0]):
        _, df = base.centered_and_df(y - b[i])
        term = a[i] * (g * df)
        gy = term if gy is None else gy + term
    return gy


def _parameter_summands(base: Base, y: Array, g: Array, b: Array) -> list[Array]:
    """``[g (f(y - b_0) - offset), g f'(y - b_0), g (f(y - b_1) - offset), ...]``: term i's two
    summands side by side, so that a reduction of ``GROUP`` sums evaluates 2 terms."""
    per = []
    for i in range(b.shape[0]):
        fc, df = base.centered_and_df(y - b[i])
        per += [g * fc, g * df]
    return per


def _terms_first(p: Array) -> Array:
    """``[*P, k] -> [k, *P]``, written once: sliced along its last axis inside a loop, the
    parameters cost strided index arithmetic per element."""
    return R.materialize(jnp.moveaxis(p, -1, 0))


def kernel_form(base: Base) -> kernel_vjp.KernelSpec | None:
    """The form of the CPU kernel that computes CPAF's backward with ``base``: the built-in
    sigmoid and tanh bases'; ``None`` for any other base.

    The ReLU base's backward is XLA's: XLA fuses whatever produced the cotangent (a max-pool's
    backward, say) into its two loops, while the kernel needs that cotangent written out first,
    and the plain-JAX 4.2 step of ``BENCHMARKS.md`` (section 2b's network) was faster
    without the kernel when both were timed; alone, with the cotangent given, the kernel's one
    pass is faster (section 1b's ``kernel`` rows). A transcendental base evaluates its terms
    once in the kernel against twice in XLA's loops, which outweighs writing the cotangent out.
    """
    if base is RELU or base is not BASES.get(base.name):
        return None
    return kernel_vjp.base_spec(base.name)


def _kernel_applies(base: Base, y: Array, a: Array) -> bool:
    """Whether the CPU kernel computes this backward: ``base`` has a ``kernel_form`` and the
    conditions of ``kernel_vjp.applies`` hold."""
    return kernel_vjp.applies(kernel_form(base), y, a, compute_dtype(y, a))


def _cpaf_custom_bwd(base, res, g):
    y, a, b = res
    if _kernel_applies(base, y, a):
        # The XLA backward on other backends and when differentiated again.
        return kernel_vjp.platform_backward(*_backwards_of(base), y, a, b, g)
    return _xla_bwd(base, y, a, b, g)


@functools.cache
def _backwards_of(base: Base):
    """``(kernel backward, XLA backward)`` with ``base`` bound, ``(y, a, b, g) -> (dy, da,
    db)``: one pair of objects per base, so jit's caches see one key. Only for a base with a
    ``kernel_form``."""
    kernel = functools.partial(kernel_vjp.terms_backward, kernel_form(base))
    return kernel, functools.partial(_xla_bwd, base)


def _xla_bwd(base: Base, y: Array, a: Array, b: Array, g: Array):
    dt = compute_dtype(y, a)
    p_shape = a.shape[:-1]
    plan = R.row_plan(tuple(y.shape), p_shape)
    if plan is not None:
        if plan.f > 1:
            # Regrouped rows mix the input's axes: what produced g (a pool's backward, batch
            # norm's, dropout's mask) would be recomputed in each pass with index arithmetic
            # per element; written once, each pass reads it in place.
            g = R.materialize(g)
        # Everything in the row view, the parameters broadcast along rows only.
        yv, gv, ac, bc = (
            plan.view(y),
            plan.view(g),
            plan.tile(a.astype(dt)),
            plan.tile(b.astype(dt)),
        )
    else:
        yv, gv, ac, bc = y, g, _terms_first(a.astype(dt)), _terms_first(b.astype(dt))
    # The input cotangent and the parameter sums each evaluate the terms, from values that
    # depend on g (y plus or minus 0 where g is not NaN; a NaN in g makes the gradients NaN
    # either way) and differ from each other. From y alone XLA evaluated the terms in the
    # forward pass and kept k activation-sized buffers alive to here; shared between the two,
    # it wrote each term out once and read it twice, slower than evaluating it twice.
    yc, gc = yv.astype(dt), gv.astype(dt)
    nan = jnp.where(jnp.isnan(gc), gc, 0)
    gy = _input_cotangent(base, yc + nan, gc, ac, bc).reshape(y.shape)
    y2, g2 = yc - nan, gc
    per = _parameter_summands(base, y2, g2, bc)
    if plan is not None:
        sums = [s.reshape(p_shape) for s in plan.sums(per)]
    else:
        sums = R.unbroadcast_many(per, p_shape)
    ga = jnp.stack(sums[0::2], axis=-1).astype(a.dtype)
    # a_i is constant along the summed axes, so it multiplies the b-gradient after the sums.
    gb = (-a.astype(dt) * jnp.stack(sums[1::2], axis=-1)).astype(b.dtype)
    return gy.astype(y.dtype), ga, gb


_cpaf_custom.defvjp(_cpaf_custom_fwd, _cpaf_custom_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _cpaf_custom_xla(y: Array, a: Array, b: Array, base: Base) -> Array:
    return _forward_unrolled(y, a, b, base)


def _cpaf_custom_xla_bwd(base, res, g):
    return _xla_bwd(base, *res, g)


_cpaf_custom_xla.defvjp(_cpaf_custom_fwd, _cpaf_custom_xla_bwd)


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
      implementation: ``"custom_vjp"`` (default; on CPU its backward is a one-pass kernel for
        the sigmoid and tanh bases),
        ``"xla_vjp"``, ``"unrolled"`` or ``"naive"``; all give the same values and gradients
        and differ in speed and memory; only the last two support forward-mode
        differentiation (``jax.jvp``).

    Returns:
      ``z``, with ``y``'s shape and dtype.

    Raises:
      ValueError: at trace time, for ``a``/``b`` shapes that differ, ``k = 0``, parameters that
        do not broadcast against ``y``, an unknown base or implementation.
    """
    base = resolve_base(base)
    y, a, b, _ = _prepare(y, a, b)
    y, a, b = match_vma(y, a, b)  # replicated a, b under a batch-split shard_map
    host_memory.keep_freed_memory_on()
    impl = implementation or DEFAULT_IMPLEMENTATION
    if impl == "custom_vjp":
        return _cpaf_custom(y, a, b, base)
    if impl == "xla_vjp":
        return _cpaf_custom_xla(y, a, b, base)
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
    dt = compute_dtype(y, a)
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
    dt = compute_dtype(y, a)
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
