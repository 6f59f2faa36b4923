"""An activation family as one record, and the NNX module that is a thin shell over it.

``ActivationFamily`` is to activations what optax's ``GradientTransformation`` is to
optimisers: a small frozen record of pure functions and facts. Everything else (the registry,
the NNX and Linen modules, curve fitting, NumPy export, checkpoint specs, ``inspect`` and the
plots) is written once over it, so a new family is one file that defines its record.

Shape conventions (as ``cpaf_jax.ops.functional``): an input ``x`` is ``[..., *F]``, channels
last; a parameter is ``[*P, *coeffs]`` where ``P = param_shape(F, sharing)`` (see
``cpaf_jax.ops.sharing``) and ``coeffs`` is the family's coefficient shape for its options:
``(k,)`` for CPAF's ``a`` and ``b``, ``()`` for PReLU's ``alpha``, ``(m + 1,)`` and ``(n,)``
for PAU's ``p`` and ``q``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cpaf_jax.activations.initializers import make_param
from cpaf_jax.ops.kernel_vjp import KernelSpec
from cpaf_jax.ops.max_pool import max_pool_2x2
from cpaf_jax.ops.sharing import Sharing, normalize_features_shape, param_shape, sharing_name

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class ActivationFamily:
    """One activation family: its pure function and everything generic code needs to know.

    Records are frozen and hashable (modules keep theirs as a static attribute, so two modules of
    one family have equal graph definitions and sweeps can stack them).

    Attributes:
      name: the registry name, e.g. ``"cpaf_relu"``.
      apply: the pure function ``apply(x, *params, **call_options) -> z``, ``x``'s shape and
        dtype; ``params`` in the order of ``params`` below, each ``[*P, *coeffs]``.
      params: parameter names in ``apply``'s order; empty for a parameter-free family.
      coeff_shapes: ``coeff_shapes(**shape_options) -> tuple of shapes``, one per parameter (its
        trailing coefficient axes); raises ``ValueError`` for bad options.
      init: ``init(**shape_options) -> tuple of float64 arrays`` of the coefficient shapes, the
        default initial values (broadcast over every shared unit).
      shape_options: ``(name, default)`` pairs of options that set the parameter shapes or
        initial values (CPAF's ``k``); recorded by ``describe``.
      call_options: ``(name, default)`` pairs passed to ``apply`` (ELU's ``alpha``, CPAF's
        ``implementation``).
      described: call options that ``describe`` records too (those that change the function's
        values, like ELU's ``alpha``; not CPAF's ``implementation``).
      default_sharing: the NNX module's default sharing.
      module: the NNX class (or factory) to build, called with keyword arguments
        ``features_shape``, ``sharing``, ``rngs`` and the family's options and ``<param>_init``;
        ``None`` builds the generic ``Activation``.
      pool: optional fused ``max_pool_2x2(apply(y + bias))``: ``pool(y, bias, *params,
        **call_options)`` for ``y`` of shape ``[N, H, W, C]``, ``bias`` ``(C,)`` or ``None``;
        ``None`` composes the two.
      to_numpy: ``to_numpy(*params, **call_options) -> f`` with ``f(x: np.ndarray)`` computing
        ``apply`` in NumPy (parameters as float64 NumPy arrays); ``None`` if there is no NumPy
        form.
      pairs: for a sum of located terms (CPAF), the names of its (scale, location) parameters:
        counted as pairs and plotted as Fig. 14's (a, b) scatter.
      fit_apply: ``apply`` with a forward-mode rule, for the curve fitter's Jacobian; ``None``
        means ``apply`` has one.
      fit_init: the curve fitter's first start, ``fit_init(**shape_options)``; ``None`` means
        ``init`` (PAU sets it because its own ``init`` for unpublished degrees is a fit).
      fit_starts: ``fit_starts(rng, interval, r, **shape_options) -> tuple of arrays``, the
        fitter's ``r``-th (``r >= 1``) starting point; ``None`` perturbs the first start.
      kernel: the form of the one-pass CPU kernel that computes ``apply``'s backward (a
        ``cpaf_jax.ops.kernel_vjp.KernelSpec``: the kernel's base id, the most coefficients it
        takes, its dtype); ``None`` when no form of the kernel serves the family. ``apply``
        reads it from here (the kernel's Python side names no family).
    """

    name: str
    apply: Callable[..., Array]
    params: tuple[str, ...] = ()
    coeff_shapes: Callable[..., tuple[tuple[int, ...], ...]] | None = None
    init: Callable[..., tuple[np.ndarray, ...]] | None = None
    shape_options: tuple[tuple[str, Any], ...] = ()
    call_options: tuple[tuple[str, Any], ...] = ()
    described: tuple[str, ...] = ()
    default_sharing: str = "element"
    module: Callable[..., nnx.Module] | None = None
    pool: Callable[..., Array] | None = None
    to_numpy: Callable[..., Callable[[np.ndarray], np.ndarray]] | None = None
    pairs: tuple[str, str] | None = None
    fit_apply: Callable[..., Array] | None = None
    fit_init: Callable[..., tuple[np.ndarray, ...]] | None = None
    fit_starts: Callable[..., tuple[np.ndarray, ...]] | None = None
    kernel: KernelSpec | None = None

    @property
    def parametric(self) -> bool:
        """Whether the family has trainable parameters."""
        return bool(self.params)

    def option_names(self) -> tuple[str, ...]:
        """Every option the family takes (shape options, then call options)."""
        return tuple(n for n, _ in self.shape_options) + tuple(n for n, _ in self.call_options)

    def split(self, kwargs: Mapping[str, Any]) -> tuple[dict, dict, dict]:
        """Splits module keyword arguments into ``(shape_options, call_options, inits)``.

        Options missing from ``kwargs`` take their defaults; ``inits`` maps a parameter name to
        its ``<param>_init`` value (absent when not given).

        Raises:
          TypeError: an argument the family does not take, listing those it does.
        """
        kwargs = dict(kwargs)
        inits = {p: kwargs.pop(f"{p}_init") for p in self.params if f"{p}_init" in kwargs}
        shape = {n: kwargs.pop(n, d) for n, d in self.shape_options}
        call = {n: kwargs.pop(n, d) for n, d in self.call_options}
        if kwargs:
            allowed = list(self.option_names()) + [f"{p}_init" for p in self.params]
            raise TypeError(
                f"activation {self.name!r} got unexpected argument(s) {sorted(kwargs)}; it takes "
                f"{allowed or 'no options'} (plus features_shape, sharing, param_dtype, rngs)"
            )
        return shape, call, inits

    def select(self, kwargs: Mapping[str, Any]) -> dict:
        """The entries of ``kwargs`` that this family takes (options and ``<param>_init``)."""
        names = set(self.option_names()) | {f"{p}_init" for p in self.params}
        return {k: v for k, v in kwargs.items() if k in names}

    def param_shapes(self, features_shape, sharing: Sharing, **shape_options) -> dict:
        """Full parameter shapes ``{name: (*P, *coeffs)}`` for a feature shape and sharing
        (shape options not given take the record's defaults)."""
        if not self.params:
            return {}
        p = param_shape(normalize_features_shape(features_shape), sharing)
        coeffs = self.coeff_shapes(**{**dict(self.shape_options), **shape_options})
        return {n: p + tuple(c) for n, c in zip(self.params, coeffs, strict=True)}

    def initial_values(self, **shape_options) -> dict[str, np.ndarray]:
        """Default initial values ``{name: coefficient-shaped float64 array}`` (shape options
        not given take the record's defaults)."""
        if not self.params:
            return {}
        values = self.init(**{**dict(self.shape_options), **shape_options})
        return {n: np.asarray(v, np.float64) for n, v in zip(self.params, values, strict=True)}

    def build(self, features_shape=None, *, sharing: Sharing | None = None, rngs=None, **kwargs):
        """The NNX module: ``module(features_shape=..., sharing=..., rngs=..., **kwargs)``."""
        sharing = self.default_sharing if sharing is None else sharing
        if self.module is None:
            return Activation(self, features_shape, sharing=sharing, rngs=rngs, **kwargs)
        return self.module(features_shape=features_shape, sharing=sharing, rngs=rngs, **kwargs)


def pool_first(fn: Callable[..., Array]) -> Callable[..., Array]:
    """A ``pool`` form for a nondecreasing parameter-free ``fn(x, **call_options)``: ``max``
    commutes with it, so ``fn(max_pool_2x2(y) + bias)`` gives the same values as pooling after
    it and evaluates ``fn`` and its derivative at a quarter of the elements.

    The returned ``pool(y, bias, **call_options)`` maps ``y`` ``[N, H, W, C]`` and ``bias``
    ``(C,)`` or ``None`` to ``[N, H // 2, W // 2, C]``.
    """

    def pool(y: Array, bias: Array | None, **call_options) -> Array:
        x = max_pool_2x2(y)
        return fn(x if bias is None else x + bias, **call_options)

    return pool


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


def _is_initializer(init) -> bool:
    return callable(init) and not isinstance(init, np.ndarray | jax.Array)


def _static(value):
    """Lists (from JSON specs) to tuples, so options stay hashable graph attributes."""
    if isinstance(value, list | tuple):
        return tuple(_static(v) for v in value)
    return value


class Activation(nnx.Module):
    """The NNX module of any ``ActivationFamily``: it owns the parameters, the record computes.

    Args:
      family: the record.
      features_shape: per-example feature shape, channels last (``int`` for dense layers);
        needed by parametric families unless ``sharing="shared"``.
      sharing: ``"element"``, ``"channel"``, ``"shared"`` or a tuple of feature axes; ``None``
        takes the family's default.
      param_dtype: dtype of the parameters (the input keeps its own dtype).
      rngs: used only by callable initializers. Constant initial values draw no key, so a
        network's other weights do not depend on which activation it uses.
      **kwargs: the family's options (e.g. ``k``) and ``<param>_init`` values: ``None`` for the
        family's default, a scalar, a coefficient-shaped sequence, an array broadcasting to the
        parameter shape, or an initializer ``init(key, shape, dtype)``.

    Attributes:
      record: the ``ActivationFamily``; one ``ActivationParam`` attribute per parameter.

    Call: ``x`` of shape ``[batch..., *features_shape]`` -> same shape and dtype.
    """

    def __init__(
        self,
        family: ActivationFamily,
        features_shape=None,
        *,
        sharing: Sharing | None = None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
        **kwargs,
    ):
        shape_opts, call_opts, inits = family.split(kwargs)
        shape_opts = {n: _static(v) for n, v in shape_opts.items()}
        sharing = family.default_sharing if sharing is None else sharing
        self.record = family
        self.sharing = sharing if isinstance(sharing, str) else tuple(sharing)
        self.features_shape = normalize_features_shape(features_shape)
        self.shape_options = tuple(shape_opts.items())
        self.call_options = tuple((n, _static(v)) for n, v in call_opts.items())
        if not family.parametric:
            return
        shapes = family.param_shapes(self.features_shape, self.sharing, **shape_opts)
        needs_default = any(inits.get(n) is None for n in family.params)
        defaults = family.initial_values(**shape_opts) if needs_default else {}
        for name in family.params:
            init = inits.get(name)
            key = rngs.params() if rngs is not None and _is_initializer(init) else None
            default = defaults.get(name, np.zeros(()))
            value = make_param(init, default, key, shapes[name], param_dtype, name)
            setattr(self, name, ActivationParam(value))

    @property
    def family(self) -> str:
        """The family's registry name."""
        return self.record.name

    @property
    def options(self) -> dict[str, Any]:
        """Shape and call options as a dict."""
        return dict(self.shape_options + self.call_options)

    def param_values(self) -> tuple[Array, ...]:
        """The parameters' current values, in ``apply``'s order, each ``[*P, *coeffs]``."""
        return tuple(getattr(self, n)[...] for n in self.record.params)

    def __call__(self, x: Array) -> Array:
        check_features(type(self).__name__, self.features_shape, x)
        return self.record.apply(x, *self.param_values(), **dict(self.call_options))

    def max_pool_2x2(self, y: Array, bias: Array | None = None) -> Array:
        """``max_pool_2x2(self(y + bias))``, by the family's fused form when it has one.

        Args: ``y`` ``[N, H, W, C]`` (a convolution's output without its bias); ``bias``
        ``(C,)`` or ``None``. Returns ``[N, H // 2, W // 2, C]``.
        """
        check_features(type(self).__name__, self.features_shape, y)
        if self.record.pool is not None:
            return self.record.pool(y, bias, *self.param_values(), **dict(self.call_options))
        return max_pool_2x2(self(y if bias is None else y + bias))

    def describe(self) -> dict:
        """Family, options, sharing and shapes, for logs and checkpoint specs."""
        out = {"family": self.family, **dict(self.shape_options)}
        calls = dict(self.call_options)
        out.update({n: calls[n] for n in self.record.described})
        if not self.record.parametric:
            return out
        shapes = {n: tuple(getattr(self, n).shape) for n in self.record.params}
        same = len(set(shapes.values())) == 1
        out["sharing"] = sharing_name(self.sharing)
        out["features_shape"] = self.features_shape
        out["param_shape"] = next(iter(shapes.values())) if same else shapes
        return out


def units(layer: Activation) -> int:
    """Number of separately parametrised units of a layer (``prod(P)``; 1 if parameter-free)."""
    if not layer.record.parametric:
        return 1
    first = layer.record.params[0]
    coeffs = layer.record.coeff_shapes(**dict(layer.shape_options))[0]
    shape = tuple(getattr(layer, first).shape)
    return math.prod(shape[: len(shape) - len(coeffs)])


def unit_params(layer: Activation) -> tuple[np.ndarray, ...]:
    """The layer's parameters as ``[units, *coeffs]`` NumPy arrays, in ``apply``'s order."""
    coeffs = layer.record.coeff_shapes(**dict(layer.shape_options))
    n = units(layer)
    return tuple(
        np.asarray(v).reshape((n, *c)) for v, c in zip(layer.param_values(), coeffs, strict=True)
    )
