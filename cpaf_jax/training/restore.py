"""Moved: ``cpaf_jax.experiments.restore`` (rebuilding a paper network from a checkpoint).

The old names warn with ``DeprecationWarning`` for one release, then go.
"""

from cpaf_jax._deprecation import deprecated_getattr

_MOVED_TO = "cpaf_jax.experiments.restore"

__getattr__ = deprecated_getattr(
    __name__,
    {
        name: (_MOVED_TO, name, f"{_MOVED_TO}.{name}")
        for name in ("build_from_spec", "model_spec", "restore_model")
    },
)

__all__: list[str] = []
