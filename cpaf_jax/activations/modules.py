"""Flax NNX modules: CPAF and the paper's baselines, as thin shells around the pure functions.

Trainable activation parameters are ``ActivationParam`` variables (a subclass of
``nnx.Param``), so an optimizer over ``nnx.Param`` trains them, and
``nnx.state(model, ActivationParam)`` selects them alone (counting, parameter groups,
plots).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from cpaf_jax.activations.initializers import InitLike, default_terms, make_param
from cpaf_jax.ops.bases import resolve_base
from cpaf_jax.ops.functional import cpaf
from cpaf_jax.ops.sharing import Sharing, normalize_features_shape, param_shape, sharing_name

Array = jax.Array


class ActivationParam(nnx.Param):
    """A trainable parameter of an activation function (CPAF's a and b, PReLU's alpha)."""


def check_features(module_name: str, features_shape, x: Array) -> None:
    """Raises ``ValueError`` if ``x``'s trailing axes are not the module's feature shape."""
    if features_shape is None:
        return
    n = len(features_shape)
    if x.ndim < n or tuple(x.shape[x.ndim - n :]) != tuple(features_shape):
        raise ValueError(
            f"{module_name} was built for features of shape {tuple(features_shape)} (per example, "
            f"channels last) but got an input of shape {tuple(x.shape)}; build it with "
            f"features_shape={tuple(x.shape[1:])} or fix the layer it follows"
        )


class CPAF(nnx.Module):
    """Combined parametric activation function, ``z = sum_i a_i (f(y - b_i) - offset)``.

    Args:
      features_shape: per-example feature shape, channels last, e.g. ``(26, 26, 16)`` or
        ``30``; needed for ``"element"``, ``"channel"`` and axis sharing.
      k: number of terms (>= 1).
      base: ``"sigmoid"``, ``"relu"``, ``"tanh"``, a ``Base`` or an elementwise callable.
      sharing: ``"element"`` (default, as in 4.1/4.2), ``"channel"`` (4.3), ``"shared"``, or a
        tuple of feature axes that get their own parameters.
      a_init, b_init: ``None`` for the paper's Table 1 values (extended to any k, see
        ``cpaf_jax.activations.initializers``), a scalar, a length-k sequence, an array of shape
        ``[*P, k]``, or an initializer ``init(key, shape, dtype)``.
      param_dtype: dtype of a and b (float32 by default; the input keeps its own dtype).
      implementation: passed to ``cpaf_jax.cpaf``.
      rngs: needed only when an initializer is callable.

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
        sharing: Sharing = "element",
        a_init: InitLike = None,
        b_init: InitLike = None,
        param_dtype=jnp.float32,
        implementation: str | None = None,
        rngs: nnx.Rngs | None = None,
    ):
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"CPAF needs k >= 1 terms, got k={k!r}")
        self.base = resolve_base(base)
        self.k = k
        self.sharing = sharing if isinstance(sharing, str) else tuple(sharing)
        self.features_shape = normalize_features_shape(features_shape)
        self.implementation = implementation
        shape = param_shape(self.features_shape, self.sharing) + (k,)
        a0, b0 = default_terms(self.base, k)
        key_a = key_b = None
        if rngs is not None:
            key_a, key_b = rngs.params(), rngs.params()
        self.a = ActivationParam(make_param(a_init, a0, key_a, shape, param_dtype, "a"))
        self.b = ActivationParam(make_param(b_init, b0, key_b, shape, param_dtype, "b"))

    def __call__(self, x: Array) -> Array:
        check_features("CPAF", self.features_shape, x)
        return cpaf(x, self.a[...], self.b[...], self.base, implementation=self.implementation)

    @property
    def family(self) -> str:
        return f"cpaf_{self.base.name}"

    def describe(self) -> dict:
        """Family, k, sharing and shapes, for logs and checkpoints."""
        return {
            "family": self.family,
            "k": self.k,
            "sharing": sharing_name(self.sharing),
            "features_shape": self.features_shape,
            "param_shape": tuple(self.a.shape),
        }


def prelu(x: Array, alpha: Array) -> Array:
    """PReLU (He et al. 2015): ``x`` where ``x > 0``, ``alpha * x`` elsewhere.

    ``x``: any shape ``[..., *F]``; ``alpha``: shape ``[*P]`` broadcasting against the trailing
    axes of ``x`` (``()`` shared, ``(C,)`` per channel, ``F`` per element). The output has
    ``x``'s shape and dtype.
    """
    alpha = alpha.astype(x.dtype)
    return jnp.where(x > 0, x, alpha * x)


class PReLU(nnx.Module):
    """PReLU with a learned slope ``alpha`` (initialised to 0.25, as in He et al. 2015).

    Args:
      features_shape: per-example feature shape; needed unless ``sharing="shared"``.
      sharing: ``"element"``, ``"channel"`` (He et al.'s channel-wise form), ``"shared"`` or
        axes, as for ``CPAF``.
      alpha_init: initial slope (scalar or array of the parameter shape).
    """

    def __init__(
        self,
        features_shape=None,
        *,
        sharing: Sharing = "channel",
        alpha_init: float = 0.25,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        del rngs
        self.sharing = sharing if isinstance(sharing, str) else tuple(sharing)
        self.features_shape = normalize_features_shape(features_shape)
        shape = param_shape(self.features_shape, self.sharing)
        self.alpha = ActivationParam(jnp.broadcast_to(jnp.asarray(alpha_init, param_dtype), shape))

    def __call__(self, x: Array) -> Array:
        check_features("PReLU", self.features_shape, x)
        return prelu(x, self.alpha[...])

    @property
    def family(self) -> str:
        return "prelu"

    def describe(self) -> dict:
        """Family, sharing and parameter shape, for logs and checkpoints."""
        return {
            "family": "prelu",
            "sharing": sharing_name(self.sharing),
            "features_shape": self.features_shape,
            "param_shape": tuple(self.alpha.shape),
        }


def _elu(x: Array, alpha: float) -> Array:
    return jax.nn.elu(x, alpha)


# Module-level functions (not lambdas), so two modules of the same family have equal graph
# definitions: sweeps stack members only when their graphs match.
_FIXED_FNS = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
}


class Fixed(nnx.Module):
    """A parameter-free activation (sigmoid, tanh, relu, elu) as a module.

    Args:
      name: ``"sigmoid"``, ``"tanh"``, ``"relu"`` or ``"elu"``.
      alpha: ELU's alpha (ignored by the others).
    """

    def __init__(self, name: str, alpha: float = 1.0):
        if name not in _FIXED_FNS and name != "elu":
            raise ValueError(f"unknown fixed activation {name!r}")
        self.name = name
        self.alpha = float(alpha)

    def __call__(self, x: Array) -> Array:
        if self.name == "elu":
            return _elu(x, self.alpha)
        return _FIXED_FNS[self.name](x)

    @property
    def family(self) -> str:
        return self.name

    def describe(self) -> dict:
        """Family (and ELU's alpha), for logs and checkpoints."""
        return {"family": self.name, **({"alpha": self.alpha} if self.name == "elu" else {})}


def ELU(alpha: float = 1.0) -> Fixed:  # noqa: N802 - reads as a layer class at call sites
    """ELU (Clevert et al. 2016) with fixed ``alpha`` (1 by default)."""
    return Fixed("elu", alpha)


def Sigmoid() -> Fixed:  # noqa: N802
    """Logistic sigmoid as a parameter-free NNX layer: ``[...]`` -> same shape and dtype."""
    return Fixed("sigmoid")


def Tanh() -> Fixed:  # noqa: N802
    """``tanh`` as a parameter-free NNX layer: ``[...]`` -> same shape and dtype."""
    return Fixed("tanh")


def ReLU() -> Fixed:  # noqa: N802
    """ReLU as a parameter-free NNX layer: ``[...]`` -> same shape and dtype."""
    return Fixed("relu")
