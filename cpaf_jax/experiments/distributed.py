"""One ``python -m train`` command over several processes (hosts): JAX's multi-controller runtime.

Every process runs the same command plus who it is, either explicitly
(``--coordinator HOST:PORT --num-processes N --process-id I``, the arguments of
``jax.distributed.initialize``) or detected from the cluster (``--distributed``: SLURM, Open MPI,
TPU pods). Then:

* ``start`` joins the processes before JAX's first computation (CPU collectives over gloo), and
  stops with a clear message and exit status ``EXIT_LOST`` when the others do not arrive
  within ``--process-timeout`` seconds;
* ``check_same_settings`` compares a hash of every process's settings and stops all of them at
  once when one differs, naming the options that do;
* ``shared_folder`` lets process 0 alone lock and prepare the output folder, the others write
  (checkpoints, through orbax) into the same one;
* ``leave`` ends a process that failed without waiting for the others at JAX's shutdown
  barrier (which waits for processes that may be gone).

The members are split over the devices of every process (``meshes.sweep_mesh``); process 0
alone writes ``results.json``, ``report.md``, plots and ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading

from cpaf_jax.training import hosts

#: Exit status of a process that lost the others (one stopped, hangs or never started).
EXIT_LOST = 4

# Options that may differ between processes: who a process is, and its own machine's view.
_LOCAL = ("process_id", "progress", "no_progress", "data_dir", "cpu_devices")


def _address(text: str) -> str:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT like 10.0.0.1:1234, got {text!r}")
    return text


def add_options(p: argparse.ArgumentParser, int_at_least) -> None:
    """``--coordinator``, ``--num-processes``, ``--process-id``, ``--distributed``, and
    ``--process-timeout`` (``int_at_least``: the parser's integer type factory)."""
    g = p.add_argument_group("several processes (one per host; see docs: Scaling out)")
    g.add_argument(
        "--coordinator",
        type=_address,
        metavar="HOST:PORT",
        help="address of process 0, where the processes meet (with --num-processes and "
        "--process-id)",
    )
    g.add_argument("--num-processes", type=int_at_least(1), metavar="N", help="processes in all")
    g.add_argument("--process-id", type=int_at_least(0), metavar="I", help="this process, 0..N-1")
    g.add_argument(
        "--distributed",
        action="store_true",
        help="join the processes of a SLURM, Open MPI or TPU-pod job, detected from the job's "
        "environment",
    )
    g.add_argument(
        "--process-timeout",
        type=int_at_least(1),
        default=int(hosts.DEFAULT_TIMEOUT_S),
        metavar="SECONDS",
        help="how long a process waits for the others, at start and at every barrier, before "
        "it stops (default %(default)s)",
    )


def requested(args: argparse.Namespace) -> bool:
    """Whether the command asks for several processes."""
    return bool(args.distributed) or args.num_processes is not None


def check_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Argparse errors for combinations of the options above that cannot work."""
    trio = {
        "--coordinator": args.coordinator,
        "--num-processes": args.num_processes,
        "--process-id": args.process_id,
    }
    given = [k for k, v in trio.items() if v is not None]
    if args.distributed and given:
        p.error(f"argument --distributed: detects {', '.join(given)} itself; give one or the other")
    if given and len(given) < 3:
        missing = ", ".join(k for k in trio if k not in given)
        p.error(f"argument {given[0]}: needs {missing} too (the three go together)")
    if given and args.process_id >= args.num_processes:
        p.error(
            f"argument --process-id: expected 0..{args.num_processes - 1}, got {args.process_id}"
        )
    if requested(args) and (args.no_sweep or args.sweep_strategy == "loop"):
        p.error(
            "argument --sweep-strategy: 'loop' (and --no-sweep) keeps whole members on the "
            "devices of one process; with several processes use auto, vmap, chunked or measure"
        )


def start(args: argparse.Namespace) -> None:
    """Joins the other processes (``jax.distributed.initialize``) before any computation.

    Stops this process with a message and exit status ``EXIT_LOST`` when they do not all
    arrive within ``args.process_timeout`` seconds (the runtime itself would abort it).

    Raises:
      ProcessGroupError: nothing to join (``--distributed`` outside a job) or a bad address.
    """
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices talk by TCP
    t = args.process_timeout
    kwargs = {
        # Our watchdog fires first and says what to check; the runtime's limit is a backstop.
        "initialization_timeout": t + 60,
        "heartbeat_timeout_seconds": min(100, max(10, t)),
        "shutdown_timeout_seconds": t,
    }
    if not args.distributed:
        kwargs.update(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    hosts.set_timeout(t)
    who = "this process" if args.distributed else f"process {args.process_id}"
    watchdog = threading.Timer(t, _never_arrived, (who, args))
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(**kwargs)
    except (ValueError, RuntimeError) as e:  # nothing detected, or a bad address
        watchdog.cancel()
        hint = (
            "; --distributed found no SLURM, Open MPI or TPU-pod job here: pass --coordinator, "
            "--num-processes and --process-id instead"
            if args.distributed
            else ""
        )
        raise hosts.ProcessGroupError(f"{who} could not join the others ({e}){hint}") from None
    watchdog.cancel()


def _never_arrived(who: str, args: argparse.Namespace) -> None:
    where = "the job's coordinator" if args.distributed else args.coordinator
    print(
        f"error: {who} waited {args.process_timeout} s at {where} and not every process "
        "arrived; start all of them (the same command, --num-processes N and a distinct "
        "--process-id 0..N-1) or raise --process-timeout",
        file=sys.stderr,
        flush=True,
    )
    os._exit(EXIT_LOST)


def settings_text(args: argparse.Namespace) -> str:
    """The settings every process must share, as JSON: the parsed options (less each
    process's own: its id, progress, data folder and CPU device count) and the versions."""
    import jax

    import cpaf_jax

    shared = {k: v for k, v in sorted(vars(args).items()) if k not in _LOCAL}
    shared["versions"] = {"cpaf_jax": cpaf_jax.__version__, "jax": jax.__version__}
    return json.dumps(shared, sort_keys=True, default=str)


class SettingsMismatch(hosts.ProcessGroupError):
    """The processes were started with different settings (every process raises it)."""


def check_same_settings(args: argparse.Namespace) -> None:
    """Compares a hash of ``settings_text`` across processes.

    Raises:
      SettingsMismatch: on every process, naming the options that differ from process 0's.
    """
    mine = settings_text(args)
    digest = hashlib.sha256(mine.encode()).hexdigest()
    texts = hosts.exchange("settings", f"{digest} {mine}")
    digests = [t.split(" ", 1)[0] for t in texts]
    if len(set(digests)) == 1:
        return
    first = json.loads(texts[0].split(" ", 1)[1])
    lines = []
    for i, text in enumerate(texts[1:], start=1):
        other = json.loads(text.split(" ", 1)[1])
        keys = sorted(set(first) | set(other))
        diff = [
            f"{k}: {first.get(k)!r} vs {other.get(k)!r}"
            for k in keys
            if first.get(k) != other.get(k)
        ]
        if diff:
            lines.append(f"process {i} differs from process 0 in " + "; ".join(diff))
    raise SettingsMismatch(
        "the processes were started with different settings (" + ". ".join(lines) + "); "
        "start every process with the same command, only --process-id differing"
    )


class SharedFolder:
    """A ``RunFolder`` for every process: process 0 locks and prepares it, the others wait
    and write into the same path; on success all meet before process 0 releases it.

    ``staging`` is process 0's (``None`` elsewhere). Raises ``RunFolderError`` (on enter) on
    every process when process 0 cannot use the folder.
    """

    def __init__(self, folder):
        self.folder = folder
        self.staging = None

    def __enter__(self) -> str:
        from cpaf_jax.experiments.outdir import RunFolderError

        path, error = "", ""
        if hosts.is_writer():
            try:
                path = self.folder.__enter__()
                self.staging = self.folder.staging
            except RunFolderError as e:
                error = str(e)
        path, error = json.loads(hosts.exchange("output folder", json.dumps([path, error]))[0])
        if error:
            raise RunFolderError(error)
        return path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            hosts.barrier("run finished")  # every process has written its last checkpoint
        if hosts.is_writer():
            self.folder.__exit__(exc_type, exc, tb)


def shared_folder(folder):
    """``folder`` itself with one process, else a ``SharedFolder`` around it."""
    import jax

    return folder if jax.process_count() == 1 else SharedFolder(folder)


def leave(status: int) -> int:
    """``status``; a process that lost the others (``EXIT_LOST``) or was interrupted (130)
    ends at once instead.

    JAX's shutdown waits for every process at a barrier: right when all of them end together
    (success, or a failure they all share, such as a mismatch or missing data), wrong when some
    may be gone (they would hang until the timeout, then abort).
    """
    if status not in (EXIT_LOST, 130):
        return status
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


__all__ = [
    "EXIT_LOST",
    "SettingsMismatch",
    "SharedFolder",
    "add_options",
    "check_options",
    "check_same_settings",
    "leave",
    "requested",
    "settings_text",
    "shared_folder",
    "start",
]
