"""Sweep members: what may differ between the runs of one engine call, and how each is built.

Members differ in any mix of seed (weights, shuffling, dropout), learning rates and the
initial values of activation parameters, by name (``inits={"a": ..., "b": ...}`` for CPAF,
``{"p": ..., "q": ...}`` for PAU: each family's record names its parameters). Each member is
built exactly as a single run would be, so member ``m`` of a sweep reproduces the single run
of that member.
"""

from __future__ import annotations

import dataclasses
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from cpaf_jax.activations.family import Activation
from cpaf_jax.data.batching import epoch_permutation
from cpaf_jax.training.optim import grouped_optimizer
from cpaf_jax.training.state import TrainState, init_state


@dataclasses.dataclass(frozen=True)
class Member:
    """One training run of the engine (a single run is a sweep of one member).

    Attributes:
      seed: weight initialisation (the model factory's to use), shuffling
        (``epoch_permutation(seed, ...)``) and dropout (folded into the model's ``nnx.Rngs``
        keys by ``init_state``).
      lr: learning rate (of the weights, and of activation parameters without
        ``activation_lr``).
      activation_lr: learning rate of the activation parameters (``ActivationParam``), or
        ``None`` for ``lr``; see ``cpaf_jax.training.optim.grouped_optimizer``.
      inits: initial values of activation parameters by name (the names of the family's
        record, ``cpaf_jax.family(name).params``), written into every activation layer of the
        model that has that parameter. A value is a scalar, a coefficient-shaped sequence or
        an array broadcasting to the parameter's shape; or, per layer, a mapping from the
        layer's attribute path (``"act1"``, ``"acts.0"``, ``"fc_acts.1"``) to such a value,
        with an optional ``"*"`` entry for the layers not named. ``None``: the model's own.
      a_init, b_init: the older spelling of ``inits={"a": ..., "b": ...}`` (deprecated; mapped
        onto ``inits`` and then ``None``).
      label: a name for tables and logs (default built from the fields).
    """

    seed: int = 0
    lr: float = 1e-3
    activation_lr: float | None = None
    inits: Mapping[str, Any] | None = None
    a_init: Any = None
    b_init: Any = None
    label: str = ""

    def __post_init__(self):
        inits = dict(self.inits or {})
        for name in ("a", "b"):
            value = getattr(self, f"{name}_init")
            if value is None:
                continue
            warnings.warn(
                f"Member({name}_init=...) is deprecated; pass inits={{{name!r}: ...}}",
                DeprecationWarning,
                stacklevel=3,
            )
            if name in inits:
                raise ValueError(f"{name}_init and inits[{name!r}] both given; pass one")
            inits[name] = value
            object.__setattr__(self, f"{name}_init", None)
        object.__setattr__(self, "inits", inits)
        if not self.label:
            parts = [f"seed={self.seed}", f"lr={self.lr:g}"]
            if self.activation_lr is not None:
                parts.append(f"act_lr={self.activation_lr:g}")
            parts += [f"{n}={_short(v)}" for n, v in inits.items() if v is not None]
            object.__setattr__(self, "label", ",".join(parts))

    def describe(self) -> dict:
        """JSON-able fields (initial values as nested lists), as checkpoints and records store."""
        return {
            "label": self.label,
            "seed": self.seed,
            "lr": self.lr,
            "activation_lr": self.activation_lr,
            "inits": {n: _jsonable(v) for n, v in self.inits.items()},
        }


def _short(v) -> str:
    if isinstance(v, Mapping):
        return "{" + ",".join(f"{k}:{_short(x)}" for k, x in v.items()) + "}"
    if callable(v) and not isinstance(v, np.ndarray | jax.Array):
        return type(v).__name__
    if isinstance(v, list | tuple):
        return "(" + ",".join(f"{float(x):g}" for x in v) + ")"
    if np.ndim(v) == 0:
        return f"{float(v):g}"
    a = np.asarray(v, np.float64)
    if a.size <= 8:
        return "(" + ",".join(f"{x:g}" for x in a.ravel()) + ")"
    # Large arrays: shape and a checksum, so that members with different values differ.
    return f"array{list(a.shape)}#{zlib.crc32(a.tobytes()):08x}"


def _jsonable(v) -> Any:
    if v is None or isinstance(v, str | int | float | bool):
        return v
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if callable(v):
        return type(v).__name__
    return np.asarray(v).tolist()


def activation_layers(model: nnx.Module) -> dict[str, Activation]:
    """``{attribute path ("acts.0"): layer}`` of every parametric activation layer of ``model``."""
    return {
        ".".join(str(p) for p in path): node
        for path, node in nnx.iter_graph(model)
        if isinstance(node, Activation) and node.record.parametric
    }


def _layer_value(name: str, init, path: str):
    """The value of ``init`` (one value, or a per-layer mapping) for the layer at ``path``."""
    if isinstance(init, Mapping):
        return init.get(path, init.get("*"))
    return init


def _write(layer: Activation, path: str, name: str, value) -> None:
    if callable(value) and not isinstance(value, np.ndarray | jax.Array):
        raise ValueError(
            f"inits[{name!r}] is an initializer; a member takes values (pass initializers to "
            "the model's constructor)"
        )
    var = getattr(layer, name)
    old = var[...]
    try:
        new = np.broadcast_to(np.asarray(value, old.dtype), old.shape)
    except ValueError:
        raise ValueError(
            f"inits[{name!r}] for {path!r} of shape {np.shape(value)} does not broadcast to the "
            f"parameter shape {old.shape}"
        ) from None
    var[...] = jax.numpy.asarray(new)


def apply_inits(model: nnx.Module, inits: Mapping[str, Any]) -> None:
    """Writes a member's initial values into the model's activation layers (in place).

    Every name must be a parameter of the family of at least one activation layer (per
    ``cpaf_jax.family(...).params``); every layer path named in a per-layer mapping must be
    such a layer.

    Raises:
      ValueError: an unknown parameter name (the valid ones are named), an unknown layer path,
        or a value that does not broadcast to the parameter's shape.
    """
    inits = {n: v for n, v in inits.items() if v is not None}
    if not inits:
        return
    layers = activation_layers(model)
    valid = sorted({p for layer in layers.values() for p in layer.record.params})
    for name, init in inits.items():
        if name not in valid:
            raise ValueError(
                f"inits names {name!r}, which no activation layer of {type(model).__name__} "
                f"has; its activation parameters are {valid or 'none'}"
            )
        named = [k for k in init if k != "*"] if isinstance(init, Mapping) else []
        for path in named:
            if path not in layers or name not in layers[path].record.params:
                raise ValueError(
                    f"inits[{name!r}] names layer {path!r}, which is not an activation layer "
                    f"with parameter {name!r} in {type(model).__name__}; those are "
                    f"{sorted(p for p, la in layers.items() if name in la.record.params)}"
                )
        for path, layer in layers.items():
            value = _layer_value(name, init, path)
            if value is not None and name in layer.record.params:
                _write(layer, path, name, value)


def member_epoch_indices(
    seeds: Sequence[int], epoch: int, n: int, steps: int, batch_size: int
) -> np.ndarray:
    """int32 ``[M, steps, B]``: member m's batches of ``epoch``, as every run draws them."""
    return np.stack(
        [
            epoch_permutation(s, epoch, n)[: steps * batch_size].reshape(steps, batch_size)
            for s in seeds
        ]
    ).astype(np.int32)


def member_model(model: nnx.Module | Callable[[Member], nnx.Module], member: Member):
    """The member's model: ``model(member)`` for a factory, else a copy of ``model``; with the
    member's ``inits`` written in (the given module is never changed)."""
    built = nnx.clone(model) if isinstance(model, nnx.Module) else model(member)
    if not isinstance(built, nnx.Module):
        raise TypeError(
            f"the model factory returned {type(built).__name__}; it must return an nnx.Module"
        )
    apply_inits(built, member.inits)
    return built


def init_states(
    members: Sequence[Member],
    model: nnx.Module | Callable[[Member], nnx.Module],
    tx_fn: Callable[[Member], Any],
) -> tuple[Any, list[TrainState]]:
    """``(graphdef, [TrainState per member])``; checks that all members share one graph.

    Args:
      members: the runs.
      model: an ``nnx.Module`` (every member starts from a copy of it) or a factory
        ``member -> nnx.Module`` (weights seeded by the member's seed, as the user chooses).
      tx_fn: ``member -> optax.GradientTransformation``; the members' optimizers must have
        one structure (they may differ in injected hyperparameters such as learning rates).
    """
    if not members:
        raise ValueError("training needs at least one member")
    states, graphdef0, ref = [], None, None
    for m in members:
        graphdef, state = init_state(member_model(model, m), tx_fn(m), m.seed)
        shapes = jax.tree.map(lambda x: (x.shape, x.dtype), state)
        if graphdef0 is None:
            graphdef0, ref = graphdef, (jax.tree.structure(state), shapes)
        elif graphdef != graphdef0 or (jax.tree.structure(state), shapes) != ref:
            raise ValueError(
                f"member {m.label!r} builds a different network or optimizer than "
                f"{members[0].label!r}; members may differ only in values (seed, learning "
                "rates, inits), not in shapes (e.g. k or sharing)"
            )
        states.append(state)
    return graphdef0, states


def member_tx(optimizer: str, weight_decay: float = 0.0):
    """``member -> grouped_optimizer(optimizer, member.lr, activation_lr=..., weight_decay)``."""

    def tx_fn(member: Member):
        return grouped_optimizer(
            optimizer, member.lr, activation_lr=member.activation_lr, weight_decay=weight_decay
        )

    return tx_fn


__all__ = [
    "Member",
    "activation_layers",
    "apply_inits",
    "init_states",
    "member_epoch_indices",
    "member_model",
    "member_tx",
]
