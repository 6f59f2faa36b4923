"""cpaf_jax.experiments.fetch: every branch of ``ensure_dataset``, with apt and root patched.

Nothing here installs anything or touches the network: ``subprocess.run`` is replaced by a
recorder, ``os.geteuid`` and ``shutil.which`` say whether we are root with apt, and the real
``load_dataset`` searches only this test's folders (no system dirs, an empty TFDS dir, no
download), so the error messages checked are the library's own.

``ensure_dataset`` installs Fashion-MNIST's Debian package only when asked (``install=True``,
``--install``); the apt branches below ask.
"""

from __future__ import annotations

import functools
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from cpaf_jax.data import DataError, load_dataset
from cpaf_jax.experiments import fetch

_ASK = {"install": True}
_INSTALL = ["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"]
_UPDATE = ["apt-get", "update", "-q"]


def _write_idx(directory: Path, n_train: int = 6, n_test: int = 3) -> None:
    """The four Fashion-MNIST IDX files (gzipped), random pixels, labels 0..9."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, (n_train,), dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, (n_test,), dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for stem, a in arrays.items():
        header = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}i", *a.shape)
        (directory / f"{stem}.gz").write_bytes(gzip.compress(header + a.tobytes()))


class _Machine:
    """A patched machine: root or not, apt-get or not, and what each apt command returns."""

    def __init__(self, monkeypatch, tmp_path: Path, *, root: bool, apt: bool, codes=()):
        self.calls: list[list[str]] = []
        self.codes = list(codes)  # return codes of successive apt-get install/update calls
        self.system = tmp_path / "system"  # what apt-get install "installs" into
        self.system.mkdir()
        isolated = {"system_dirs": [self.system], "tfds_data_dir": tmp_path / "no_tfds"}
        loader = functools.partial(load_dataset, allow_download=False, **isolated)
        monkeypatch.setattr(fetch, "load_dataset", loader)
        if hasattr(fetch, "find_dataset"):
            monkeypatch.setattr(
                fetch, "find_dataset", functools.partial(fetch.find_dataset, **isolated)
            )
        monkeypatch.setattr(fetch.os, "geteuid", lambda: 0 if root else 1000)
        monkeypatch.setattr(fetch.shutil, "which", lambda cmd: f"/usr/bin/{cmd}" if apt else None)
        monkeypatch.setattr(fetch.subprocess, "run", self.run)

    def run(self, cmd, **kwargs):
        self.calls.append(list(cmd))
        assert kwargs.get("env", {}).get("DEBIAN_FRONTEND") == "noninteractive"
        code = self.codes.pop(0) if self.codes else 0
        if cmd[:2] == ["apt-get", "install"] and code == 0:
            _write_idx(self.system / "fashion-mnist")  # what the Debian package installs

        class Done:
            returncode = code
            stdout = b""
            stderr = b"E: Unable to locate package" if code else b""

        return Done()


def _assert_three_ways(message: str) -> None:
    assert "Get the data in one of three ways" in message
    assert "apt-get install dataset-fashion-mnist" in message  # 1. the Debian package
    assert "--data-dir" in message  # 2. files in a folder
    assert "TFDS data dir" in message and "array_record" in message  # 3. a prepared TFDS dir


def test_present_data_is_loaded_and_nothing_is_installed(tmp_path, monkeypatch):
    m = _Machine(monkeypatch, tmp_path, root=True, apt=True)
    _write_idx(tmp_path / "data" / "fashion-mnist", n_train=7)
    ds = fetch.ensure_dataset("fashion_mnist", str(tmp_path / "data"), **_ASK)
    assert ds.source == str(tmp_path / "data" / "fashion-mnist")
    assert ds.train_images.shape == (7, 28, 28, 1)
    assert m.calls == []


def test_missing_as_root_with_apt_installs_the_package_then_loads(tmp_path, monkeypatch):
    m = _Machine(monkeypatch, tmp_path, root=True, apt=True)
    ds = fetch.ensure_dataset("fashion_mnist", None, **_ASK)
    assert m.calls == [_INSTALL]
    assert ds.source == str(m.system / "fashion-mnist") and ds.train_labels.shape == (6,)


def test_stale_package_lists_are_updated_once_then_install_retried(tmp_path, monkeypatch):
    m = _Machine(monkeypatch, tmp_path, root=True, apt=True, codes=[100, 0, 0])
    ds = fetch.ensure_dataset("fashion_mnist", None, **_ASK)
    assert m.calls == [_INSTALL, _UPDATE, _INSTALL]
    assert ds.source == str(m.system / "fashion-mnist")


def test_apt_failing_leaves_the_data_error_with_the_three_ways(tmp_path, monkeypatch):
    m = _Machine(monkeypatch, tmp_path, root=True, apt=True, codes=[100, 0, 100])
    with pytest.raises(DataError) as info:
        fetch.ensure_dataset("fashion_mnist", None, **_ASK)
    assert m.calls == [_INSTALL, _UPDATE, _INSTALL]
    _assert_three_ways(str(info.value))
    assert "--install: apt-get install dataset-fashion-mnist failed" in str(info.value)
    assert "Unable to locate package" in str(info.value)  # apt's own reason


@pytest.mark.parametrize(
    ("root", "apt", "why"),
    [(False, True, "needs root"), (True, False, "no apt-get"), (False, False, "needs root")],
)
def test_missing_without_root_or_apt_runs_nothing_and_lists_the_ways(
    tmp_path, monkeypatch, root, apt, why
):
    m = _Machine(monkeypatch, tmp_path, root=root, apt=apt)
    with pytest.raises(DataError) as info:
        fetch.ensure_dataset("fashion_mnist", None, **_ASK)
    assert m.calls == []
    _assert_three_ways(str(info.value))
    assert why in str(info.value)  # why --install did not install
    assert str(m.system) in str(info.value)  # the searched places are named


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100"])
def test_datasets_without_a_debian_package_never_call_apt(tmp_path, monkeypatch, name):
    m = _Machine(monkeypatch, tmp_path, root=True, apt=True)
    with pytest.raises(DataError, match="three ways"):
        fetch.ensure_dataset(name, None, **_ASK)
    assert m.calls == []
    assert set(fetch.APT_PACKAGES) == {"fashion_mnist"}


def test_nothing_is_installed_unless_asked(tmp_path, monkeypatch):
    m = _Machine(monkeypatch, tmp_path, root=True, apt=True)
    with pytest.raises(DataError) as info:
        fetch.ensure_dataset("fashion_mnist", None)
    assert m.calls == []
    _assert_three_ways(str(info.value))


def test_command_reports_where_the_data_is_or_the_ways(tmp_path, monkeypatch, capsys):
    m = _Machine(monkeypatch, tmp_path, root=True, apt=True)
    _write_idx(tmp_path / "data" / "fashion-mnist")
    assert fetch.main(["fashion_mnist", "--data-dir", str(tmp_path / "data")]) == 0
    assert str(tmp_path / "data" / "fashion-mnist") in capsys.readouterr().err
    assert fetch.main(["mnist"]) == 2  # not there, and no package to install
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "three ways" in err
    assert fetch.main(["fashion_mnist", "--install"]) == 0  # root with apt: installed
    assert m.calls == [_INSTALL]
    assert str(m.system / "fashion-mnist") in capsys.readouterr().err
