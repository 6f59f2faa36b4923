"""Reading (and, when possible, downloading) datasets through TensorFlow Datasets.

Reading uses ``tfds.data_source``, which reads the ``array_record`` files of a prepared
dataset with numpy and PIL only, so TensorFlow is not needed. Preparing (downloading and
converting) a dataset does need TensorFlow, because tfds encodes the images with it.

``tensorflow_datasets`` is imported inside the functions: importing it costs noticeable time
and pulls in many modules, and most runs read the data from IDX or CIFAR files instead.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import socket
import threading
from typing import Any

import numpy as np

from cpaf_jax.data.errors import DataError

__all__ = [
    "default_tfds_data_dir",
    "download_tfds",
    "network_reachable",
    "prepared_tfds_dir",
    "read_tfds",
    "tensorflow_available",
]

# tfds first tries its own GCS mirror of the datasets, so this host is what a download needs.
PROBE_HOST = ("storage.googleapis.com", 443)


def default_tfds_data_dir() -> str:
    """Return tfds's data dir: ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``.

    This repeats tfds's own rule (``tfds.core.constants.get_default_data_dir``) so that
    checking for a prepared dataset does not have to import tfds.
    """
    return os.environ.get("TFDS_DATA_DIR") or os.path.join(
        os.path.expanduser("~"), "tensorflow_datasets"
    )


def prepared_tfds_dir(name: str, data_dir: str | os.PathLike) -> str | None:
    """Return the newest prepared version directory of ``name`` in ``data_dir``, or None.

    A version directory (``<data_dir>/<name>/<version>/``) counts as prepared when it holds
    ``dataset_info.json``, which tfds writes when preparation finishes. Checking this before
    calling tfds matters: offline, tfds retries its download for minutes when the data is
    not there.
    """
    pattern = os.path.join(glob.escape(os.fspath(data_dir)), name, "*", "dataset_info.json")
    found = sorted(glob.glob(pattern), key=lambda p: _version_key(os.path.dirname(p)))
    return os.path.dirname(found[-1]) if found else None


def _version_key(version_dir: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in os.path.basename(version_dir).split("."))
    except ValueError:
        return (-1,)


def tensorflow_available() -> bool:
    """Whether TensorFlow could be imported (checked without importing it)."""
    return importlib.util.find_spec("tensorflow") is not None


def network_reachable(host: tuple[str, int] = PROBE_HOST, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to ``host`` succeeds within about ``timeout`` seconds.

    The connect runs in a daemon thread because the socket timeout does not bound the DNS
    lookup, which offline can block far longer than ``timeout``.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(host, timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, name="cpaf-network-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result) and result[0]


def _to_arrays(source: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode every example of a tfds data source into (uint8 [N,H,W,C], int32 [N])."""
    n = len(source)
    if n == 0:
        raise DataError(f"{where} is empty; prepare the dataset again")
    first = source[0]
    image = np.asarray(first["image"])
    images = np.empty((n, *image.shape), dtype=np.uint8)
    labels = np.empty((n,), dtype=np.int32)
    # Sequential __getitem__ rather than __getitems__: it is the plain Sequence protocol that
    # every data source (and tfds's test mock) supports, and PNG decoding dominates anyway.
    for i in range(n):
        example = first if i == 0 else source[i]
        images[i] = example["image"]
        labels[i] = example["label"]
    return images, labels


def read_tfds(
    name: str, data_dir: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the train and test splits of a prepared tfds dataset without TensorFlow.

    Parameters
    ----------
    name : str
        tfds dataset name: ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"`` or ``"cifar100"``.
    data_dir : str or os.PathLike
        tfds data dir holding ``<name>/<version>/`` prepared in ``array_record`` format.

    Returns
    -------
    train_images, train_labels, test_images, test_labels : np.ndarray
        uint8 ``[N, H, W, C]`` images (C is 1 for MNIST-style data) and int32 ``[N]``
        labels (the fine labels for CIFAR-100).

    Raises
    ------
    DataError
        If tfds cannot read the dataset, e.g. because it was prepared in ``tfrecord`` format,
        which has no random-access reader.
    """
    import tensorflow_datasets as tfds

    data_dir = os.fspath(data_dir)
    arrays: list[np.ndarray] = []
    for split in ("train", "test"):
        where = f"TFDS dataset {name!r} split {split!r} in {data_dir!r}"
        try:
            # download=False: reading must never start a (possibly minutes-long) download.
            source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
            arrays.extend(_to_arrays(source, where))
        except DataError:
            raise
        except Exception as e:  # tfds raises many unrelated types; all mean "unreadable"
            raise DataError(
                f"cannot read {where} ({type(e).__name__}: {e}). tfds.data_source needs the "
                "dataset prepared in array_record format: "
                f"tfds.builder({name!r}, data_dir={data_dir!r})"
                '.download_and_prepare(file_format="array_record") (needs TensorFlow and a '
                "network), or use another source"
            ) from e
    train_images, train_labels, test_images, test_labels = arrays
    return train_images, train_labels, test_images, test_labels


def download_tfds(name: str, data_dir: str | os.PathLike) -> None:
    """Download and prepare ``name`` in ``data_dir`` in ``array_record`` format.

    Needs TensorFlow (tfds encodes images with it) and a network connection.

    Raises
    ------
    DataError
        If tfds fails; the message carries tfds's error.
    """
    import tensorflow_datasets as tfds

    data_dir = os.fspath(data_dir)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        builder.download_and_prepare(file_format="array_record")
    except Exception as e:  # tfds raises many unrelated types; all mean "download failed"
        raise DataError(
            f"downloading and preparing TFDS dataset {name!r} into {data_dir!r} failed "
            f"({type(e).__name__}: {e}); check the network connection or use another source"
        ) from e
