"""cpaf-jax: Combined Parametric Activation Functions (Ko, Li, Ko 2022) in JAX and Flax.

One way per task (``docs/api_table.md``):

    z = cpaf_jax.cpaf(y, a, b, base="sigmoid")                      # functional; a, b: [..., k]
    act = cpaf_jax.activation("cpaf_relu", features_shape=(26, 26, 16))   # an NNX layer
    act = cpaf_jax.linen.activation("cpaf_relu")                    # a Linen layer
    res = cpaf_jax.fit_curve("tanh", cpaf_jax.family("cpaf_sigmoid"), k=4)  # a fitted init
    out = cpaf_jax.train([cpaf_jax.Member(seed=0)], model_fn, data, cpaf_jax.TrainConfig())
    res = cpaf_jax.swap_activations(model, "pau", images)          # a trained net's swap

CPAF followed by 2x2 max-pooling as one custom VJP (how the paper's conv blocks end)::

    p = cpaf_jax.cpaf_max_pool_2x2(y, a, b, base="relu", bias=conv_bias)

``cpaf_jax.family(name)`` returns a family's record (an ``ActivationFamily``: apply, params,
init, default sharing...). Every way of building a layer takes the record's defaults. Names
of earlier releases still resolve, with a ``DeprecationWarning`` naming their replacement.
Nothing here registers anything by being imported.
"""

from cpaf_jax._deprecation import deprecated_getattr
from cpaf_jax.activations.apl import APL as APL
from cpaf_jax.activations.apl import apl as apl
from cpaf_jax.activations.cpaf import CPAF as CPAF
from cpaf_jax.activations.cpaf import cpaf_family as cpaf_family
from cpaf_jax.activations.elu import ELU as ELU
from cpaf_jax.activations.elu import LearnedELU as LearnedELU
from cpaf_jax.activations.elu import learned_elu as learned_elu
from cpaf_jax.activations.family import Activation as Activation
from cpaf_jax.activations.family import ActivationFamily as ActivationFamily
from cpaf_jax.activations.family import ActivationParam as ActivationParam
from cpaf_jax.activations.fixed import ReLU as ReLU
from cpaf_jax.activations.fixed import Sigmoid as Sigmoid
from cpaf_jax.activations.fixed import Tanh as Tanh
from cpaf_jax.activations.initializers import TABLE1 as TABLE1
from cpaf_jax.activations.initializers import default_terms as default_terms
from cpaf_jax.activations.pau import PAU as PAU
from cpaf_jax.activations.pau import pau as pau
from cpaf_jax.activations.prelu import PReLU as PReLU
from cpaf_jax.activations.prelu import prelu as prelu
from cpaf_jax.activations.registry import activation as activation
from cpaf_jax.activations.registry import count_activation_params as count_activation_params
from cpaf_jax.activations.registry import family as family
from cpaf_jax.activations.registry import is_parametric as is_parametric
from cpaf_jax.activations.registry import known_activations as known_activations
from cpaf_jax.activations.registry import register_activation as register_activation
from cpaf_jax.activations.swish import Swish as Swish
from cpaf_jax.activations.swish import swish as swish
from cpaf_jax.compile_options import jit as jit
from cpaf_jax.fitting.curve_fit import CurveFit as CurveFit
from cpaf_jax.fitting.curve_fit import fit_curve as fit_curve
from cpaf_jax.ops.bases import BASES as BASES
from cpaf_jax.ops.bases import Base as Base
from cpaf_jax.ops.bases import resolve_base as resolve_base
from cpaf_jax.ops.functional import IMPLEMENTATIONS as IMPLEMENTATIONS
from cpaf_jax.ops.functional import cpaf as cpaf
from cpaf_jax.ops.functional import cpaf_partials as cpaf_partials
from cpaf_jax.ops.functional import cpaf_terms as cpaf_terms
from cpaf_jax.ops.functional import paper_sigmoid_partials as paper_sigmoid_partials
from cpaf_jax.ops.functional import parametric as parametric
from cpaf_jax.ops.fused_pool import cpaf_max_pool_2x2 as cpaf_max_pool_2x2
from cpaf_jax.ops.sharing import SHARINGS as SHARINGS
from cpaf_jax.ops.sharing import param_shape as param_shape
from cpaf_jax.swap.swap import LayerFit as LayerFit
from cpaf_jax.swap.swap import SwapResult as SwapResult
from cpaf_jax.swap.swap import swap_activations as swap_activations
from cpaf_jax.training import Member as Member
from cpaf_jax.training import TrainConfig as TrainConfig
from cpaf_jax.training import train as train

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
    "Activation",
    "ActivationFamily",
    "ActivationParam",
    "CPAF",
    "ELU",
    "LearnedELU",
    "PReLU",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "APL",
    "PAU",
    "Swish",
    "apl",
    "cpaf_family",
    "learned_elu",
    "pau",
    "prelu",
    "swish",
    "activation",
    "count_activation_params",
    "family",
    "is_parametric",
    "known_activations",
    "register_activation",
    "SHARINGS",
    "param_shape",
    "CurveFit",
    "fit_curve",
    "LayerFit",
    "SwapResult",
    "swap_activations",
    "train",
    "Member",
    "TrainConfig",
    "jit",
]

# Names of earlier releases: each resolves for one more release with a DeprecationWarning
# naming its replacement (optax's way), and none is in ``__all__``.
_DEPRECATED = {
    "FitResult": ("cpaf_jax.fitting.curve_fit", "CurveFit", "cpaf_jax.CurveFit"),
    "fit": (
        "cpaf_jax.fitting",
        "curve_fit",
        "cpaf_jax.fit_curve (module cpaf_jax.fitting.curve_fit)",
    ),
    "fit_activation": (
        "cpaf_jax.activations.registry",
        "fit_activation",
        "cpaf_jax.fit_curve(target, cpaf_jax.family(name), ...)",
    ),
    "fit_initializer": (
        "cpaf_jax.activations.registry",
        "fit_initializer",
        "cpaf_jax.fit_curve(target, cpaf_jax.family(name), ...).init_kwargs()",
    ),
    "extra_activations": (
        "cpaf_jax.activations",
        "extra",
        "cpaf_jax.APL, cpaf_jax.PAU, cpaf_jax.Swish (or cpaf_jax.activations.apl, .pau, .swish)",
    ),
}


__getattr__ = deprecated_getattr(__name__, _DEPRECATED)
