"""Deterministic shuffling and fixed-shape batching of in-memory numpy datasets.

Shuffling depends only on ``(seed, epoch)``, so a run resumed at epoch ``e`` sees exactly
the batches an uninterrupted run would have seen, without saving any RNG state.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["epoch_permutation", "eval_batches", "iterate_batches", "num_batches"]


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """Return the example order for one epoch.

    Parameters
    ----------
    seed : int
        Run seed, >= 0.
    epoch : int
        Epoch index, >= 0.
    n : int
        Number of examples.

    Returns
    -------
    np.ndarray
        int32 ``[n]``, a permutation of ``0 .. n-1`` that depends only on
        ``(seed, epoch)`` (via ``np.random.default_rng([seed, epoch])``).
    """
    if seed < 0 or epoch < 0 or n < 0:
        raise ValueError(f"seed, epoch and n must be >= 0, got {seed}, {epoch}, {n}")
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)


def num_batches(n: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Number of batches of ``batch_size`` from ``n`` examples.

    With ``drop_remainder`` the last incomplete batch is not counted (``n // batch_size``),
    otherwise it is (``ceil(n / batch_size)``).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return n // batch_size if drop_remainder else -(-n // batch_size)


def _check_pair(images: np.ndarray, labels: np.ndarray, batch_size: int) -> int:
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return images.shape[0]


def iterate_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    drop_remainder: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield one epoch of training batches.

    Parameters
    ----------
    images : np.ndarray
        ``[N, H, W, C]`` (any dtype; float32 from :func:`load_dataset`).
    labels : np.ndarray
        ``[N]``.
    batch_size : int
        Examples per batch.
    seed, epoch : int
        Select the shuffle order (see :func:`epoch_permutation`); unused if not shuffling.
    shuffle : bool
        Visit examples in the epoch's permuted order rather than in order.
    drop_remainder : bool
        Skip the last incomplete batch so every batch has ``batch_size`` examples (one
        compiled shape for a jitted train step).

    Yields
    ------
    x : np.ndarray
        ``[B, H, W, C]``, same dtype as ``images``; ``B == batch_size`` except possibly for
        the last batch when ``drop_remainder`` is False.
    y : np.ndarray
        ``[B]``, same dtype as ``labels``.

    Raises
    ------
    ValueError
        If the sizes disagree, or ``drop_remainder`` leaves no batch at all (a silently
        empty epoch would otherwise train nothing).
    """
    n = _check_pair(images, labels, batch_size)
    count = num_batches(n, batch_size, drop_remainder)
    if count == 0 and n > 0:
        raise ValueError(
            f"batch_size {batch_size} exceeds the {n} examples and drop_remainder=True, so an "
            "epoch would have no batches; use a smaller batch size or more examples"
        )
    order = epoch_permutation(seed, epoch, n) if shuffle else np.arange(n, dtype=np.int32)
    for b in range(count):
        idx = order[b * batch_size : (b + 1) * batch_size]
        yield images[idx], labels[idx]


def eval_batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield every example exactly once, in order, in batches of one fixed shape.

    The last batch is padded with zeros up to ``batch_size`` so that a jitted eval step
    compiles once; the mask tells the real examples from the padding.

    Parameters
    ----------
    images : np.ndarray
        ``[N, H, W, C]``.
    labels : np.ndarray
        ``[N]``.
    batch_size : int
        Examples per batch.

    Yields
    ------
    x : np.ndarray
        ``[batch_size, H, W, C]``, same dtype as ``images``.
    y : np.ndarray
        ``[batch_size]``, same dtype as ``labels`` (0 in padding).
    mask : np.ndarray
        float32 ``[batch_size]``, 1.0 for real examples and 0.0 for padding; e.g.
        ``accuracy = sum(mask * correct) / sum(mask)`` over all batches.
    """
    n = _check_pair(images, labels, batch_size)
    for start in range(0, n, batch_size):
        x = images[start : start + batch_size]
        y = labels[start : start + batch_size]
        real = x.shape[0]
        mask = np.zeros((batch_size,), dtype=np.float32)
        mask[:real] = 1.0
        if real < batch_size:
            pad = batch_size - real
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), dtype=x.dtype)])
            y = np.concatenate([y, np.zeros((pad,), dtype=y.dtype)])
        yield x, y, mask
