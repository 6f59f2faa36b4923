"""The reproduction report's statistics under its key names: ``cpaf_jax.experiments.stats``
(``scipy.stats``) computes them all: Student-t intervals of a mean, paired t-tests over seeds
and Holm's step-down adjustment (re-exported here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cpaf_jax.experiments.stats import holm as holm
from cpaf_jax.experiments.stats import paired_difference, summarize


def t_interval(values: Sequence[float]) -> dict:
    """``{"n", "mean", "std", "low", "high"}``: the mean and its 95% Student-t interval (NaN
    for n < 2); ``cpaf_jax.experiments.stats.summarize`` under the report's key names."""
    s = summarize(list(values))
    return {"n": s["n"], "mean": s["mean"], "std": s["std"], "low": s["ci95_low"],
            "high": s["ci95_high"]}  # fmt: skip


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> dict:
    """Paired t-test of ``a - b`` over the seeds both have
    (``cpaf_jax.experiments.stats.paired_difference``).

    Returns:
      ``t_interval`` of the per-seed differences plus ``"p"`` (two-sided; NaN for n < 2, 1.0
      when every difference is 0).
    """
    d = paired_difference(a, b)
    return {"n": d["n"], "mean": d["mean"], "std": d["std"], "low": d["ci95_low"],
            "high": d["ci95_high"], "p": d["p_value"]}  # fmt: skip
