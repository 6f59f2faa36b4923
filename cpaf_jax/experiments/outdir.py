"""The output folder of a run: checked before anything is written, locked while a run uses it.

A finished run is never lost to a later command:

* :func:`check_out_dir` refuses, without writing anything, an ``--out`` that holds a previous
  run unless ``--resume`` (continue it) or ``--overwrite`` (replace it) is given, and any other
  non-empty folder always (it is not ours to fill or replace).
* :class:`RunFolder` holds a lock beside the folder (``.<name>.lock``: pid, host, command,
  start time) so that a second run into it is refused while the first lives; a lock whose
  process is gone is taken over with a warning.
* With ``overwrite`` the new run writes into a staging folder beside the old one
  (``.<name>.staging``), which replaces the old folder only when the run finishes without an
  exception; a failed or interrupted run leaves the old folder as it was.

Usage (what ``python -m train`` does)::

    check_out_dir(out, resume=args.resume, overwrite=args.overwrite)   # at parse time
    with RunFolder(out, resume=..., overwrite=..., command=...) as write_dir:
        run_experiment(cfg, dataclasses.replace(opts, out=write_dir))
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import warnings

__all__ = ["RunFolder", "RunFolderError", "check_out_dir", "holds_run", "lock_path"]

# Files and folders whose presence marks a folder as (part of) a run of ``python -m train``.
RUN_MARKERS = ("results.json", "metrics.jsonl", "report.md", "checkpoints")


class RunFolderError(RuntimeError):
    """The output folder cannot be used; the message says why and what to pass instead."""


def lock_path(path: str) -> str:
    """The lock file of run folder ``path``: ``.<name>.lock`` beside it."""
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.lock")


def _beside(path: str, suffix: str) -> str:
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.{suffix}")


def holds_run(path: str) -> bool:
    """Whether folder ``path`` holds files of a previous run (results, metrics, checkpoints)."""
    if not os.path.isdir(path):
        return False
    entries = os.listdir(path)
    if any(m in entries for m in RUN_MARKERS):
        return True
    # Each activation's engine run keeps ``<activation>/`` with its metrics and checkpoints
    # (and runs of earlier versions ``<activation>/seed<k>/``).
    for entry in entries:
        sub = os.path.join(path, entry)
        if os.path.isdir(sub) and _holds_markers(sub, depth=1):
            return True
    return False


def _holds_markers(path: str, depth: int) -> bool:
    entries = os.listdir(path)
    if any(m in entries for m in RUN_MARKERS):
        return True
    return depth > 0 and any(
        _holds_markers(os.path.join(path, e), depth - 1)
        for e in entries
        if os.path.isdir(os.path.join(path, e))
    )


# A run that failed before writing anything else leaves only its log: not a reason to refuse
# the folder (the next run appends to it).
_IGNORED = ("error.log",)


def _visible_entries(path: str) -> list[str]:
    return sorted(e for e in os.listdir(path) if not e.startswith(".") and e not in _IGNORED)


def check_out_dir(path: str, *, resume: bool = False, overwrite: bool = False) -> None:
    """Refuses an output folder that a run must not write into; writes nothing.

    Args:
      path: the ``--out`` folder (need not exist).
      resume: ``--resume`` was given (continue the run in ``path``).
      overwrite: ``--overwrite`` was given (replace the run in ``path`` once the new one ends).

    Raises:
      RunFolderError: ``path`` is a file; both flags are given; ``path`` holds a previous run
        and neither flag is given; or ``path`` is a non-empty folder that holds no run.
    """
    if resume and overwrite:
        raise RunFolderError("--resume and --overwrite exclude each other; pass one of them")
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunFolderError(f"--out {path!r} is a file, not a folder; choose a folder")
    if not os.path.isdir(path) or not _visible_entries(path):
        return
    if holds_run(path):
        if resume or overwrite:
            return
        raise RunFolderError(
            f"--out {path!r} holds a previous run; pass --resume to continue it, --overwrite "
            "to replace it once the new run finishes, or another --out"
        )
    entries = _visible_entries(path)
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    raise RunFolderError(
        f"--out {path!r} is not empty ({shown}) and holds no run of python -m train; "
        "choose a new or empty folder (nothing in it was changed)"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _read_lock(lock: str) -> dict | None:
    try:
        with open(lock) as f:
            info = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _describe(info: dict) -> str:
    return (
        f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started "
        f"{info.get('started', '?')}: {info.get('command') or '(no command recorded)'}"
    )


def _try_create(lock: str, info: dict) -> bool:
    """Creates ``lock`` holding ``info``; False if it exists.

    A hard link of a finished temporary file makes the lock appear with its content at once,
    so a reader never sees it empty; file systems without hard links get ``O_EXCL``.
    """
    tmp = f"{lock}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(info, f)
    except BaseException:  # a full disk: no half-written file left beside the folder
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:
        os.link(tmp, lock)
        return True
    except FileExistsError:
        return False
    except OSError:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        return True
    finally:
        os.remove(tmp)


def _take_stale(lock: str, held: dict) -> bool:
    """Removes the stale ``lock`` if it still is the one read as ``held``.

    Renaming first makes the removal atomic: of two runs taking over the same stale lock,
    one moves it away and the other finds the new holder's lock, which it puts back.
    """
    aside = f"{lock}.{os.getpid()}.stale"
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return True
    if _read_lock(aside) == held:
        os.remove(aside)
        return True
    try:  # it was a live run's fresh lock: give it back
        os.link(aside, lock)
    except OSError:
        pass
    os.remove(aside)
    return False


def _acquire(path: str, command: str) -> str:
    """Takes the lock of ``path`` or raises RunFolderError naming the run that holds it."""
    lock = lock_path(path)
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    for _ in range(3):
        if _try_create(lock, info):
            return lock
        held = _read_lock(lock)
        if held is None:  # released between our attempt and the read
            continue
        stale = (
            held.get("host") == info["host"]
            and isinstance(held.get("pid"), int)
            and not _pid_alive(held["pid"])
        )
        if not stale:
            raise RunFolderError(
                f"--out {path!r} is in use by another run ({_describe(held)}); wait for it or "
                f"choose another --out. If that run is gone, delete {lock}"
            )
        if _take_stale(lock, held):
            warnings.warn(
                f"took over the lock of {path!r} from a run that is gone ({_describe(held)})",
                stacklevel=3,
            )
    raise RunFolderError(f"could not lock --out {path!r}; another run keeps taking {lock}")


class RunFolder:
    """Context manager around one run's output folder; ``__enter__`` gives the folder to write.

    Args:
      path: the ``--out`` folder.
      resume: continue the run already in ``path`` (writes into ``path``).
      overwrite: replace the run in ``path``: write into ``.<name>.staging`` beside it and swap
        it in on success only.
      command: the command line, recorded in the lock so that a refused run can name it.

    Raises (on enter):
      RunFolderError: see :func:`check_out_dir`, or another live run holds the lock.
    """

    def __init__(
        self, path: str, *, resume: bool = False, overwrite: bool = False, command: str = ""
    ) -> None:
        self.path = os.path.abspath(path)
        self.resume = resume
        self.overwrite = overwrite
        self.command = command
        self.staging: str | None = None
        self._lock: str | None = None

    def __enter__(self) -> str:
        check_out_dir(self.path, resume=self.resume, overwrite=self.overwrite)
        self._lock = _acquire(self.path, self.command)
        try:
            self._recover()
            # Checked again under the lock: the folder may have changed since the first check.
            check_out_dir(self.path, resume=self.resume, overwrite=self.overwrite)
            if self.overwrite and holds_run(self.path):
                self.staging = _beside(self.path, "staging")
                if os.path.exists(self.staging):  # left by a run killed mid-way; we hold the lock
                    shutil.rmtree(self.staging)
                os.makedirs(self.staging)
                return self.staging
            os.makedirs(self.path, exist_ok=True)
            return self.path
        except BaseException:
            self._release()
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.staging is not None:
                if exc_type is None:
                    self._swap_in()
                else:
                    shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            self._release()

    def abandon(self) -> None:
        """What ``__exit__`` does for a failed run, callable from a signal handler (Ctrl-C):
        removes the staging folder, releases the lock."""
        try:
            if self.staging is not None:
                shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            self._release()

    def _recover(self) -> None:
        """Finishes a swap that a killed ``--overwrite`` run left half done (we hold the lock)."""
        old = _beside(self.path, "replaced")
        if not os.path.isdir(old):
            return
        if os.path.exists(self.path):  # both renames happened; only the deletion was left
            shutil.rmtree(old)
        else:  # killed between the renames: the old run goes back in place
            warnings.warn(f"restored the previous run of {self.path!r} from {old}", stacklevel=4)
            os.rename(old, self.path)

    def _swap_in(self) -> None:
        """Replaces ``path`` by the staging folder: two renames, then the old one is deleted."""
        old = _beside(self.path, "replaced")
        if os.path.exists(old):
            shutil.rmtree(old)
        os.rename(self.path, old)
        os.rename(self.staging, self.path)
        shutil.rmtree(old)

    def _release(self) -> None:
        if self._lock is not None:
            try:
                os.remove(self._lock)
            except FileNotFoundError:
                pass
            self._lock = None
