"""Fit-to-target initialisation: the parameters of an activation family that best match a
given function on an interval::

    fam = cpaf_jax.family("cpaf_sigmoid")
    res = cpaf_jax.fit_curve("tanh", fam, k=4)                  # CPAF-sigmoid ~ tanh
    act = cpaf_jax.CPAF((30,), k=4, base="sigmoid", **res.init_kwargs())

How: least squares on ``num_points`` evenly spaced points of ``interval``, solved by
``cpaf_jax.fitting.solver.least_squares`` (Levenberg-Marquardt) from ``restarts`` starting
points at once. The start with the smallest maximum error on the grid wins. The first start is
the family's default initialisation, so the fit is never worse on the grid than the default.
Compiled solvers are cached per (family, options, grid size, steps, restarts): a second fit of
the same shape skips the compile, whatever the target or interval.

This module knows no family: the ``ActivationFamily`` record passed in says how to evaluate
itself (``fit_apply`` or ``apply``), its parameter shapes (``coeff_shapes``) and where to
start (``fit_init`` or ``init``, ``fit_starts``). Names are resolved by the registry
(``cpaf_jax.family(name)``; ``cpaf_jax.fit_initializer`` takes names). Targets: a name in
``TARGETS`` or any elementwise callable (called once on the grid, as a JAX array; NumPy
functions work too).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cpaf_jax.fitting.solver import least_squares, unflatten

Array = jax.Array

TARGETS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    # The exact (erf) GELU, as PyTorch's default; jax.nn.gelu defaults to the tanh approximation.
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "elu": jax.nn.elu,
    # Slope 0.01: jax.nn.leaky_relu's default and the PAU paper's initial shape.
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, 0.01),
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "softplus": jax.nn.softplus,
}


@dataclasses.dataclass(frozen=True)
class CurveFit:
    """The outcome of ``fit_curve``.

    Attributes:
      family: the ``ActivationFamily`` fitted.
      params: parameter name -> float32 NumPy array of its coefficient shape (unshared):
        ``{"a": (k,), "b": (k,)}`` for CPAF and APL, ``{"p": (m+1,), "q": (n,)}`` for PAU,
        ``{"beta": ()}``, ``{"alpha": ()}``.
      max_error: largest ``|fitted - target|`` on the fitting grid.
      rms_error: root mean square of the same.
      interval: the fitted interval.
      options: the family's shape options used (e.g. ``{"k": 4}``).
    """

    family: Any
    params: dict[str, np.ndarray]
    max_error: float
    rms_error: float
    interval: tuple[float, float] = (-3.0, 3.0)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def init_kwargs(self) -> dict[str, np.ndarray]:
        """Initial values as module keyword arguments, e.g. ``{"a_init": a, "b_init": b}``;
        ``CPAF(shape, k=k, base=base, **res.init_kwargs())`` starts from the fitted curve."""
        return {f"{name}_init": value for name, value in self.params.items()}

    def __call__(self, x) -> Array:
        """The fitted curve at ``x`` (any shape), with the parameters shared over ``x``."""
        return self.family.apply(jnp.asarray(x), *(jnp.asarray(v) for v in self.params.values()))


def located_terms_start(rng: np.random.Generator, interval, r: int, k: int) -> tuple:
    """A fitting start for a sum of ``k`` located terms (CPAF's and APL's ``(a, b)``).

    Locations over (a bit beyond) the interval: a term parked outside acts as a constant (CPAF)
    or a linear piece (APL), which some targets need. Start 1 spreads them evenly; later ones
    draw them. Scales start at 0 on odd starts: the first Levenberg-Marquardt step then solves
    the (linear) least-squares problem in ``a`` for those locations.

    Returns:
      ``(a, b)``, float64 arrays of shape ``(k,)``.
    """
    lo, hi = interval
    width = hi - lo
    if r == 1:
        b = np.linspace(lo, hi, k + 2)[1:-1]
    else:
        b = np.sort(rng.uniform(lo - 0.25 * width, hi + 0.25 * width, k))
    a = np.zeros(k) if r % 2 else rng.normal(0.0, 1.0, k)
    return a, b


def _starts(family, options, sizes, interval, restarts, seed) -> np.ndarray:
    """``[restarts, n]`` flat starting points; row 0 is the family's default initialisation."""
    rng = np.random.default_rng(seed)
    first = (family.fit_init or family.init)(**options)
    out = np.empty((restarts, sum(int(np.prod(s)) for s in sizes)))
    out[0] = np.concatenate([np.ravel(v) for v in first])
    for r in range(1, restarts):
        if family.fit_starts is not None:
            values = family.fit_starts(rng, interval, r, **options)
            out[r] = np.concatenate([np.ravel(v) for v in values])
        else:
            out[r] = out[0] + rng.normal(0.0, 0.5, out.shape[1])
    return out


def _target_values(target, xs: np.ndarray) -> np.ndarray:
    if isinstance(target, str):
        try:
            fn = TARGETS[target]
        except KeyError:
            raise ValueError(
                f"fit_curve: unknown target {target!r}; known targets are {sorted(TARGETS)}, or "
                "pass any elementwise callable"
            ) from None
    elif callable(target):
        fn = target
    else:
        raise TypeError(
            f"fit_curve: target must be a name or a callable, got {type(target).__name__}"
        )
    ys = np.asarray(fn(jnp.asarray(xs)), dtype=np.float32)
    if ys.shape != xs.shape:
        raise ValueError(
            f"fit_curve: target must be elementwise; on an input of shape {xs.shape} it returned "
            f"shape {ys.shape}"
        )
    if not np.all(np.isfinite(ys)):
        raise ValueError("fit_curve: the target is not finite everywhere on the interval")
    return ys


@functools.lru_cache(maxsize=64)
def _model(apply: Callable, call_options: tuple) -> Callable:
    # One object per (function, options), so the solver's compile cache hits on a second fit.
    return functools.partial(apply, **dict(call_options)) if call_options else apply


def _check(family, interval, num_points, steps, restarts, n) -> tuple[float, float]:
    if not getattr(family, "params", None):
        raise ValueError(
            f"fit_curve: activation {getattr(family, 'name', family)!r} has no parameters to "
            "fit; pass a parametric family record (cpaf_jax.family(name))"
        )
    lo, hi = (float(v) for v in interval)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"fit_curve: interval must be finite with lo < hi, got {interval!r}")
    if num_points < max(n, 2):
        raise ValueError(f"fit_curve: num_points={num_points} is fewer than the {n} parameters")
    if restarts < 1 or steps < 1:
        raise ValueError(f"fit_curve: restarts and steps must be >= 1, got {restarts}, {steps}")
    return lo, hi


def fit_curve(
    target: str | Callable[[Array], Array],
    family,
    interval: tuple[float, float] = (-3.0, 3.0),
    *,
    num_points: int = 512,
    steps: int = 150,
    restarts: int = 12,
    seed: int = 0,
    **options,
) -> CurveFit:
    """Least-squares fit of an activation family to ``target`` on ``interval``.

    Args:
      target: a name in ``TARGETS`` (``"relu"``, ``"gelu"`` (exact erf form), ``"tanh"``,
        ``"sigmoid"``, ``"elu"``, ``"leaky_relu"`` (slope 0.01), ``"silu"``/``"swish"``,
        ``"softplus"``) or an elementwise callable.
      family: a parametric ``cpaf_jax.ActivationFamily`` (``cpaf_jax.family("cpaf_relu")``).
      interval: ``(lo, hi)``, ``lo < hi``.
      num_points: grid size (float32, endpoints included).
      steps: Levenberg-Marquardt steps per start.
      restarts: number of starting points, solved together under ``vmap``; the first is the
        family's default initialisation.
      seed: for the random starting points.
      **options: the family's shape options (CPAF's ``k``, APL's ``hinges``, PAU's
        ``degrees``), defaults otherwise.

    Returns:
      ``CurveFit`` with unshared parameters and the max and rms error on the grid.

    Raises:
      ValueError: unknown target, a parameter-free family, bad interval, options or grid size.
      TypeError: an option the family does not take.
    """
    shape_opts = family.split(options)[0] if family.params else {}
    sizes = tuple(tuple(s) for s in family.coeff_shapes(**shape_opts)) if family.params else ()
    n = sum(int(np.prod(s)) for s in sizes)
    lo, hi = _check(family, interval, num_points, steps, restarts, n)
    xs = np.linspace(lo, hi, num_points, dtype=np.float32)
    ys = _target_values(target, xs)
    return fit_samples(family, xs, ys, steps=steps, restarts=restarts, seed=seed, **options)


def fit_samples(
    family,
    xs,
    ys,
    weights=None,
    *,
    steps: int = 150,
    restarts: int = 12,
    seed: int = 0,
    **options,
) -> CurveFit:
    """Least-squares fit of an activation family to sample values ``ys`` at points ``xs``.

    ``fit_curve`` is this on an even grid of an interval. With ``weights`` it is a weighted
    fit (``cpaf_jax.swap_activations`` weights the points by how often a layer's inputs fall
    near them) and the best start is the one with the smallest weighted squared error.

    Args:
      family: a parametric ``cpaf_jax.ActivationFamily``.
      xs, ys: ``[num_points]`` sample points and target values (float32).
      weights: optional ``[num_points]`` weights >= 0, not all zero.
      steps, restarts, seed, ``**options``: as ``fit_curve``.

    Returns:
      ``CurveFit``; its ``interval`` is ``(min(xs), max(xs))``, ``max_error`` the largest
      ``|fitted - target|`` at points of nonzero weight, ``rms_error`` the (weighted) root mean
      square error.
    """
    shape_opts, call_opts, inits = family.split(options) if family.params else ({}, {}, {})
    if inits:
        raise TypeError(f"fit_curve: initial values {sorted(inits)} are not fit options")
    sizes = tuple(tuple(s) for s in family.coeff_shapes(**shape_opts)) if family.params else ()
    xs = np.asarray(xs, np.float32).ravel()
    ys = np.asarray(ys, np.float32).ravel()
    lo, hi = float(np.min(xs)), float(np.max(xs))
    _check(family, (lo, hi), xs.size, steps, restarts, sum(int(np.prod(s)) for s in sizes))
    if ys.shape != xs.shape or not np.all(np.isfinite(ys)):
        raise ValueError("fit_samples: ys must be finite and shaped like xs")
    starts = _starts(family, shape_opts, sizes, (lo, hi), restarts, seed)
    # Only call options given away from their defaults: ``fit_apply`` may bind its own (CPAF's
    # forward-mode implementation).
    defaults = dict(family.call_options)
    given = tuple(sorted((n, v) for n, v in call_opts.items() if v != defaults[n]))
    model = _model(family.fit_apply or family.apply, given)
    thetas, max_errs, sq = least_squares(model, sizes, xs, ys, starts, steps, weights)
    score = max_errs if weights is None else sq
    best = int(np.nanargmin(np.where(np.isfinite(score), score, np.inf)))
    theta = np.asarray(thetas[best], np.float32)
    params = {
        name: np.asarray(v) for name, v in zip(family.params, unflatten(theta, sizes), strict=True)
    }
    fit = CurveFit(family, params, float(max_errs[best]), 0.0, (lo, hi), shape_opts)
    if weights is None:
        return dataclasses.replace(fit, rms_error=float(np.sqrt(sq[best] / xs.size)))
    w = np.asarray(weights, np.float64)
    err = np.abs(np.asarray(fit(xs), np.float64) - ys)[w > 0]
    rms = float(np.sqrt(sq[best] / max(float(np.sum(w)), 1e-30)))
    return dataclasses.replace(fit, max_error=float(np.max(err, initial=0.0)), rms_error=rms)


__all__ = ["CurveFit", "TARGETS", "fit_curve", "fit_samples", "located_terms_start"]
