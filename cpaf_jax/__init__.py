"""cpaf-jax: Combined Parametric Activation Functions (Ko, Li, Ko 2022) in JAX and Flax.

Pure functions::

    z = cpaf_jax.cpaf(y, a, b, base="sigmoid")   # a, b: [..., k]

CPAF followed by 2x2 max-pooling as one custom VJP (how the paper's conv blocks end)::

    p = cpaf_jax.cpaf_max_pool_2x2(y, a, b, base="relu", bias=conv_bias)

NNX modules (the primary API) and the registry::

    act = cpaf_jax.activation("cpaf_relu", features_shape=(26, 26, 16))

Linen modules live in ``cpaf_jax.linen``.
"""

# Importing these registers "apl", "pau" and "swish" in the registry.
from cpaf_jax.activations import extra as extra_activations
from cpaf_jax.activations.extra import APL, PAU, Swish, apl, pau, swish
from cpaf_jax.activations.initializers import TABLE1, default_terms
from cpaf_jax.activations.modules import (
    CPAF,
    ELU,
    ActivationParam,
    PReLU,
    ReLU,
    Sigmoid,
    Tanh,
    prelu,
)
from cpaf_jax.activations.registry import (
    activation,
    count_activation_params,
    is_parametric,
    known_activations,
    register_activation,
)
from cpaf_jax.fitting import curve_fit as fit
from cpaf_jax.fitting.curve_fit import FitResult, fit_initializer
from cpaf_jax.ops.bases import BASES, Base, resolve_base
from cpaf_jax.ops.functional import (
    IMPLEMENTATIONS,
    cpaf,
    cpaf_partials,
    cpaf_terms,
    paper_sigmoid_partials,
    parametric,
)
from cpaf_jax.ops.fused_pool import cpaf_max_pool_2x2
from cpaf_jax.ops.sharing import SHARINGS, param_shape

__version__ = "0.1.0"

__all__ = [
    "BASES",
    "Base",
    "resolve_base",
    "IMPLEMENTATIONS",
    "cpaf",
    "cpaf_partials",
    "cpaf_terms",
    "paper_sigmoid_partials",
    "parametric",
    "cpaf_max_pool_2x2",
    "TABLE1",
    "default_terms",
    "CPAF",
    "ELU",
    "ActivationParam",
    "PReLU",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "prelu",
    "activation",
    "count_activation_params",
    "is_parametric",
    "known_activations",
    "register_activation",
    "SHARINGS",
    "param_shape",
    "APL",
    "PAU",
    "Swish",
    "apl",
    "pau",
    "swish",
    "FitResult",
    "fit_initializer",
    "extra_activations",
    "fit",
]
