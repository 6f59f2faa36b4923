"""The paper's networks through the engine, by name: ``run_sweep(kind, activation, ...)``.

A convenience over ``cpaf_jax.training.train`` for the networks of ``cpaf_jax.models``; the
engine itself takes any NNX model (or factory) from its caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flax import nnx
from jax.sharding import Mesh

from cpaf_jax.models import build_model
from cpaf_jax.training.engine import TrainConfig, train
from cpaf_jax.training.members import Member, apply_inits, init_states, member_tx
from cpaf_jax.training.results import TrainResult


def build_member_model(
    kind: str, activation: str, member: Member, model_kwargs: Mapping | None = None
) -> nnx.Module:
    """The member's paper network, as a single run would build it.

    ``build_model(kind, activation, seed=member.seed, **model_kwargs)`` with the member's
    ``inits`` written into its activation layers (initial values draw no random numbers, so
    the weights are those of the same seed either way).

    Raises:
      ValueError: ``inits`` name a parameter the activation's family does not have.
    """
    model = build_model(kind, activation, seed=member.seed, **dict(model_kwargs or {}))
    apply_inits(model, member.inits)
    return model


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
        members, lambda m: build_model(kind, activation, seed=m.seed, **(model_kwargs or {})), tx_fn
    )
    return graphdef, tx_fn(members[0]), states


def run_sweep(
    kind: str,
    activation: str,
    members: Sequence[Member],
    data,
    *,
    mesh: Mesh | None = None,
    model_kwargs: dict | None = None,
    **config,
) -> TrainResult:
    """``train`` for one of the paper's networks, built by ``build_model(kind, activation,
    seed=member.seed, **model_kwargs)`` for every member.

    Args:
      kind, activation: as for ``cpaf_jax.models.build_model``.
      members: the runs; they may differ only in values (seed, learning rates, inits).
      data: a ``cpaf_jax.data.Dataset``.
      mesh: as for ``train``.
      model_kwargs: extra ``build_model`` arguments (``sharing``, ``activation_kwargs``...).
      **config: ``TrainConfig`` fields (``epochs``, ``batch_size``, ``optimizer``,
        ``strategy``...).
    """
    cfg = TrainConfig(**{"name": activation, **config})
    kw = dict(model_kwargs or {})
    return train(
        members, lambda m: build_model(kind, activation, seed=m.seed, **kw), data, cfg, mesh=mesh
    )


__all__ = ["build_member_model", "build_member_states", "run_sweep"]
