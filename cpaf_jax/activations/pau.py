"""PAU, the safe Padé activation unit (Molina et al. 2019), as an activation family, and its
NNX module ``PAU``.

``F(x) = P(x) / (1 + sum_k |q_k| |x|^k)`` with ``P(x) = sum_j p_j x^j``; ``p``: ``[*P, m+1]``,
``q``: ``[*P, n]``. Shapes, dtypes and sharing as CPAF's (see ``cpaf_jax.activations.family``).
The polynomial loops are unrolled (Horner), so no ``[..., n]`` tensor of activation size is
built in the forward pass.

Gradients: on CPU, for float32 computations with per-element, per-channel or shared
parameters (not shared along an inner axis alone) and ``max(m + 1, n) <= 8``, a custom VJP
whose backward is one pass of the C++ kernel of ``cpaf_jax.ops.kernel_vjp`` (the record's
``kernel``: every coefficient's sum and the input cotangent together); elsewhere (other backends
of the same program, ``shard_map``, float64, no compiler) and for second derivatives, JAX's
autodiff of the forward, which XLA:CPU runs with a scalar loop per coefficient sum.

The default initial values are a leaky-ReLU fit; for degrees other than the published (5, 4)
the generic curve fitter computes one (``cpaf_jax.fitting``, which imports no family).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cpaf_jax.activations._checks import (
    check_coeffs,
    check_float,
    check_implementation,
)
from cpaf_jax.activations.family import Activation, ActivationFamily
from cpaf_jax.activations.initializers import InitLike
from cpaf_jax.fitting.curve_fit import fit_curve
from cpaf_jax.ops import kernel_vjp
from cpaf_jax.ops.dtypes import compute_dtype
from cpaf_jax.ops.sharing import Sharing

Array = jax.Array

#: Default PAU degrees (m, n) of numerator and denominator, as in Molina et al. 2019.
PAU_DEFAULT_DEGREES = (5, 4)

#: Leaky-ReLU (slope 0.01) fit of the (5, 4) safe PAU, published by the PAU authors
#: (``pade_optimized_leakyrelu`` in ``pau/cuda/python_imp/Pade.py`` of ml-research/pau), which
#: their ``PAU()`` starts from. Order: p_0..p_5 and q_1..q_4. On [-3, 3] it is within 0.034 of
#: leaky_relu(x, 0.01); the largest error sits at x = 0, where P(0) = p_0.
PAU_LEAKY_RELU_P = (
    3.35583603e-02,
    5.05000375e-01,
    1.65343934e00,
    2.01001052e00,
    9.31901999e-01,
    1.52424124e-01,
)
PAU_LEAKY_RELU_Q = (3.30847488e-06, 3.98021568e00, 5.12471206e-07, 3.01830109e-01)

#: Slope of the leaky ReLU that PAU starts from (Molina et al. 2019; jax.nn.leaky_relu default).
PAU_LEAKY_SLOPE = 0.01


def check_degrees(degrees) -> tuple[int, int]:
    """``degrees`` as ``(m, n)`` ints; raises ``ValueError`` unless ``m >= 0`` and ``n >= 1``."""
    try:
        m, n = (int(d) for d in degrees)
    except (TypeError, ValueError):
        raise ValueError(f"PAU degrees must be a pair (m, n), got {degrees!r}") from None
    if m < 0 or n < 1:
        raise ValueError(f"PAU degrees need m >= 0 and n >= 1, got {(m, n)}")
    return m, n


@functools.cache
def pau_default_init(degrees: tuple[int, int] = PAU_DEFAULT_DEGREES):
    """Default ``(p, q)`` of a PAU of the given degrees: a fit to leaky_relu(x, 0.01).

    For (5, 4) these are the PAU authors' published coefficients (``PAU_LEAKY_RELU_P``,
    ``PAU_LEAKY_RELU_Q``). For other degrees there is no published fit, so the first call
    computes one with ``cpaf_jax.fitting.curve_fit.fit_curve`` on [-3, 3] (one solver compile)
    and caches it for the process.

    Returns:
      float64 NumPy arrays of shapes ``(m + 1,)`` and ``(n,)``.
    """
    m, n = check_degrees(degrees)
    if (m, n) == PAU_DEFAULT_DEGREES:
        return np.asarray(PAU_LEAKY_RELU_P), np.asarray(PAU_LEAKY_RELU_Q)
    res = fit_curve(_leaky_relu, PAU_FAMILY, (-3.0, 3.0), degrees=(m, n))
    return np.asarray(res.params["p"], np.float64), np.asarray(res.params["q"], np.float64)


def pau_denominator(x: Array, q: Array) -> Array:
    """The safe PAU denominator ``Q(x) = 1 + sum_{k=1..n} |q_k| |x|^k`` (always >= 1).

    Args:
      x: shape ``[..., *F]``; q: shape ``[*P, n]`` broadcasting like ``pau``'s.

    Returns:
      ``Q(x)`` in the compute dtype (float32 for inputs below 32 bits), ``x``'s shape.
    """
    x, q = jnp.asarray(x), jnp.asarray(q)
    dt = compute_dtype(x, q)
    ax = jnp.abs(x.astype(dt))
    # Horner in |x| over non-negative coefficients: every partial sum is >= 0, so Q >= 1 with no
    # cancellation, and no |x|^k is formed (no overflow before the final products).
    acc = jnp.abs(q[..., -1].astype(dt))
    for k in range(q.shape[-1] - 2, -1, -1):
        acc = acc * ax + jnp.abs(q[..., k].astype(dt))
    return 1 + acc * ax


def pau(x: Array, p: Array, q: Array, *, implementation: str = "custom_vjp") -> Array:
    """Safe Padé activation unit (Molina et al. 2019)::

        F(x) = P(x) / Q(x),   P(x) = sum_{j=0..m} p_j x^j,   Q(x) = 1 + sum_{k=1..n} |q_k| |x|^k

    This is the "safe PAU" of the paper (their Eq. 3) and of the authors' reference code
    (``PADEACTIVATION_F_python`` in ml-research/pau, which the later ``rational_activations``
    package calls version "A"). ``Q >= 1`` for every ``x`` and every ``q``, so there are no
    poles. The other variant sometimes used, ``1 + |sum_k q_k x^k|`` (``rational_activations``
    version "B"), can also never drop below 1 but is not what this function computes.

    Args:
      x: shape ``[..., *F]``, floating dtype.
      p: numerator coefficients ``p_0..p_m``, shape ``[*P, m + 1]``.
      q: denominator coefficients ``q_1..q_n``, shape ``[*P, n]`` (same ``P``). ``P`` is a
        suffix of ``x``'s shape or 1s: ``(n,)``-style for one PAU per layer (the paper's
        setting), ``(C, .)`` per channel, ``(*F, .)`` per element.
      implementation: ``"custom_vjp"`` (default: on CPU, for float32, the backward is one pass
        of the kernel of ``cpaf_jax.ops.kernel_vjp``; no ``jax.jvp``) or ``"autodiff"`` (JAX's
        autodiff of the same forward everywhere; supports ``jax.jvp``).

    Returns:
      ``x``'s shape and dtype. Finite wherever ``|x|^(max(m, n))`` is finite in the compute
      dtype (``|x| < ~1e7`` for float32 with the default degrees (5, 4)).

    Gradient notes: ``d|q_k|/dq_k`` uses JAX's convention ``+1`` at ``q_k = 0``, so a zero
    coefficient still receives a gradient (the reference CUDA code uses ``sign(0) = 0`` there and
    would keep it at zero); likewise ``d|x|/dx = +1`` at ``x = 0``.

    Raises:
      ValueError: ``p``/``q`` without a coefficient axis, with different leading shapes, or not
        broadcasting against ``x``. TypeError: non-float inputs.
    """
    x, p, q = jnp.asarray(x), jnp.asarray(p), jnp.asarray(q)
    check_float("pau", "x", x)
    check_coeffs("pau", x, ("p", "q"), p, q)
    dt = compute_dtype(x, p, q)
    check_implementation("pau", implementation)
    spec = PAU_FAMILY.kernel
    if implementation == "custom_vjp" and kernel_vjp.applies(spec, x, _padded_shape(p, q), dt):
        return _pau_kernel_vjp(x, p, q)
    return _pau_forward(x, p, q)


def _pau_forward(x: Array, p: Array, q: Array) -> Array:
    """``pau``'s value, unchecked; differentiated by JAX's autodiff."""
    dt = compute_dtype(x, p, q)
    xc = x.astype(dt)
    num = p[..., -1].astype(dt)
    for j in range(p.shape[-1] - 2, -1, -1):
        num = num * xc + p[..., j].astype(dt)
    return (num / pau_denominator(xc, q)).astype(x.dtype)


def _padded_shape(p: Array, q: Array) -> jax.ShapeDtypeStruct:
    """``[*P, K]``, ``K = max(m + 1, n)``: the kernel's coefficient layout (both zero-padded)."""
    return jax.ShapeDtypeStruct(p.shape[:-1] + (max(p.shape[-1], q.shape[-1]),), jnp.float32)


def _kernel_bwd(x: Array, p: Array, q: Array, g: Array):
    """``(dx, dp, dq)`` through the CPU kernel's PAU form: ``p`` and ``|q|`` zero-padded
    to ``K`` coefficients (a zero coefficient adds nothing to ``P`` or ``Q``), the sums cut back;
    ``d|q|/dq`` is ``+1`` at 0, as JAX's."""
    k = _padded_shape(p, q).shape[-1]

    def pad(c):
        return jnp.pad(c.astype(jnp.float32), [(0, 0)] * (c.ndim - 1) + [(0, k - c.shape[-1])])

    dx, sp, sq = kernel_vjp.sums(PAU_FAMILY.kernel, x, g, pad(p), pad(jnp.abs(q)))
    dq = -jnp.where(q >= 0, 1.0, -1.0) * sq[..., : q.shape[-1]]
    return dx, sp[..., : p.shape[-1]].astype(p.dtype), dq.astype(q.dtype)


_pau_kernel_vjp = kernel_vjp.with_kernel_vjp(_pau_forward, _kernel_bwd)


def _leaky_relu(x: Array) -> Array:
    return jax.nn.leaky_relu(x, PAU_LEAKY_SLOPE)


def _fit_init(degrees=PAU_DEFAULT_DEGREES):
    # The fitter's first start. The published (5, 4) coefficients are a good one; other degrees
    # have no published fit (and ``init`` computes one with this fitter), so they start from
    # P(x) = x.
    m, n = check_degrees(degrees)
    if (m, n) == PAU_DEFAULT_DEGREES:
        return pau_default_init((m, n))
    p = np.zeros(m + 1)
    if m >= 1:
        p[1] = 1.0
    return p, np.full(n, 0.1)


def _fit_starts(rng, interval, r, degrees=PAU_DEFAULT_DEGREES):
    m, n = check_degrees(degrees)
    q = rng.uniform(0.0, 1.0, n) * 10.0 ** rng.uniform(-2, 0.5, n)
    return np.zeros(m + 1), q


def _coeff_shapes(degrees=PAU_DEFAULT_DEGREES):
    m, n = check_degrees(degrees)
    return ((m + 1,), (n,))


def _to_numpy(p: np.ndarray, q: np.ndarray):
    def pau_numpy(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        xs = x.astype(np.float64)[..., None]
        num = np.sum(p * xs ** np.arange(p.shape[-1]), axis=-1)
        den = 1 + np.sum(np.abs(q) * np.abs(xs) ** np.arange(1, q.shape[-1] + 1), axis=-1)
        return (num / den).astype(x.dtype)

    return pau_numpy


class PAU(Activation):
    """Safe Padé activation unit, ``P(x) / (1 + sum_k |q_k| |x|^k)``; see ``pau``.

    Args:
      features_shape: per-example feature shape, channels last; needed unless
        ``sharing="shared"``.
      degrees: ``(m, n)``, degrees of numerator and denominator (default (5, 4), as the paper).
      sharing: ``"shared"`` (the record's default: one PAU per layer, as in Molina et al.),
        ``"channel"``, ``"element"`` or a tuple of feature axes; ``None`` (the default) takes the
        record's ``default_sharing``.
      p_init, q_init: ``None`` for ``pau_default_init(degrees)`` (a leaky-ReLU fit: the
        published coefficients for (5, 4), computed with ``cpaf_jax.fitting.curve_fit.fit_curve``
        otherwise), a scalar, a sequence of length ``m + 1`` / ``n``, an array of the full
        parameter shape, or an initializer ``init(key, shape, dtype)``.
      param_dtype: dtype of p and q.
      rngs: needed only for callable initializers.

    Attributes:
      p: ``ActivationParam`` of shape ``[*P, m + 1]``; q: ``[*P, n]``.

    Call: ``x`` of shape ``[batch..., *features_shape]`` -> same shape and dtype.
    """

    def __init__(
        self,
        features_shape=None,
        *,
        degrees: tuple[int, int] = PAU_DEFAULT_DEGREES,
        sharing: Sharing | None = None,
        p_init: InitLike = None,
        q_init: InitLike = None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        super().__init__(
            PAU_FAMILY,
            features_shape,
            sharing=sharing,
            param_dtype=param_dtype,
            rngs=rngs,
            degrees=check_degrees(degrees),
            p_init=p_init,
            q_init=q_init,
        )

    @property
    def degrees(self) -> tuple[int, int]:
        """``(m, n)``, the degrees of numerator and denominator."""
        return self.options["degrees"]


PAU_FAMILY = ActivationFamily(
    name="pau",
    apply=pau,
    # The curve fitter's Jacobian is forward mode, which the kernel's custom VJP lacks.
    fit_apply=functools.partial(pau, implementation="autodiff"),
    params=("p", "q"),
    coeff_shapes=_coeff_shapes,
    init=lambda degrees=PAU_DEFAULT_DEGREES: pau_default_init(check_degrees(degrees)),
    shape_options=(("degrees", PAU_DEFAULT_DEGREES),),
    default_sharing="shared",
    module=PAU,
    to_numpy=_to_numpy,
    fit_init=_fit_init,
    fit_starts=_fit_starts,
    # ``enum BaseId``'s kPau in ``cpaf_jax/ops/kernels/cpaf_cpu.cc``: max(m + 1, n) <= 8, float32.
    kernel=kernel_vjp.KernelSpec(base_id=4, max_k=8),
)
