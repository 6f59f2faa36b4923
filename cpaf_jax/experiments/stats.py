"""Statistics over seeds: mean, standard deviation, Student-t 95% intervals, paired differences."""

from __future__ import annotations

import math
from collections.abc import Sequence

# Two-sided 95% Student-t quantiles t_{0.975, df}; beyond the table the normal 1.96 is within
# 2% of the true value.
_T975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
    10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
    18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980,
}  # fmt: skip


def t_quantile_975(df: int) -> float:
    """Two-sided 95% critical value of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return float("nan")
    if df in _T975:
        return _T975[df]
    larger = [d for d in sorted(_T975) if d > df]
    return _T975[larger[0]] if larger else 1.96


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation and 95% t-interval of the mean.

    Returns:
      ``{"n", "mean", "std", "ci95_low", "ci95_high"}``; std and the interval are NaN for n < 2.
    """
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "std": nan, "ci95_low": nan, "ci95_high": nan}
    mean = sum(xs) / n
    if n < 2:
        return {"n": 1, "mean": mean, "std": float("nan"), "ci95_low": float("nan"),
                "ci95_high": float("nan")}  # fmt: skip
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half}


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict[str, float]:
    """Paired difference ``a - b`` over the seeds both have, with its 95% interval.

    Args:
      a, b: metric per seed.

    Returns:
      ``summarize`` of the per-seed differences, plus ``"significant"`` (1.0 when the interval
      excludes 0, else 0.0) and ``"seeds"``.
    """
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    out = summarize(diffs)
    lo, hi = out["ci95_low"], out["ci95_high"]
    out["significant"] = float(math.isfinite(lo) and (lo > 0 or hi < 0))
    out["seeds"] = len(seeds)
    return out
