"""Small datasets in the real file formats (IDX, CIFAR pickles and archives), written by the
tests independently of the readers under test, search overrides that isolate a test from
the machine's datasets, and subsets of the real Fashion-MNIST."""

from __future__ import annotations

import dataclasses
import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cpaf_jax.data import CHANNEL_STATS, Dataset, load_dataset
from cpaf_jax.data.datasets import DataError

# IDX dtype codes, written independently of the reader under test.
_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int32): 0x0C}
_IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


# --------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` in the IDX format (header, big-endian dims, big-endian payload)."""
    code = _IDX_CODES[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_idx_dataset(
    directory: Path, *, n_train: int = 12, n_test: int = 5, gz: bool = True, seed: int = 0
) -> tuple[np.ndarray, ...]:
    """Write the four MNIST-style IDX files; return (train_x, train_y, test_x, test_y)."""
    rng = np.random.default_rng(seed)
    arrays = (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, (n_train,), dtype=np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, (n_test,), dtype=np.uint8),
    )
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(_IDX_NAMES, arrays, strict=True):
        write_idx(directory / (f"{stem}.gz" if gz else stem), array, gz=gz)
    return arrays


def cifar_batches(name: str, seed: int = 0) -> tuple[dict[str, dict], np.ndarray, np.ndarray]:
    """Tiny batches in the official pickle layout; return (member -> dict, images, labels).

    The returned images (uint8 NHWC) and labels (train then test, in member order) are what
    a correct reader must produce.
    """
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        members, sizes, label_key, classes = (
            [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
            [4, 4, 4, 4, 4, 6],
            b"labels",
            10,
        )
    else:
        members, sizes, label_key, classes = ["train", "test"], [8, 3], b"fine_labels", 100
    batches, all_images, all_labels = {}, [], []
    for member, n in zip(members, sizes, strict=True):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, classes, n).tolist()
        # Official rows are channel-major: 1024 R, then 1024 G, then 1024 B values.
        batch = {b"data": images.transpose(0, 3, 1, 2).reshape(n, 3072), label_key: labels}
        if name == "cifar100":
            batch[b"coarse_labels"] = [c // 5 for c in labels]
        batches[member] = batch
        all_images.append(images)
        all_labels.append(np.asarray(labels, dtype=np.int32))
    return batches, np.concatenate(all_images), np.concatenate(all_labels)


_CIFAR_FOLDER = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_CIFAR_ARCHIVE = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def write_cifar_folder(root: Path, name: str, batches: dict[str, dict]) -> Path:
    folder = root / _CIFAR_FOLDER[name]
    folder.mkdir(parents=True)
    for member, batch in batches.items():
        (folder / member).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def write_cifar_archive(root: Path, name: str, batches: dict[str, dict]) -> Path:
    archive = root / _CIFAR_ARCHIVE[name]
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for member, batch in batches.items():
            payload = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"{_CIFAR_FOLDER[name]}/{member}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return archive


def split_counts(name: str) -> tuple[int, int]:
    return (20, 6) if name == "cifar10" else (8, 3)


def normalised(raw: np.ndarray, name: str) -> np.ndarray:
    mean, std = CHANNEL_STATS[name]
    if raw.ndim == 3:
        raw = raw[..., None]
    return ((raw / 255.0 - np.asarray(mean)) / np.asarray(std)).astype(np.float32)


def isolated(tmp_path: Path) -> dict:
    """Search overrides that keep load_dataset away from system dirs and ~/tensorflow_datasets."""
    empty = tmp_path / "empty_tfds"
    empty.mkdir(exist_ok=True)
    return {"system_dirs": [], "tfds_data_dir": empty}


# --------------------------------------------------------------------------- real data


def subset(data: Dataset, n_train: int, n_test: int) -> Dataset:
    """``data`` cut to its first ``n_train`` training and ``n_test`` test examples, its
    normalisation and everything else unchanged."""
    return dataclasses.replace(
        data,
        train_images=data.train_images[:n_train],
        train_labels=data.train_labels[:n_train],
        test_images=data.test_images[:n_test],
        test_labels=data.test_labels[:n_test],
    )


def real_fashion_mnist_subset(n_train: int, n_test: int) -> Dataset:
    """A ``subset`` of the real Fashion-MNIST (Debian's dataset-fashion-mnist, which CI
    installs): missing data fails the test, never skips it."""
    try:
        ds = load_dataset("fashion_mnist", allow_download=False)
    except DataError as e:
        pytest.fail(f"Fashion-MNIST missing (apt-get install dataset-fashion-mnist): {e}")
    return subset(ds, n_train, n_test)
