"""The engine's data: a ``cpaf_jax.data.Dataset`` or plain arrays, as one set of host arrays."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Arrays:
    """Training and evaluation arrays (host NumPy arrays).

    Attributes:
      train_x: ``[N, ...]`` inputs (images or not); train_y: ``[N, ...]`` targets (int32
        class labels for the default loss).
      test_x, test_y: the evaluation set, the same per-example shapes.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def _pair(data, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise TypeError(
            f"{what} must be a cpaf_jax.data.Dataset or a pair (inputs [N, ...], targets "
            f"[N, ...]) of arrays, got {type(data).__name__}"
        )
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.ndim < 1 or y.ndim < 1 or len(x) != len(y):
        raise ValueError(
            f"{what}: inputs {x.shape} and targets {y.shape} must have one leading length N"
        )
    if len(x) == 0:
        raise ValueError(f"{what} holds no examples")
    return x, y


def as_arrays(data, eval_data=None) -> Arrays:
    """The engine's arrays from ``data`` and ``eval_data``.

    Args:
      data: a ``cpaf_jax.data.Dataset`` (its training and test splits) or a pair
        ``(x_train [N, ...], y_train [N, ...])`` of NumPy or JAX arrays.
      eval_data: a pair ``(x_test [T, ...], y_test [T, ...])`` to evaluate on; required with
        a pair ``data``, and replaces a ``Dataset``'s test split when given.

    Raises:
      TypeError, ValueError: what was given is neither, or its lengths differ.
    """
    if hasattr(data, "train_images"):
        train = (np.asarray(data.train_images), np.asarray(data.train_labels))
        test = (np.asarray(data.test_images), np.asarray(data.test_labels))
    else:
        train = _pair(data, "data")
        if eval_data is None:
            raise ValueError(
                "training on arrays needs an evaluation set: pass eval_data=(x_test, y_test)"
            )
        test = None
    if eval_data is not None:
        test = _pair(eval_data, "eval_data")
    if train[0].shape[1:] != test[0].shape[1:]:
        raise ValueError(
            f"training inputs are {train[0].shape[1:]} per example, evaluation inputs "
            f"{test[0].shape[1:]}"
        )
    return Arrays(train[0], train[1], test[0], test[1])


__all__ = ["Arrays", "as_arrays"]
