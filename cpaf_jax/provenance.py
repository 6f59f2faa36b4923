"""Where a number came from: commit, tree state, machine, versions and command of a run.

Every JSON the project writes (``results.json``, ``benchmarks/BENCHMARKS.json``,
``benchmarks/sweep_throughput.json``) stores ``provenance()`` under the key ``"provenance"``,
so any figure can be traced to the code and the command that produced it::

    from cpaf_jax.provenance import provenance
    results["provenance"] = provenance()

The commit is that of the source tree ``cpaf_jax`` is imported from, not of the working
directory. ``dirty`` looks at tracked files only (``git status --porcelain
--untracked-files=no``): a run writes untracked outputs (``runs/``, ``benchmarks/results/``)
and must not mark itself dirty by doing so, while any edit to committed code, staged or not,
does. A package installed without its git checkout (``pip install cpaf-jax``) has
``commit: None`` and ``dirty: None``, with the reason in ``git_error``.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy")
_MAX_DIRTY_PATHS = 50  # enough to see what changed without bloating results.json


def _git(root: Path, *args: str) -> str:
    """Runs ``git -C root ARGS`` and returns stdout; raises ``RuntimeError`` with git's reason."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"git could not run: {e}") from e
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip() or f"git {' '.join(args)} failed")
    return done.stdout


def git_state(root: str | os.PathLike | None = None) -> dict:
    """Commit and tree state of the git checkout at ``root``.

    Args:
      root: the directory that must be the top of a git work tree; ``None`` means the
        directory holding the ``cpaf_jax`` package this module was imported from.

    Returns:
      ``{"source_dir", "commit", "dirty", "dirty_paths", "git_error"}``: ``commit`` the full
      40-hex hash of ``HEAD``, ``dirty`` whether a tracked file differs from it, ``dirty_paths``
      up to 50 of those paths. Outside a git work tree (or where ``root`` is only a
      subdirectory of one, as for a package installed into a virtualenv inside a checkout)
      ``commit`` and ``dirty`` are ``None`` and ``git_error`` says why.
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    out = {"source_dir": str(root), "commit": None, "dirty": None, "dirty_paths": []}
    try:
        top = Path(_git(root, "rev-parse", "--show-toplevel").strip()).resolve()
        if top != root.resolve():
            raise RuntimeError(f"{root} is not the top of a git work tree (that is {top})")
        out["commit"] = _git(root, "rev-parse", "--verify", "HEAD").strip()
        status = _git(root, "status", "--porcelain", "--untracked-files=no").splitlines()
    except RuntimeError as e:
        out["git_error"] = str(e)
        return out
    out["dirty"] = bool(status)
    out["dirty_paths"] = [line[3:] for line in status[:_MAX_DIRTY_PATHS]]
    out["git_error"] = None
    return out


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def _jax_devices() -> dict:
    """JAX backend and device kind, without starting a backend that is not yet running.

    Starting it here would fix the CPU device count before ``meshes.split_cpu`` could set it,
    so a call made before the first computation records ``backend: None``.
    """
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # a JAX without this check: ask anyway
        started = True
    if not started:
        return {"backend": None, "device_kind": None, "device_count": None}
    import jax

    return {
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
    }


def machine() -> dict:
    """CPU model, core count, physical memory (bytes), platform, and the JAX backend."""
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "platform": platform.platform(),
        **_jax_devices(),
    }


def versions() -> dict:
    """Python and the installed versions of jax, jaxlib, flax, optax, numpy (``None``: absent)."""
    out = {"python": platform.python_version()}
    for dist in _PACKAGES:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def command_line(argv: Sequence[str] | None = None) -> str:
    """``argv`` joined as a shell would need it; ``None``: the interpreter's own command line.

    ``sys.orig_argv`` keeps ``python -m benchmarks --quick`` as typed, where ``sys.argv`` would
    give the path of ``benchmarks/__main__.py``.
    """
    if argv is None:
        argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return shlex.join(str(a) for a in argv)


def provenance(argv: Sequence[str] | None = None, *, root: str | os.PathLike | None = None) -> dict:
    """Everything needed to trace a result to its code, machine and command (JSON-able).

    Args:
      argv: the command line to record, as a list (``sys.argv`` style, program name first);
        ``None`` records the interpreter's (``sys.orig_argv``).
      root: the source tree whose commit is recorded; ``None``: the one ``cpaf_jax`` is
        imported from.

    Returns:
      ``{"commit", "dirty", "dirty_paths", "source_dir", "git_error", "machine", "versions",
      "command", "cwd", "timestamp_utc"}``; see :func:`git_state` and :func:`machine`.
    """
    return {
        **git_state(root),
        "machine": machine(),
        "versions": versions(),
        "command": command_line(argv),
        "cwd": os.getcwd(),
        "timestamp_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def describe(prov: dict | None) -> str:
    """One line for a rendered header: commit (and dirty flag), machine, backend.

    Results written before provenance was recorded (``prov`` is ``None``) say so.
    """
    if not prov:
        return "Commit not recorded (results written before provenance was added)."
    commit = prov.get("commit")
    if commit is None:
        src = f"commit unknown ({prov.get('git_error')})"
    else:
        src = f"commit `{commit[:12]}`" + (" with uncommitted changes" if prov["dirty"] else "")
    m = prov["machine"]
    mem = f", {m['memory_bytes'] / 2**30:.0f} GiB" if m.get("memory_bytes") else ""
    dev = f"; backend {m['backend']} ({m['device_kind']})" if m.get("backend") else ""
    return (
        f"Run at {src}, {prov['timestamp_utc']}, on {m['cpu_model']}, {m['cpu_count']} cores"
        f"{mem}{dev}; command `{prov['command']}`."
    )
