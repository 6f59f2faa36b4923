"""Gets an experiment's data, installing a system package only when the user asked for it.

``ensure_dataset`` is ``cpaf_jax.data.load_dataset`` (``--data-dir``, the Debian location, a
prepared TFDS dir, a tfds download where TensorFlow and a network exist) plus, with
``install=True`` and for Fashion-MNIST only, ``apt-get install dataset-fashion-mnist`` when the
data is not found and the process runs as root with apt. Nothing is installed by default: a
library must not change the machine on its own. ``scripts/main.sh`` (the README's main
command) asks for it explicitly::

    python -m cpaf_jax.experiments.fetch fashion_mnist --install

When no way works, the error lists the three ways to get the data.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from cpaf_jax.data import DataError, find_dataset, load_dataset

APT_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}


def _apt_install(package: str) -> str | None:
    """Installs a Debian package; returns None on success, else why it was not installed."""
    if os.name != "posix" or os.geteuid() != 0:
        return f"installing {package} needs root (sudo apt-get install {package})"
    if not shutil.which("apt-get"):
        return f"no apt-get on this machine to install {package}"
    print(f"installing Debian package {package} for the data ...", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", package]
    if subprocess.run(install, env=env, capture_output=True).returncode == 0:
        return None
    # The package lists may be missing or stale on a fresh machine.
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
    done = subprocess.run(install, env=env, capture_output=True)
    if done.returncode == 0:
        return None
    return f"apt-get install {package} failed: {done.stderr.decode(errors='replace').strip()}"


def ensure_dataset(name: str, data_dir: str | None = None, *, install: bool = False):
    """``load_dataset(name, data_dir)``; with ``install``, installs the Debian package first.

    Args:
      name: ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"`` or ``"cifar100"``.
      data_dir: folder searched first (``--data-dir``).
      install: when the data is not found, ``apt-get install`` its Debian package (only
        Fashion-MNIST has one; needs root and apt). Off by default.

    Returns:
      the ``cpaf_jax.data.Dataset``.

    Raises:
      DataError: when no way worked; its message lists the three ways to get the data (and,
        with ``install``, why the package was not installed).
    """
    package = APT_PACKAGES.get(name)
    if install and package is not None and find_dataset(name, data_dir) is None:
        why = _apt_install(package)
        if why is not None:
            try:
                return load_dataset(name, data_dir)
            except DataError as e:
                raise DataError(f"{e}\n(--install: {why})") from None
    return load_dataset(name, data_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m cpaf_jax.experiments.fetch NAME [--data-dir DIR] [--install]``.

    Returns:
      0 when the data is there (printed where), 2 when not (the error lists the ways).
    """
    p = argparse.ArgumentParser(
        prog="python -m cpaf_jax.experiments.fetch",
        description="Check that a dataset can be loaded; --install gets Fashion-MNIST's "
        "Debian package when it is missing (root with apt).",
    )
    p.add_argument("name", choices=("mnist", "fashion_mnist", "cifar10", "cifar100"))
    p.add_argument("--data-dir", help="folder searched first")
    p.add_argument(
        "--install",
        action="store_true",
        help="apt-get install the dataset's Debian package when the data is missing",
    )
    args = p.parse_args(argv)
    try:
        data = ensure_dataset(args.name, args.data_dir, install=args.install)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.name}: {data.source}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
