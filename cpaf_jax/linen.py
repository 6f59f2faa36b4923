"""Flax Linen activations (``cpaf_jax.linen.CPAF``...): see ``cpaf_jax.activations.linen``."""

from cpaf_jax.activations.linen import *  # noqa: F403
from cpaf_jax.activations.linen import __all__  # noqa: F401
