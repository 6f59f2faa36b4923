"""Parameter sharing: which axes of a feature map get their own activation parameters.

A feature map of one example has shape ``F = (H, W, C)`` (conv) or ``(D,)`` (dense).

* ``"element"``: one set per element, parameter shape ``F`` (experiments 4.1 and 4.2).
* ``"channel"``: one set per channel (last axis), shape ``(C,)`` (experiment 4.3).
* ``"shared"``: one set for the whole layer, shape ``()``.
* a tuple of axes of ``F`` (negative allowed): those axes get their own parameters, the rest
  share; ``(-1,)`` is ``"channel"``, ``()`` is ``"shared"``.

The returned shape broadcasts against ``[batch, *F]``; the modules append the term axis k.
"""

from __future__ import annotations

from collections.abc import Sequence

SHARINGS = ("element", "channel", "shared")

Sharing = str | Sequence[int]


def normalize_features_shape(features_shape) -> tuple[int, ...] | None:
    """``int`` -> ``(int,)``; sequences -> tuple of ints; ``None`` stays ``None``."""
    if features_shape is None:
        return None
    if isinstance(features_shape, int):
        features_shape = (features_shape,)
    shape = tuple(int(d) for d in features_shape)
    if any(d <= 0 for d in shape):
        raise ValueError(f"features_shape must have positive sizes, got {shape}")
    return shape


def param_shape(features_shape: tuple[int, ...] | None, sharing: Sharing) -> tuple[int, ...]:
    """Shape of one parameter (without the term axis) for a feature shape and sharing.

    Args:
      features_shape: per-example feature shape ``F``, e.g. ``(26, 26, 16)``; may be ``None``
        only for ``"shared"``.
      sharing: ``"element"``, ``"channel"``, ``"shared"`` or a tuple of axes of ``F``.

    Returns:
      ``F`` for ``"element"``, ``(C,)`` for ``"channel"``, ``()`` for ``"shared"``; for axes,
      ``F`` with every other axis set to 1, leading 1s dropped.

    Raises:
      ValueError: unknown sharing name, an axis out of range, or a missing feature shape.
    """
    if isinstance(sharing, str):
        if sharing not in SHARINGS:
            raise ValueError(
                f"unknown sharing {sharing!r}; use one of {SHARINGS} or a tuple of feature axes"
            )
        if sharing == "shared":
            return ()
        if features_shape is None:
            raise ValueError(
                f"sharing={sharing!r} needs the feature shape (per example, channels last, e.g. "
                "(26, 26, 16)); pass features_shape=..."
            )
        return tuple(features_shape) if sharing == "element" else (features_shape[-1],)
    try:
        axes = tuple(int(ax) for ax in sharing)
    except TypeError:
        raise ValueError(
            f"sharing must be one of {SHARINGS} or a tuple of ints, got {sharing!r}"
        ) from None
    if not axes:
        return ()
    if features_shape is None:
        raise ValueError(f"sharing axes {axes} need the feature shape; pass features_shape=...")
    n = len(features_shape)
    norm = set()
    for ax in axes:
        if not -n <= ax < n:
            raise ValueError(
                f"sharing axis {ax} is out of range for features of shape {features_shape}"
            )
        norm.add(ax % n)
    shape = tuple(d if i in norm else 1 for i, d in enumerate(features_shape))
    first = min(norm)
    return shape[first:]


def sharing_name(sharing: Sharing) -> str:
    """A printable name for a sharing spec (``"element"``, ``"axes(0,2)"``...)."""
    if isinstance(sharing, str):
        return sharing
    return "axes(" + ",".join(str(int(a)) for a in sharing) + ")"
