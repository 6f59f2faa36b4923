"""Old names kept for one release: a module's ``__getattr__`` that resolves them with a
``DeprecationWarning`` naming the replacement (optax's way of renaming without breaking users).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping


def resolve(module: str, attr: str):
    """``module.attr``, importing ``module`` (and ``module.attr`` when it is a submodule)."""
    try:
        return getattr(importlib.import_module(module), attr)
    except AttributeError:  # a submodule not imported yet
        return importlib.import_module(f"{module}.{attr}")


def deprecated_getattr(
    owner: str, table: Mapping[str, tuple[str, str, str]]
) -> Callable[[str], object]:
    """A module ``__getattr__`` for the old names of module ``owner``.

    Args:
      owner: the module's name (``__name__``), for the messages.
      table: old name -> ``(module, attribute, what to use instead)``; the object returned is
        ``module.attribute``.

    Returns:
      ``__getattr__(name)``: warns ``DeprecationWarning`` and returns the object for an old
      name; raises ``AttributeError`` for any other.
    """

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {owner!r} has no attribute {name!r}")
        module, attr, instead = table[name]
        warnings.warn(
            f"{owner}.{name} is deprecated and will be removed in the next release; use {instead}",
            DeprecationWarning,
            stacklevel=2,
        )
        return resolve(module, attr)

    return __getattr__
