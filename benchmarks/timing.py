"""Side-by-side timing: variants run interleaved in one process, over repeated rounds.

The machines these run on are shared and noisy, so a variant is never timed alone: every
round runs each variant once (``iters`` calls) in turn. The minimum over rounds is the least
disturbed estimate of each variant's time; the ratio between two variants is taken within each
round (the two ran seconds apart, under the same load) and reported as the median and range
over rounds, so a ratio comes with its spread. Absolute times drift with load.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import jax


def interleaved_samples(
    fns: dict[str, Callable[[], object]],
    *,
    repeats: int = 5,
    iters: int = 10,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Times zero-argument callables side by side, keeping every round.

    Args:
      fns: name -> callable; each call's result is blocked on (``jax.block_until_ready``).
      repeats: rounds; each round times every variant once, in turn.
      iters: calls per variant per round (their mean is one sample).
      warmup: untimed calls per variant before the first round (compilation).

    Returns:
      name -> ``repeats`` samples, each the mean seconds per call in one round.
    """
    for fn in fns.values():
        for _ in range(warmup):
            jax.block_until_ready(fn())
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out = None
            for _ in range(iters):
                out = fn()
            jax.block_until_ready(out)
            samples[name].append((time.perf_counter() - t0) / iters)
    return samples


def interleaved(fns: dict[str, Callable[[], object]], **kwargs) -> dict[str, float]:
    """``interleaved_samples`` reduced to the minimum over rounds (seconds per call)."""
    return {name: min(v) for name, v in interleaved_samples(fns, **kwargs).items()}


def ratio_spread(samples: dict[str, list[float]], reference: str) -> dict[str, dict]:
    """Per-round ratios to ``reference``: ``name -> {"median", "lo", "hi", "rounds"}``.

    Each round's ratio divides two samples taken seconds apart, so load that comes and goes
    between rounds cancels; ``lo``/``hi`` are the smallest and largest ratio over rounds.
    """
    ref = samples[reference]
    out = {}
    for name, v in samples.items():
        r = [x / y for x, y in zip(v, ref, strict=True)]
        out[name] = {"median": statistics.median(r), "lo": min(r), "hi": max(r), "rounds": len(r)}
    return out


def ratios(times: dict[str, float], reference: str) -> dict[str, float]:
    """Each time divided by ``times[reference]``."""
    ref = times[reference]
    return {name: t / ref for name, t in times.items()}
