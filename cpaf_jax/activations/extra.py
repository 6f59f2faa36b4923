"""Old import path of APL, PAU and Swish (``cpaf_jax.extra_activations``), kept for one release:
every name resolves with a ``DeprecationWarning`` naming where it lives now (each family in its
own file, ``apl.py``, ``pau.py``, ``swish.py``). Importing this registers nothing.
"""

from cpaf_jax._deprecation import deprecated_getattr

_DEPRECATED = {
    "APL": ("cpaf_jax.activations.apl", "APL", "cpaf_jax.activations.apl.APL"),
    "APL_DEFAULT_HINGES": (
        "cpaf_jax.activations.apl",
        "APL_DEFAULT_HINGES",
        "cpaf_jax.activations.apl.APL_DEFAULT_HINGES",
    ),
    "apl": ("cpaf_jax.activations.apl", "apl", "cpaf_jax.activations.apl.apl"),
    "apl_default_init": (
        "cpaf_jax.activations.apl",
        "apl_default_init",
        "cpaf_jax.activations.apl.apl_default_init",
    ),
    "apl_paper_initializers": (
        "cpaf_jax.activations.apl",
        "apl_paper_initializers",
        "cpaf_jax.activations.apl.apl_paper_initializers",
    ),
    "PAU": ("cpaf_jax.activations.pau", "PAU", "cpaf_jax.activations.pau.PAU"),
    "PAU_DEFAULT_DEGREES": (
        "cpaf_jax.activations.pau",
        "PAU_DEFAULT_DEGREES",
        "cpaf_jax.activations.pau.PAU_DEFAULT_DEGREES",
    ),
    "PAU_LEAKY_RELU_P": (
        "cpaf_jax.activations.pau",
        "PAU_LEAKY_RELU_P",
        "cpaf_jax.activations.pau.PAU_LEAKY_RELU_P",
    ),
    "PAU_LEAKY_RELU_Q": (
        "cpaf_jax.activations.pau",
        "PAU_LEAKY_RELU_Q",
        "cpaf_jax.activations.pau.PAU_LEAKY_RELU_Q",
    ),
    "PAU_LEAKY_SLOPE": (
        "cpaf_jax.activations.pau",
        "PAU_LEAKY_SLOPE",
        "cpaf_jax.activations.pau.PAU_LEAKY_SLOPE",
    ),
    "pau": ("cpaf_jax.activations.pau", "pau", "cpaf_jax.activations.pau.pau"),
    "pau_default_init": (
        "cpaf_jax.activations.pau",
        "pau_default_init",
        "cpaf_jax.activations.pau.pau_default_init",
    ),
    "pau_denominator": (
        "cpaf_jax.activations.pau",
        "pau_denominator",
        "cpaf_jax.activations.pau.pau_denominator",
    ),
    "SWISH_BETA_INIT": (
        "cpaf_jax.activations.swish",
        "SWISH_BETA_INIT",
        "cpaf_jax.activations.swish.SWISH_BETA_INIT",
    ),
    "Swish": ("cpaf_jax.activations.swish", "Swish", "cpaf_jax.activations.swish.Swish"),
    "swish": ("cpaf_jax.activations.swish", "swish", "cpaf_jax.activations.swish.swish"),
}

__getattr__ = deprecated_getattr(__name__, _DEPRECATED)
