"""Base functions of the parametric activation terms.

A term of the combined parametric activation function is

    s_(a,b)(y) = a * (f(y - b) - offset)

where ``f`` is the *base* and ``offset`` a constant of the base:

========  =======================  ========  ===============================================
name      f(u)                     offset    what the offset does
========  =======================  ========  ===============================================
sigmoid   1 / (1 + exp(-u))        1/2       Eq. 2 of the paper: centres the term, so it is
                                             odd about (b, 0) and spans (-a/2, a/2).
relu      max(u, 0)                1/2       Eq. 3 of the paper: the flat part sits at -a/2
                                             and the slope a starts at y = b.
tanh      tanh(u)                  0         tanh is already centred; the term spans (-a, a).
callable  f(u)                     0         a user function is used as it is, unless a
                                             ``Base`` with another offset is given.
========  =======================  ========  ===============================================

Each base also carries its derivative ``df(u, fu)`` in terms of ``u`` and the already computed
``fu = f(u)`` (sigmoid and tanh reuse ``fu``), which the closed-form gradients and the custom
VJP use. A callable without a derivative gets one from forward-mode autodiff.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def _sigmoid_d(u: Array, fu: Array) -> Array:
    del u
    return fu * (1 - fu)


def _relu_d(u: Array, fu: Array) -> Array:
    del fu
    # The paper's Eq. 3 puts y == b on the flat side, so the slope there is 0.
    return (u > 0).astype(u.dtype)


def _tanh_d(u: Array, fu: Array) -> Array:
    del u
    return 1 - fu * fu


@dataclasses.dataclass(frozen=True, eq=False)
class Base:
    """A base function ``f`` for parametric terms ``a * (f(y - b) - offset)``.

    Attributes:
      name: short name, used in messages and reprs.
      fn: elementwise function ``f``; maps an array to an array of the same shape and dtype.
      offset: constant subtracted from ``f`` before scaling by ``a``.
      derivative: ``df(u, fu) -> f'(u)`` elementwise, given ``u`` and ``fu = f(u)``; ``None``
        means "use forward-mode autodiff of ``fn``".
    """

    name: str
    fn: Callable[[Array], Array]
    offset: float = 0.0
    derivative: Callable[[Array, Array], Array] | None = None

    def df(self, u: Array, fu: Array) -> Array:
        """Elementwise derivative ``f'(u)``; ``fu`` must equal ``fn(u)``."""
        if self.derivative is not None:
            return self.derivative(u, fu)
        _, tangent = jax.jvp(self.fn, (u,), (jnp.ones_like(u),))
        return tangent

    def __repr__(self) -> str:
        return f"Base({self.name!r}, offset={self.offset})"


SIGMOID = Base("sigmoid", jax.nn.sigmoid, 0.5, _sigmoid_d)
RELU = Base("relu", jax.nn.relu, 0.5, _relu_d)
TANH = Base("tanh", jnp.tanh, 0.0, _tanh_d)

BASES: dict[str, Base] = {b.name: b for b in (SIGMOID, RELU, TANH)}

_CALLABLE_BASES: dict[Callable, Base] = {}


def resolve_base(base: str | Base | Callable[[Array], Array]) -> Base:
    """Turns a base name, ``Base`` or elementwise callable into a ``Base``.

    Raises:
      ValueError: for an unknown name, listing the known ones.
      TypeError: for anything that is neither a string nor callable.
    """
    if isinstance(base, Base):
        return base
    if isinstance(base, str):
        try:
            return BASES[base]
        except KeyError:
            raise ValueError(
                f"unknown CPAF base {base!r}; known bases are {sorted(BASES)}, "
                "or pass any elementwise callable (offset 0) or a cpaf_jax.Base"
            ) from None
    if callable(base):
        # Cached so the same callable maps to the same (hashable) Base, which keeps jit caches
        # warm when the base is a static argument.
        if base not in _CALLABLE_BASES:
            name = getattr(base, "__name__", type(base).__name__)
            _CALLABLE_BASES[base] = Base(name, base, 0.0, None)
        return _CALLABLE_BASES[base]
    raise TypeError(
        f"base must be one of {sorted(BASES)}, a callable or a cpaf_jax.Base; "
        f"got {type(base).__name__}"
    )
