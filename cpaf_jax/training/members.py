"""Sweep members: what may differ between the runs of one engine call, and how each is built.

Members differ in any mix of seed (weights, shuffling, dropout), learning rates and the CPAF
initial values ``a_init`` / ``b_init`` (constants, length-k sequences, or per layer). Each
member is built exactly as a single run would be, so member ``m`` of a sweep reproduces the
single run of that member.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from cpaf_jax.activations.registry import is_parametric
from cpaf_jax.data.batching import epoch_permutation
from cpaf_jax.models import build_model
from cpaf_jax.training.optim import grouped_optimizer
from cpaf_jax.training.state import TrainState, init_state


@dataclasses.dataclass(frozen=True)
class Member:
    """One training run of the engine (a single run is a sweep of one member).

    Attributes:
      seed: weight initialisation (``build_model(seed=...)``), shuffling and dropout
        (``init_state(..., seed)``, ``epoch_permutation(seed, ...)``).
      lr: learning rate (of the weights, and of activation parameters without
        ``activation_lr``).
      activation_lr: learning rate of the activation parameters (``ActivationParam``), or
        ``None`` for ``lr``; see ``cpaf_jax.training.optim.grouped_optimizer``.
      a_init, b_init: CPAF initial values for every activation layer: ``None`` (Table 1), a
        scalar, a length-k sequence or an array broadcasting to ``[*P, k]``; or per layer, a
        mapping from the layer's attribute path (``"act1"``, ``"acts.0"``, ``"fc_acts.1"``) to
        such a value, with an optional ``"*"`` entry for the layers not named.
      label: a name for tables and logs (default built from the fields).
    """

    seed: int = 0
    lr: float = 1e-3
    activation_lr: float | None = None
    a_init: Any = None
    b_init: Any = None
    label: str = ""

    def __post_init__(self):
        if not self.label:
            parts = [f"seed={self.seed}", f"lr={self.lr:g}"]
            if self.activation_lr is not None:
                parts.append(f"act_lr={self.activation_lr:g}")
            if self.a_init is not None:
                parts.append(f"a={_short(self.a_init)}")
            if self.b_init is not None:
                parts.append(f"b={_short(self.b_init)}")
            object.__setattr__(self, "label", ",".join(parts))

    def describe(self) -> dict:
        """JSON-able fields (initial values as nested lists), as checkpoints and records store."""
        return {
            "label": self.label,
            "seed": self.seed,
            "lr": self.lr,
            "activation_lr": self.activation_lr,
            "a_init": _jsonable(self.a_init),
            "b_init": _jsonable(self.b_init),
        }


def _short(v) -> str:
    if isinstance(v, Mapping):
        return "{" + ",".join(f"{k}:{_short(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "(" + ",".join(f"{float(x):g}" for x in v) + ")"
    if np.ndim(v) == 0 and not callable(v):
        return f"{float(v):g}"
    return type(v).__name__


def _split_init(init) -> tuple[Any, dict]:
    """``(value for all layers, {layer path: value})`` of a member's a_init / b_init."""
    if isinstance(init, Mapping):
        rest = {k: v for k, v in init.items() if k != "*"}
        return init.get("*"), rest
    return init, {}


def _layer(model: nnx.Module, path: str):
    node = model
    for part in path.split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node


def _set_layer_init(model: nnx.Module, path: str, name: str, value) -> None:
    try:
        layer = _layer(model, path)
        var = getattr(layer, name)
    except (AttributeError, IndexError, TypeError):
        raise ValueError(
            f"per-layer {name}_init names {path!r}, which is not an activation layer with "
            f"parameter {name!r} in {type(model).__name__}"
        ) from None
    old = var[...]
    new = np.asarray(value, old.dtype)
    try:
        new = np.broadcast_to(new, old.shape)
    except ValueError:
        raise ValueError(
            f"{name}_init for {path!r} of shape {new.shape} does not broadcast to the "
            f"parameter shape {old.shape}"
        ) from None
    var[...] = jax.numpy.asarray(new)


def build_member_model(
    kind: str, activation: str, member: Member, model_kwargs: Mapping | None = None
) -> nnx.Module:
    """The member's model, as a single run would build it.

    ``build_model(kind, activation, seed=member.seed, activation_kwargs={..., "a_init":
    member.a_init, "b_init": member.b_init}, **model_kwargs)``; per-layer values are written
    into the named layers afterwards (initial values draw no random numbers, so the weights are
    those of the same seed either way).
    """
    kw = dict(model_kwargs or {})
    act_kw = dict(kw.pop("activation_kwargs", None) or {})
    per_layer: dict[str, dict] = {}
    for name in ("a", "b"):
        init = getattr(member, f"{name}_init")
        if init is None:
            continue
        if not is_parametric(activation):
            raise ValueError(f"{name}_init given, but activation {activation!r} has no parameters")
        common, layers = _split_init(init)
        if common is not None:
            act_kw[f"{name}_init"] = common
        per_layer[name] = layers
    model = build_model(kind, activation, seed=member.seed, activation_kwargs=act_kw, **kw)
    for name, layers in per_layer.items():
        for path, value in layers.items():
            _set_layer_init(model, path, name, value)
    return model


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


def _jsonable(v) -> Any:
    if v is None or isinstance(v, str | int | float | bool):
        return v
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if callable(v):
        return type(v).__name__
    return np.asarray(v).tolist()


def init_states(
    members: Sequence[Member],
    model_fn: Callable[[Member], nnx.Module],
    tx_fn: Callable[[Member], Any],
) -> tuple[Any, list[TrainState]]:
    """``(graphdef, [TrainState per member])``; checks that all members share one graph.

    Args:
      members: the runs.
      model_fn: ``member -> nnx.Module`` (weights seeded by the member's seed).
      tx_fn: ``member -> optax.GradientTransformation``; the members' optimizers must have
        one structure (they may differ in injected hyperparameters such as learning rates).
    """
    if not members:
        raise ValueError("training needs at least one member")
    states, graphdef0, ref = [], None, None
    for m in members:
        graphdef, state = init_state(model_fn(m), tx_fn(m), m.seed)
        shapes = jax.tree.map(lambda x: (x.shape, x.dtype), state)
        if graphdef0 is None:
            graphdef0, ref = graphdef, (jax.tree.structure(state), shapes)
        elif graphdef != graphdef0 or (jax.tree.structure(state), shapes) != ref:
            raise ValueError(
                f"member {m.label!r} builds a different network or optimizer than "
                f"{members[0].label!r}; members may differ only in values (seed, learning "
                "rates, a_init, b_init), not in shapes (e.g. k or sharing)"
            )
        states.append(state)
    return graphdef0, states


def build_member_states(
    kind: str,
    activation: str,
    members: Sequence[Member],
    *,
    optimizer: str = "adam",
    model_kwargs: Mapping | None = None,
):
    """``(graphdef, tx, [TrainState per member])`` of one of the paper's networks.

    ``tx`` is member 0's optimizer; every member's own learning rates are injected
    hyperparameters of its state, so one ``tx`` steps them all.
    """
    tx_fn = member_tx(optimizer)
    graphdef, states = init_states(
        members, lambda m: build_member_model(kind, activation, m, model_kwargs), tx_fn
    )
    return graphdef, tx_fn(members[0]), states


def member_tx(optimizer: str, weight_decay: float = 0.0):
    """``member -> grouped_optimizer(optimizer, member.lr, activation_lr=..., weight_decay)``."""

    def tx_fn(member: Member):
        return grouped_optimizer(
            optimizer, member.lr, activation_lr=member.activation_lr, weight_decay=weight_decay
        )

    return tx_fn


__all__ = [
    "Member",
    "build_member_model",
    "build_member_states",
    "init_states",
    "member_epoch_indices",
    "member_tx",
]
