"""Side-by-side timing: variants run interleaved in one process, minimum over repeats.

The machines these run on are shared and noisy, so a variant is never timed alone: every
repeat runs each variant once (``iters`` calls) in turn, and the minimum over repeats is kept,
which is the least disturbed estimate of each. Ratios between variants of one call are the
numbers to trust; absolute times drift with load.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax


def interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    repeats: int = 5,
    iters: int = 10,
    warmup: int = 1,
) -> dict[str, float]:
    """Times zero-argument callables side by side.

    Args:
      fns: name -> callable; each call's result is blocked on (``jax.block_until_ready``).
      repeats: rounds; each round times every variant once, in turn.
      iters: calls per variant per round (their mean is one sample).
      warmup: untimed calls per variant before the first round (compilation).

    Returns:
      name -> minimum over rounds of the mean seconds per call.
    """
    for fn in fns.values():
        for _ in range(warmup):
            jax.block_until_ready(fn())
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out = None
            for _ in range(iters):
                out = fn()
            jax.block_until_ready(out)
            best[name] = min(best[name], (time.perf_counter() - t0) / iters)
    return best


def ratios(times: dict[str, float], reference: str) -> dict[str, float]:
    """Each time divided by ``times[reference]``."""
    ref = times[reference]
    return {name: t / ref for name, t in times.items()}
