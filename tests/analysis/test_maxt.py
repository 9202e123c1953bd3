"""The max-T machinery: its statistics are scipy's, its critical value is Student t's where it must be, ties are
floored at the data's resolution, variance that seeds do not average away widens it by its own degrees of freedom,
and the trimmed statistic is Yuen's. (Its error rates by simulation: tests/analysis/test_error_rates.py.)"""

import numpy as np
import pytest
from scipy import stats as sps
from scipy.stats import mstats

from bench.analysis import maxt, resolution
from bench.analysis.components import Component

NAMES = list("abcdef")


def test_paired_and_unpaired_statistics_are_scipys():
    rng = np.random.default_rng(0)
    x = rng.normal(0.8, 0.02, (12, 3)) + rng.normal(0, 0.02, (12, 1))
    x[3, 1] = np.nan  # a run without a value: that seed leaves the pairs of b only
    pairs = maxt.pair_stats(x, "abc")
    ok = ~np.isnan(x[:, 1])
    ref = sps.ttest_rel(x[ok, 0], x[ok, 1])
    assert pairs.diff[0, 1] / pairs.se[0, 1] == pytest.approx(ref.statistic)
    assert pairs.n[0, 1] == 11 and pairs.n[0, 2] == 12 and pairs.df[0, 1] == 10
    assert pairs.wins[0, 1] + pairs.wins[1, 0] == pytest.approx(1.0)
    welch = maxt.pair_stats(x, "abc", paired=False)
    ref = sps.ttest_ind(x[:, 0], x[ok, 1], equal_var=False)
    assert welch.diff[0, 1] / welch.se[0, 1] == pytest.approx(ref.statistic)
    assert welch.df[0, 1] == pytest.approx(ref.df)
    a12 = sps.mannwhitneyu(x[:, 0], x[ok, 1]).statistic / (12 * 11)
    assert welch.wins[0, 1] == pytest.approx(a12)
    assert not pairs.floored.any() and not welch.floored.any()


def test_two_unpaired_arms_get_welchs_interval():
    """With two arms the max-T is one |T|: the unpaired interval is Welch's t interval (scipy's) where Welch's
    approximation holds (30 and 12 runs, spreads 1 and 2), up to the Monte Carlo error of the critical value. (At
    10 and 4 runs with spreads 1 and 3 Welch's own test rejects 6% of the time: the null's quantile is then above
    the normal's and the interval wider than Welch's, as the simulation in tests/analysis/test_error_rates.py
    requires.)"""
    rng = np.random.default_rng(1)
    x = np.full((30, 2), np.nan)
    x[:, 0], x[:12, 1] = rng.normal(0.0, 1.0, 30), rng.normal(0.5, 2.0, 12)
    pairs, c, p = maxt.simultaneous_intervals(x, "ab", 0.95, rng, 40_000, paired=False, floor=0.0)
    ref = sps.ttest_ind(x[:, 0], x[:12, 1], equal_var=False)
    low, high = ref.confidence_interval(0.95)
    assert pairs.diff[0, 1] - c * pairs.se[0, 1] == pytest.approx(low, rel=0.01)
    assert pairs.diff[0, 1] + c * pairs.se[0, 1] == pytest.approx(high, rel=0.01)
    assert p[0, 1] == pytest.approx(ref.pvalue, abs=0.01)


@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_the_nulls_paired_t_from_cross_products_is_scipys_t_of_the_differences(missing):
    rng = np.random.default_rng(7)
    x = rng.normal(0.8, 0.05, (50, 12, 4)) + rng.normal(0, 0.05, (50, 12, 1))
    x[:, :, 3] = x[:, :, 2] + rng.normal(0, 1e-9, (50, 12))  # nearly equal columns: their sums of squares cancel
    x[:, :, 1] = np.round(x[:, :, 1] * 256) / 256  # accuracies on 256 examples, one 0.25 below another on every seed:
    x[:, :, 0] = x[:, :, 1] + 0.25  # a constant difference, sd exactly 0 and t inf, not a rounding error's t
    x[rng.random(x.shape) < missing] = np.nan
    rows, cols = np.triu_indices(4, 1)
    t = maxt.paired_abs_t(x, rows, cols)
    for draw in range(50):
        for p, (i, j) in enumerate(zip(rows, cols)):
            ok = np.isfinite(x[draw, :, i]) & np.isfinite(x[draw, :, j])
            if ok.sum() < 2:
                assert np.isnan(t[draw, p]) or t[draw, p] == 0
            elif (i, j) == (0, 1):
                assert t[draw, p] == np.inf
            else:
                expected = abs(sps.ttest_rel(x[draw, ok, i], x[draw, ok, j]).statistic)
                assert t[draw, p] == pytest.approx(expected, rel=1e-9), (draw, i, j)


@pytest.mark.parametrize("n", [5, 8, 20])
def test_with_two_initializers_the_normal_reference_is_student_t(n):
    x = np.random.default_rng(n).normal(size=(n, 2))
    null = maxt.null_max_t(x, 40_000, np.random.default_rng(1))
    assert np.quantile(null, 0.95) == pytest.approx(sps.t.ppf(0.975, n - 1), rel=0.03)
    _, c, _ = maxt.simultaneous_intervals(x, "ab", 0.95, rng=1, draws=40_000)
    assert c >= np.quantile(null, 0.95) - 0.05  # the smoothed bootstrap only ever widens it


def test_the_critical_value_grows_with_the_family_and_lies_below_bonferroni():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(10, 6)) + rng.normal(size=(10, 1))
    cs = [maxt.simultaneous_intervals(values[:, :k], NAMES[:k], 0.95, 0, 8000)[1] for k in (2, 3, 6)]
    assert cs[0] < cs[1] < cs[2] < sps.t.ppf(1 - 0.025 / 15, 9)


def test_the_step_of_a_lattice_is_found_whatever_each_column_is_shifted_by():
    rng = np.random.default_rng(4)
    counts = rng.integers(150, 190, (16, 4))
    assert resolution.step(counts / 200) == pytest.approx(1 / 200)
    assert resolution.step(counts / 200 - rng.random(4)) == pytest.approx(1 / 200)  # columns centred apart
    assert resolution.step(np.array([[0.85, 0.845], [0.85, 0.845]])) == pytest.approx(0.005)  # only between columns
    assert resolution.step(np.full((3, 2), 0.9)) == 0.0
    assert resolution.step([np.array([0.5, 0.75]), np.array([0.1])]) == pytest.approx(0.25)  # columns of any length
    continuous = rng.normal(size=(32, 8))
    assert resolution.difference_floor(continuous) < 1e-3 * continuous.std()  # nothing for continuous values


def test_a_difference_tied_on_every_seed_is_floored_not_certain():
    """The review's case: two seeds, a difference of one example (0.5 pp) on both. Without the floor: sd 0, t inf,
    p = 1 / (draws + 1) and a point interval."""
    x = np.array([[0.850, 0.845], [0.860, 0.855]])
    pairs, c, p = maxt.simultaneous_intervals(x, "ab", draws=4000)
    floor = resolution.difference_floor(x)
    assert floor == pytest.approx(0.01 / np.sqrt(6))  # the within-column step is 0.01 here
    assert pairs.floored[0, 1] and pairs.se[0, 1] == pytest.approx(floor / np.sqrt(2))
    assert p[0, 1] > 0.05 and pairs.diff[0, 1] - c * pairs.se[0, 1] < 0 < pairs.diff[0, 1] + c * pairs.se[0, 1]


def test_a_component_adds_its_variance_and_few_degrees_of_freedom_widen_the_critical_value():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(16, 3)) * 0.1 + rng.normal(size=(16, 1))
    plain, c_plain, _ = maxt.simultaneous_intervals(x, "abc", draws=8000, rng=1)

    def component(df):
        v = 0.01
        return Component("data orders", np.full(3, v / 2), v * (1 - np.eye(3)), np.full(3, df), np.full((3, 3), df))

    many, c_many, _ = maxt.simultaneous_intervals(x, "abc", draws=8000, rng=1, components=[component(np.inf)])
    few, c_few, _ = maxt.simultaneous_intervals(x, "abc", draws=8000, rng=1, components=[component(2.0)])
    np.testing.assert_allclose(many.se[0, 1] ** 2, plain.se[0, 1] ** 2 + 0.01)
    assert c_few > 1.3 * c_many  # 2 degrees of freedom: the component's estimate may be far too small


def test_the_trimmed_statistic_is_yuens_paired_trimmed_mean():
    """Wilcox 2012, 5.9.1: the 20% trimmed mean of the differences, the winsorized variance over (1 - 2g/n)^2 n."""
    rng = np.random.default_rng(6)
    x = rng.standard_t(3, (20, 2))
    pairs = maxt.pair_stats(x, "ab", statistic="trimmed")
    d = x[:, 0] - x[:, 1]
    g = int(0.2 * 20)
    winsorized = np.asarray(mstats.winsorize(d, limits=(0.2, 0.2)))
    assert pairs.diff[0, 1] == pytest.approx(sps.trim_mean(d, 0.2))
    assert pairs.se[0, 1] == pytest.approx(np.sqrt(winsorized.var(ddof=1) / ((1 - 2 * g / 20) ** 2 * 20)))
    assert pairs.df[0, 1] == 20 - 2 * g - 1
    with pytest.raises(ValueError, match="paired runs"):
        maxt.pair_stats(x, "ab", paired=False, statistic="trimmed")


def test_a_missing_run_is_not_resampled_into_the_bootstrap_seeds():
    """10% of runs without a value, at random: the smoothed bootstrap draws complete seeds and puts the observed
    gaps back, so the critical value stays near the complete table's (it doubled when rows with gaps were drawn;
    now 1.35x here: 17 complete seeds of 32 are drawn from)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(32, 8)) * 0.5 + rng.normal(size=(32, 1))
    gaps = x.copy()
    gaps[rng.random(x.shape) < 0.1] = np.nan
    c_full = np.quantile(maxt.smoothed_bootstrap_max_t(x, 4000, np.random.default_rng(1)), 0.95)
    c_gaps = np.quantile(maxt.smoothed_bootstrap_max_t(gaps, 4000, np.random.default_rng(1)), 0.95)
    assert c_gaps < 1.5 * c_full


def test_the_trimmed_statistic_at_three_seeds_with_a_missing_run_gives_intervals_not_an_error():
    """Three seeds, one run missing: fewer than 3 complete seeds, so the bootstrap draws every seed, and a draw may
    hold no seed with both runs of a pair (a ZeroDivisionError before): those draws count as no evidence, the
    observed pairs keep their intervals."""
    x = np.array([[1.64, 1.92, -0.79, 2.43, 0.63], [0.33, np.nan, -0.27, 0.97, 0.17], [0.85, 1.27, 0.91, 0.56, 2.09]])
    pairs, c, p = maxt.simultaneous_intervals(x, range(5), 0.95, 0, 500, statistic="trimmed")
    assert np.isfinite(c) and c > 0
    off = ~np.eye(5, dtype=bool)
    assert np.isfinite(pairs.diff[off]).all() and (pairs.se[off] > 0).all()
    assert ((p[off] >= 0) & (p[off] <= 1)).all()
    again = maxt.simultaneous_intervals(x, range(5), 0.95, 0, 500, statistic="trimmed")
    assert again[1] == c  # seeded: the same critical value
