"""Dataset loading and batching for cpaf-jax, in numpy only.

Nothing here imports JAX, TensorFlow or tensorflow_datasets at import time; tfds is imported
only when a dataset is actually read from or downloaded into a TFDS data dir.

Typical use::

    from cpaf_jax.data import eval_batches, iterate_batches, load_dataset

    ds = load_dataset("fashion_mnist", data_dir=args.data_dir)
    for x, y in iterate_batches(ds.train_images, ds.train_labels, 128, seed=0, epoch=e):
        ...
"""

from cpaf_jax.data.batching import epoch_permutation, eval_batches, iterate_batches, num_batches
from cpaf_jax.data.cifar import read_cifar
from cpaf_jax.data.datasets import (
    DATASET_NAMES,
    DEFAULT_SYSTEM_DIRS,
    DataLocation,
    Dataset,
    find_dataset,
    load_dataset,
)
from cpaf_jax.data.errors import DataError
from cpaf_jax.data.idx import read_idx
from cpaf_jax.data.normalization import CHANNEL_STATS, normalize_images
from cpaf_jax.data.tfds_source import default_tfds_data_dir

__all__ = [
    "CHANNEL_STATS",
    "DATASET_NAMES",
    "DEFAULT_SYSTEM_DIRS",
    "DataError",
    "DataLocation",
    "Dataset",
    "default_tfds_data_dir",
    "epoch_permutation",
    "eval_batches",
    "find_dataset",
    "iterate_batches",
    "load_dataset",
    "normalize_images",
    "num_batches",
    "read_cifar",
    "read_idx",
]
