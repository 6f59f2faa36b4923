"""Files replaced whole: written beside their target under a temporary name, then renamed.

A reader (or a later run) sees the old file or the new one, never a half-written one; when
writing fails (a full disk, a read-only folder) the temporary file is removed and the old file
is left as it was.
"""

from __future__ import annotations

import os
import tempfile

__all__ = ["write_text"]


def write_text(path: str, text: str, *, newline: str | None = None) -> None:
    """Replaces ``path`` by ``text`` atomically (UTF-8).

    Raises:
      OSError: the folder is not writable or the disk is full; ``path`` is unchanged and no
        temporary file is left.
    """
    parent, name = os.path.split(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as f:
            f.write(text)
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None:
            raise OSError(e.errno, e.strerror, path) from e  # the target, not the temporary
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
