"""Fixed per-dataset pixel statistics and the normalisation that uses them.

Images are mapped to float32 as ``(pixels / 255 - mean[c]) / std[c]`` per channel ``c``,
with ``mean`` and ``std`` fixed constants of each dataset's *training* set (computed over all
training pixels of a channel, in the [0, 1] scale). Fixed constants, rather than statistics
of whatever data was loaded, keep a ``--train-subset`` run and a full run on the same input
scale and keep test data from leaking into preprocessing.

Provenance of the constants:

* Fashion-MNIST: computed here once from the official training set (the Debian package
  ``dataset-fashion-mnist``, /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz):
  mean 0.2860406, std 0.3530242 (population std over all 60000 * 784 pixels).
* MNIST: the standard published values 0.1307 and 0.3081 (as in the PyTorch MNIST example).
* CIFAR-10: the commonly used values mean (0.4914, 0.4822, 0.4465),
  std (0.2470, 0.2435, 0.2616). The also-common std (0.2023, 0.1994, 0.2010) is the average
  of per-image stds, not the pixel std, so it is not used.
* CIFAR-100: the commonly used values mean (0.5071, 0.4865, 0.4409),
  std (0.2673, 0.2564, 0.2762).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CHANNEL_STATS", "normalize_images"]

# name -> (per-channel mean, per-channel std), both on the [0, 1] pixel scale.
CHANNEL_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860406,), (0.3530242,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def normalize_images(
    images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]
) -> np.ndarray:
    """Scale uint8 images to [0, 1] and standardise each channel.

    Parameters
    ----------
    images : np.ndarray
        uint8 ``[N, H, W, C]`` with ``C == len(mean) == len(std)``.
    mean, std : tuple of float
        Per-channel statistics on the [0, 1] scale.

    Returns
    -------
    np.ndarray
        float32 ``[N, H, W, C]``, ``(images / 255 - mean) / std``.
    """
    if images.ndim != 4 or images.shape[-1] != len(mean) or len(mean) != len(std):
        raise ValueError(
            f"images of shape {images.shape} do not match {len(mean)}-channel statistics"
        )
    # In-place float32 arithmetic: CIFAR's training set is 50000*32*32*3 float32s, so avoid
    # float64 temporaries and extra copies.
    out = images.astype(np.float32)
    out *= np.float32(1.0 / 255.0)
    out -= np.asarray(mean, dtype=np.float32)
    out /= np.asarray(std, dtype=np.float32)
    return out
