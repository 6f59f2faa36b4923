"""How ``python -m train`` ends when its environment fails it: one line, the details in a log.

* A failed write to the output folder (read-only, full disk) or a failed checkpoint ends the
  command with one ``error:`` line naming the file; the traceback goes to ``error.log`` in the
  run folder (or the system's temporary folder when the run folder cannot take it), or to the
  screen with ``--debug``. The libraries' own log records (orbax logs a traceback per failed
  write thread) go to the same log instead of the screen.
* Ctrl-C at any point, start-up included, ends the process with status 130 and one line:
  :func:`as_process` releases the run folder and leaves without the interpreter's teardown,
  where JAX and Flax can crash after an interrupt in their first compilation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator

__all__ = [
    "LOG_NAME",
    "as_process",
    "describe",
    "interrupt_cleanup",
    "library_logs_to",
    "log_path",
    "write_log",
]

LOG_NAME = "error.log"
#: Loggers of the libraries that log failures themselves (orbax through absl).
LIBRARY_LOGGERS = ("absl", "orbax")


def log_path(run_dir: str | None) -> str:
    """``<run_dir>/error.log`` if that folder takes a file, else one in the temporary folder."""
    # access() also says no for a read-only file system, even to root.
    if run_dir and os.path.isdir(run_dir) and os.access(run_dir, os.W_OK):
        return os.path.join(run_dir, LOG_NAME)
    return os.path.join(tempfile.gettempdir(), f"cpaf_jax-{os.getpid()}-{LOG_NAME}")


class _QuietFileHandler(logging.FileHandler):
    """A file handler that never prints "--- Logging error ---" (the disk may be full)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


@contextlib.contextmanager
def library_logs_to(path: str | None) -> Iterator[None]:
    """Sends the libraries' warnings and errors to the file ``path`` instead of the screen.

    ``None`` leaves logging as it is (``--debug``).
    """
    if path is None:
        yield
        return
    _late_errors_to(path)
    handler = _QuietFileHandler(path, delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s:%(name)s:%(message)s"))
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    saved = [lg.propagate for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.propagate = False
    try:
        yield
    finally:
        for lg, propagate in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.propagate = propagate
        handler.close()


def _is_closed_loop(e: BaseException) -> bool:
    return isinstance(e, RuntimeError) and str(e) == "Event loop is closed"


def _late_errors_to(path: str) -> None:
    """After a failed checkpoint, tensorstore's pending callbacks find orbax's event loop
    closed and print a traceback each through ``sys.excepthook``, some after the command's
    error line: those go to ``path``; anything else to the hook as before. It stays installed
    (they come until the process ends) and is installed once."""
    previous = sys.excepthook
    if getattr(previous, "_cpaf_jax_log", None) is not None:
        previous._cpaf_jax_log[0] = path
        return
    log = [path]

    def hook(exc_type, exc, tb) -> None:
        if not _is_closed_loop(exc):
            previous(exc_type, exc, tb)
            return
        with contextlib.suppress(OSError), open(log[0], "a") as f:
            f.write("".join(traceback.format_exception(exc_type, exc, tb)))

    hook._cpaf_jax_log = log
    sys.excepthook = hook


def describe(e: BaseException) -> str:
    """One line for a failed write: the file and the system's reason where it has them."""
    if isinstance(e, OSError) and e.strerror and e.filename:
        return f"cannot write {e.filename}: {e.strerror}"
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return first if len(first) <= 400 else first[:400] + "..."


def write_log(path: str, e: BaseException) -> bool:
    """Appends ``e``'s traceback to ``path``; False if even that failed."""
    try:
        with open(path, "a") as f:
            f.write("".join(traceback.format_exception(e)))
        return True
    except OSError:
        return False


# What Ctrl-C must undo before the process leaves (the run folder's lock, a staging folder),
# and the line it prints: set by the command for the span of a run (``interrupt_cleanup``).
_cleanups: list[Callable[[], None]] = []
_messages: list[Callable[[], str]] = []


@contextlib.contextmanager
def interrupt_cleanup(cleanup: Callable[[], None], message: Callable[[], str]) -> Iterator[None]:
    """While inside, Ctrl-C in a process run by :func:`as_process` calls ``cleanup`` and
    prints ``message()`` (one line) before exiting with 130."""
    _cleanups.append(cleanup)
    _messages.append(message)
    try:
        yield
    finally:
        _cleanups.remove(cleanup)
        _messages.remove(message)


def _on_interrupt(signum, frame) -> None:
    # Leaves from here rather than raising KeyboardInterrupt: raised inside a garbage-collector
    # callback (JAX's, at import) it is swallowed and the run goes on, and the interpreter's
    # teardown after an interrupted first compilation can crash (exit 139).
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot cut the clean-up
    line = "interrupted"
    with contextlib.suppress(Exception):
        line = _messages[-1]() if _messages else line
    for cleanup in reversed(_cleanups):
        with contextlib.suppress(Exception):
            cleanup()
    print("\n" + line, file=sys.stderr)
    _leave(130)


def _leave(status: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def as_process(run: Callable[[], int]) -> int:
    """Runs a command as the whole process; Ctrl-C at any point exits with status 130 and one
    line, after the clean-up registered with :func:`interrupt_cleanup`.

    Args:
      run: the command; returns its exit status.

    Returns:
      ``run``'s status (an interrupted process has exited).
    """
    signal.signal(signal.SIGINT, _on_interrupt)
    try:
        status = run()
    except KeyboardInterrupt:  # raised before the handler was in place
        print("\ninterrupted", file=sys.stderr)
        status = 130
    if status == 130:
        _leave(130)
    return status
