"""An activation followed by 2x2 max-pooling, fused: how the paper's conv blocks end.

``max_pool_2x2(act(conv(x) + bias))`` is the tail of every pooled block of the 4.1 and 4.2
networks and of CIFAR Structure 2. Written as three steps, XLA keeps the whole
``[N, H, W, C]`` pre-activation for the backward pass, evaluates the activation's derivative
at all four entries of each window although only the selected one gets a gradient, and sums
the bias gradient over the full-size cotangent. Fused:

* ``cpaf_max_pool_2x2`` is one custom VJP. Its forward pass computes CPAF, pools, and keeps
  only ``y`` at each window's selected entry and which entry it was (int8), ``[N, H/2, W/2,
  C]``, a quarter of the input. The backward pass works at the pooled size: it recomputes the
  k terms ``f(y - b_i) - offset`` at the selected entries (a quarter of the forward pass's
  evaluations), sums the parameter gradients over the batch per window position, and the bias
  gradient over the pooled cotangent. With per-element parameters it does so in a loop over
  two halves of the batch, which keeps half the terms alive at a time and lets XLA:CPU
  vectorise the sums (``_per_element_bwd``).
* ``activation_max_pool_2x2`` asks the activation module: a module of an activation family
  (``cpaf_jax.activations.family.Activation``) uses its family's fused form (CPAF goes through
  ``cpaf_max_pool_2x2``; nondecreasing parameter-free functions, with which ``max`` commutes,
  pool first and activate a quarter of the elements); anything else is composed.

Section 3b of ``BENCHMARKS.md`` (``python -m benchmarks``) builds the Fashion-MNIST network of
4.2 both ways (``fuse_pooling=False`` composes) and gives the step time and compiled memory of
each.

On ties the gradient goes to the first maximum of the window, as in ``max_pool_2x2``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from cpaf_jax import host_memory
from cpaf_jax.ops import functional as F
from cpaf_jax.ops import reductions as R
from cpaf_jax.ops.bases import SIGMOID, TANH, Base, resolve_base
from cpaf_jax.ops.dtypes import compute_dtype
from cpaf_jax.ops.max_pool import max_pool_2x2, scatter_to_windows, window_argmax
from cpaf_jax.ops.vma import match_vma

Array = jax.Array

# Bases whose terms cost a transcendental per element (see ``_fused_bwd``).
_TRANSCENDENTAL = (SIGMOID, TANH)


def _check(y: Array, bias, a: Array, b: Array) -> None:
    if y.ndim != 4:
        raise ValueError(
            f"cpaf_max_pool_2x2: y must be [N, H, W, C] (channels last), got shape {y.shape}"
        )
    if y.shape[1] < 2 or y.shape[2] < 2:
        raise ValueError(
            f"cpaf_max_pool_2x2: y{tuple(y.shape)} is smaller than one 2x2 window; "
            "H and W must be at least 2"
        )
    if bias is not None and tuple(jnp.shape(bias)) not in ((), (y.shape[-1],)):
        raise ValueError(
            f"cpaf_max_pool_2x2: bias must have shape ({y.shape[-1]},) (one per channel) or be "
            f"a scalar, got shape {tuple(jnp.shape(bias))}"
        )


def cpaf_max_pool_2x2(
    y: Array, a: Array, b: Array, base: str | Base = "sigmoid", *, bias: Array | None = None
) -> Array:
    """``max_pool_2x2(cpaf(y + bias, a, b, base))`` as one custom VJP (see the module docstring).

    Args:
      y: ``[N, H, W, C]`` pre-activation (a convolution's output without its bias), floating.
      a, b: ``[*P, k]`` CPAF parameters, ``P`` a suffix of ``(H, W, C)`` as in ``cpaf``:
        ``(k,)`` shared, ``(C, k)`` per channel, ``(H, W, C, k)`` per element.
      base: as in ``cpaf``.
      bias: ``(C,)`` or scalar, added to ``y`` before the activation; ``None`` for none. Its
        gradient is summed at the pooled size, which is cheaper than after the pool's backward.

    Returns:
      ``[N, H // 2, W // 2, C]`` (odd edges dropped), the dtype of ``y + bias``.

    Raises:
      ValueError: ``y`` not 4-D or smaller than a window, a bias of another shape, or the
        parameter errors of ``cpaf``.
    """
    base = resolve_base(base)
    y, a, b, _ = F._prepare(y, a, b)
    _check(y, bias, a, b)
    if bias is None:
        bias = jnp.zeros((), y.dtype)
    else:
        bias = jnp.asarray(bias)
        F._check_float("bias", bias)
    if a.ndim - 1 > 3:
        # Parameters that vary over the batch as well: no window structure to exploit.
        return max_pool_2x2(F.cpaf(y + bias, a, b, base))
    # The custom VJP sees y and bias in the dtype of their sum; autodiff of the casts
    # returns each cotangent in its input's dtype.
    dtype = jnp.result_type(y, bias)
    y, bias, a, b = match_vma(y.astype(dtype), bias.astype(dtype), a, b)  # see ops/vma.py
    host_memory.keep_freed_memory_on()
    return _fused(y, bias, a, b, base)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _fused(y, bias, a, b, base):
    return _fused_fwd(y, bias, a, b, base)[0]


def _fused_fwd(y, bias, a, b, base):
    yb = y + bias
    dt = compute_dtype(yb, a)
    _, z = F._centered_terms_and_sum(yb.astype(dt), a, b, base)
    out, sel, picked = window_argmax(z.astype(yb.dtype), yb)
    return out, (picked, sel, bias, a, b, yb.shape)


def _spatial(p_shape: tuple[int, ...]) -> bool:
    """Whether parameters of feature shape ``P`` vary over H or W (per element, say)."""
    p3 = (1,) * (3 - len(p_shape)) + tuple(p_shape)
    return p3[0] != 1 or p3[1] != 1


def _window_params(p: Array, shape) -> list[list[Array]]:
    """``[*P, k]`` -> ``[j][i]``: term i's parameter at window entry j, each ``[H/2, W/2, C]``.

    The term axis goes first, in a copy XLA writes once (``materialize``): fused into each
    consumer, the transpose made every element pay strided index arithmetic in a loop that did
    not vectorise (history: measured in a profile and the Fashion-MNIST step when this copy
    was introduced, commit 5da5b6b; section 2 gives the step's cost with it).
    """
    _, h, w, c = shape
    h2, w2 = h // 2, w // 2
    k = p.shape[-1]
    t = R.materialize(jnp.moveaxis(jnp.broadcast_to(p, (h, w, c, k)), -1, 0))
    return [
        [t[i, dj : 2 * h2 : 2, dw : 2 * w2 : 2] for i in range(k)] for dj in (0, 1) for dw in (0, 1)
    ]


def _at_selected(wp, i: int, sel: Array) -> Array:
    """Term i's parameter at each window's selected entry: ``sel``'s shape.

    ``wp`` is ``_window_params``'s ``[entry][term]`` list, or a ``[*P, k]`` array of
    parameters that do not vary over H and W.
    """
    if not isinstance(wp, list):
        return wp[..., i]
    out = wp[3][i]
    for j in (2, 1, 0):
        out = jnp.where(sel == j, wp[j][i], out)
    return out


def _cotangents(g: Array, terms, a_at) -> tuple[Array, list[Array], list[Array]]:
    """From the k pairs ``(f_i, f'_i)`` at the selected entries (each ``g``'s shape): the input
    cotangent ``gy = sum_i a_i g f'_i`` and the summands of the parameter gradients, ``g f_i``
    (for ``a_i``) and ``g f'_i`` (for ``b_i``, times ``-a_i`` after summing). ``a_at(i)`` is
    ``a_i`` at the selected entries."""
    gy, per_a, per_b = None, [], []
    for i, (fc, df) in enumerate(terms):
        gdf = g * df
        term = a_at(i) * gdf
        gy = term if gy is None else gy + term
        per_a.append(g * fc)
        per_b.append(gdf)
    return gy, per_a, per_b


def _window_sums_to_params(sums, shape, p_shape, k: int) -> Array:
    """``sums[j * 2k + q]``, ``[H/2, W/2, C]`` per window entry j and gradient q, ->
    ``[*P, 2k]``: entry j of window (r, s) is element (2r + j // 2, 2s + j % 2)."""
    _, h, w, c = shape
    h2, w2 = h // 2, w // 2
    s = jnp.stack([jnp.stack(sums[j * 2 * k : (j + 1) * 2 * k], -1) for j in range(4)], -2)
    s = s.reshape(h2, w2, c, 2, 2, 2 * k).transpose(0, 3, 1, 4, 2, 5)
    s = s.reshape(2 * h2, 2 * w2, c, 2 * k)
    if (2 * h2, 2 * w2) != (h, w):
        s = jnp.pad(s, ((0, h - 2 * h2), (0, w - 2 * w2), (0, 0), (0, 0)))
    return F._unbroadcast(s, p_shape + (2 * k,))


def _sum_rows(xs: list[Array]) -> list[Array]:
    """Each ``[R, ...]`` array summed over its rows, in stages of 8 rows, 4 arrays at a time.

    XLA:CPU emits a sum over many rows as a scalar loop per output element, but unrolls and
    vectorises one over at most 8 rows when the reduction has few outputs: a sum of 17 arrays
    over 128 rows ran in one scalar loop; in groups of 4 over 8 rows it ran in 8-wide vector
    instructions (seen in the emitted LLVM IR).
    """
    out = []
    for i in range(0, len(xs), 4):
        group = tuple(xs[i : i + 4])
        r = group[0].shape[0]
        while r > 8 and r % 8 == 0:
            group = R.sum_many(tuple(x.reshape((r // 8, 8) + x.shape[1:]) for x in group), (1,))
            r //= 8
        out += R.sum_many(group, (0,))
    return out


# How many pieces the batch is cut into by the backward pass for per-element parameters.
# Fewer pieces cost less loop overhead, more pieces less memory. 2 was chosen from
# interleaved runs of the Fashion-MNIST step with 1, 2 and 4 pieces (history: commit b93376f,
# which measured them); section 3c gives the time and compiled memory of this setting (its
# ``recomputed`` row) against the variant that keeps the terms (``kept``).
_BATCH_PIECES = 2


def _per_element_bwd(base, y, sel, bias, a, b, shape, g):
    """The backward pass for parameters that vary over H or W, one piece of the batch at a time.

    A ``fori_loop`` over ``_BATCH_PIECES`` pieces of the batch: each step recomputes the k
    terms at the piece's selected entries, writes the piece's input cotangent over the
    piece's rows of the kept ``y`` (which nothing else reads, so no new buffer), and adds the
    piece's 8k + 1 sums (per window entry and gradient, and the bias's) to the carry, summed
    by ``_sum_rows``. The terms are evaluated once, after ``g`` exists, and only a piece's
    worth of them is ever alive.
    """
    n, h, w, c = shape
    k = a.shape[-1]
    p_shape = a.shape[:-1]
    dt = compute_dtype(g, a)
    wa, wb = _window_params(a.astype(dt), shape), _window_params(b.astype(dt), shape)
    pieces = _BATCH_PIECES if n % _BATCH_PIECES == 0 else 1
    rows = n // pieces

    def piece(i, carry):
        buf, sums = carry
        start = i * rows
        gp = lax.dynamic_slice_in_dim(g, start, rows).astype(dt)
        yp = lax.dynamic_slice_in_dim(buf, start, rows).astype(dt)
        sp = lax.dynamic_slice_in_dim(sel, start, rows)
        terms = [base.centered_and_df(yp - _at_selected(wb, t, sp)) for t in range(k)]
        gy, per_a, per_b = _cotangents(gp, terms, lambda t: _at_selected(wa, t, sp))
        masked = [jnp.where(sp == j, q, 0) for j in range(4) for q in per_a + per_b]
        part = _sum_rows(masked + [gy])
        buf = lax.dynamic_update_slice_in_dim(buf, gy.astype(buf.dtype), start, 0)
        return buf, tuple(x + p for x, p in zip(sums, part, strict=True))

    # Inside shard_map (a sweep over devices) the carry must start as varying over every mesh
    # axis the loop's results vary over, which is any axis an input varies over.
    vary = sum(jnp.zeros_like(x, shape=(), dtype=dt) for x in (g, y, sel, a, b))
    zeros = tuple(jnp.zeros((h // 2, w // 2, c), dt) + vary for _ in range(8 * k + 1))
    buf = y.astype(g.dtype) + vary.astype(g.dtype)
    gy, sums = lax.fori_loop(0, pieces, piece, (buf, zeros))
    s = _window_sums_to_params(sums[:-1], shape, p_shape, k)
    ga, gb = s[..., :k], -a.astype(dt) * s[..., k:]
    gbias = jnp.sum(sums[-1], axis=(0, 1))
    gbias = jnp.sum(gbias) if bias.ndim == 0 else gbias
    return (
        scatter_to_windows(gy, sel, shape).astype(g.dtype),
        gbias.astype(bias.dtype),
        ga.astype(a.dtype),
        gb.astype(b.dtype),
    )


def _fused_bwd(base, res, g):
    picked, sel, bias, a, b, shape = res
    k = a.shape[-1]
    p_shape = a.shape[:-1]
    dt = compute_dtype(g, a)
    if _spatial(p_shape):
        return _per_element_bwd(base, picked, sel, bias, a, b, shape, g)
    gc = g.astype(dt)
    wa, wb = a.astype(dt), b.astype(dt)
    # Here the parameters do not vary over H and W. A transcendental f(y - b_i) feeds both the
    # parameter sums and gy, so XLA evaluates it once, into k pooled-size buffers. Computed
    # from y alone, XLA's scheduler would evaluate them early, in the forward pass, and keep
    # them alive to here. Adding 0 where g is not NaN ties them to g (a NaN in g makes its
    # gradients NaN either way).
    tie_to_g = base in _TRANSCENDENTAL
    yk = picked.astype(dt)
    if tie_to_g:
        yk = yk + jnp.where(jnp.isnan(gc), gc, 0)
    terms = [base.centered_and_df(yk - _at_selected(wb, i, sel)) for i in range(k)]
    gy, per_a, per_b = _cotangents(gc, terms, lambda i: _at_selected(wa, i, sel))
    if tie_to_g:
        # Written once, so that the k buffers die before the full-size dy is allocated; read
        # inside dy's loop, they would be alive beside it.
        gy = R.materialize(gy)
    dy = scatter_to_windows(gy, sel, shape)
    sums = R.unbroadcast_many(per_a + per_b, p_shape)
    ga = jnp.stack(sums[:k], axis=-1)
    gb = -a.astype(dt) * jnp.stack(sums[k:], axis=-1)
    gbias = jnp.sum(gy, axis=(0, 1, 2))
    gbias = jnp.sum(gbias) if bias.ndim == 0 else gbias
    return (
        dy.astype(g.dtype),
        gbias.astype(bias.dtype),
        ga.astype(a.dtype),
        gb.astype(b.dtype),
    )


_fused.defvjp(_fused_fwd, _fused_bwd)


def activation_max_pool_2x2(act, y: Array, bias: Array | None = None) -> Array:
    """``max_pool_2x2(act(y + bias))`` by the cheapest exact route for the activation module.

    A module with a ``max_pool_2x2(y, bias)`` method (every activation family's module; see
    ``cpaf_jax.activations.family.ActivationFamily.pool``) computes it its own way: CPAF with
    the default implementation through ``cpaf_max_pool_2x2``, nondecreasing parameter-free
    functions by pooling first. Anything else (any callable) is composed.

    Args:
      act: an activation module (``cpaf_jax.activation(...)``) or any callable.
      y: ``[N, H, W, C]``, a convolution's output without its bias.
      bias: ``(C,)`` or ``None``.

    Returns:
      ``[N, H // 2, W // 2, C]``.
    """
    fused = getattr(act, "max_pool_2x2", None)
    if callable(fused):
        return fused(y, bias)
    return max_pool_2x2(act(y if bias is None else y + bias))
