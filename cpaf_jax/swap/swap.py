"""``swap_activations``: a trained network with its activations replaced by another family,
each new layer fitted to the function it replaces where that layer's inputs lie::

    res = cpaf_jax.swap_activations(model, "cpaf_sigmoid", images[:512], k=4, sharing="channel")
    new = res.model                       # same class; ``model`` is unchanged
    for layer in res.layers:              # per layer: fit error, output mean/variance change
        print(layer.path, layer.rms_error, layer.var_before, layer.var_after)

Then fine-tune ``new`` (``cpaf-train finetune`` trains the activation parameters only, or
everything, through the training engine).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from cpaf_jax.activations.family import ActivationFamily
from cpaf_jax.activations.registry import family as family_record
from cpaf_jax.swap.layer_fit import FitSettings, fit_layer, linear_param
from cpaf_jax.swap.sites import find_sites, record_inputs


@dataclasses.dataclass(frozen=True)
class LayerFit:
    """How one swapped layer matches the activation it replaced, on the calibration inputs.

    Attributes:
      path: the layer's attribute path (``"act1"``, ``"acts.0"``).
      source: what it replaced (``"relu"``, ``"gelu"``, ``"cpaf_sigmoid"``...).
      family: the new layer's family.
      features_shape: the per-example feature shape measured on the inputs.
      rms_error: root mean square of ``new(x) - old(x)`` over every input element ``x`` the
        layer received (the fit error weighted by the layer's input distribution).
      max_error: the largest ``|new(x) - old(x)|`` over the same inputs.
      mean_before, mean_after: the layer's output mean before and after the swap.
      var_before, var_after: the layer's output variance before and after.
      gain: the factor the fitted function was scaled by to keep the output variance (1.0
        without ``gain=True``).
    """

    path: str
    source: str
    family: str
    features_shape: tuple[int, ...]
    rms_error: float
    max_error: float
    mean_before: float
    mean_after: float
    var_before: float
    var_after: float
    gain: float = 1.0


@dataclasses.dataclass(frozen=True)
class SwapResult:
    """The outcome of ``swap_activations``: the new ``model`` and one ``LayerFit`` per layer
    (in attribute-path order)."""

    model: nnx.Module
    layers: list[LayerFit]

    def table(self) -> str:
        """The per-layer report as a Markdown table."""
        rows = [
            "| layer | replaced | by | RMS error | max error | mean before -> after | "
            "variance before -> after | gain |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for f in self.layers:
            rows.append(
                f"| {f.path} | {f.source} | {f.family} | {f.rms_error:.4f} | {f.max_error:.4f} "
                f"| {f.mean_before:.4f} -> {f.mean_after:.4f} "
                f"| {f.var_before:.4f} -> {f.var_after:.4f} | {f.gain:.4f} |"
            )
        return "\n".join(rows)


def _build(fam: ActivationFamily, features, sharing, options: dict, values: dict):
    inits = {f"{n}_init": v for n, v in values.items()}
    return fam.build(features, sharing=sharing, **options, **inits)


def _outputs(layer, x: np.ndarray) -> np.ndarray:
    return np.asarray(layer(jnp.asarray(x)), np.float64)


def _swap_one(site, x: np.ndarray, fam: ActivationFamily, sharing, options, fs: FitSettings):
    """``(new layer, LayerFit)`` for one site given its inputs ``x`` ``[N, *F]``."""
    features = tuple(x.shape[1:])
    old = _outputs(site.value, x)
    values = fit_layer(site.value, x, fam, sharing, options, fs) if fam.parametric else {}
    layer = _build(fam, features, sharing, options, values)
    new = _outputs(layer, x)
    gain = 1.0
    if fs.gain and fam.parametric and new.std() > 0:
        gain = float(old.std() / new.std())
        name = linear_param(fam, values, options)
        if name is not None:
            values = {**values, name: values[name] * np.float32(gain)}
        else:  # no parameter scales the output: fit to the scaled function instead
            scaled = _Scaled(site.value, gain)
            values = fit_layer(scaled, x, fam, sharing, options, fs)
        layer = _build(fam, features, sharing, options, values)
        new = _outputs(layer, x)
    diff = new - old
    report = LayerFit(
        path=site.path,
        source=site.source,
        family=fam.name,
        features_shape=features,
        rms_error=float(np.sqrt(np.mean(diff**2))),
        max_error=float(np.max(np.abs(diff))),
        mean_before=float(old.mean()),
        mean_after=float(new.mean()),
        var_before=float(old.var()),
        var_after=float(new.var()),
        gain=gain,
    )
    return layer, report


class _Scaled:
    def __init__(self, fn, gain: float):
        self.fn, self.gain = fn, gain

    def __call__(self, x):
        return self.gain * self.fn(x)


def swap_activations(
    model: nnx.Module,
    family: str | ActivationFamily,
    inputs,
    *,
    sharing: Any = None,
    gain: bool = False,
    num_points: int = 256,
    steps: int = 150,
    restarts: int = 8,
    seed: int = 0,
    **family_options,
) -> SwapResult:
    """A copy of ``model`` with every activation replaced by ``family``, fitted to it.

    The activations found are the attributes of the model's modules (and items of its
    ``nnx.List``s) that hold one of cpaf-jax's activation modules (any family, the fixed
    ``ReLU``, ``Sigmoid``, ``Tanh`` included) or one of JAX's stateless activations
    (``jax.nn.relu``, ``nnx.gelu``, ``jnp.tanh``, a ``functools.partial`` of one...). An
    activation called as a plain function inside ``__call__`` (``x = nnx.relu(x)``) is not an
    attribute and cannot be swapped: hold it as ``self.act = nnx.relu`` to make it swappable.

    Each new layer's parameters are fitted by weighted least squares to the function it
    replaces, the weights being the distribution of that layer's inputs on ``inputs`` (one
    eager forward pass in evaluation mode): per channel where the new parameters have a
    channel axis (``"channel"``; ``"element"`` layers get their channel's fit in every
    element), on the pooled inputs for ``"shared"`` (see ``cpaf_jax.swap.layer_fit``). Each
    layer's feature shape is that of its measured inputs. A parameter-free ``family``
    (``"relu"``, ``"elu"``) is put in as it is.

    Args:
      model: an NNX model called as ``model(inputs)``; it is not changed.
      family: a registered name (``"cpaf_sigmoid"``, ``"cpaf_relu"``, ``"pau"``, ``"apl"``,
        ``"swish"``, ``"prelu"``...) or a record (``cpaf_jax.cpaf_family("tanh")``).
      inputs: a calibration batch ``[N, ...]`` the model takes (a few hundred examples).
      sharing: the new layers' sharing; ``None`` takes the family's default.
      gain: keep each layer's output variance on ``inputs``: the fitted function is scaled by
        ``std(old output) / std(new output)`` (through a parameter the output is linear in,
        CPAF's ``a`` or PAU's ``p``, else by refitting to the scaled function), as KAT starts
        its rational units.
      num_points, steps, restarts, seed: the fit's grid size, Levenberg-Marquardt steps,
        starting points and seed (``cpaf_jax.fitting.curve_fit.fit_samples``).
      **family_options: the family's options (CPAF's ``k``, PAU's ``degrees``...).

    Returns:
      ``SwapResult(model, layers)``: the new model (same class, same weights, same train/eval
      mode as ``model``) and one ``LayerFit`` per swapped layer: its RMS and max error on the
      inputs, and its output mean and variance before and after.

    Raises:
      ValueError: no activation attribute was found (or one was called more than once per
        forward pass), an unknown family, or options the family does not take.
    """
    fam = family_record(family) if isinstance(family, str) else family
    fam.split(family_options)  # a bad option fails before any work
    sharing = fam.default_sharing if sharing is None else sharing
    fs = FitSettings(num_points=num_points, steps=steps, restarts=restarts, seed=seed, gain=gain)
    seen = record_inputs(model, inputs)
    new_model = nnx.clone(model)
    reports = []
    for site in find_sites(new_model):
        x = np.asarray(seen[site.path], np.float32)
        layer, report = _swap_one(site, x, fam, sharing, family_options, fs)
        site.replace(layer)
        reports.append(report)
    return SwapResult(new_model, reports)
