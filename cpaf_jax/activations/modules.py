"""Old import path of the NNX modules, kept so existing imports keep working.

Each family now lives in its own file (``cpaf.py``, ``prelu.py``, ``elu.py``, ``fixed.py``,
``apl.py``, ``pau.py``, ``swish.py``) over the record of ``family.py``; import from there or
from ``cpaf_jax``.
"""

from cpaf_jax.activations.cpaf import CPAF as CPAF
from cpaf_jax.activations.elu import ELU as ELU
from cpaf_jax.activations.elu import LearnedELU as LearnedELU
from cpaf_jax.activations.family import ActivationParam as ActivationParam
from cpaf_jax.activations.family import check_features as check_features
from cpaf_jax.activations.fixed import ReLU as ReLU
from cpaf_jax.activations.fixed import Sigmoid as Sigmoid
from cpaf_jax.activations.fixed import Tanh as Tanh
from cpaf_jax.activations.prelu import PReLU as PReLU
from cpaf_jax.activations.prelu import prelu as prelu
