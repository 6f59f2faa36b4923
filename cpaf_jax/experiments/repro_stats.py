"""Statistics of the reproduction report, by ``scipy.stats``: Student-t intervals of a mean,
paired t-tests over seeds, and Holm's step-down adjustment of a family of p-values.

Holm's adjustment is ``cpaf_jax.experiments.stats.holm`` (re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as sps

from cpaf_jax.experiments.stats import holm as holm


def t_interval(values: Sequence[float], level: float = 0.95) -> dict:
    """``{"n", "mean", "std", "low", "high"}``: the mean and its Student-t interval (NaN for
    n < 2)."""
    x = np.asarray(list(values), np.float64)
    n = len(x)
    nan = float("nan")
    if n == 0:
        return {"n": 0, "mean": nan, "std": nan, "low": nan, "high": nan}
    mean = float(x.mean())
    if n < 2:
        return {"n": 1, "mean": mean, "std": nan, "low": nan, "high": nan}
    std = float(x.std(ddof=1))
    if std == 0.0:
        return {"n": n, "mean": mean, "std": 0.0, "low": mean, "high": mean}
    low, high = sps.t.interval(level, n - 1, loc=mean, scale=std / math.sqrt(n))
    return {"n": n, "mean": mean, "std": std, "low": float(low), "high": float(high)}


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> dict:
    """Paired t-test of ``a - b`` over the seeds both have (``scipy.stats.ttest_rel``).

    Returns:
      ``t_interval`` of the per-seed differences plus ``"p"`` (two-sided; NaN for n < 2).
    """
    seeds = sorted(set(a) & set(b))
    d = [a[s] - b[s] for s in seeds]
    out = t_interval(d)
    if len(seeds) < 2 or out["std"] == 0.0:
        out["p"] = float("nan") if len(seeds) < 2 or out["mean"] == 0.0 else 0.0
        return out
    out["p"] = float(sps.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)
    return out
