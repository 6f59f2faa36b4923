"""APL, the adaptive piecewise linear unit (Agostinelli et al. 2014), as an activation family,
and its NNX module ``APL``.

``h(x) = relu(x) + sum_s a_s relu(b_s - x)``; ``a``, ``b``: ``[*P, S]`` (``S`` hinges).
Shapes, dtypes and sharing as CPAF's (see ``cpaf_jax.activations.family``). The loop over
hinges is unrolled, so no ``[..., S]`` tensor of activation size is built in the forward pass.
Gradients: on CPU, for float32 computations with per-element, per-channel or shared parameters
(not shared along an inner axis alone) and ``1 <= S <= 8``, a custom VJP whose backward is
one pass of CPAF's C++ kernel (``cpaf_jax.ops.kernel_vjp``, in the form the record's ``kernel``
names); elsewhere (other backends of the same program, ``shard_map``, float64, no compiler) and
for second derivatives, JAX's autodiff of the forward, which XLA:CPU runs with a scalar loop per
parameter sum.
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
from cpaf_jax.fitting.curve_fit import located_terms_start
from cpaf_jax.ops import kernel_vjp
from cpaf_jax.ops.dtypes import compute_dtype
from cpaf_jax.ops.sharing import Sharing

Array = jax.Array

#: Default number of APL hinges S (Agostinelli et al. tried S in {1, 2, 5}; 2 is our default).
APL_DEFAULT_HINGES = 2


def check_hinges(hinges) -> int:
    """``hinges`` as an int; raises ``ValueError`` unless it is an integer >= 1."""
    if isinstance(hinges, bool) or not isinstance(hinges, int | np.integer) or hinges < 1:
        raise ValueError(f"APL needs hinges >= 1, got hinges={hinges!r}")
    return int(hinges)


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
    hinges = check_hinges(hinges)
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


def apl(x: Array, a: Array, b: Array, *, implementation: str = "custom_vjp") -> Array:
    """Adaptive piecewise linear unit (Agostinelli et al. 2014, Eq. 1)::

        h(x) = relu(x) + sum_{s=1..S} a_s * relu(b_s - x)

    Each hinge adds a slope ``-a_s`` to the left of ``b_s``; the right-hand end is always the
    identity, as in the paper.

    Args:
      x: shape ``[..., *F]``, floating dtype.
      a: hinge slopes, shape ``[*P, S]``, ``P`` a suffix of ``x``'s shape (or 1s): ``(S,)``
        shared, ``(C, S)`` per channel, ``(*F, S)`` per element.
      b: hinge locations, same shape as ``a``.
      implementation: ``"custom_vjp"`` (default: on CPU, for float32, the backward is one pass
        of the kernel of ``cpaf_jax.ops.kernel_vjp``; no ``jax.jvp``) or ``"autodiff"`` (JAX's
        autodiff of the same forward everywhere; supports ``jax.jvp``).

    Returns:
      ``x``'s shape and dtype. The derivative of ``relu`` at its kink is taken as 0 (JAX's
      convention), so exactly at ``x = b_s`` the hinge contributes no gradient.

    Raises:
      ValueError: ``a`` and ``b`` differ in shape, have no or an empty hinge axis, or do not
        broadcast against ``x`` without enlarging it. TypeError: non-float inputs.
    """
    x, a, b = jnp.asarray(x), jnp.asarray(a), jnp.asarray(b)
    check_float("apl", "x", x)
    if a.shape != b.shape:
        raise ValueError(
            f"apl: a and b must have the same shape [*P, S], got a{tuple(a.shape)} and "
            f"b{tuple(b.shape)}"
        )
    (hinges,) = check_coeffs("apl", x, ("a",), a)
    check_float("apl", "b", b)
    dt = compute_dtype(x, a, b)
    check_implementation("apl", implementation)
    if implementation == "custom_vjp" and kernel_vjp.applies(APL_FAMILY.kernel, x, a, dt):
        return _apl_kernel_vjp(x, a, b)
    return _apl_forward(x, a, b)


def _apl_forward(x: Array, a: Array, b: Array) -> Array:
    """``apl``'s value, unchecked; differentiated by JAX's autodiff."""
    dt = compute_dtype(x, a, b)
    xc = x.astype(dt)
    z = jax.nn.relu(xc)
    for s in range(a.shape[-1]):
        z = z + a[..., s].astype(dt) * jax.nn.relu(b[..., s].astype(dt) - xc)
    return z.astype(x.dtype)


# A NaN cotangent gives NaN input cotangents everywhere (the kernel multiplies by g), where
# autodiff's selects would give 0 where the ReLU and every hinge are flat.
def _kernel_bwd(x: Array, a: Array, b: Array, g: Array):
    """``(dx, da, db)`` through the CPU kernel's APL form (the record's ``kernel``): each hinge
    is a term ``f(u) = relu(-u)``, offset 0, and the fixed ``relu(x)`` adds ``[x > 0]`` to
    ``dx``; shapes and dtypes of ``x``, ``a``, ``b``."""
    return kernel_vjp.terms_backward(APL_FAMILY.kernel, x, a, b, g)


_apl_kernel_vjp = kernel_vjp.with_kernel_vjp(_apl_forward, _kernel_bwd)


def _to_numpy(a: np.ndarray, b: np.ndarray):
    def apl_numpy(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        xs = x.astype(np.float64)[..., None]
        z = np.maximum(xs[..., 0], 0.0) + np.sum(a * np.maximum(b - xs, 0.0), axis=-1)
        return z.astype(x.dtype)

    return apl_numpy


def _coeff_shapes(hinges: int = APL_DEFAULT_HINGES):
    hinges = check_hinges(hinges)
    return ((hinges,), (hinges,))


class APL(Activation):
    """Adaptive piecewise linear unit, ``relu(x) + sum_s a_s relu(b_s - x)``.

    Args:
      features_shape: per-example feature shape, channels last; needed unless
        ``sharing="shared"``.
      hinges: number of hinges ``S`` (>= 1, default 2).
      sharing: ``"element"`` (the record's default: the paper learns a_i^s, b_i^s per neuron),
        ``"channel"``, ``"shared"`` or a tuple of feature axes; ``None`` (the default) takes the
        record's ``default_sharing``.
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
        sharing: Sharing | None = None,
        a_init: InitLike = None,
        b_init: InitLike = None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        super().__init__(
            APL_FAMILY,
            features_shape,
            sharing=sharing,
            param_dtype=param_dtype,
            rngs=rngs,
            hinges=check_hinges(hinges),
            a_init=a_init,
            b_init=b_init,
        )

    @property
    def hinges(self) -> int:
        """Number of hinges S."""
        return self.options["hinges"]


APL_FAMILY = ActivationFamily(
    name="apl",
    apply=apl,
    # The curve fitter's Jacobian is forward mode, which the kernel's custom VJP lacks.
    fit_apply=functools.partial(apl, implementation="autodiff"),
    params=("a", "b"),
    coeff_shapes=_coeff_shapes,
    init=apl_default_init,
    shape_options=(("hinges", APL_DEFAULT_HINGES),),
    default_sharing="element",
    module=APL,
    to_numpy=_to_numpy,
    fit_starts=lambda rng, interval, r, hinges=APL_DEFAULT_HINGES: located_terms_start(
        rng, interval, r, check_hinges(hinges)
    ),
    # ``enum BaseId``'s kApl in ``cpaf_jax/ops/kernels/cpaf_cpu.cc``: up to 8 hinges, float32.
    kernel=kernel_vjp.KernelSpec(base_id=3, max_k=8),
)
