"""More trainable activations next to CPAF: APL, PAU and Swish, as pure functions and NNX modules.

All three follow CPAF's shape conventions (see ``cpaf_jax.ops.functional``):

* ``x``: any shape ``[..., *F]`` (channels last), any float dtype; the output has ``x``'s shape
  and dtype. Inputs below 32 bits are computed in float32, as CPAF does.
* parameters: ``[*P, n]`` where ``P`` broadcasts against the trailing axes of ``x`` (a suffix of
  ``x``'s shape, or 1s) and ``n`` is a per-family coefficient axis (hinges, polynomial
  degrees); Swish's ``beta`` has no coefficient axis, just ``[*P]``.
* sharing: the modules take ``features_shape`` and ``sharing`` exactly as ``cpaf_jax.CPAF``
  (``"element"``, ``"channel"``, ``"shared"`` or a tuple of feature axes).

* ``apl``: ``relu(x) + sum_s a_s relu(b_s - x)``; ``a``, ``b``: ``[*P, S]``.
* ``pau``: ``P(x) / (1 + sum_k |q_k| |x|^k)`` with ``P(x) = sum_j p_j x^j``; ``p``:
  ``[*P, m+1]``, ``q``: ``[*P, n]``.
* ``swish``: ``x * sigmoid(beta x)``; ``beta``: ``[*P]``.

Gradients come from JAX's autodiff of the pure functions; the loops over hinges and polynomial
coefficients are unrolled (like CPAF's ``"unrolled"`` implementation), so no ``[..., n]``
tensor of activation size is built in the forward pass.

Importing this module registers ``"apl"``, ``"pau"`` and ``"swish"`` with
``cpaf_jax.register_activation``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cpaf_jax.activations.initializers import InitLike, make_param
from cpaf_jax.activations.modules import ActivationParam, check_features
from cpaf_jax.activations.registry import register_activation
from cpaf_jax.ops.functional import check_param_suffix
from cpaf_jax.ops.sharing import Sharing, normalize_features_shape, param_shape, sharing_name

Array = jax.Array

# --------------------------------------------------------------------------------------------
# Initial values and their sources.

#: Default number of APL hinges S (Agostinelli et al. tried S in {1, 2, 5}; 2 is our default).
APL_DEFAULT_HINGES = 2

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


def apl_default_init(hinges: int) -> tuple[np.ndarray, np.ndarray]:
    """Default ``(a, b)`` of an APL unit with ``hinges`` hinges: ``a = 0``, ``b = linspace(-1,
    1, S)`` (``b = 0`` for ``S = 1``).

    Agostinelli et al. (2014) drew the parameters at random (their Caffe layer: ``a`` uniform in
    [-0.2, 0.2], ``b`` Gaussian with std 0.5; ``apl_paper_initializers`` gives those). We start
    deterministically instead: ``a = 0`` makes the unit exactly a ReLU at initialisation, and
    spreading the hinge locations over [-1, 1], where pre-activations mostly lie, lets the
    gradient with respect to ``a_s`` (``relu(b_s - x)``) differ between hinges from the first
    step; ``b`` starts moving as soon as ``a`` leaves zero.

    Returns:
      two float64 NumPy arrays of shape ``(hinges,)``.
    """
    a = np.zeros((hinges,))
    b = np.zeros((hinges,)) if hinges == 1 else np.linspace(-1.0, 1.0, hinges)
    return a, b


def apl_paper_initializers():
    """The random initializers of Agostinelli et al.'s reference Caffe layer, as
    ``(a_init, b_init)`` for ``APL``: ``a ~ U(-0.2, 0.2)``, ``b ~ N(0, 0.5^2)``.

    Pass ``rngs`` to the module when using them.
    """

    def a_init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -0.2, 0.2)

    def b_init(key, shape, dtype=jnp.float32):
        return 0.5 * jax.random.normal(key, shape, dtype)

    return a_init, b_init


@functools.cache
def pau_default_init(degrees: tuple[int, int] = PAU_DEFAULT_DEGREES):
    """Default ``(p, q)`` of a PAU of the given degrees: a fit to leaky_relu(x, 0.01).

    For (5, 4) these are the PAU authors' published coefficients (``PAU_LEAKY_RELU_P``,
    ``PAU_LEAKY_RELU_Q``). For other degrees there is no published fit, so the first call
    computes one with ``cpaf_jax.fitting.curve_fit.fit`` on [-3, 3] (about a second,
    compile included) and caches it for the process.

    Returns:
      float64 NumPy arrays of shapes ``(m + 1,)`` and ``(n,)``.
    """
    m, n = _check_degrees(degrees)
    if (m, n) == PAU_DEFAULT_DEGREES:
        return np.asarray(PAU_LEAKY_RELU_P), np.asarray(PAU_LEAKY_RELU_Q)
    from cpaf_jax.fitting.curve_fit import fit  # fit imports this module; import at call time.

    res = fit("leaky_relu", family="pau", degrees=(m, n), interval=(-3.0, 3.0))
    return np.asarray(res.params["p"], np.float64), np.asarray(res.params["q"], np.float64)


#: Swish's initial beta (Ramachandran et al. 2017: beta = 1 gives x * sigmoid(x), i.e. SiLU).
SWISH_BETA_INIT = 1.0


# --------------------------------------------------------------------------------------------
# Validation, at trace time (shapes and dtypes are static).


def _check_float(fn: str, name: str, x: Array) -> None:
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{fn}: {name} must be a floating array, got dtype {x.dtype}")


def _check_broadcast(fn: str, x_shape, p_shape, full_shape, what: str) -> None:
    check_param_suffix(
        fn,
        x_shape,
        p_shape,
        full_shape,
        what=what,
        arg="x",
        expected="[*P, n]" if tuple(p_shape) != tuple(full_shape) else "[*P]",
        examples=f"{tuple(x_shape)[-1:]} per channel",
    )


def _check_coeffs(fn: str, x: Array, names: tuple[str, ...], *arrays: Array) -> tuple:
    """Common checks for ``[*P, n]`` coefficient arrays; returns their coefficient counts."""
    p_shape = None
    counts = []
    for name, arr in zip(names, arrays, strict=True):
        _check_float(fn, name, arr)
        if arr.ndim == 0:
            raise ValueError(
                f"{fn}: {name} needs a trailing coefficient axis, e.g. shape (n,), (C, n) or "
                f"(H, W, C, n); got a scalar"
            )
        if arr.shape[-1] == 0:
            raise ValueError(f"{fn}: {name} has an empty coefficient axis (shape {arr.shape})")
        if p_shape is None:
            p_shape = arr.shape[:-1]
        elif arr.shape[:-1] != p_shape:
            shapes = ", ".join(f"{n}{tuple(a.shape)}" for n, a in zip(names, arrays, strict=True))
            raise ValueError(
                f"{fn}: {' and '.join(names)} must share their leading shape [*P], got {shapes}"
            )
        counts.append(arr.shape[-1])
    _check_broadcast(fn, x.shape, p_shape, arrays[0].shape, "parameters")
    return tuple(counts)


def _compute_dtype(*arrays: Array) -> jnp.dtype:
    # Below 32 bits the few extra flops are free and keep sums of terms and polynomial
    # evaluations accurate (bfloat16 has 8 bits of mantissa).
    dt = jnp.result_type(*(a.dtype for a in arrays))
    if jnp.finfo(dt).bits < 32:
        dt = jnp.float32
    return dt


def _check_degrees(degrees) -> tuple[int, int]:
    try:
        m, n = (int(d) for d in degrees)
    except (TypeError, ValueError):
        raise ValueError(f"PAU degrees must be a pair (m, n), got {degrees!r}") from None
    if m < 0 or n < 1:
        raise ValueError(f"PAU degrees need m >= 0 and n >= 1, got {(m, n)}")
    return m, n


# --------------------------------------------------------------------------------------------
# Pure functions.


def apl(x: Array, a: Array, b: Array) -> Array:
    """Adaptive piecewise linear unit (Agostinelli et al. 2014, Eq. 1)::

        h(x) = relu(x) + sum_{s=1..S} a_s * relu(b_s - x)

    Each hinge adds a slope ``-a_s`` to the left of ``b_s``; the right-hand end is always the
    identity, as in the paper.

    Args:
      x: shape ``[..., *F]``, floating dtype.
      a: hinge slopes, shape ``[*P, S]``, ``P`` a suffix of ``x``'s shape (or 1s): ``(S,)``
        shared, ``(C, S)`` per channel, ``(*F, S)`` per element.
      b: hinge locations, same shape as ``a``.

    Returns:
      ``x``'s shape and dtype. The derivative of ``relu`` at its kink is taken as 0 (JAX's
      convention), so exactly at ``x = b_s`` the hinge contributes no gradient.

    Raises:
      ValueError: ``a`` and ``b`` differ in shape, have no or an empty hinge axis, or do not
        broadcast against ``x`` without enlarging it. TypeError: non-float inputs.
    """
    x, a, b = jnp.asarray(x), jnp.asarray(a), jnp.asarray(b)
    _check_float("apl", "x", x)
    if a.shape != b.shape:
        raise ValueError(
            f"apl: a and b must have the same shape [*P, S], got a{tuple(a.shape)} and "
            f"b{tuple(b.shape)}"
        )
    (hinges,) = _check_coeffs("apl", x, ("a",), a)
    _check_float("apl", "b", b)
    dt = _compute_dtype(x, a, b)
    xc = x.astype(dt)
    z = jax.nn.relu(xc)
    for s in range(hinges):
        z = z + a[..., s].astype(dt) * jax.nn.relu(b[..., s].astype(dt) - xc)
    return z.astype(x.dtype)


def pau_denominator(x: Array, q: Array) -> Array:
    """The safe PAU denominator ``Q(x) = 1 + sum_{k=1..n} |q_k| |x|^k`` (always >= 1).

    Args:
      x: shape ``[..., *F]``; q: shape ``[*P, n]`` broadcasting like ``pau``'s.

    Returns:
      ``Q(x)`` in the compute dtype (float32 for inputs below 32 bits), ``x``'s shape.
    """
    x, q = jnp.asarray(x), jnp.asarray(q)
    dt = _compute_dtype(x, q)
    ax = jnp.abs(x.astype(dt))
    # Horner in |x| over non-negative coefficients: every partial sum is >= 0, so Q >= 1 with no
    # cancellation, and no |x|^k is formed (no overflow before the final products).
    acc = jnp.abs(q[..., -1].astype(dt))
    for k in range(q.shape[-1] - 2, -1, -1):
        acc = acc * ax + jnp.abs(q[..., k].astype(dt))
    return 1 + acc * ax


def pau(x: Array, p: Array, q: Array) -> Array:
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
    _check_float("pau", "x", x)
    _check_coeffs("pau", x, ("p", "q"), p, q)
    dt = _compute_dtype(x, p, q)
    xc = x.astype(dt)
    num = p[..., -1].astype(dt)
    for j in range(p.shape[-1] - 2, -1, -1):
        num = num * xc + p[..., j].astype(dt)
    return (num / pau_denominator(xc, q)).astype(x.dtype)


def swish(x: Array, beta) -> Array:
    """Swish (Ramachandran et al. 2017): ``x * sigmoid(beta * x)``.

    Args:
      x: shape ``[..., *F]``, floating dtype.
      beta: shape ``[*P]`` (no coefficient axis), ``P`` a suffix of ``x``'s shape or 1s; a
        scalar shares one beta over everything.

    Returns:
      ``x``'s shape and dtype.
    """
    x, beta = jnp.asarray(x), jnp.asarray(beta)
    _check_float("swish", "x", x)
    _check_float("swish", "beta", beta)
    _check_broadcast("swish", x.shape, beta.shape, beta.shape, "beta")
    dt = _compute_dtype(x, beta)
    xc = x.astype(dt)
    return (xc * jax.nn.sigmoid(beta.astype(dt) * xc)).astype(x.dtype)


# --------------------------------------------------------------------------------------------
# NNX modules: thin shells that own the parameters.


def _norm_sharing(sharing: Sharing) -> Sharing:
    return sharing if isinstance(sharing, str) else tuple(sharing)


def _keys(rngs: nnx.Rngs | None, n: int) -> list:
    if rngs is None:
        return [None] * n
    return [rngs.params() for _ in range(n)]


class APL(nnx.Module):
    """Adaptive piecewise linear unit, ``relu(x) + sum_s a_s relu(b_s - x)``.

    Args:
      features_shape: per-example feature shape, channels last; needed unless
        ``sharing="shared"``.
      hinges: number of hinges ``S`` (>= 1, default 2).
      sharing: ``"element"`` (default: the paper learns a_i^s, b_i^s per neuron), ``"channel"``,
        ``"shared"`` or a tuple of feature axes.
      a_init, b_init: ``None`` for ``apl_default_init`` (a = 0, b = linspace(-1, 1, S)), a
        scalar, a length-S sequence, an array of shape ``[*P, S]`` or an initializer
        ``init(key, shape, dtype)`` (``apl_paper_initializers()`` gives the paper's).
      param_dtype: dtype of a and b.
      rngs: needed only for callable initializers.

    Attributes:
      a, b: ``ActivationParam`` of shape ``[*P, S]``.

    Call: ``x`` of shape ``[batch..., *features_shape]`` -> same shape and dtype.
    """

    def __init__(
        self,
        features_shape=None,
        *,
        hinges: int = APL_DEFAULT_HINGES,
        sharing: Sharing = "element",
        a_init: InitLike = None,
        b_init: InitLike = None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        if not isinstance(hinges, int) or hinges < 1:
            raise ValueError(f"APL needs hinges >= 1, got hinges={hinges!r}")
        self.hinges = hinges
        self.sharing = _norm_sharing(sharing)
        self.features_shape = normalize_features_shape(features_shape)
        shape = param_shape(self.features_shape, self.sharing) + (hinges,)
        a0, b0 = apl_default_init(hinges)
        key_a, key_b = _keys(rngs, 2)
        self.a = ActivationParam(make_param(a_init, a0, key_a, shape, param_dtype, "a"))
        self.b = ActivationParam(make_param(b_init, b0, key_b, shape, param_dtype, "b"))

    def __call__(self, x: Array) -> Array:
        check_features("APL", self.features_shape, x)
        return apl(x, self.a[...], self.b[...])

    @property
    def family(self) -> str:
        return "apl"

    def describe(self) -> dict:
        """Family, hinges, sharing and shapes, for logs and checkpoints."""
        return {
            "family": "apl",
            "hinges": self.hinges,
            "sharing": sharing_name(self.sharing),
            "features_shape": self.features_shape,
            "param_shape": tuple(self.a.shape),
        }


class PAU(nnx.Module):
    """Safe Padé activation unit, ``P(x) / (1 + sum_k |q_k| |x|^k)``; see ``pau``.

    Args:
      features_shape: per-example feature shape, channels last; needed unless
        ``sharing="shared"``.
      degrees: ``(m, n)``, degrees of numerator and denominator (default (5, 4), as the paper).
      sharing: ``"shared"`` (default: one PAU per layer, as in Molina et al.), ``"channel"``,
        ``"element"`` or a tuple of feature axes.
      p_init, q_init: ``None`` for ``pau_default_init(degrees)`` (a leaky-ReLU fit: the
        published coefficients for (5, 4), computed with ``cpaf_jax.fitting.curve_fit``
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
        sharing: Sharing = "shared",
        p_init: InitLike = None,
        q_init: InitLike = None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        self.degrees = _check_degrees(degrees)
        m, n = self.degrees
        self.sharing = _norm_sharing(sharing)
        self.features_shape = normalize_features_shape(features_shape)
        pshape = param_shape(self.features_shape, self.sharing)
        if p_init is None or q_init is None:
            p0, q0 = pau_default_init(self.degrees)
        else:
            p0, q0 = np.zeros((m + 1,)), np.zeros((n,))
        key_p, key_q = _keys(rngs, 2)
        self.p = ActivationParam(make_param(p_init, p0, key_p, pshape + (m + 1,), param_dtype, "p"))
        self.q = ActivationParam(make_param(q_init, q0, key_q, pshape + (n,), param_dtype, "q"))

    def __call__(self, x: Array) -> Array:
        check_features("PAU", self.features_shape, x)
        return pau(x, self.p[...], self.q[...])

    @property
    def family(self) -> str:
        return "pau"

    def describe(self) -> dict:
        """Family, degrees, sharing and shapes, for logs and checkpoints."""
        return {
            "family": "pau",
            "degrees": self.degrees,
            "sharing": sharing_name(self.sharing),
            "features_shape": self.features_shape,
            "param_shape": {"p": tuple(self.p.shape), "q": tuple(self.q.shape)},
        }


class Swish(nnx.Module):
    """Swish with a learned ``beta``: ``x * sigmoid(beta * x)``.

    Args:
      features_shape: per-example feature shape, channels last; needed unless
        ``sharing="shared"``.
      sharing: ``"channel"`` (default, one beta per channel like PReLU's alpha), ``"element"``,
        ``"shared"`` or a tuple of feature axes.
      beta_init: initial beta (default 1.0, i.e. SiLU, as in Ramachandran et al. 2017), a scalar,
        an array of the parameter shape or an initializer ``init(key, shape, dtype)``.
      param_dtype: dtype of beta.
      rngs: needed only for a callable initializer.

    Attributes:
      beta: ``ActivationParam`` of shape ``[*P]`` (no coefficient axis).

    Call: ``x`` of shape ``[batch..., *features_shape]`` -> same shape and dtype.
    """

    def __init__(
        self,
        features_shape=None,
        *,
        sharing: Sharing = "channel",
        beta_init: InitLike = SWISH_BETA_INIT,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        self.sharing = _norm_sharing(sharing)
        self.features_shape = normalize_features_shape(features_shape)
        shape = param_shape(self.features_shape, self.sharing)
        (key,) = _keys(rngs, 1)
        default = np.asarray(SWISH_BETA_INIT)
        self.beta = ActivationParam(make_param(beta_init, default, key, shape, param_dtype, "beta"))

    def __call__(self, x: Array) -> Array:
        check_features("Swish", self.features_shape, x)
        return swish(x, self.beta[...])

    @property
    def family(self) -> str:
        return "swish"

    def describe(self) -> dict:
        """Family, sharing and shapes, for logs and checkpoints."""
        return {
            "family": "swish",
            "sharing": sharing_name(self.sharing),
            "features_shape": self.features_shape,
            "param_shape": tuple(self.beta.shape),
        }


# --------------------------------------------------------------------------------------------
# Registry.


def _apl_factory(features_shape=None, *, sharing="element", rngs=None, **kwargs) -> APL:
    return APL(features_shape, sharing=sharing, rngs=rngs, **kwargs)


def _pau_factory(features_shape=None, *, sharing="shared", rngs=None, **kwargs) -> PAU:
    return PAU(features_shape, sharing=sharing, rngs=rngs, **kwargs)


def _swish_factory(features_shape=None, *, sharing="channel", rngs=None, **kwargs) -> Swish:
    return Swish(features_shape, sharing=sharing, rngs=rngs, **kwargs)


register_activation("apl", _apl_factory, parametric=True)
register_activation("pau", _pau_factory, parametric=True)
register_activation("swish", _swish_factory, parametric=True)


__all__ = [
    "APL",
    "APL_DEFAULT_HINGES",
    "PAU",
    "PAU_DEFAULT_DEGREES",
    "PAU_LEAKY_RELU_P",
    "PAU_LEAKY_RELU_Q",
    "PAU_LEAKY_SLOPE",
    "SWISH_BETA_INIT",
    "Swish",
    "apl",
    "apl_default_init",
    "apl_paper_initializers",
    "pau",
    "pau_default_init",
    "pau_denominator",
    "swish",
]
