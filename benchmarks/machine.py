"""What the numbers were measured on: CPU, cores, library versions, JAX backend."""

from __future__ import annotations

import importlib.metadata
import os
import platform

import jax

from cpaf_jax.provenance import cpu_model


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe() -> dict:
    """Machine and software description (JSON-able)."""
    dev = jax.devices()[0]
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {d: _version(d) for d in ("jax", "jaxlib", "flax", "optax", "torch")},
        "backend": jax.default_backend(),
        "device_kind": dev.device_kind,
        "device_count": jax.device_count(),
    }
