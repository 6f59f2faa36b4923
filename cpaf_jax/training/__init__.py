"""Training: state, optimiser groups, the one training engine, checkpoints and device meshes.

``train(members, model, data, config)`` runs every member of any Flax NNX model (a single run
is one member); ``fit`` (one model) is the same engine. Nothing here knows the paper's
networks: ``cpaf_jax.experiments.paper.run_sweep`` builds those by name.
"""

from cpaf_jax._deprecation import deprecated_getattr
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

# Names of earlier releases: each resolves for one more release with a DeprecationWarning
# naming its replacement (optax's way).
_DEPRECATED = {
    "FitConfig": ("cpaf_jax.training.engine", "TrainConfig", "cpaf_jax.training.TrainConfig"),
    "SweepMember": ("cpaf_jax.training.members", "Member", "cpaf_jax.training.Member"),
    "SweepResult": ("cpaf_jax.training.results", "TrainResult", "cpaf_jax.training.TrainResult"),
    "FitResult": ("cpaf_jax.training.results", "RunView", "cpaf_jax.training.RunView"),
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


__getattr__ = deprecated_getattr(__name__, _DEPRECATED)

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
