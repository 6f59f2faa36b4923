"""Where a model holds its activations, and what each receives on a batch.

A *site* is an attribute of an NNX module (or an item of an ``nnx.List``) that holds an
activation: one of the library's activation modules (``cpaf_jax.activations.family.Activation``
and its subclasses, fixed ``ReLU``/``Sigmoid``/``Tanh`` included) or one of JAX's stateless
elementwise activations (``jax.nn.relu``, ``nnx.gelu``, ``jnp.tanh``..., or a
``functools.partial`` of one). An activation called as a plain function inside ``__call__``
(``x = jax.nn.relu(x)``) is no attribute, so it is no site.

``record_inputs`` runs the model once with every site wrapped by a recorder, in a copy of the
model, and returns each site's inputs. A layer called through its fused pooling form
(``act.max_pool_2x2(y, bias)``, as the paper's networks do) is recorded at ``y + bias``: what
the activation is applied to before the pooling.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cpaf_jax.activations.family import Activation
from cpaf_jax.ops.max_pool import max_pool_2x2

Array = jax.Array

_STATELESS_NAMES = (
    "relu", "relu6", "gelu", "sigmoid", "silu", "swish", "elu", "celu", "selu", "softplus",
    "leaky_relu", "tanh", "hard_tanh", "soft_sign", "log_sigmoid", "mish", "hard_sigmoid",
    "hard_silu", "squareplus",
)  # fmt: skip


def _stateless() -> dict[int, str]:
    # Keyed by id: some of these are custom_jvp objects; nnx.relu is jax.nn.relu itself.
    found = {id(getattr(jax.nn, n)): n for n in _STATELESS_NAMES if hasattr(jax.nn, n)}
    found[id(jnp.tanh)] = "tanh"
    return found


def stateless_name(value: Any) -> str | None:
    """The ``jax.nn`` name of a stateless elementwise activation (or a ``functools.partial``
    of one, e.g. ``partial(jax.nn.gelu, approximate=False)``), else ``None``."""
    if isinstance(value, functools.partial):
        value = value.func
    return _stateless().get(id(value))


@dataclasses.dataclass(frozen=True)
class Site:
    """One activation held by a module attribute.

    Attributes:
      path: the attribute path from the model, e.g. ``"act1"``, ``"acts.0"``.
      parent: the module holding it; ``name``: the attribute (an ``nnx.List`` index as text).
      value: the activation (an ``Activation`` module or a stateless function).
      source: a readable name of what it computes (``"relu"``, ``"cpaf_sigmoid"``...).
    """

    path: str
    parent: nnx.Module
    name: str
    value: Any
    source: str

    def replace(self, new: Any) -> None:
        """Puts ``new`` where the activation was (in place)."""
        if isinstance(new, nnx.Module):
            new = nnx.data(new)  # where a function was, an attribute of static status
        if isinstance(self.parent, nnx.List):
            self.parent[int(self.name)] = new
        else:
            setattr(self.parent, self.name, new)


def _attributes(module: nnx.Module):
    if isinstance(module, nnx.List):
        return [(str(i), v) for i, v in enumerate(module)]
    return [(k, v) for k, v in vars(module).items() if not k.startswith("_")]


def find_sites(model: nnx.Module) -> list[Site]:
    """Every activation site of ``model``, in graph order (see the module docstring)."""
    sites = []
    for path, node in nnx.iter_graph(model):
        if not isinstance(node, nnx.Module) or isinstance(node, Activation):
            continue
        prefix = ".".join(str(p) for p in path)
        for name, value in _attributes(node):
            where = f"{prefix}.{name}" if prefix else name
            if isinstance(value, Activation):
                sites.append(Site(where, node, name, value, value.family))
            elif (fn := stateless_name(value)) is not None:
                sites.append(Site(where, node, name, value, fn))
    return sorted(sites, key=lambda s: _path_key(s.path))


def _path_key(path: str) -> tuple:
    # List indices in numeric order: "acts.2" before "acts.10".
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.split("."))


class _Recorder:
    """Stands in for an activation during one forward pass and keeps its inputs."""

    def __init__(self, act: Callable):
        self.act = act
        self.seen: list[np.ndarray] = []

    def __call__(self, x: Array) -> Array:
        self.seen.append(np.asarray(x))
        return self.act(x)

    def max_pool_2x2(self, y: Array, bias: Array | None = None) -> Array:
        x = y if bias is None else y + bias
        self.seen.append(np.asarray(x))
        fused = getattr(self.act, "max_pool_2x2", None)
        return fused(y, bias) if callable(fused) else max_pool_2x2(self.act(x))


def record_inputs(model: nnx.Module, inputs: Array) -> dict[str, np.ndarray]:
    """Each site's input on one forward pass of ``inputs``, ``{path: [N, *F] array}``.

    The pass runs eagerly, in evaluation mode (``model.eval()``: no dropout, batch norm on its
    running statistics), on a copy; ``model`` is not changed.

    Raises:
      ValueError: no site was found, or a site was called more than once or never.
    """
    probe = nnx.clone(model)
    sites = find_sites(probe)
    if not sites:
        raise ValueError(
            "swap_activations found no activation held as a module attribute (a cpaf_jax "
            "activation layer, or a function such as jax.nn.relu stored as self.act); "
            "activations called as plain functions inside __call__ cannot be swapped"
        )
    recorders = {}
    for site in sites:
        recorders[site.path] = _Recorder(site.value)
        site.replace(recorders[site.path])
    probe.eval()
    probe(jnp.asarray(inputs))
    out = {}
    for path, rec in recorders.items():
        if len(rec.seen) != 1:
            raise ValueError(
                f"the activation at {path!r} was called {len(rec.seen)} times in one forward "
                "pass; swap_activations needs each activation attribute called exactly once"
            )
        out[path] = rec.seen[0]
    return out
