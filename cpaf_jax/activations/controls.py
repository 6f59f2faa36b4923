"""Control activations for the reproduction: what CPAF's gains could be besides
learning (a, b).

* ``cpaf_sigmoid_frozen``, ``cpaf_relu_frozen``: CPAF (Eq. 7-9) with (a, b) held at their
  initial values (Table 1 at k = 2; ``default_terms`` for other k). The initial values are the
  same for every unit, so a per-element CPAF whose (a, b) never move computes exactly this one
  fixed function everywhere: the family has no trainable parameters at all (the 4 x 14,754
  values a per-element CPAF would hold frozen are one shared ``(k,)`` pair of constants here),
  and the optimiser cannot touch them. It separates the initial shape from its training.
* ``relu_bias``: ``relu(y + c)`` with ``c`` learned per element, initialised to 0: the untied
  bias that a per-element CPAF location ``b`` also gives, without a learned shape.
* ``cpaf_sigmoid_a_only``, ``cpaf_relu_a_only``: CPAF with its scales ``a`` learned (shared as
  asked, per element by default) and its locations ``b`` held at Table 1's; ``cpaf_*_b_only``:
  the locations learned, the scales held. Which of the two carries a learned CPAF's gain.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from cpaf_jax.activations.cpaf import _to_numpy as _cpaf_numpy
from cpaf_jax.activations.cpaf import check_k
from cpaf_jax.activations.family import ActivationFamily
from cpaf_jax.activations.initializers import default_terms
from cpaf_jax.ops.bases import RELU, SIGMOID, Base
from cpaf_jax.ops.functional import cpaf
from cpaf_jax.ops.fused_pool import cpaf_max_pool_2x2

Array = jax.Array


def _terms(base: Base, k: int) -> tuple[Array, Array]:
    a, b = default_terms(base, check_k(k))
    return jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)


def frozen_cpaf(x: Array, *, base: Base, k: int = 2) -> Array:
    """CPAF at its initial ``(a, b)``: ``sum_i a_i (f(x - b_i) - offset)`` (Eq. 7-9).

    Args:
      x: any shape, floating. base: the CPAF base. k: number of terms (>= 1).

    Returns:
      ``x``'s shape and dtype.
    """
    a, b = _terms(base, k)
    return cpaf(x, a, b, base)


def _frozen_pool(y: Array, bias: Array | None, *, base: Base, k: int = 2) -> Array:
    a, b = _terms(base, k)
    return cpaf_max_pool_2x2(y, a, b, base, bias=bias)


def _frozen_numpy(*, base: Base, k: int = 2):
    a, b = default_terms(base, check_k(k))
    return _cpaf_numpy(a, b, base=base)


def frozen_cpaf_family(base: Base) -> ActivationFamily:
    """The ``cpaf_<base>_frozen`` record: parameter-free, ``k`` a call option (default 2)."""
    return ActivationFamily(
        name=f"cpaf_{base.name}_frozen",
        apply=functools.partial(frozen_cpaf, base=base),
        call_options=(("k", 2),),
        described=("k",),
        pool=functools.partial(_frozen_pool, base=base),
        to_numpy=functools.partial(_frozen_numpy, base=base),
    )


def relu_bias(x: Array, c: Array) -> Array:
    """``relu(x + c)``: ReLU after an untied bias.

    Args:
      x: shape ``[..., *F]``, floating. c: shape ``[*P]`` broadcasting against the trailing
        axes of ``x`` (``F`` per element, ``(C,)`` per channel, ``()`` shared).

    Returns:
      ``x``'s shape and dtype.
    """
    return jax.nn.relu(x + c.astype(x.dtype))


def _relu_bias_numpy(c: np.ndarray):
    def relu_bias_numpy(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return np.maximum(x.astype(np.float64) + c, 0.0).astype(x.dtype)

    return relu_bias_numpy


def _with_held(p: Array, *, base: Base, learned: str) -> tuple[Array, Array]:
    """``(a, b)`` of shape ``p``'s: ``p`` as the learned one, the other Table 1's broadcast."""
    a0, b0 = _terms(base, p.shape[-1])
    held = jnp.broadcast_to((b0 if learned == "a" else a0).astype(p.dtype), p.shape)
    return (p, held) if learned == "a" else (held, p)


def half_learned_cpaf(x: Array, p: Array, *, base: Base, learned: str) -> Array:
    """CPAF with one of ``(a, b)`` learned (``p``) and the other at Table 1's values (Eq. 7-9).

    Args:
      x: shape ``[..., *F]``, floating. p: the learned ``a`` (``learned="a"``) or ``b``
        (``learned="b"``), shape ``[*P, k]`` with ``P`` broadcasting against ``F``.
      base: the CPAF base.

    Returns:
      ``x``'s shape and dtype. The held parameter gets no gradient: it is a constant.
    """
    return cpaf(x, *_with_held(p, base=base, learned=learned), base)


def _half_pool(y: Array, bias: Array | None, p: Array, *, base: Base, learned: str) -> Array:
    return cpaf_max_pool_2x2(y, *_with_held(p, base=base, learned=learned), base, bias=bias)


def _half_numpy(p: np.ndarray, *, base: Base, learned: str):
    a0, b0 = default_terms(base, np.shape(p)[-1])
    a, b = (p, b0) if learned == "a" else (a0, p)
    return _cpaf_numpy(np.asarray(a), np.asarray(b), base=base)


def half_learned_family(base: Base, learned: str) -> ActivationFamily:
    """The ``cpaf_<base>_<learned>_only`` record: ``learned`` (``"a"`` or ``"b"``) trained per
    element by default, the other held at Table 1's values; ``k`` a shape option (default 2)."""
    if learned not in ("a", "b"):
        raise ValueError(f"learned must be 'a' or 'b', got {learned!r}")
    which = 0 if learned == "a" else 1
    return ActivationFamily(
        name=f"cpaf_{base.name}_{learned}_only",
        apply=functools.partial(half_learned_cpaf, base=base, learned=learned),
        params=(learned,),
        coeff_shapes=lambda k=2: ((check_k(k),),),
        init=lambda k=2: (default_terms(base, check_k(k))[which],),
        shape_options=(("k", 2),),
        default_sharing="element",
        pool=functools.partial(_half_pool, base=base, learned=learned),
        to_numpy=functools.partial(_half_numpy, base=base, learned=learned),
    )


CPAF_SIGMOID_FROZEN_FAMILY = frozen_cpaf_family(SIGMOID)
CPAF_RELU_FROZEN_FAMILY = frozen_cpaf_family(RELU)
CPAF_SIGMOID_A_ONLY_FAMILY = half_learned_family(SIGMOID, "a")
CPAF_SIGMOID_B_ONLY_FAMILY = half_learned_family(SIGMOID, "b")
CPAF_RELU_A_ONLY_FAMILY = half_learned_family(RELU, "a")
CPAF_RELU_B_ONLY_FAMILY = half_learned_family(RELU, "b")

RELU_BIAS_FAMILY = ActivationFamily(
    name="relu_bias",
    apply=relu_bias,
    params=("c",),
    coeff_shapes=lambda: ((),),
    init=lambda: (np.asarray(0.0),),
    default_sharing="element",
    to_numpy=_relu_bias_numpy,
    fit_starts=lambda rng, interval, r: (rng.uniform(-1.0, 1.0, 1),),
)
