"""Gets the data on its own where it can: Debian's package as root, tfds where a network is.

Order: what ``cpaf_jax.data.load_dataset`` finds (``--data-dir``, the Debian location, a
prepared TFDS dir, a tfds download where TensorFlow and a network exist); then, for
Fashion-MNIST only, ``apt-get install dataset-fashion-mnist`` when running as root with apt;
else the data error, which lists the three ways to get the data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from cpaf_jax.data import DataError, load_dataset

APT_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}


def _apt_install(package: str) -> bool:
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    print(f"installing Debian package {package} for the data ...", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "install", "-y", "-q", package],):
        if subprocess.run(cmd, env=env, capture_output=True).returncode == 0:
            return True
    # The package lists may be missing or stale on a fresh machine.
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
    return (
        subprocess.run(
            ["apt-get", "install", "-y", "-q", package], env=env, capture_output=True
        ).returncode
        == 0
    )


def ensure_dataset(name: str, data_dir: str | None = None):
    """``load_dataset(name, data_dir)``, installing the Debian package first if that helps.

    Raises:
      DataError: when no way worked; its message says what to do.
    """
    try:
        return load_dataset(name, data_dir)
    except DataError:
        package = APT_PACKAGES.get(name)
        if package is None or not _apt_install(package):
            raise
    return load_dataset(name, data_dir)
