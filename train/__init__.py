"""``python -m train``: the paper's experiments from a checkout (see ``cpaf_jax.experiments``)."""
