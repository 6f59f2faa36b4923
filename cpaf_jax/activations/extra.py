"""Old import path of APL, PAU and Swish (``cpaf_jax.extra_activations``), kept so existing
imports keep working; each family now lives in its own file (``apl.py``, ``pau.py``,
``swish.py``). Importing this registers nothing: the registry lists every family explicitly.
"""

from cpaf_jax.activations.apl import APL as APL
from cpaf_jax.activations.apl import APL_DEFAULT_HINGES as APL_DEFAULT_HINGES
from cpaf_jax.activations.apl import apl as apl
from cpaf_jax.activations.apl import apl_default_init as apl_default_init
from cpaf_jax.activations.apl import apl_paper_initializers as apl_paper_initializers
from cpaf_jax.activations.pau import PAU as PAU
from cpaf_jax.activations.pau import PAU_DEFAULT_DEGREES as PAU_DEFAULT_DEGREES
from cpaf_jax.activations.pau import PAU_LEAKY_RELU_P as PAU_LEAKY_RELU_P
from cpaf_jax.activations.pau import PAU_LEAKY_RELU_Q as PAU_LEAKY_RELU_Q
from cpaf_jax.activations.pau import PAU_LEAKY_SLOPE as PAU_LEAKY_SLOPE
from cpaf_jax.activations.pau import pau as pau
from cpaf_jax.activations.pau import pau_default_init as pau_default_init
from cpaf_jax.activations.pau import pau_denominator as pau_denominator
from cpaf_jax.activations.swish import SWISH_BETA_INIT as SWISH_BETA_INIT
from cpaf_jax.activations.swish import Swish as Swish
from cpaf_jax.activations.swish import swish as swish
