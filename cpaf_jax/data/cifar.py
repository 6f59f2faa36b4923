"""Reader for the official CIFAR-10 / CIFAR-100 "python version" distribution.

The official files are pickled dicts (bytes keys) of uint8 ``data`` ``[N, 3072]`` rows in
channel-major order (1024 red, 1024 green, 1024 blue values, each a 32x32 row-major image)
plus ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100). They come as
``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``; this module reads either the
archive (members are streamed from the tar, nothing is extracted to disk) or the folder it
extracts to (``cifar-10-batches-py`` / ``cifar-100-python``).

Security: the format is Python pickle, and a plain ``pickle.load`` runs code chosen by whoever
wrote the file. The batches are read with a restricted unpickler (``_CifarUnpickler``) that
resolves only the few globals the format needs (NumPy array and dtype reconstruction, and the
``_codecs.encode`` that protocol-2 pickles use for ``bytes``); any other global is refused with
a ``DataError`` before it is called.
"""

from __future__ import annotations

import os
import pickle
import tarfile
import zlib
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from cpaf_jax.data.errors import DataError

__all__ = ["CIFAR_LAYOUTS", "read_cifar"]

_IMAGE_BYTES = 32 * 32 * 3

# name -> (folder inside the archive, archive file name, train members, test member, label key)
CIFAR_LAYOUTS: dict[str, tuple[str, str, tuple[str, ...], str, bytes]] = {
    "cifar10": (
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        b"labels",
    ),
    "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz", ("train",), "test", b"fine_labels"),
}

# Errors that a damaged gzip/tar stream or a damaged pickle can surface as.
_CORRUPT_ERRORS = (
    tarfile.TarError,
    EOFError,
    zlib.error,
    OSError,
    pickle.UnpicklingError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
)


def _decode_batch(obj: Any, label_key: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Turn one unpickled batch dict into (uint8 [N,32,32,3], int32 [N])."""
    if not isinstance(obj, dict) or b"data" not in obj or label_key not in obj:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise DataError(
            f"CIFAR batch {where} lacks b'data' or {label_key!r} (found {keys}); "
            "it is not from the official python-version archive"
        )
    data = np.asarray(obj[b"data"])
    labels = np.asarray(obj[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _IMAGE_BYTES:
        raise DataError(
            f"CIFAR batch {where} has data of shape {data.shape} and dtype {data.dtype}; "
            f"expected uint8 [N, {_IMAGE_BYTES}]"
        )
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"CIFAR batch {where} has {labels.shape} {labels.dtype} labels for "
            f"{data.shape[0]} images; expected one integer label per image"
        )
    # Rows are channel-major (CHW); the rest of the package uses NHWC.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int32)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` limited to what protocol-2 pickles of ``bytes`` call it with."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DataError(
            f"the pickle calls _codecs.encode({type(text).__name__}, {encoding!r}), which the "
            "CIFAR format never does; refusing to load it. Use the official archive"
        )
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The globals a pickled NumPy array needs, under NumPy 1 and 2 module names."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray, numeric

    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray}
    allowed[("numpy", "dtype")] = np.dtype
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = multiarray._reconstruct
        # Protocol 5 writes contiguous arrays as (_frombuffer, (buffer, dtype, shape, order)).
        allowed[(f"{module}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


_NUMPY_GLOBALS = _numpy_globals()


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that admits only dicts, lists, strings, bytes, numbers and NumPy arrays.

    ``find_class`` is the only way a pickle reaches code; it returns objects from a fixed
    table and raises ``DataError`` for anything else (``os.system``, ``builtins.eval``, ...),
    so a crafted batch file cannot run anything.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) == ("builtins", "bytes"):  # protocol 2's empty bytes: bytes()
            return bytes
        found = _NUMPY_GLOBALS.get((module, name))
        if found is None:
            raise DataError(
                f"the pickle refers to {module}.{name}, which the CIFAR format never uses "
                "(only NumPy arrays, dicts, lists and strings); refusing to load it. Use the "
                "official archive"
            )
        return found


def _load_pickle(f: IO[bytes], where: str) -> Any:
    # encoding="bytes" because the official files were written by Python 2.
    try:
        return _CifarUnpickler(f, encoding="bytes").load()
    except DataError as e:
        raise DataError(f"CIFAR batch {where}: {e}") from None


def _read_members(
    open_member: Callable[[str], IO[bytes]],
    members: tuple[str, ...],
    label_key: bytes,
    describe: Callable[[str], str],
) -> tuple[np.ndarray, np.ndarray]:
    """Read and concatenate several batches given a function that opens one by name."""
    images, labels = [], []
    for member in members:
        with open_member(member) as f:
            obj = _load_pickle(f, describe(member))
        x, y = _decode_batch(obj, label_key, describe(member))
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def _read_train_test(
    open_member: Callable[[str], IO[bytes]], name: str, describe: Callable[[str], str]
) -> tuple[np.ndarray, ...]:
    """``(train_x, train_y, test_x, test_y)`` of ``name``'s official batches."""
    _, _, train_members, test_member, label_key = CIFAR_LAYOUTS[name]
    train = _read_members(open_member, train_members, label_key, describe)
    test = _read_members(open_member, (test_member,), label_key, describe)
    return (*train, *test)


def _read_folder(folder: str, name: str) -> tuple[np.ndarray, ...]:
    _, _, train_members, test_member, _ = CIFAR_LAYOUTS[name]
    missing = [
        m for m in (*train_members, test_member) if not os.path.isfile(os.path.join(folder, m))
    ]
    if missing:
        raise DataError(
            f"CIFAR folder {folder!r} lacks {', '.join(missing)}; extract the official "
            f"{CIFAR_LAYOUTS[name][1]} again"
        )

    def open_member(member: str) -> IO[bytes]:
        return open(os.path.join(folder, member), "rb")

    def describe(member: str) -> str:
        return repr(os.path.join(folder, member))

    try:
        return _read_train_test(open_member, name, describe)
    except DataError:
        raise
    except _CORRUPT_ERRORS as e:
        raise DataError(
            f"CIFAR folder {folder!r} holds a corrupt batch file ({type(e).__name__}: {e}); "
            f"extract the official {CIFAR_LAYOUTS[name][1]} again"
        ) from e


def _read_archive(archive: str, name: str) -> tuple[np.ndarray, ...]:
    folder, archive_name, train_members, test_member, _ = CIFAR_LAYOUTS[name]
    try:
        with tarfile.open(archive, "r:*") as tar:
            names = set(tar.getnames())
            wanted = {m: f"{folder}/{m}" for m in (*train_members, test_member)}
            missing = [path for path in wanted.values() if path not in names]
            if missing:
                raise DataError(
                    f"CIFAR archive {archive!r} lacks member(s) {', '.join(missing)}; "
                    f"it is not the official {archive_name} (download it again)"
                )

            def open_member(member: str) -> IO[bytes]:
                f = tar.extractfile(wanted[member])
                if f is None:
                    raise DataError(f"CIFAR archive {archive!r}: {wanted[member]} is not a file")
                return f

            def describe(member: str) -> str:
                return f"{wanted[member]} in {archive!r}"

            return _read_train_test(open_member, name, describe)
    except DataError:
        raise
    except _CORRUPT_ERRORS as e:
        raise DataError(
            f"CIFAR archive {archive!r} is corrupt or truncated ({type(e).__name__}: {e}); "
            f"download the official {archive_name} again"
        ) from e


def read_cifar(
    path: str | os.PathLike, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read CIFAR-10 or CIFAR-100 from the official archive or its extracted folder.

    Security: the files are unpickled with a restricted unpickler that resolves only NumPy's
    array reconstruction; a file referring to any other global raises ``DataError`` and
    nothing in it is called.

    Parameters
    ----------
    path : str or os.PathLike
        ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` (any tar compression), or
        the extracted ``cifar-10-batches-py`` / ``cifar-100-python`` folder.
    name : {"cifar10", "cifar100"}
        Which layout to expect. For CIFAR-100 the 100 fine labels are returned.

    Returns
    -------
    train_images : np.ndarray
        uint8 ``[N_train, 32, 32, 3]`` (50000 for the official files), NHWC.
    train_labels : np.ndarray
        int32 ``[N_train]``.
    test_images : np.ndarray
        uint8 ``[N_test, 32, 32, 3]`` (10000 for the official files), NHWC.
    test_labels : np.ndarray
        int32 ``[N_test]``.

    Raises
    ------
    ValueError
        If ``name`` is not ``"cifar10"`` or ``"cifar100"``.
    DataError
        If the path does not exist, the archive is corrupt, a member is missing, a batch
        has the wrong keys, shapes or dtypes, or a pickle refers to anything but NumPy arrays.
    """
    if name not in CIFAR_LAYOUTS:
        raise ValueError(f"unknown CIFAR variant {name!r}; expected one of {sorted(CIFAR_LAYOUTS)}")
    path = os.fspath(path)
    if os.path.isdir(path):
        return _read_folder(path, name)
    if os.path.isfile(path):
        return _read_archive(path, name)
    raise DataError(
        f"CIFAR path {path!r} does not exist; pass the official {CIFAR_LAYOUTS[name][1]} "
        f"or the {CIFAR_LAYOUTS[name][0]} folder extracted from it"
    )
