"""CPAF (Ko, Li, Ko 2022) as an activation family: ``cpaf_sigmoid``, ``cpaf_relu``,
``cpaf_tanh`` (and a record for any other base), and the NNX module ``CPAF``.

``z = sum_i a_i (f(y - b_i) - offset)`` (Eq. 7-9), computed by ``cpaf_jax.ops.functional.cpaf``;
after a convolution and before a 2x2 max-pool, by ``cpaf_jax.ops.fused_pool.cpaf_max_pool_2x2``.
Default initial values: Table 1 (``cpaf_jax.activations.initializers.default_terms``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cpaf_jax.activations.family import Activation, ActivationFamily
from cpaf_jax.activations.initializers import InitLike, default_terms
from cpaf_jax.fitting.curve_fit import located_terms_start
from cpaf_jax.ops.bases import RELU, SIGMOID, TANH, Base, resolve_base
from cpaf_jax.ops.functional import DEFAULT_IMPLEMENTATION, cpaf, kernel_form
from cpaf_jax.ops.fused_pool import cpaf_max_pool_2x2
from cpaf_jax.ops.max_pool import max_pool_2x2
from cpaf_jax.ops.sharing import Sharing

Array = jax.Array

# NumPy forms of the built-in bases: (f, offset).
_NUMPY_BASES = {
    "sigmoid": (lambda u: 0.5 * np.tanh(0.5 * u) + 0.5, 0.5),
    "relu": (lambda u: np.maximum(u, 0.0), 0.5),
    "tanh": (np.tanh, 0.0),
}


def check_k(k) -> int:
    """``k`` as an int; raises ``ValueError`` unless it is an integer >= 1."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"CPAF needs k >= 1 terms: k must be an integer >= 1, got k={k!r}")
    return int(k)


def _coeff_shapes(k: int = 2) -> tuple[tuple[int, ...], ...]:
    k = check_k(k)
    return ((k,), (k,))


def _pool(y, bias, a, b, *, base: Base, implementation=None) -> Array:
    if implementation in (None, DEFAULT_IMPLEMENTATION):
        return cpaf_max_pool_2x2(y, a, b, base, bias=bias)
    # Another implementation was asked for (e.g. to compare them): honour it, unfused.
    x = y if bias is None else y + bias
    return max_pool_2x2(cpaf(x, a, b, base, implementation=implementation))


def _to_numpy(a: np.ndarray, b: np.ndarray, *, base: Base, implementation=None):
    del implementation  # every implementation computes the same values
    fn, offset = _NUMPY_BASES[base.name]

    def cpaf_numpy(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        u = x.astype(np.float64)[..., None] - b
        return np.sum(a * (fn(u) - offset), axis=-1).astype(x.dtype)

    return cpaf_numpy


def _starts(rng, interval, r, k: int = 2):
    return located_terms_start(rng, interval, r, check_k(k))


def cpaf_family(base: str | Base = "sigmoid") -> ActivationFamily:
    """The CPAF record for a base (one object per base, so modules' graphs compare equal).

    Args:
      base: ``"sigmoid"``, ``"relu"``, ``"tanh"``, a ``cpaf_jax.Base`` or an elementwise
        callable. The record is named ``cpaf_<base name>``; NumPy export exists for the three
        built-in bases.

    Raises:
      ValueError: an unknown base name.
    """
    return _cpaf_family(resolve_base(base))


@functools.cache
def _cpaf_family(base: Base) -> ActivationFamily:
    return ActivationFamily(
        name=f"cpaf_{base.name}",
        apply=functools.partial(cpaf, base=base),
        params=("a", "b"),
        coeff_shapes=_coeff_shapes,
        init=lambda k=2: default_terms(base, check_k(k)),
        shape_options=(("k", 2),),
        call_options=(("implementation", None),),
        default_sharing="element",
        module=functools.partial(CPAF, base=base),
        pool=functools.partial(_pool, base=base),
        to_numpy=functools.partial(_to_numpy, base=base) if base.name in _NUMPY_BASES else None,
        pairs=("a", "b"),
        # The custom-VJP implementation has no forward-mode rule; the fitter's Jacobian needs it.
        fit_apply=functools.partial(cpaf, base=base, implementation="unrolled"),
        fit_starts=_starts,
        kernel=kernel_form(base),
    )


class CPAF(Activation):
    """Combined parametric activation function, ``z = sum_i a_i (f(y - b_i) - offset)``.

    Args:
      features_shape: per-example feature shape, channels last, e.g. ``(26, 26, 16)`` or
        ``30``; needed for ``"element"``, ``"channel"`` and axis sharing.
      k: number of terms (>= 1).
      base: ``"sigmoid"``, ``"relu"``, ``"tanh"``, a ``Base`` or an elementwise callable.
      sharing: ``"element"`` (the record's default, as in 4.1/4.2), ``"channel"`` (4.3),
        ``"shared"``, or a tuple of feature axes that get their own parameters; ``None`` (the
        default) takes the record's ``default_sharing``.
      a_init, b_init: ``None`` for the paper's Table 1 values (extended to any k, see
        ``cpaf_jax.activations.initializers``), a scalar, a length-k sequence, an array of shape
        ``[*P, k]``, or an initializer ``init(key, shape, dtype)``.
      param_dtype: dtype of a and b (float32 by default; the input keeps its own dtype).
      implementation: passed to ``cpaf_jax.cpaf``.
      rngs: needed only when an initializer is callable; constant values draw no key.

    Attributes:
      a, b: ``ActivationParam`` of shape ``[*P, k]``.

    Call:
      ``x`` of shape ``[batch..., *features_shape]`` -> same shape and dtype.
    """

    def __init__(
        self,
        features_shape=None,
        *,
        k: int = 2,
        base="sigmoid",
        sharing: Sharing | None = None,
        a_init: InitLike = None,
        b_init: InitLike = None,
        param_dtype=jnp.float32,
        implementation: str | None = None,
        rngs: nnx.Rngs | None = None,
    ):
        check_k(k)
        super().__init__(
            cpaf_family(base),
            features_shape,
            sharing=sharing,
            param_dtype=param_dtype,
            rngs=rngs,
            k=int(k),
            implementation=implementation,
            a_init=a_init,
            b_init=b_init,
        )

    @property
    def k(self) -> int:
        """Number of terms."""
        return self.options["k"]

    @property
    def base(self) -> Base:
        """The base function ``f``."""
        return self.record.apply.keywords["base"]

    @property
    def implementation(self) -> str | None:
        """The ``cpaf_jax.cpaf`` implementation (``None``: the default)."""
        return self.options["implementation"]


CPAF_SIGMOID_FAMILY = cpaf_family(SIGMOID)
CPAF_RELU_FAMILY = cpaf_family(RELU)
CPAF_TANH_FAMILY = cpaf_family(TANH)
