"""Tests for cpaf_jax.data: file readers, dataset search, normalisation and batching.

Every test writes its own small files under ``tmp_path`` except ``test_real_fashion_mnist``,
which reads the Debian package ``dataset-fashion-mnist`` (installed here and in CI).
"""

from __future__ import annotations

import gzip
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from fakes import (
    _CIFAR_FOLDER,
    _IDX_NAMES,
    cifar_batches,
    idx_bytes,
    isolated,
    normalised,
    split_counts,
    write_cifar_archive,
    write_cifar_folder,
    write_idx,
    write_idx_dataset,
)

from cpaf_jax.data import (
    CHANNEL_STATS,
    DataError,
    Dataset,
    epoch_permutation,
    eval_batches,
    find_dataset,
    iterate_batches,
    load_dataset,
    num_batches,
    read_cifar,
    read_idx,
)
from cpaf_jax.data import datasets as datasets_module
from cpaf_jax.data.tfds_source import PROBE_HOST, network_reachable

REPO_ROOT = Path(__file__).resolve().parents[2]
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([3, 1, 4, 1, 5], dtype=np.uint8),
        np.array([[-7, 300000], [1, -2]], dtype=np.int32),
        np.array([-1, 2, -3], dtype=np.int8),
    ],
)
def test_idx_round_trip(tmp_path: Path, array: np.ndarray, gz: bool) -> None:
    path = write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), array, gz=gz)
    back = read_idx(path)
    assert back.shape == array.shape
    assert back.dtype == array.dtype  # native byte order, same kind
    np.testing.assert_array_equal(back, array)


def test_idx_gzip_detected_by_content_not_suffix(tmp_path: Path) -> None:
    array = np.arange(10, dtype=np.uint8)
    gz_without_suffix = write_idx(tmp_path / "labels-idx1-ubyte", array, gz=True)
    plain_with_suffix = write_idx(tmp_path / "labels-idx1-ubyte.gz", array, gz=False)
    np.testing.assert_array_equal(read_idx(gz_without_suffix), array)
    np.testing.assert_array_equal(read_idx(plain_with_suffix), array)


def test_idx_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">i", 1) + b"\x00")
    with pytest.raises(DataError, match="bad magic") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_idx_unknown_dtype_code(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">i", 1) + b"\x00")
    with pytest.raises(DataError, match="unknown dtype code 0x07"):
        read_idx(path)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_truncated_payload(tmp_path: Path, gz: bool) -> None:
    data = idx_bytes(np.zeros((4, 5), dtype=np.uint8))[:-3]  # 17 of 20 payload bytes
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "20" in message and "17" in message


def test_idx_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros((3,), dtype=np.uint8)) + b"junk")
    with pytest.raises(DataError, match="trailing") as info:
        read_idx(path)
    assert "3 payload bytes" in str(info.value) and "holds 7" in str(info.value)


def test_idx_truncated_gzip(tmp_path: Path) -> None:
    compressed = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32) % 256))
    path = tmp_path / "cut.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DataError, match="corrupt or truncated gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_idx_corrupt_gzip(tmp_path: Path) -> None:
    compressed = bytearray(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8))))
    compressed[12:20] = b"\xff" * 8  # damage the deflate stream after the gzip header
    path = tmp_path / "damaged.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(DataError, match="gzip"):
        read_idx(path)


def test_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "nope")


# --------------------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_folder_and_archive(tmp_path: Path, name: str) -> None:
    batches, images, labels = cifar_batches(name)
    folder = write_cifar_folder(tmp_path / "f", name, batches)
    archive = write_cifar_archive(tmp_path / "a", name, batches)
    n_train, _ = split_counts(name)
    for path in (folder, archive):
        train_x, train_y, test_x, test_y = read_cifar(path, name)
        assert train_x.dtype == np.uint8 and train_x.shape == (n_train, 32, 32, 3)
        assert train_y.dtype == np.int32 and test_y.dtype == np.int32
        np.testing.assert_array_equal(np.concatenate([train_x, test_x]), images)
        np.testing.assert_array_equal(np.concatenate([train_y, test_y]), labels)


def test_cifar_corrupt_archive(tmp_path: Path) -> None:
    batches, _, _ = cifar_batches("cifar10")
    archive = write_cifar_archive(tmp_path, "cifar10", batches)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_cifar(archive, "cifar10")
    archive.write_bytes(b"this is not a tar file at all" * 20)
    with pytest.raises(DataError, match="corrupt"):
        read_cifar(archive, "cifar10")


def test_cifar_missing_member(tmp_path: Path) -> None:
    batches, _, _ = cifar_batches("cifar10")
    del batches["data_batch_3"]
    archive = write_cifar_archive(tmp_path / "a", "cifar10", batches)
    with pytest.raises(DataError, match="data_batch_3"):
        read_cifar(archive, "cifar10")
    folder = write_cifar_folder(tmp_path / "f", "cifar10", batches)
    with pytest.raises(DataError, match="data_batch_3"):
        read_cifar(folder, "cifar10")


def test_cifar_wrong_shape_and_keys(tmp_path: Path) -> None:
    batches, _, _ = cifar_batches("cifar100")
    batches["test"][b"data"] = batches["test"][b"data"][:, :100]
    with pytest.raises(DataError, match=r"expected uint8 \[N, 3072\]"):
        read_cifar(write_cifar_folder(tmp_path / "shape", "cifar100", batches), "cifar100")
    batches, _, _ = cifar_batches("cifar100")
    del batches["train"][b"fine_labels"]
    with pytest.raises(DataError, match="fine_labels"):
        read_cifar(write_cifar_archive(tmp_path / "keys", "cifar100", batches), "cifar100")


class _RunsShell:
    """Unpickles as ``os.system(command)``: what a malicious batch file would carry."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("form", ["folder", "archive"])
def test_cifar_pickle_cannot_run_code(tmp_path: Path, form: str) -> None:
    marker = tmp_path / "pwned"
    batches, _, _ = cifar_batches("cifar10")
    batches["data_batch_1"][b"labels"] = _RunsShell(f"touch {marker}")
    writer = write_cifar_folder if form == "folder" else write_cifar_archive
    path = writer(tmp_path / form, "cifar10", batches)
    with pytest.raises(DataError, match=r"data_batch_1.*refers to posix\.system"):
        read_cifar(path, "cifar10")
    assert not marker.exists()


def test_cifar_pickle_refuses_other_globals_and_codecs(tmp_path: Path) -> None:
    batches, _, _ = cifar_batches("cifar10")
    folder = write_cifar_folder(tmp_path, "cifar10", batches)
    # builtins.eval through a GLOBAL opcode written by hand (protocol 0).
    (folder / "test_batch").write_bytes(b"cbuiltins\neval\n(V1+1\ntR.")
    with pytest.raises(DataError, match=r"test_batch.*builtins\.eval"):
        read_cifar(folder, "cifar10")
    # _codecs.encode is admitted for protocol 2's bytes, but only with latin1.
    (folder / "test_batch").write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(DataError, match="rot13"):
        read_cifar(folder, "cifar10")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_pickle_protocols_still_load(tmp_path: Path, protocol: int) -> None:
    batches, images, labels = cifar_batches("cifar10")
    folder = tmp_path / _CIFAR_FOLDER["cifar10"]
    folder.mkdir()
    for member, batch in batches.items():
        (folder / member).write_bytes(pickle.dumps(batch, protocol=protocol))
    train_x, train_y, test_x, test_y = read_cifar(folder, "cifar10")
    np.testing.assert_array_equal(np.concatenate([train_x, test_x]), images)
    np.testing.assert_array_equal(np.concatenate([train_y, test_y]), labels)


def test_cifar_missing_path_and_bad_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_cifar(tmp_path / "cifar-10-python.tar.gz", "cifar10")
    with pytest.raises(ValueError, match="cifar10"):
        read_cifar(tmp_path, "cifar1000")


# --------------------------------------------------------------------------- load_dataset


def test_load_fashion_mnist_from_named_subfolder(tmp_path: Path) -> None:
    raw = write_idx_dataset(tmp_path / "data" / "fashion-mnist", gz=True)
    ds = load_dataset("fashion_mnist", tmp_path / "data", **isolated(tmp_path))
    assert isinstance(ds, Dataset)
    assert ds.source == str(tmp_path / "data" / "fashion-mnist")
    assert ds.train_images.shape == (12, 28, 28, 1) and ds.train_images.dtype == np.float32
    assert ds.test_images.shape == (5, 28, 28, 1) and ds.test_images.dtype == np.float32
    assert ds.train_labels.dtype == np.int32 and ds.test_labels.dtype == np.int32
    assert ds.num_classes == 10 and ds.image_shape == (28, 28, 1)
    assert (ds.mean, ds.std) == CHANNEL_STATS["fashion_mnist"]
    np.testing.assert_allclose(
        ds.train_images, normalised(raw[0], "fashion_mnist"), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        ds.test_images, normalised(raw[2], "fashion_mnist"), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(ds.train_labels, raw[1])
    np.testing.assert_array_equal(ds.test_labels, raw[3])


def test_load_mnist_plain_files_in_data_dir(tmp_path: Path) -> None:
    raw = write_idx_dataset(tmp_path, gz=False, n_train=7, n_test=3)
    ds = load_dataset("mnist", tmp_path, **isolated(tmp_path))
    assert ds.source == str(tmp_path)
    assert ds.train_images.shape == (7, 28, 28, 1) and ds.test_labels.shape == (3,)
    np.testing.assert_allclose(ds.train_images, normalised(raw[0], "mnist"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "form"), [("cifar10", "archive"), ("cifar100", "folder")])
def test_load_cifar_from_data_dir(tmp_path: Path, name: str, form: str) -> None:
    batches, images, labels = cifar_batches(name)
    data_dir = tmp_path / "data"
    writer = write_cifar_archive if form == "archive" else write_cifar_folder
    written = writer(data_dir / name, name, batches)  # in the dataset-named subfolder
    ds = load_dataset(name, data_dir, **isolated(tmp_path))
    n_train, n_test = split_counts(name)
    assert ds.source == str(written)
    assert ds.train_images.shape == (n_train, 32, 32, 3) and ds.train_images.dtype == np.float32
    assert ds.test_images.shape == (n_test, 32, 32, 3)
    assert ds.num_classes == (10 if name == "cifar10" else 100)
    np.testing.assert_allclose(
        ds.train_images, normalised(images[:n_train], name), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(np.concatenate([ds.train_labels, ds.test_labels]), labels)


def test_data_dir_may_be_the_extracted_cifar_folder(tmp_path: Path) -> None:
    batches, _, _ = cifar_batches("cifar10")
    folder = write_cifar_folder(tmp_path, "cifar10", batches)
    location = find_dataset("cifar10", folder, **isolated(tmp_path))
    assert location is not None and location.kind == "cifar" and location.path == str(folder)


def test_system_dirs_are_searched(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path / "system" / "mnist")
    location = find_dataset(
        "mnist", system_dirs=[tmp_path / "system"], tfds_data_dir=tmp_path / "no_tfds"
    )
    assert location is not None and location.path == str(tmp_path / "system" / "mnist")


def test_partial_idx_folder_is_an_error(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path / "fashion-mnist")
    (tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_dataset("fashion_mnist", tmp_path, **isolated(tmp_path))


def test_mismatched_counts_are_an_error(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8), gz=True)
    with pytest.raises(DataError, match="5 images but labels of shape"):
        load_dataset("mnist", tmp_path, **isolated(tmp_path))


def test_out_of_range_labels_are_an_error(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(12, 10, dtype=np.uint8), gz=True)
    with pytest.raises(DataError, match="outside 0..9"):
        load_dataset("mnist", tmp_path, **isolated(tmp_path))


def test_unknown_dataset_name() -> None:
    with pytest.raises(ValueError, match="mnist, fashion_mnist, cifar10, cifar100"):
        load_dataset("imagenet")


def test_subset(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path)
    ds = load_dataset("mnist", tmp_path, **isolated(tmp_path))
    small = ds.subset(4)
    assert small.train_images.shape[0] == 4 and small.train_labels.shape == (4,)
    np.testing.assert_array_equal(small.train_images, ds.train_images[:4])
    assert small.test_images is ds.test_images
    assert ds.subset(12).train_images.shape[0] == 12
    for bad in (0, -1, 13):
        with pytest.raises(DataError, match="from 1 to 12"):
            ds.subset(bad)


def test_dataset_validates_counts() -> None:
    x = np.zeros((3, 2, 2, 1), np.float32)
    with pytest.raises(DataError, match="do not match"):
        Dataset("mnist", x, np.zeros(2, np.int32), x, np.zeros(3, np.int32), 10, "t", (0,), (1,))


@pytest.mark.parametrize("tensorflow", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_offline_without_data_fails_with_instructions_and_no_download(
    tmp_path: Path, name: str, tensorflow: bool, no_download: dict, monkeypatch
) -> None:
    # With TensorFlow (patched in: it is not a dependency) the 2-second probe runs and finds no
    # network; without it nothing may even be probed. A download must never start.
    monkeypatch.setattr(datasets_module, "tensorflow_available", lambda: tensorflow)
    data_dir, tfds_dir = tmp_path / "empty", tmp_path / "empty_tfds"
    data_dir.mkdir()
    tfds_dir.mkdir()
    with pytest.raises(DataError) as info:
        load_dataset(
            name, data_dir=data_dir, system_dirs=[], tfds_data_dir=tfds_dir, allow_download=None
        )
    assert no_download["download"] == []
    assert no_download["connect"] == ([(PROBE_HOST,)] if tensorflow else [])
    why = "no network" if tensorflow else "TensorFlow is not installed"
    assert f"not downloading: {why}" in str(info.value)
    message = str(info.value)
    assert "three ways" in message
    assert str(data_dir) in message and str(tfds_dir) in message
    assert "--data-dir" in message  # way 2: files in a directory
    assert "/usr/share/datasets" in message  # way 1: system location / Debian package
    assert "tensorflow-datasets" in message and "$TFDS_DATA_DIR" in message  # way 3: TFDS
    if name == "fashion_mnist":
        assert "apt-get install dataset-fashion-mnist" in message
        assert "train-images-idx3-ubyte.gz" in message
    if name == "cifar10":
        assert "cifar-10-python.tar.gz" in message and "cifar-10-batches-py" in message
    if name == "cifar100":
        assert "cifar-100-python.tar.gz" in message


def test_download_disabled_says_so(tmp_path: Path, no_download: dict, monkeypatch) -> None:
    monkeypatch.setattr(datasets_module, "tensorflow_available", lambda: True)
    with pytest.raises(DataError, match=r"allow_download=False"):
        load_dataset("mnist", allow_download=False, **isolated(tmp_path))
    assert no_download == {"connect": [], "download": []}  # not even probed


def test_download_allowed_calls_tfds_once_and_reports_its_failure(
    tmp_path: Path, monkeypatch
) -> None:
    calls = []
    monkeypatch.setattr(
        datasets_module, "download_tfds", lambda name, where: calls.append((name, where))
    )
    monkeypatch.setattr(datasets_module, "tensorflow_available", lambda: True)
    # allow_download=True skips the probe; the (patched) download leaves nothing readable, so
    # the read that follows fails with a DataError naming the TFDS directory.
    with pytest.raises(DataError, match="empty_tfds"):
        load_dataset("mnist", allow_download=True, **isolated(tmp_path))
    assert calls == [("mnist", str(tmp_path / "empty_tfds"))]


def test_network_probe_gives_up_when_dns_blocks(monkeypatch) -> None:
    """Offline, a DNS lookup can block for minutes: the probe must answer False without it.

    The fake connect blocks until released; if the probe waited for it to end it would see a
    successful connection (True), so a probe that is not bounded fails this test.
    """
    release = threading.Event()

    class _Connected:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def blocking_connect(host, timeout=None):
        if release.wait(timeout=60):
            raise OSError("released after the probe gave up")
        return _Connected()

    monkeypatch.setattr(socket, "create_connection", blocking_connect)
    try:
        assert network_reachable(("example.invalid", 80), timeout=0.05) is False
    finally:
        release.set()


# --------------------------------------------------------------------------- TFDS


def _fake_prepared(tfds_dir: Path, name: str) -> None:
    """Make load_dataset's on-disk check see ``name`` as prepared.

    load_dataset only calls tfds when ``<dir>/<name>/<version>/dataset_info.json`` exists
    (offline, tfds would otherwise retry a download for minutes), so the mocked tests need
    this marker; under ``mock_data`` tfds itself never reads it.
    """
    version_dir = tfds_dir / name / "1.0.0"
    version_dir.mkdir(parents=True)
    (version_dir / "dataset_info.json").write_text("{}")


@pytest.mark.parametrize(
    ("name", "shape"), [("fashion_mnist", (28, 28, 1)), ("cifar100", (32, 32, 3))]
)
def test_tfds_data_source_path_with_mock_data(tmp_path: Path, name: str, shape: tuple) -> None:
    """Read through ``tfds.data_source`` with ``tfds.testing.mock_data``.

    In tfds 4.9.10, ``mock_data`` patches ``DatasetBuilder.as_data_source`` (what
    ``tfds.data_source`` calls) to return a real ``ArrayRecordDataSource`` wrapped around a
    mock whose ``__getitem__`` yields deterministic random examples, so no TensorFlow and no
    files are needed. ``MockPolicy.USE_CODE`` takes features and splits from the builder code
    instead of metadata files. The mock's ``__getitems__`` is broken (it is not bound to the
    mock), so the reader deliberately uses plain ``__getitem__``.
    """
    import tensorflow_datasets as tfds  # a core dependency: an ImportError here is a failure

    tfds_dir = tmp_path / "tfds"
    _fake_prepared(tfds_dir, name)
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        ds = load_dataset(name, tmp_path / "nothing", system_dirs=[], tfds_data_dir=tfds_dir)
        expected = tfds.data_source(name, split="test", data_dir=tfds_dir, download=False)
        expected_images = np.stack([expected[i]["image"] for i in range(6)])
        expected_labels = np.array([expected[i]["label"] for i in range(6)])
        train = tfds.data_source(name, split="train", data_dir=tfds_dir, download=False)
        train_images = np.stack([train[i]["image"] for i in range(6)])
        train_labels = np.array([train[i]["label"] for i in range(6)])
    assert ds.source == f"tfds:{tfds_dir}"
    assert ds.train_images.shape == (6, *shape) and ds.train_images.dtype == np.float32
    assert ds.test_images.shape == (6, *shape)
    assert ds.train_labels.dtype == np.int32
    assert ds.train_labels.min() >= 0 and ds.train_labels.max() < ds.num_classes
    np.testing.assert_allclose(
        ds.test_images, normalised(expected_images, name), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(ds.test_labels, expected_labels)
    # The train split's values too, not only its shape.
    np.testing.assert_allclose(
        ds.train_images, normalised(train_images, name), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(ds.train_labels, train_labels)


class _ExamplesSource:
    """A stand-in for ``tfds.data_source``'s result: tfds's example dicts over given arrays."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        # tfds's fashion_mnist features: image uint8 (28, 28, 1), label int64 ClassLabel.
        return {"image": self.images[i][..., None], "label": np.int64(self.labels[i])}


def test_tfds_reader_on_the_debian_examples_equals_the_idx_reader(tmp_path, monkeypatch):
    """The TFDS path (decoding, channel axis, normalisation, labels) gives exactly what the IDX
    path gives, on the real Fashion-MNIST examples served as a tfds data source would serve
    them: the same first images and labels, the same label histogram."""
    import tensorflow_datasets as tfds

    raw = [read_idx(FASHION_MNIST_DIR / f"{stem}.gz") for stem in _IDX_NAMES]
    n_train, n_test = 3000, 700
    splits = {
        "train": (raw[0][:n_train], raw[1][:n_train]),
        "test": (raw[2][:n_test], raw[3][:n_test]),
    }
    calls = []

    def data_source(name, *, split, data_dir, download):
        calls.append((name, split, download))
        return _ExamplesSource(*splits[split])

    monkeypatch.setattr(tfds, "data_source", data_source)
    tfds_dir = tmp_path / "tfds"
    _fake_prepared(tfds_dir, "fashion_mnist")
    via_tfds = load_dataset(
        "fashion_mnist", tmp_path / "none", system_dirs=[], tfds_data_dir=tfds_dir
    )
    via_idx = load_dataset("fashion_mnist", allow_download=False)
    assert calls == [("fashion_mnist", "train", False), ("fashion_mnist", "test", False)]
    assert via_tfds.source == f"tfds:{tfds_dir}" and via_idx.source == str(FASHION_MNIST_DIR)
    np.testing.assert_array_equal(via_tfds.train_images, via_idx.train_images[:n_train])
    np.testing.assert_array_equal(via_tfds.train_labels, via_idx.train_labels[:n_train])
    np.testing.assert_array_equal(via_tfds.test_images, via_idx.test_images[:n_test])
    np.testing.assert_array_equal(via_tfds.test_labels, via_idx.test_labels[:n_test])
    np.testing.assert_array_equal(
        np.bincount(via_tfds.train_labels, minlength=10),
        np.bincount(raw[1][:n_train], minlength=10),
    )


def test_unreadable_tfds_dir_is_a_data_error(tmp_path: Path) -> None:
    tfds_dir = tmp_path / "tfds"
    _fake_prepared(tfds_dir, "mnist")  # metadata that real tfds cannot use
    with pytest.raises(DataError, match="array_record"):
        load_dataset("mnist", system_dirs=[], tfds_data_dir=tfds_dir, allow_download=False)


# --------------------------------------------------------------------------- real data


def test_real_fashion_mnist() -> None:
    assert FASHION_MNIST_DIR.is_dir(), (
        f"{FASHION_MNIST_DIR} is missing; install the Debian package dataset-fashion-mnist "
        "(apt-get install dataset-fashion-mnist), which CI installs"
    )
    ds = load_dataset("fashion_mnist")
    assert ds.source == str(FASHION_MNIST_DIR)
    assert ds.train_images.shape == (60000, 28, 28, 1) and ds.train_images.dtype == np.float32
    assert ds.test_images.shape == (10000, 28, 28, 1) and ds.test_images.dtype == np.float32
    assert ds.train_labels.shape == (60000,) and ds.test_labels.shape == (10000,)
    assert ds.train_labels.dtype == np.int32
    # Published facts of Fashion-MNIST: balanced classes (6000 / 1000 per class) and its first
    # labels (an ankle boot, two T-shirts, a dress, ... in train; an ankle boot, a pullover...).
    np.testing.assert_array_equal(np.bincount(ds.train_labels, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(ds.test_labels, minlength=10), [1000] * 10)
    np.testing.assert_array_equal(ds.train_labels[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    np.testing.assert_array_equal(ds.test_labels[:10], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
    # The constants were computed from this very training set.
    assert abs(float(ds.train_images.mean(dtype=np.float64))) < 1e-3
    assert abs(float(ds.train_images.std(dtype=np.float64)) - 1.0) < 1e-3


# --------------------------------------------------------------------------- batching


def test_epoch_permutation_deterministic_and_epoch_dependent() -> None:
    a = epoch_permutation(seed=3, epoch=0, n=100)
    assert a.dtype == np.int32 and sorted(a.tolist()) == list(range(100))
    np.testing.assert_array_equal(a, epoch_permutation(3, 0, 100))
    assert not np.array_equal(a, epoch_permutation(3, 1, 100))
    assert not np.array_equal(a, epoch_permutation(4, 0, 100))


def test_num_batches() -> None:
    assert num_batches(10, 3) == 3
    assert num_batches(10, 3, drop_remainder=False) == 4
    assert num_batches(9, 3, drop_remainder=False) == 3
    assert num_batches(0, 3, drop_remainder=False) == 0
    with pytest.raises(ValueError):
        num_batches(10, 0)


def test_iterate_batches() -> None:
    x = np.arange(10, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1), np.float32)
    y = np.arange(10, dtype=np.int32)
    batches = list(iterate_batches(x, y, 3, seed=1, epoch=2))
    assert len(batches) == 3 and all(bx.shape == (3, 2, 2, 1) for bx, _ in batches)
    seen = np.concatenate([by for _, by in batches])
    np.testing.assert_array_equal(seen, epoch_permutation(1, 2, 10)[:9])
    for bx, by in batches:  # images and labels stay paired
        np.testing.assert_array_equal(bx[:, 0, 0, 0], by.astype(np.float32))
    again = list(iterate_batches(x, y, 3, seed=1, epoch=2))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(batches, again, strict=True))

    in_order = list(iterate_batches(x, y, 4, seed=0, epoch=0, shuffle=False, drop_remainder=False))
    assert [by.tolist() for _, by in in_order] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="no batches"):
        list(iterate_batches(x, y, 11, seed=0, epoch=0))


@pytest.mark.parametrize(("n", "batch_size"), [(10, 4), (8, 4), (3, 5), (1, 1)])
def test_eval_batches_cover_every_example_once(n: int, batch_size: int) -> None:
    x = np.arange(n, dtype=np.float32)[:, None, None, None] + 1.0  # never 0, unlike padding
    y = np.arange(n, dtype=np.int32) + 1
    batches = list(eval_batches(x, y, batch_size))
    assert len(batches) == num_batches(n, batch_size, drop_remainder=False)
    for bx, by, mask in batches:
        assert bx.shape == (batch_size, 1, 1, 1) and by.shape == (batch_size,)
        assert mask.shape == (batch_size,) and mask.dtype == np.float32
        assert np.all(by[mask == 0] == 0) and np.all(bx[mask == 0] == 0)
    real = np.concatenate([by[mask == 1] for _, by, mask in batches])
    np.testing.assert_array_equal(real, y)  # every example once, in order
    assert sum(float(mask.sum()) for _, _, mask in batches) == n


# --------------------------------------------------------------------------- import hygiene


def test_data_package_imports_no_heavy_modules() -> None:
    """``cpaf_jax.data`` alone must not import jax, TensorFlow or tensorflow_datasets.

    The parent ``cpaf_jax/__init__.py`` imports jax for the model code, so the check loads
    the data subpackage under a bare namespace stand-in for ``cpaf_jax``.
    """
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('cpaf_jax'); pkg.__path__ = [{str(REPO_ROOT / 'cpaf_jax')!r}]\n"
        "sys.modules['cpaf_jax'] = pkg\n"
        "import cpaf_jax.data\n"
        "banned = {'jax', 'jaxlib', 'tensorflow', 'tensorflow_datasets'}\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in banned)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
