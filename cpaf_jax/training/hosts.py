"""Several processes (JAX's multi-controller runtime, one process per host): which process
writes files, and barriers that give up after a timeout instead of waiting forever.

With ``jax.distributed.initialize`` every process runs the same program on its share of the
devices. Files that hold the whole run (``metrics.jsonl``, ``results.json``, reports, plots) are
written by process 0 alone (``is_writer``); checkpoints are written through orbax, which
coordinates the processes itself. With one process every function here is a no-op.
"""

from __future__ import annotations

import itertools

import jax

#: Seconds a process waits for the others (at start-up and at every barrier) by default.
DEFAULT_TIMEOUT_S = 300.0

_counter = itertools.count()
_timeout = {"s": DEFAULT_TIMEOUT_S}


def set_timeout(seconds: float) -> None:
    """Sets the default timeout of ``barrier`` and ``exchange`` (``--process-timeout``)."""
    _timeout["s"] = float(seconds)


class ProcessGroupError(RuntimeError):
    """Another process stopped, hangs, or was started with other settings."""


def is_writer() -> bool:
    """Whether this process writes the run's files: process 0 (always, with one process)."""
    return jax.process_index() == 0


def where() -> str:
    """``"process I of N"``, for messages."""
    return f"process {jax.process_index()} of {jax.process_count()}"


def _client():
    # The runtime's key-value store and barriers; orbax reaches them the same way.
    from jax._src import distributed

    return distributed.global_state.client


def barrier(name: str, timeout_s: float | None = None) -> None:
    """Waits until every process has reached barrier ``name`` (no-op with one process).

    Every process must call the same barriers in the same order (each call gets a fresh id).
    ``timeout_s``: ``None`` for the default (``set_timeout``).

    Raises:
      ProcessGroupError: a process did not arrive within ``timeout_s`` seconds or has died.
    """
    if jax.process_count() == 1 or _client() is None:
        return
    key = f"cpaf_jax/{name}/{next(_counter)}"
    timeout_s = _timeout["s"] if timeout_s is None else timeout_s
    try:
        _client().wait_at_barrier(key, int(timeout_s * 1000))
    except Exception as e:  # the runtime raises its own error types; rephrased once here
        raise ProcessGroupError(
            f"{where()}: the other processes did not reach {name!r} within {timeout_s:g} s; "
            f"one of them stopped or hangs (see its output). ({_first_line(e)})"
        ) from None


def exchange(name: str, value: str, timeout_s: float | None = None) -> list[str]:
    """Every process's ``value`` (a short string), in process order.

    Raises:
      ProcessGroupError: as for ``barrier``.
    """
    if jax.process_count() == 1 or _client() is None:
        return [value]
    tag = f"cpaf_jax/{name}/{next(_counter)}"
    timeout_s = _timeout["s"] if timeout_s is None else timeout_s
    client = _client()
    client.key_value_set(f"{tag}/{jax.process_index()}", value)
    barrier(f"{name}: sent", timeout_s)
    try:
        values = [
            client.blocking_key_value_get(f"{tag}/{i}", int(timeout_s * 1000))
            for i in range(jax.process_count())
        ]
    except Exception as e:  # noqa: BLE001 - as in barrier
        raise ProcessGroupError(f"{where()}: reading {name!r}: {_first_line(e)}") from None
    # Nobody leaves before everyone has read (process 0 holds the store).
    barrier(f"{name}: read", timeout_s)
    return values


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "ProcessGroupError",
    "barrier",
    "exchange",
    "is_writer",
    "set_timeout",
    "where",
]
