"""experiments.stats against scipy.stats: t intervals, paired t-tests, Holm, missing values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from cpaf_jax.experiments.stats import (
    equivalence_test,
    holm,
    paired_difference,
    summarize,
    t_quantile_975,
)


@pytest.mark.parametrize("n", range(2, 201))
def test_summarize_interval_equals_scipy_t_interval(n):
    x = np.random.default_rng(n).normal(0.9, 0.01, size=n)
    s = summarize(x.tolist())
    lo, hi = st.t.interval(0.95, df=n - 1, loc=np.mean(x), scale=st.sem(x))
    assert s["n"] == n and s["dropped"] == 0
    np.testing.assert_allclose(s["mean"], np.mean(x), rtol=1e-13)
    np.testing.assert_allclose(s["std"], np.std(x, ddof=1), rtol=1e-12)
    # The half-width is checked on its own: a wrong quantile shows there even where the
    # interval's ends are dominated by the mean.
    np.testing.assert_allclose(s["ci95_high"] - s["mean"], (hi - lo) / 2, rtol=1e-9)
    np.testing.assert_allclose([s["ci95_low"], s["ci95_high"]], [lo, hi], rtol=1e-12)


def test_t_quantile_is_exact_beyond_any_table():
    # df 21..24 fell back to the df-25 entry of a hand-typed table (too narrow); all exact now.
    dfs = np.arange(1, 400)
    got = np.array([t_quantile_975(int(d)) for d in dfs])
    np.testing.assert_allclose(got, st.t.ppf(0.975, dfs), rtol=1e-12)
    assert math.isnan(t_quantile_975(0))
    assert t_quantile_975(4) == pytest.approx(2.7764451, abs=1e-6)  # textbook value


def test_summarize_small_and_empty():
    one = summarize([0.5])
    assert one["n"] == 1 and one["mean"] == 0.5
    assert all(math.isnan(one[k]) for k in ("std", "ci95_low", "ci95_high"))
    empty = summarize([])
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in ("mean", "std", "ci95_low"))


def test_summarize_drops_none_nan_and_inf_and_counts_them():
    s = summarize([0.8, None, float("nan"), 0.9, float("inf"), 0.85, -float("inf")])
    ref = summarize([0.8, 0.9, 0.85])
    assert s["n"] == 3 and s["dropped"] == 4
    for k in ("mean", "std", "ci95_low", "ci95_high"):
        assert s[k] == ref[k]
    assert summarize([None, float("nan")])["n"] == 0


def _pairs(rng, n, shift):
    b = rng.normal(0.90, 0.01, size=n)
    a = b + shift + rng.normal(0, 0.004, size=n)
    return a, b


@pytest.mark.parametrize("n", [2, 3, 5, 10, 31])
@pytest.mark.parametrize("shift", [-0.01, -0.001, 0.0, 0.002, 0.02])
def test_paired_difference_equals_scipy_ttest_rel(n, shift):
    a, b = _pairs(np.random.default_rng(7 * n), n, shift)
    d = paired_difference(dict(enumerate(a)), dict(enumerate(b)))
    ref = st.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert d["seeds"] == d["n"] == n
    np.testing.assert_allclose(d["mean"], np.mean(a - b), rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose([d["ci95_low"], d["ci95_high"]], [ci.low, ci.high], rtol=1e-10)
    np.testing.assert_allclose(d["p_value"], ref.pvalue, rtol=1e-10)
    # The flag is the interval excluding zero, which is the same event as p < 0.05.
    assert d["significant"] == float(ci.low > 0 or ci.high < 0) == float(ref.pvalue < 0.05)


def test_paired_difference_sign_and_antisymmetry():
    a = {0: 0.91, 1: 0.92, 2: 0.915, 3: 0.93, 4: 0.925}
    b = {0: 0.90, 1: 0.90, 2: 0.905, 3: 0.91, 4: 0.90}
    ab, ba = paired_difference(a, b), paired_difference(b, a)
    assert ab["mean"] > 0 and ab["ci95_low"] > 0 and ab["significant"] == 1.0
    assert ba["mean"] < 0 and ba["ci95_high"] < 0 and ba["significant"] == 1.0
    assert ab["mean"] == pytest.approx(-ba["mean"], abs=1e-15)
    assert ab["ci95_low"] == pytest.approx(-ba["ci95_high"], abs=1e-15)
    assert ab["p_value"] == pytest.approx(ba["p_value"], rel=1e-12) and ab["p_value"] < 0.05


def test_significance_flag_worked_examples():
    # Hand-worked: diffs (1, 2, 3): mean 2, sd 1, t = 2 sqrt(3) = 3.46 on 2 df, p = 0.074 -> the
    # interval 2 +- 4.303/sqrt(3) = [-0.484, 4.484] contains 0: not significant at n = 3 ...
    d = paired_difference({0: 1.0, 1: 2.0, 2: 3.0}, {0: 0.0, 1: 0.0, 2: 0.0})
    assert d["ci95_low"] == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-6)
    assert d["p_value"] == pytest.approx(0.07417, abs=1e-5) and d["significant"] == 0.0
    # ... while (1, 2, 3, 1, 2, 3): mean 2, sd 0.894, t = 5.48 on 5 df, p = 0.00276 is.
    d6 = paired_difference(dict(enumerate([1.0, 2, 3, 1, 2, 3])), dict.fromkeys(range(6), 0.0))
    assert d6["p_value"] == pytest.approx(0.002765, abs=1e-6) and d6["significant"] == 1.0


def test_paired_difference_constant_and_zero_differences():
    # Equal differences on every seed (accuracies are multiples of 1/N, so this happens): the
    # interval is the point, p = 0, significant; all-zero differences: p = 1, not significant.
    const = paired_difference({0: 0.5, 1: 0.75, 2: 1.0}, {0: 0.25, 1: 0.5, 2: 0.75})
    assert const["ci95_low"] == const["ci95_high"] == 0.25
    assert const["p_value"] == 0.0 and const["significant"] == 1.0
    # The same up to rounding (0.9013 - 0.8912 is not exactly 0.0101 in binary).
    near = paired_difference({0: 0.9013, 1: 0.9114}, {0: 0.8912, 1: 0.9013})
    assert near["p_value"] < 1e-6 and near["significant"] == 1.0
    same = paired_difference({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6})
    assert same["mean"] == 0.0 and same["p_value"] == 1.0 and same["significant"] == 0.0


def test_paired_difference_uses_only_complete_finite_pairs():
    a = {0: 0.91, 1: 0.92, 2: None, 3: 0.93, 4: float("nan"), 5: 0.90, 6: 0.95}
    b = {0: 0.90, 1: 0.90, 2: 0.905, 3: 0.91, 4: 0.90, 5: float("inf"), 7: 0.80}
    d = paired_difference(a, b)
    ref = paired_difference({0: 0.91, 1: 0.92, 3: 0.93}, {0: 0.90, 1: 0.90, 3: 0.91})
    assert d["seeds"] == d["n"] == 3
    for k in ("mean", "ci95_low", "ci95_high", "p_value", "significant"):
        assert d[k] == ref[k]
    one = paired_difference({0: 0.9, 1: None}, {0: 0.8, 1: 0.7})
    assert one["seeds"] == 1 and math.isnan(one["p_value"]) and one["significant"] == 0.0
    none = paired_difference({0: 0.9}, {1: 0.8})
    assert none["seeds"] == 0 and math.isnan(none["mean"]) and none["significant"] == 0.0


def test_holm_hand_worked_example():
    # m = 4, sorted 0.005 < 0.01 < 0.03 < 0.04: 4*0.005 = 0.02, 3*0.01 = 0.03, 2*0.03 = 0.06,
    # 1*0.04 = 0.04 -> raised to the running maximum 0.06. Output in input order.
    got = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    # At 5% Holm rejects the first and last only, where plain p < 0.05 would reject all four.
    assert [p < 0.05 for p in got] == [True, False, False, True]


def test_holm_caps_at_one_and_skips_missing():
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    got = holm([0.01, None, float("nan"), 0.04])
    assert math.isnan(got[1]) and math.isnan(got[2])
    np.testing.assert_allclose([got[0], got[3]], [0.02, 0.04], rtol=1e-12)  # m = 2, not 4
    assert holm([]) == [] and holm([0.2]) == [0.2]
    with pytest.raises(ValueError, match=r"p-values must lie in \[0, 1\]"):
        holm([0.1, 1.5])


def test_holm_is_at_least_raw_and_monotone_in_rank():
    p = np.random.default_rng(3).uniform(0, 0.2, size=12)
    adj = np.array(holm(p.tolist()))
    assert np.all(adj >= p) and np.all(adj <= 1.0)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)


@pytest.mark.parametrize(
    ("n", "shift", "spread", "margin"),
    [(20, 0.0, 0.004, 0.005), (20, 0.003, 0.004, 0.005), (10, -0.001, 0.01, 0.005),
     (5, 0.0, 0.001, 0.005), (30, 0.008, 0.002, 0.005), (3, 0.0, 0.02, 0.01)],
)  # fmt: skip
def test_equivalence_test_equals_scipy_two_one_sided_tests(n, shift, spread, margin):
    rng = np.random.default_rng(n)
    b = rng.uniform(0.85, 0.9, n)
    a = b + shift + rng.normal(0, spread, n)
    got = equivalence_test(dict(enumerate(a)), dict(enumerate(b)), margin)
    lower = st.ttest_1samp(a - b, -margin, alternative="greater").pvalue
    upper = st.ttest_1samp(a - b, margin, alternative="less").pvalue
    # The same two tests through ttest_rel, shifting one side by the margin.
    assert lower == pytest.approx(st.ttest_rel(a + margin, b, alternative="greater").pvalue)
    assert got["p_lower"] == pytest.approx(lower, rel=1e-9)
    assert got["p_upper"] == pytest.approx(upper, rel=1e-9)
    assert got["p_value"] == pytest.approx(max(lower, upper), rel=1e-9)
    lo, hi = st.t.interval(0.90, n - 1, loc=np.mean(a - b), scale=st.sem(a - b))
    assert (got["ci90_low"], got["ci90_high"]) == pytest.approx((lo, hi), rel=1e-9)
    # TOST at 5% rejects exactly when the 90% interval lies inside the margin.
    assert (got["p_value"] < 0.05) == (-margin < lo and hi < margin)
    assert got["seeds"] == n


def test_equivalence_test_worked_cases():
    same = {s: 0.88 for s in range(5)}
    # Constant differences: equivalent when inside the margin, not when outside.
    inside = equivalence_test({s: 0.882 for s in range(5)}, same, 0.005)
    assert inside["p_value"] == 0.0
    outside = equivalence_test({s: 0.89 for s in range(5)}, same, 0.005)
    assert outside["p_upper"] == 1.0 and outside["p_lower"] == 0.0 and outside["p_value"] == 1.0
    # A wide spread is not shown equivalent even with a mean of zero.
    wide = equivalence_test({0: 0.9, 1: 0.86, 2: 0.9, 3: 0.86}, same, 0.005)
    assert wide["mean"] == pytest.approx(0.0, abs=1e-12) and wide["p_value"] > 0.05
    # Unpaired and non-finite seeds are left out; one pair gives no test.
    one = equivalence_test({0: 0.9, 1: float("nan")}, {0: 0.9, 1: 0.9, 2: 0.8}, 0.005)
    assert one["seeds"] == 1 and math.isnan(one["p_value"])
    with pytest.raises(ValueError, match="margin must be > 0"):
        equivalence_test(same, same, 0.0)
