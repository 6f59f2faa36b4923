"""Statistics over seeds: mean, standard deviation, Student-t 95% intervals, paired t-tests,
equivalence tests (TOST).

Quantiles and tests come from ``scipy.stats`` (exact for every degree of freedom). Missing
values are handled the same way everywhere: ``None``, NaN and infinities are dropped before
any statistic is computed, and the number of values (or seed pairs) actually used is reported.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as _st

_LEVEL = 0.95


def _finite(v) -> bool:
    return v is not None and math.isfinite(float(v))


def t_quantile_975(df: int) -> float:
    """Two-sided 95% critical value ``t_{0.975, df}`` of Student's t; NaN for ``df < 1``."""
    if df < 1:
        return float("nan")
    return float(_st.t.ppf(0.5 + _LEVEL / 2, df))


def summarize(values: Sequence[float | None]) -> dict[str, float]:
    """Mean, sample standard deviation and 95% Student-t interval of the mean.

    Args:
      values: one metric per seed; ``None``, NaN and +-inf entries are dropped (a diverged or
        missing run) and counted in ``"dropped"``.

    Returns:
      ``{"n", "mean", "std", "ci95_low", "ci95_high", "dropped"}`` as floats (``n`` and
      ``dropped`` as ints). ``std`` is the ``ddof=1`` estimate; the interval is
      ``mean +- t_{0.975, n-1} * std / sqrt(n)``. ``mean`` is NaN for ``n == 0``; ``std`` and
      the interval are NaN for ``n < 2``.
    """
    xs = np.asarray([float(v) for v in values if _finite(v)], dtype=np.float64)
    n = int(xs.size)
    nan = float("nan")
    out = {"n": n, "mean": nan, "std": nan, "ci95_low": nan, "ci95_high": nan,
           "dropped": len(values) - n}  # fmt: skip
    if n == 0:
        return out
    mean = float(np.mean(xs))
    out["mean"] = mean
    if n < 2:
        return out
    std = float(np.std(xs, ddof=1))
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    out.update(std=std, ci95_low=mean - half, ci95_high=mean + half)
    return out


def _paired_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test p-value (``scipy.stats.ttest_rel``); 1.0 when all diffs are 0."""
    if a.size < 2:
        return float("nan")
    d = a - b
    if np.all(d == 0):
        # t = 0/0: scipy answers NaN; no difference was observed at all, so nothing is rejected.
        return 1.0
    with warnings.catch_warnings():
        # Accuracies are multiples of 1/test-set size, so equal differences across seeds are
        # common; scipy warns about its variance there but the answer (p = 0) is right.
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(_st.ttest_rel(a, b).pvalue)


def paired_difference(
    a: Mapping[int, float | None], b: Mapping[int, float | None]
) -> dict[str, float]:
    """Paired difference ``a - b`` over the seeds both have, with its interval and t-test.

    Args:
      a, b: metric per seed. A seed is used only when both values are finite numbers; a seed
        missing from either side, or ``None``/NaN/inf on either side, is left out.

    Returns:
      ``summarize`` of the per-seed differences, plus ``"seeds"`` (pairs used),
      ``"p_value"`` (two-sided paired t-test, NaN below two pairs) and ``"significant"`` (1.0
      when the 95% interval excludes 0, which is the same event as ``p_value < 0.05``).
    """
    seeds = sorted(s for s in set(a) & set(b) if _finite(a[s]) and _finite(b[s]))
    xa = np.asarray([float(a[s]) for s in seeds], dtype=np.float64)
    xb = np.asarray([float(b[s]) for s in seeds], dtype=np.float64)
    out = summarize((xa - xb).tolist())
    lo, hi = out["ci95_low"], out["ci95_high"]
    out["significant"] = float(math.isfinite(lo) and (lo > 0 or hi < 0))
    out["p_value"] = _paired_p_value(xa, xb)
    out["seeds"] = len(seeds)
    return out


def holm(pvalues: Sequence[float | None]) -> list[float]:
    """Holm-Bonferroni adjusted p-values for a family of comparisons, in the input order.

    With the ``m`` finite p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted
    value is ``max_{j <= i} min(1, (m - j + 1) p_(j))``; rejecting where it is below 0.05
    controls the family-wise error rate at 5%.

    Args:
      pvalues: one p-value per comparison; ``None``/NaN entries (comparisons with too few
        seeds) are not counted in ``m`` and come back as NaN.
    """
    finite = [(float(p), i) for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    for p, _ in finite:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"holm: p-values must lie in [0, 1], got {p}")
    out = [float("nan")] * len(pvalues)
    m, running = len(finite), 0.0
    for rank, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def _one_sided(d: np.ndarray, mu: float, greater: bool) -> float:
    """One-sample t-test p-value of ``mean(d) > mu`` (``greater``) or ``< mu``; a zero spread
    gives 0 or 1 by where the (constant) differences lie."""
    mean, se = float(np.mean(d)), float(np.std(d, ddof=1)) / math.sqrt(d.size)
    if se == 0.0:
        return 0.0 if (mean > mu if greater else mean < mu) else 1.0
    t = (mean - mu) / se
    return float(_st.t.sf(t, d.size - 1) if greater else _st.t.cdf(t, d.size - 1))


def equivalence_test(
    a: Mapping[int, float | None], b: Mapping[int, float | None], margin: float
) -> dict[str, float]:
    """Two one-sided tests (TOST) that the paired difference ``a - b`` lies within
    ``+-margin``, over the seeds both have (as :func:`paired_difference` pairs them).

    The null hypothesis is ``mean <= -margin`` or ``mean >= margin``; it is rejected at level
    alpha when both one-sided t-tests reject it, i.e. when ``max(p_lower, p_upper) < alpha``,
    the same event as the ``1 - 2 alpha`` (90%) interval lying inside the margin.

    Args:
      a, b: metric per seed (non-finite values and unpaired seeds are left out).
      margin: the equivalence margin (> 0), in the metric's unit.

    Returns:
      ``{"seeds", "mean", "p_lower", "p_upper", "p_value", "ci90_low", "ci90_high"}``:
      ``p_lower`` tests ``mean > -margin``, ``p_upper`` tests ``mean < margin``, ``p_value``
      is their maximum; NaN p-values and interval below two pairs.
    """
    if not margin > 0:
        raise ValueError(f"equivalence_test: the margin must be > 0, got {margin}")
    seeds = sorted(s for s in set(a) & set(b) if _finite(a[s]) and _finite(b[s]))
    d = np.asarray([float(a[s]) - float(b[s]) for s in seeds], dtype=np.float64)
    nan = float("nan")
    out = {"seeds": len(seeds), "mean": float(np.mean(d)) if d.size else nan, "p_lower": nan,
           "p_upper": nan, "p_value": nan, "ci90_low": nan, "ci90_high": nan}  # fmt: skip
    if d.size < 2:
        return out
    lo, hi = _one_sided(d, -margin, True), _one_sided(d, margin, False)
    half = float(_st.t.ppf(0.95, d.size - 1)) * float(np.std(d, ddof=1)) / math.sqrt(d.size)
    out.update(p_lower=lo, p_upper=hi, p_value=max(lo, hi), ci90_low=out["mean"] - half,
               ci90_high=out["mean"] + half)  # fmt: skip
    return out
