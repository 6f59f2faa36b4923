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
``fu = f(u)`` (sigmoid and tanh reuse ``fu``), which the closed-form gradients use. A callable
without a derivative gets one from forward-mode autodiff.

The fused kernels (``cpaf``'s forward and custom VJP) ask for ``centered(u) = f(u) - offset``
and ``centered_and_df(u) = (f(u) - offset, f'(u))`` instead. For the sigmoid both come from one
``tanh``: ``sigmoid(u) - 1/2 = tanh(u/2) / 2`` and ``sigmoid'(u) = 1/4 - (tanh(u/2) / 2)^2``,
one transcendental per element and term instead of an ``exp`` and a division, and the offset
disappears from the expression.
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


def _sigmoid_centered(u: Array) -> Array:
    return 0.5 * jnp.tanh(0.5 * u)


def _sigmoid_centered_and_d(u: Array) -> tuple[Array, Array]:
    h = 0.5 * jnp.tanh(0.5 * u)
    return h, 0.25 - h * h


def _relu_centered_and_d(u: Array) -> tuple[Array, Array]:
    return jnp.maximum(u, 0) - 0.5, (u > 0).astype(u.dtype)


def _tanh_centered_and_d(u: Array) -> tuple[Array, Array]:
    t = jnp.tanh(u)
    return t, 1 - t * t


@dataclasses.dataclass(frozen=True, eq=False)
class Base:
    """A base function ``f`` for parametric terms ``a * (f(y - b) - offset)``.

    Attributes:
      name: short name, used in messages and reprs.
      fn: elementwise function ``f``; maps an array to an array of the same shape and dtype.
      offset: constant subtracted from ``f`` before scaling by ``a``.
      derivative: ``df(u, fu) -> f'(u)`` elementwise, given ``u`` and ``fu = f(u)``; ``None``
        means "use forward-mode autodiff of ``fn``".
      centered_fn: optional faster ``u -> f(u) - offset`` (same values up to rounding).
      centered_and_derivative: optional faster ``u -> (f(u) - offset, f'(u))``.
    """

    name: str
    fn: Callable[[Array], Array]
    offset: float = 0.0
    derivative: Callable[[Array, Array], Array] | None = None
    centered_fn: Callable[[Array], Array] | None = None
    centered_and_derivative: Callable[[Array], tuple[Array, Array]] | None = None

    def df(self, u: Array, fu: Array) -> Array:
        """Elementwise derivative ``f'(u)``.

        Args:
          u: any shape, floating dtype.
          fu: ``fn(u)``, same shape and dtype (sigmoid and tanh reuse it).

        Returns:
          ``f'(u)``, ``u``'s shape and dtype.
        """
        if self.derivative is not None:
            return self.derivative(u, fu)
        _, tangent = jax.jvp(self.fn, (u,), (jnp.ones_like(u),))
        return tangent

    def centered(self, u: Array) -> Array:
        """``f(u) - offset`` elementwise, ``u``'s shape and dtype."""
        if self.centered_fn is not None:
            return self.centered_fn(u)
        return self.fn(u) - self.offset

    def centered_and_df(self, u: Array) -> tuple[Array, Array]:
        """``(f(u) - offset, f'(u))`` elementwise, each ``u``'s shape and dtype."""
        if self.centered_and_derivative is not None:
            return self.centered_and_derivative(u)
        fu = self.fn(u)
        return fu - self.offset, self.df(u, fu)

    def __repr__(self) -> str:
        return f"Base({self.name!r}, offset={self.offset})"


SIGMOID = Base(
    "sigmoid", jax.nn.sigmoid, 0.5, _sigmoid_d, _sigmoid_centered, _sigmoid_centered_and_d
)
RELU = Base("relu", jax.nn.relu, 0.5, _relu_d, None, _relu_centered_and_d)
TANH = Base("tanh", jnp.tanh, 0.0, _tanh_d, jnp.tanh, _tanh_centered_and_d)

BASES: dict[str, Base] = {b.name: b for b in (SIGMOID, RELU, TANH)}

_CALLABLE_BASES: dict[Callable, Base] = {}


def resolve_base(base: str | Base | Callable[[Array], Array]) -> Base:
    """Turns a base name, ``Base`` or elementwise callable into a ``Base``.

    A callable must map an array of any shape to one of the same shape (elementwise).

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
