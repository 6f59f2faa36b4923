"""The test set as equal, device-ready batches (the last padded, with a mask)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def pad_eval(images: np.ndarray, labels: np.ndarray, batch: int):
    """A test set as equal batches, the last one padded, with a mask for the padding.

    Args:
      images: ``[N, H, W, C]``; labels: ``[N]`` int; batch: batch size (at most ``N``).

    Returns:
      device arrays ``x [T, Bt, H, W, C]``, ``y [T, Bt]`` and float32 ``mask [T, Bt]`` (0 on
      padding), ``Bt = min(batch, N)``, ``T = ceil(N / Bt)``.
    """
    n = len(labels)
    batch = min(batch, n)
    total = -(-n // batch) * batch
    pad = total - n
    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    if pad:
        images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
        labels = np.concatenate([labels, np.zeros(pad, labels.dtype)])
    shape = (total // batch, batch)
    return (
        jnp.asarray(images.reshape(shape + images.shape[1:])),
        jnp.asarray(labels.reshape(shape)),
        jnp.asarray(mask.reshape(shape)),
    )


__all__ = ["pad_eval"]
