"""Finding, reading and normalising the image-classification datasets.

``load_dataset(name)`` returns a :class:`Dataset` of normalised float32 NHWC images and
int32 labels for ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"`` or ``"cifar100"``.

Where the data comes from, first match wins (see :func:`find_dataset`):

1. ``data_dir`` if given: the files directly in it or in a subfolder named after the
   dataset (e.g. ``fashion-mnist/``). MNIST-style data are the four IDX files, gzipped or
   not; CIFAR is the official ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` or
   the folder extracted from it. ``data_dir`` may also be a TFDS data dir.
2. The system dirs, by default ``/usr/share/datasets`` (searched the same way), where the
   Debian package ``dataset-fashion-mnist`` installs ``/usr/share/datasets/fashion-mnist``.
3. A dataset prepared (array_record format) in the TFDS data dir, ``$TFDS_DATA_DIR`` or
   ``~/tensorflow_datasets``, read with ``tfds.data_source`` (TensorFlow not needed).
4. A download through tfds into that TFDS data dir, only if ``allow_download`` is True, or
   None and both TensorFlow is installed and a 2-second network probe succeeds.

Otherwise :class:`DataError` is raised within seconds, listing the ways to get the data.
Because MNIST and Fashion-MNIST use the same file names, keep each in its own named
subfolder when both live under one ``data_dir``.

Normalisation: ``x = (pixels / 255 - mean[c]) / std[c]`` per channel with fixed constants of
each dataset's training set; see :mod:`cpaf_jax.data.normalization` for their provenance.
MNIST-style images get a channel axis of size 1. Images are float32 ``[N, H, W, C]``,
labels int32 ``[N]``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cpaf_jax.data.cifar import CIFAR_LAYOUTS, read_cifar
from cpaf_jax.data.errors import DataError
from cpaf_jax.data.idx import read_idx
from cpaf_jax.data.normalization import CHANNEL_STATS, normalize_images
from cpaf_jax.data.tfds_source import (
    PROBE_HOST,
    default_tfds_data_dir,
    download_tfds,
    network_reachable,
    prepared_tfds_dir,
    read_tfds,
    tensorflow_available,
)

__all__ = [
    "DEFAULT_SYSTEM_DIRS",
    "DATASET_NAMES",
    "DataLocation",
    "Dataset",
    "find_dataset",
    "load_dataset",
]

DEFAULT_SYSTEM_DIRS: tuple[str, ...] = ("/usr/share/datasets",)

#: Seed of the fixed permutation that ``Dataset.split_validation`` holds images out by.
VALIDATION_SEED = 0

# The four IDX files in (train images, train labels, test images, test labels) order.
_IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class _Spec:
    """What is known about one dataset before reading it."""

    title: str
    kind: str  # "idx" or "cifar"
    num_classes: int
    image_shape: tuple[int, int, int]
    subdirs: tuple[str, ...]  # folder names tried under each search root, in order
    download_hint: str  # where the raw files come from


_SPECS: dict[str, _Spec] = {
    "mnist": _Spec(
        "MNIST",
        "idx",
        10,
        (28, 28, 1),
        ("mnist", "MNIST/raw", "MNIST"),
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion_mnist": _Spec(
        "Fashion-MNIST",
        "idx",
        10,
        (28, 28, 1),
        ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST"),
        "https://github.com/zalandoresearch/fashion-mnist",
    ),
    "cifar10": _Spec(
        "CIFAR-10",
        "cifar",
        10,
        (32, 32, 3),
        ("cifar10", "cifar-10"),
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": _Spec(
        "CIFAR-100",
        "cifar",
        100,
        (32, 32, 3),
        ("cifar100", "cifar-100"),
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    ),
}

DATASET_NAMES: tuple[str, ...] = tuple(_SPECS)


@dataclass(frozen=True, eq=False)  # eq=False: array fields make == and hash meaningless
class Dataset:
    """A normalised image-classification dataset held in memory as numpy arrays.

    Attributes
    ----------
    name : str
        ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"`` or ``"cifar100"``.
    train_images : np.ndarray
        float32 ``[N_train, H, W, C]``, normalised with ``mean`` and ``std``.
    train_labels : np.ndarray
        int32 ``[N_train]`` in ``[0, num_classes)``.
    test_images : np.ndarray
        float32 ``[N_test, H, W, C]``, normalised like the training images.
    test_labels : np.ndarray
        int32 ``[N_test]``.
    num_classes : int
        Number of classes (10, or 100 for CIFAR-100's fine labels).
    source : str
        Where the data came from: a directory or archive path, or ``"tfds:<data dir>"``.
    mean, std : tuple of float
        Per-channel statistics (on the [0, 1] pixel scale) used for normalisation, so that
        images can be mapped back to pixels as ``(x * std + mean) * 255``.
    eval_split : str
        What ``test_images`` hold: ``"test"`` (the official test set) or ``"validation"``
        (images carved from the training set by :meth:`split_validation`).
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    source: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    eval_split: str = "test"

    def __post_init__(self) -> None:
        for split, images, labels in (
            ("train", self.train_images, self.train_labels),
            ("test", self.test_images, self.test_labels),
        ):
            if images.ndim != 4 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
                raise DataError(
                    f"{self.name} ({self.source}): {split} images of shape {images.shape} do "
                    f"not match {split} labels of shape {labels.shape}; expected [N, H, W, C] "
                    "images and [N] labels; the data files are corrupt or mismatched"
                )
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise DataError(
                f"{self.name} ({self.source}): train images {self.train_images.shape[1:]} and "
                f"test images {self.test_images.shape[1:]} differ in shape"
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one image, e.g. to initialise a model."""
        h, w, c = self.train_images.shape[1:]
        return h, w, c

    def subset(self, n: int) -> Dataset:
        """Return this dataset with only its first ``n`` training examples.

        The test set is kept whole. Meant for ``--train-subset`` smoke runs.

        Raises
        ------
        DataError
            If ``n`` is not in ``1 .. len(train_images)``.
        """
        available = self.train_images.shape[0]
        if not 0 < n <= available:
            raise DataError(
                f"train subset size {n} is out of range for {self.name}, which has "
                f"{available} training images; pass a value from 1 to {available}"
            )
        return dataclasses.replace(
            self, train_images=self.train_images[:n], train_labels=self.train_labels[:n]
        )

    def split_validation(self, n: int, seed: int = VALIDATION_SEED) -> Dataset:
        """This dataset with ``n`` training images held out as its evaluation set.

        The held-out images are the last ``n`` of the permutation
        ``np.random.default_rng(seed).permutation(N_train)``: a fixed split for a given
        ``(N_train, n, seed)``, the same for every run, activation and training seed. Training
        keeps the other ``N_train - n`` images in their original order; ``test_images`` and
        ``test_labels`` become the held-out ones (``[n, H, W, C]``, ``[n]``) and ``eval_split``
        says ``"validation"``. The official test set is never looked at.

        Raises
        ------
        DataError
            If ``n`` is not in ``1 .. N_train - 1``, or this dataset is already a split.
        """
        available = self.train_images.shape[0]
        if self.eval_split != "test":
            raise DataError(f"{self.name} already evaluates on a {self.eval_split} split")
        if not 0 < n < available:
            raise DataError(
                f"validation size {n} is out of range for {self.name}, which has {available} "
                f"training images; pass a value from 1 to {available - 1}"
            )
        perm = np.random.default_rng(seed).permutation(available)
        held, kept = np.sort(perm[available - n :]), np.sort(perm[: available - n])
        return dataclasses.replace(
            self,
            train_images=self.train_images[kept],
            train_labels=self.train_labels[kept],
            test_images=self.train_images[held],
            test_labels=self.train_labels[held],
            eval_split="validation",
        )


@dataclass(frozen=True)
class DataLocation:
    """Where a dataset was found.

    Attributes
    ----------
    kind : str
        ``"idx"`` (four IDX files), ``"cifar"`` (official archive or extracted folder) or
        ``"tfds"`` (prepared TFDS data dir).
    path : str
        The IDX directory, the CIFAR archive or folder, or the TFDS data dir.
    files : tuple of str
        For ``"idx"``: train images, train labels, test images, test labels paths.
    """

    kind: str
    path: str
    files: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        """``path``, or ``"tfds:<path>"`` for a TFDS data dir."""
        return f"tfds:{self.path}" if self.kind == "tfds" else self.path


def _spec(name: str) -> _Spec:
    if name not in _SPECS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)}")
    return _SPECS[name]


def _idx_file(directory: str, stem: str) -> str | None:
    """Path of one IDX file in any of its usual spellings, or None."""
    dotted = stem.replace("-idx", ".idx", 1)  # e.g. train-images.idx3-ubyte
    for candidate in (f"{stem}.gz", stem, f"{dotted}.gz", dotted):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def _find_idx(directory: str, title: str) -> DataLocation | None:
    found = [_idx_file(directory, stem) for stem in _IDX_STEMS]
    if all(found):
        return DataLocation("idx", directory, tuple(p for p in found if p))
    if any(found):
        # A half-complete folder is a mistake worth reporting, not skipping silently.
        missing = [stem for stem, p in zip(_IDX_STEMS, found, strict=True) if p is None]
        raise DataError(
            f"{directory!r} holds only some of the {title} IDX files; missing: "
            f"{', '.join(s + '[.gz]' for s in missing)}. Add them or remove the folder"
        )
    return None


def _find_cifar(directory: str, name: str) -> DataLocation | None:
    folder, archive, train_members, _, _ = CIFAR_LAYOUTS[name]
    extracted = os.path.join(directory, folder)
    if os.path.isdir(extracted):
        return DataLocation("cifar", extracted)
    if os.path.isfile(os.path.join(directory, archive)):
        return DataLocation("cifar", os.path.join(directory, archive))
    # The directory may itself be the extracted folder (e.g. --data-dir cifar-10-batches-py).
    if os.path.isfile(os.path.join(directory, train_members[0])):
        return DataLocation("cifar", directory)
    return None


def _search_root(root: str, name: str, spec: _Spec) -> DataLocation | None:
    """Look for raw files in ``root``'s dataset-named subfolders, then in ``root`` itself."""
    # Named subfolders first: MNIST and Fashion-MNIST share file names, so a named folder
    # is better evidence of which dataset the files are than loose files in the root.
    for directory in [os.path.join(root, sub) for sub in spec.subdirs] + [root]:
        if not os.path.isdir(directory):
            continue
        if spec.kind == "idx":
            location = _find_idx(directory, spec.title)
        else:
            location = _find_cifar(directory, name)
        if location is not None:
            return location
    return None


def find_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    system_dirs: Sequence[str | os.PathLike] = DEFAULT_SYSTEM_DIRS,
    tfds_data_dir: str | os.PathLike | None = None,
) -> DataLocation | None:
    """Find ``name`` on disk without reading it or touching the network.

    Parameters
    ----------
    name : str
        One of :data:`DATASET_NAMES`.
    data_dir : str or os.PathLike, optional
        Searched first: raw files in it or a dataset-named subfolder, or a TFDS data dir.
    system_dirs : sequence of path, keyword-only
        Searched next like ``data_dir``; defaults to ``("/usr/share/datasets",)``.
    tfds_data_dir : path, keyword-only, optional
        TFDS data dir searched last; defaults to ``$TFDS_DATA_DIR`` or
        ``~/tensorflow_datasets``.

    Returns
    -------
    DataLocation or None
        The first match, or None if the dataset is nowhere on disk.

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    DataError
        If a folder holds only some of the IDX files.
    """
    spec = _spec(name)
    if data_dir is not None:
        root = os.fspath(data_dir)
        location = _search_root(root, name, spec)
        if location is None and prepared_tfds_dir(name, root) is not None:
            location = DataLocation("tfds", root)
        if location is not None:
            return location
    for system_dir in system_dirs:
        location = _search_root(os.fspath(system_dir), name, spec)
        if location is not None:
            return location
    tfds_dir = os.fspath(tfds_data_dir) if tfds_data_dir is not None else default_tfds_data_dir()
    if prepared_tfds_dir(name, tfds_dir) is not None:
        return DataLocation("tfds", tfds_dir)
    return None


def _download_refusal(allow_download: bool | None) -> str | None:
    """Why tfds will not download, or None when a download should be attempted."""
    if allow_download is False:
        return "downloading is disabled (allow_download=False)"
    if not tensorflow_available():
        return "TensorFlow is not installed, and tfds needs it to prepare a dataset"
    if allow_download is None and not network_reachable():
        host, port = PROBE_HOST
        return f"no network: {host}:{port} did not answer within 2 s"
    return None


def _ways_to_get(name: str, spec: _Spec, tfds_dir: str) -> list[str]:
    """The three ways to provide ``name``, as lines for an error message."""
    if spec.kind == "idx":
        files = ", ".join(f"{stem}.gz" for stem in _IDX_STEMS)
        subdir = spec.subdirs[0]
        if name == "fashion_mnist":
            system = (
                "Debian/Ubuntu package: sudo apt-get install dataset-fashion-mnist "
                "(installs /usr/share/datasets/fashion-mnist)"
            )
        else:
            system = (
                f"put the four IDX files in /usr/share/datasets/{subdir}/ "
                "(no Debian package ships them)"
            )
        local = (
            f"--data-dir DIR (data_dir=DIR) where DIR or DIR/{subdir} holds the four IDX "
            f"files, gz or not: {files} (from {spec.download_hint})"
        )
    else:
        folder, archive, _, _, _ = CIFAR_LAYOUTS[name]
        local = (
            f"--data-dir DIR (data_dir=DIR) where DIR or DIR/{spec.subdirs[0]} holds the "
            f"official {archive} ({spec.download_hint}) or the {folder}/ folder extracted "
            "from it"
        )
        system = f"put {archive} or {folder}/ in /usr/share/datasets/ (or its {spec.subdirs[0]}/)"
    tfds = (
        f'a TFDS data dir with "{name}" prepared in array_record format: on a machine with a '
        "network run pip install tensorflow tensorflow-datasets; python -c 'import "
        f'tensorflow_datasets as tfds; tfds.builder("{name}")'
        '.download_and_prepare(file_format="array_record")\'; then copy '
        f"~/tensorflow_datasets/{name} into $TFDS_DATA_DIR (now {tfds_dir}). With "
        "TensorFlow and a network here, allow_download=True does this automatically"
    )
    return [system, local, tfds]


def _not_found(name: str, spec: _Spec, searched: list[str], tfds_dir: str, why: str) -> str:
    ways = _ways_to_get(name, spec, tfds_dir)
    lines = [f"{spec.title} ({name!r}) was not found. Searched:"]
    lines += [f"  - {place}" for place in searched]
    lines.append(f"  - TFDS data dir {tfds_dir} (no prepared {name}); not downloading: {why}")
    lines.append("Get the data in one of three ways:")
    lines += [f"  {i}. {way}" for i, way in enumerate(ways, start=1)]
    return "\n".join(lines)


def _read(location: DataLocation, name: str) -> tuple[np.ndarray, ...]:
    """Read uint8 images and int labels of both splits from ``location``."""
    if location.kind == "idx":
        return tuple(read_idx(path) for path in location.files)
    if location.kind == "cifar":
        return read_cifar(location.path, name)
    return read_tfds(name, location.path)


def _checked_split(
    images: np.ndarray, labels: np.ndarray, spec: _Spec, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Give images their channel axis and check shapes, counts, dtypes and label range."""
    if images.ndim == 3 and spec.image_shape[2] == 1:
        images = images[..., np.newaxis]
    if images.dtype != np.uint8 or images.shape[1:] != spec.image_shape:
        raise DataError(
            f"{what}: images are {images.dtype} {images.shape}, expected uint8 "
            f"[N, {', '.join(map(str, spec.image_shape))}]; the files are not {spec.title}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{what}: {images.shape[0]} images but labels of shape {labels.shape}; the image "
            "and label files do not belong together"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise DataError(
            f"{what}: labels range over {labels.min()}..{labels.max()}, outside "
            f"0..{spec.num_classes - 1}; the files are not {spec.title}"
        )
    return images, labels.astype(np.int32)


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    allow_download: bool | None = None,
    system_dirs: Sequence[str | os.PathLike] = DEFAULT_SYSTEM_DIRS,
    tfds_data_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Find, read and normalise a dataset (search order in the module docstring).

    Parameters
    ----------
    name : {"mnist", "fashion_mnist", "cifar10", "cifar100"}
        Dataset to load.
    data_dir : str or os.PathLike, optional
        Directory searched first (the ``--data-dir`` option).
    allow_download : bool or None, keyword-only
        True: download through tfds if the data is not on disk. False: never. None:
        download only if TensorFlow is installed and a 2-second network probe succeeds.
    system_dirs : sequence of path, keyword-only
        System dataset directories; default ``("/usr/share/datasets",)``.
    tfds_data_dir : path, keyword-only, optional
        TFDS data dir; default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``.

    Returns
    -------
    Dataset
        float32 NHWC images normalised per channel, int32 labels.

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    DataError
        If the data is nowhere to be found (the message lists the ways to get it), or it is
        corrupt or inconsistent.
    """
    spec = _spec(name)
    tfds_dir = os.fspath(tfds_data_dir) if tfds_data_dir is not None else default_tfds_data_dir()
    location = find_dataset(name, data_dir, system_dirs=system_dirs, tfds_data_dir=tfds_dir)
    if location is None:
        refusal = _download_refusal(allow_download)
        if refusal is not None:
            roots = ([data_dir] if data_dir is not None else []) + list(system_dirs)
            searched = [
                f"{os.fspath(root)} and its subfolders {', '.join(spec.subdirs)}" for root in roots
            ]
            raise DataError(_not_found(name, spec, searched, tfds_dir, refusal))
        download_tfds(name, tfds_dir)
        location = DataLocation("tfds", tfds_dir)

    train_images, train_labels, test_images, test_labels = _read(location, name)
    train_images, train_labels = _checked_split(
        train_images, train_labels, spec, f"{spec.title} training set in {location.source}"
    )
    test_images, test_labels = _checked_split(
        test_images, test_labels, spec, f"{spec.title} test set in {location.source}"
    )
    mean, std = CHANNEL_STATS[name]
    return Dataset(
        name=name,
        train_images=normalize_images(train_images, mean, std),
        train_labels=train_labels,
        test_images=normalize_images(test_images, mean, std),
        test_labels=test_labels,
        num_classes=spec.num_classes,
        source=location.source,
        mean=mean,
        std=std,
    )
