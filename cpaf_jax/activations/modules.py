"""Old import path of the NNX modules, kept for one release: every name resolves with a
``DeprecationWarning`` naming where it lives now (each family in its own file over the record of
``family.py``; the classes are exported by ``cpaf_jax``).
"""

from cpaf_jax._deprecation import deprecated_getattr

_DEPRECATED = {
    "CPAF": ("cpaf_jax.activations.cpaf", "CPAF", "cpaf_jax.activations.cpaf.CPAF"),
    "ELU": ("cpaf_jax.activations.elu", "ELU", "cpaf_jax.activations.elu.ELU"),
    "LearnedELU": ("cpaf_jax.activations.elu", "LearnedELU", "cpaf_jax.activations.elu.LearnedELU"),
    "ActivationParam": (
        "cpaf_jax.activations.family",
        "ActivationParam",
        "cpaf_jax.activations.family.ActivationParam",
    ),
    "check_features": (
        "cpaf_jax.activations.family",
        "check_features",
        "cpaf_jax.activations.family.check_features",
    ),
    "ReLU": ("cpaf_jax.activations.fixed", "ReLU", "cpaf_jax.activations.fixed.ReLU"),
    "Sigmoid": ("cpaf_jax.activations.fixed", "Sigmoid", "cpaf_jax.activations.fixed.Sigmoid"),
    "Tanh": ("cpaf_jax.activations.fixed", "Tanh", "cpaf_jax.activations.fixed.Tanh"),
    "PReLU": ("cpaf_jax.activations.prelu", "PReLU", "cpaf_jax.activations.prelu.PReLU"),
    "prelu": ("cpaf_jax.activations.prelu", "prelu", "cpaf_jax.activations.prelu.prelu"),
}

__getattr__ = deprecated_getattr(__name__, _DEPRECATED)
