"""Training: state, optimiser groups, the one training engine, checkpoints and device meshes.

``train(members, model, data, config)`` runs every member of any Flax NNX model (a single run
is one member); ``fit`` (one model) is the same engine. Nothing here knows the paper's
networks: ``cpaf_jax.experiments.paper.run_sweep`` builds those by name.
"""

import warnings as _warnings

from cpaf_jax.training.checkpoints import ResumeMismatch as ResumeMismatch
from cpaf_jax.training.engine import TrainConfig as TrainConfig
from cpaf_jax.training.engine import evaluate as evaluate
from cpaf_jax.training.engine import fit as fit
from cpaf_jax.training.engine import train as train
from cpaf_jax.training.members import Member as Member
from cpaf_jax.training.members import apply_inits as apply_inits
from cpaf_jax.training.members import init_states as init_states
from cpaf_jax.training.members import member_epoch_indices as member_epoch_indices
from cpaf_jax.training.optim import grouped_optimizer as grouped_optimizer
from cpaf_jax.training.optim import make_optimizer as make_optimizer
from cpaf_jax.training.records import TrainingDiverged as TrainingDiverged
from cpaf_jax.training.records import activation_summary as activation_summary
from cpaf_jax.training.results import RunView as RunView
from cpaf_jax.training.results import TrainResult as TrainResult
from cpaf_jax.training.state import accuracy as accuracy
from cpaf_jax.training.state import softmax_cross_entropy as softmax_cross_entropy
from cpaf_jax.training.test_set import pad_eval as pad_eval

# Old names: (module, attribute, what to use instead). They warn for one release, then go.
_MOVED = {
    "FitConfig": ("cpaf_jax.training.engine", "TrainConfig", "cpaf_jax.training.TrainConfig"),
    "FitResult": ("cpaf_jax.training.results", "RunView", "cpaf_jax.training.RunView"),
    "SweepMember": ("cpaf_jax.training.members", "Member", "cpaf_jax.training.Member"),
    "SweepResult": ("cpaf_jax.training.results", "TrainResult", "cpaf_jax.training.TrainResult"),
    "run_sweep": (
        "cpaf_jax.experiments.paper",
        "run_sweep",
        "cpaf_jax.training.train (any model) or cpaf_jax.experiments.paper.run_sweep",
    ),
    "build_member_model": (
        "cpaf_jax.experiments.paper",
        "build_member_model",
        "cpaf_jax.experiments.paper.build_member_model",
    ),
    "build_member_states": (
        "cpaf_jax.experiments.paper",
        "build_member_states",
        "cpaf_jax.experiments.paper.build_member_states",
    ),
}


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, attr, instead = _MOVED[name]
    _warnings.warn(
        f"cpaf_jax.training.{name} is deprecated; use {instead}", DeprecationWarning, stacklevel=2
    )
    return getattr(importlib.import_module(module), attr)


__all__ = [
    "Member",
    "ResumeMismatch",
    "RunView",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "accuracy",
    "activation_summary",
    "apply_inits",
    "evaluate",
    "fit",
    "grouped_optimizer",
    "init_states",
    "make_optimizer",
    "member_epoch_indices",
    "pad_eval",
    "softmax_cross_entropy",
    "train",
]
