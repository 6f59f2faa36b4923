"""Statistics of the reproduction report, by ``scipy.stats``: Student-t intervals of a mean,
paired t-tests over seeds, and Holm's step-down adjustment of a family of p-values.

(``cpaf_jax.experiments.stats`` is moving to scipy too; ``holm`` lives here until it has one.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as sps


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


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    Sort ascending ``p_(1) <= ... <= p_(m)``; ``adj_(i) = max_{j <= i} min(1, (m - j + 1)
    p_(j))``. NaN p-values are left out of the family and stay NaN.
    """
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    m = len(idx)
    out = [float("nan")] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out
