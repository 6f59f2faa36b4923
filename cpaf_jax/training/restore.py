"""Moved: ``cpaf_jax.experiments.restore`` (rebuilding a paper network from a checkpoint).

The old names warn with ``DeprecationWarning`` for one release, then go.
"""

import warnings as _warnings

_NAMES = ("build_from_spec", "model_spec", "restore_model")


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    _warnings.warn(
        f"cpaf_jax.training.restore.{name} is deprecated; use cpaf_jax.experiments.restore.{name}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module("cpaf_jax.experiments.restore"), name)


__all__: list[str] = []
