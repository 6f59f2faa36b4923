"""What `pip install` takes from pyproject.toml, checked without installing; and the data
fetcher, which installs nothing unless asked."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

import cpaf_jax
from cpaf_jax.data import DataError
from cpaf_jax.experiments import fetch

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _installed(package: str) -> bool:
    """Whether setuptools' package discovery (include patterns) installs ``package``."""
    return any(fnmatch.fnmatch(package, pat) for pat in SETUPTOOLS["packages"]["find"]["include"])


def test_console_script_target_imports_and_is_the_train_command(capsys):
    target = PROJECT["scripts"]["cpaf-train"]
    module, _, attr = target.partition(":")
    main = getattr(importlib.import_module(module), attr)
    assert callable(main)
    # python -m train from a checkout is the same function.
    assert importlib.import_module("train.__main__").main is main
    assert main(["--help"]) == 0
    assert "fashion_mnist" in capsys.readouterr().out


def test_version_has_one_source():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert SETUPTOOLS["dynamic"]["version"] == {"attr": "cpaf_jax.__version__"}
    # setuptools reads the attribute from the source text without importing the package
    # (which would need jax at build time): it must be one literal assignment.
    tree = ast.parse((ROOT / "cpaf_jax" / "__init__.py").read_text())
    literals = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
    ]
    assert literals == [cpaf_jax.__version__]
    assert re.fullmatch(r"\d+\.\d+\.\d+", cpaf_jax.__version__)
    cff = (ROOT / "CITATION.cff").read_text()
    assert re.search(rf"^version: {re.escape(cpaf_jax.__version__)}$", cff, flags=re.M)


def test_py_typed_is_package_data():
    assert (ROOT / "cpaf_jax" / "py.typed").is_file()
    assert "py.typed" in SETUPTOOLS["package-data"]["cpaf_jax"]


def test_the_cpu_kernel_source_is_package_data():
    """An installed cpaf_jax builds its CPU kernel from the source shipped beside it."""
    import fnmatch

    from cpaf_jax.ops import cpu_kernel

    rel = cpu_kernel.SOURCE.relative_to(ROOT / "cpaf_jax").as_posix()
    assert cpu_kernel.SOURCE.is_file()
    assert any(fnmatch.fnmatch(rel, pat) for pat in SETUPTOOLS["package-data"]["cpaf_jax"])
    assert "Typing :: Typed" in PROJECT["classifiers"]


def test_only_the_library_is_installed():
    for package in ("cpaf_jax", "cpaf_jax.experiments", "cpaf_jax.ops", "cpaf_jax.data"):
        assert _installed(package), package
    # train/ would shadow a user's own train.py or train/ in site-packages.
    for package in ("train", "benchmarks", "tests"):
        assert not _installed(package), package


def test_license_citation_and_dependencies():
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    # The sdist carries the citation beside README and LICENSE.
    assert "CITATION.cff" in (ROOT / "MANIFEST.in").read_text()
    cff = (ROOT / "CITATION.cff").read_text()
    for needle in (
        "preferred-citation:",
        "journal: KIPS Transactions on Software and Data Engineering",
        "volume: 11",
        "issue: 9",
        "year: 2022",
    ):
        assert needle in cff
    names = {re.split(r"[<>=\[ ;]", dep, maxsplit=1)[0].lower() for dep in PROJECT["dependencies"]}
    assert "jaxlib" not in names  # jax pins the jaxlib it needs
    assert "matplotlib" not in names  # the [plots] extra; a plain install skips plots
    assert "matplotlib>=3.11.2" in PROJECT["optional-dependencies"]["plots"]
    # Every core dependency has a floor.
    assert all(">=" in dep for dep in PROJECT["dependencies"])


def _no_data(*args, **kwargs):
    raise DataError("Fashion-MNIST was not found. Get the data in one of three ways: ...")


def test_fetch_installs_nothing_unless_asked(monkeypatch):
    calls = []
    monkeypatch.setattr(fetch, "load_dataset", _no_data)
    monkeypatch.setattr(fetch, "find_dataset", lambda name, data_dir: None)
    monkeypatch.setattr(fetch.os, "geteuid", lambda: 0)
    monkeypatch.setattr(fetch.shutil, "which", lambda cmd: "/usr/bin/" + cmd)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    with pytest.raises(DataError, match="three ways"):
        fetch.ensure_dataset("fashion_mnist")
    assert calls == []


def test_fetch_install_asked_as_root_runs_apt_then_loads(monkeypatch):
    calls = []
    found = []

    def load(name, data_dir=None):
        if not found:
            _no_data()
        return f"{name} from the package"

    def run(cmd, **kwargs):
        calls.append(cmd)
        found.append(True)
        return subprocess.CompletedProcess(cmd, 0, b"", b"")

    monkeypatch.setattr(fetch, "load_dataset", load)
    monkeypatch.setattr(fetch, "find_dataset", lambda name, data_dir: None)
    monkeypatch.setattr(fetch.os, "geteuid", lambda: 0)
    monkeypatch.setattr(fetch.shutil, "which", lambda cmd: "/usr/bin/" + cmd)
    monkeypatch.setattr(subprocess, "run", run)
    assert fetch.ensure_dataset("fashion_mnist", install=True) == "fashion_mnist from the package"
    assert calls == [["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"]]


def test_fetch_install_without_root_says_why_and_lists_the_ways(monkeypatch):
    calls = []
    monkeypatch.setattr(fetch, "load_dataset", _no_data)
    monkeypatch.setattr(fetch, "find_dataset", lambda name, data_dir: None)
    monkeypatch.setattr(fetch.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    with pytest.raises(DataError) as err:
        fetch.ensure_dataset("fashion_mnist", install=True)
    assert "three ways" in str(err.value) and "needs root" in str(err.value)
    assert calls == []
    # Data that is already there is never reinstalled.
    monkeypatch.setattr(fetch, "find_dataset", lambda name, data_dir: "/usr/share/datasets")
    monkeypatch.setattr(fetch, "load_dataset", lambda name, data_dir=None: "loaded")
    monkeypatch.setattr(fetch.os, "geteuid", lambda: 0)
    assert fetch.ensure_dataset("fashion_mnist", install=True) == "loaded"
    assert calls == []
