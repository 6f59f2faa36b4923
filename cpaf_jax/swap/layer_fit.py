"""One activation layer fitted to the function it replaces, weighted by its inputs.

For a layer whose inputs on the calibration batch are ``x`` ``[N, *F]`` (channels last), the
new family's parameters are fitted by weighted least squares (``fit_samples``) on a grid of
``num_points`` points spanning the inputs, each point weighted by the share of inputs nearest
to it (plus a small floor, so the rare extremes count too): a good fit where the layer's inputs
are, little effort where they rarely go.

Grouping: where the new layer's parameters have a channel axis (sharing ``"channel"``,
``"element"``, or axes including the last), each channel is fitted to its own inputs; a
per-element layer gets its channel's fit in every element (a few hundred calibration images
are too few samples per element). Otherwise (``"shared"``) one fit to the pooled inputs. When
the replaced layer has its own per-element parameters, a channel's target is the mean of its
elements' functions.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from cpaf_jax.activations.family import ActivationFamily
from cpaf_jax.fitting.curve_fit import fit_samples


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """How each layer is fitted: grid size, Levenberg-Marquardt steps and starts, seed,
    and whether to keep each layer's output variance (``gain``)."""

    num_points: int = 256
    steps: int = 150
    restarts: int = 8
    seed: int = 0
    gain: bool = False


def _grid(samples: np.ndarray, num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """``(points [num_points], weights [num_points])``: an even grid from the smallest to the
    largest sample, each point weighted by the share of samples nearest to it, plus a floor
    (1% of the weight spread evenly) so that the rare extremes are fitted too."""
    lo, hi = float(np.min(samples)), float(np.max(samples))
    if hi - lo < 1e-3:  # a (nearly) constant input, e.g. a dead channel: a unit-wide window
        lo, hi = lo - 0.5, hi + 0.5
    xs = np.linspace(lo, hi, num_points)
    edges = np.concatenate([[-np.inf], (xs[1:] + xs[:-1]) / 2, [np.inf]])
    counts = np.histogram(samples, bins=edges)[0].astype(np.float64)
    weights = 0.99 * counts / counts.sum() + 0.01 / num_points
    return xs.astype(np.float32), weights


def _per_channel(fam: ActivationFamily, features, sharing, options) -> bool:
    shape = next(iter(fam.param_shapes(features, sharing, **options).values()))
    return len(shape) > 0 and shape[-1] == features[-1]


def _targets(source, grid: np.ndarray, features: tuple[int, ...]) -> np.ndarray:
    """``source`` on ``grid`` ``[P, G]`` (``G`` channels, or 1 pooled), each channel's points
    sent to every element of that channel; returns ``[P, G]`` (the mean over elements)."""
    p, g = grid.shape
    shape = (p, *([1] * (len(features) - 1)), g)
    x = jnp.broadcast_to(jnp.asarray(grid).reshape(shape), (p, *features))
    y = np.asarray(source(x), np.float64)
    return y.reshape(p, -1, g).mean(axis=1)


def fit_layer(
    source, x: np.ndarray, fam: ActivationFamily, sharing, options: dict, fs: FitSettings
) -> dict[str, np.ndarray]:
    """Initial values ``{param: [*P, *coeffs]}`` of ``fam`` fitted to ``source`` on ``x``.

    Args:
      source: the replaced activation, elementwise on ``[..., *F]``.
      x: ``[N, *F]`` float inputs it received.
      fam: the new family (parametric); ``sharing`` and ``options`` its layer's.
      fs: fitting settings.
    """
    features = tuple(x.shape[1:])
    shape_opts = fam.split(options)[0]
    per_channel = _per_channel(fam, features, sharing, shape_opts)
    groups = x.reshape(-1, features[-1]).T if per_channel else x.reshape(1, -1)
    grids = [_grid(g, fs.num_points) for g in groups]
    points = np.stack([p for p, _ in grids], axis=1)  # [P, G]
    targets = _targets(source, points, features)
    fits = [
        fit_samples(
            fam, points[:, i], targets[:, i], w,
            steps=fs.steps, restarts=fs.restarts, seed=fs.seed, **options,
        )
        for i, (_, w) in enumerate(grids)
    ]  # fmt: skip
    shapes = fam.param_shapes(features, sharing, **shape_opts)
    out = {}
    for name in fam.params:
        stacked = np.stack([f.params[name] for f in fits])  # [G, *coeffs]
        coeffs = stacked.shape[1:]
        lead = len(shapes[name]) - len(coeffs)
        value = stacked.reshape((*([1] * (lead - 1)), -1, *coeffs)) if per_channel else stacked[0]
        out[name] = np.broadcast_to(value, shapes[name]).astype(np.float32)
    return out


def linear_param(fam: ActivationFamily, values: dict[str, np.ndarray], options: dict) -> Any:
    """The name of a parameter the family's output is linear in (CPAF's ``a``, PAU's ``p``),
    found by checking ``f(x; 2 theta) == 2 f(x; theta)`` on a few points; ``None`` if none."""
    shape_opts, call, _ = fam.split(options)
    shapes = fam.coeff_shapes(**shape_opts)
    probe = np.linspace(-3.0, 3.0, 7, dtype=np.float32)
    # One unit's coefficients (every unit has the same structure).
    coeffs = {
        n: np.asarray(values[n]).reshape(-1, *c)[0] for n, c in zip(fam.params, shapes, strict=True)
    }
    base = np.asarray(fam.apply(jnp.asarray(probe), *coeffs.values(), **call))
    for name in fam.params:
        scaled = {n: v * (2.0 if n == name else 1.0) for n, v in coeffs.items()}
        out = np.asarray(fam.apply(jnp.asarray(probe), *scaled.values(), **call))
        if np.allclose(out, 2.0 * base, rtol=1e-4, atol=1e-5) and np.any(np.abs(base) > 1e-4):
            return name
    return None
