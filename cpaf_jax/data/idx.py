"""Reader for the IDX format used by MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim``
big-endian int32 dimension sizes, then the payload in C order with big-endian elements.
The distributed files are usually gzipped; gzip is detected from the file's first bytes so
that a renamed or decompressed-but-still-called-``.gz`` file is read correctly.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from cpaf_jax.data.errors import DataError

__all__ = ["read_idx"]

_GZIP_MAGIC = b"\x1f\x8b"

# Element type for each IDX dtype code; multi-byte types are big-endian in the file.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: str | os.PathLike) -> bytes:
    """Return the file's contents, decompressed if it starts with the gzip magic bytes."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read IDX file {os.fspath(path)!r}: {e}") from e
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        raise DataError(
            f"IDX file {os.fspath(path)!r} is a corrupt or truncated gzip file ({e}); "
            "download it again or delete it so that another source is used"
        ) from e


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array.

    Parameters
    ----------
    path : str or os.PathLike
        The file, e.g. ``train-images-idx3-ubyte.gz`` or ``t10k-labels-idx1-ubyte``.

    Returns
    -------
    np.ndarray
        Array of the shape stored in the header, e.g. uint8 ``[N, 28, 28]`` for image
        files and uint8 ``[N]`` for label files. Multi-byte types are converted to native
        byte order.

    Raises
    ------
    DataError
        If the file cannot be read, is corrupt gzip, has a bad magic number or dtype code,
        or its payload is shorter or longer than the header's dimensions imply.
    """
    name = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"IDX file {name!r} is only {len(data)} bytes long; it is not an IDX file")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise DataError(
            f"IDX file {name!r} has bad magic bytes {data[:4].hex()} (expected 0000<dtype><ndim>); "
            "it is not an IDX file or it is corrupt"
        )
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        raise DataError(f"IDX file {name!r} has unknown dtype code 0x{code:02x} (known: {known})")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(
            f"IDX file {name!r} is truncated inside its header: expected at least {header_len} "
            f"bytes for {ndim} dimensions, got {len(data)}"
        )
    shape = struct.unpack(f">{ndim}i", data[4:header_len])
    if any(d < 0 for d in shape):
        raise DataError(f"IDX file {name!r} has negative dimensions {shape}; it is corrupt")
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_len
    if actual != expected:
        what = "truncated" if actual < expected else "followed by trailing bytes"
        raise DataError(
            f"IDX file {name!r} is {what}: its header declares shape {shape} of {dtype.name}, "
            f"i.e. {expected} payload bytes, but the file holds {actual}; "
            "download it again"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    # frombuffer gives a read-only view of a bytes object; callers expect an ordinary array.
    return array.astype(dtype.newbyteorder("="), copy=True)
