"""The comparison procedure: its statistics are scipy's, its critical value is Student t's where it must be,
and by simulation its verdicts keep the family-wise error and its intervals their coverage at 8, 16 and 32 seeds."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.analysis import calibrate, verdicts

NAMES = list("abcdef")


def test_paired_and_unpaired_statistics_are_scipys():
    rng = np.random.default_rng(0)
    x = rng.normal(0.8, 0.02, (12, 3)) + rng.normal(0, 0.02, (12, 1))
    x[3, 1] = np.nan  # a diverged run: that seed leaves the pairs of b only
    pairs = verdicts.pair_stats(x, "abc")
    ok = ~np.isnan(x[:, 1])
    ref = sps.ttest_rel(x[ok, 0], x[ok, 1])
    assert pairs.diff[0, 1] / pairs.se[0, 1] == pytest.approx(ref.statistic)
    assert pairs.n[0, 1] == 11 and pairs.n[0, 2] == 12 and pairs.df[0, 1] == 10
    assert pairs.wins[0, 1] + pairs.wins[1, 0] == pytest.approx(1.0)
    welch = verdicts.pair_stats(x, "abc", paired=False)
    ref = sps.ttest_ind(x[:, 0], x[ok, 1], equal_var=False)
    assert welch.diff[0, 1] / welch.se[0, 1] == pytest.approx(ref.statistic)
    assert welch.df[0, 1] == pytest.approx(ref.df)
    a12 = sps.mannwhitneyu(x[:, 0], x[ok, 1]).statistic / (12 * 11)
    assert welch.wins[0, 1] == pytest.approx(a12)


@pytest.mark.parametrize("diverged", [0.0, 0.2])
def test_the_nulls_paired_t_from_cross_products_is_scipys_t_of_the_differences(diverged):
    rng = np.random.default_rng(7)
    x = rng.normal(0.8, 0.05, (50, 12, 4)) + rng.normal(0, 0.05, (50, 12, 1))
    x[:, :, 3] = x[:, :, 2] + rng.normal(0, 1e-9, (50, 12))  # nearly equal columns: their sums of squares cancel
    x[:, :, 1] = np.round(x[:, :, 1] * 256) / 256  # accuracies on 256 examples, one 0.25 below another on every seed:
    x[:, :, 0] = x[:, :, 1] + 0.25  # a constant difference, sd exactly 0 and t inf, not a rounding error's t
    x[rng.random(x.shape) < diverged] = np.nan
    rows, cols = np.triu_indices(4, 1)
    t = verdicts.paired_abs_t(x, rows, cols)
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
    null = verdicts._null_max_t(x, 40_000, np.random.default_rng(1))
    assert np.quantile(null, 0.95) == pytest.approx(sps.t.ppf(0.975, n - 1), rel=0.03)
    _, c, _ = verdicts.simultaneous_intervals(x, "ab", 0.95, rng=1, draws=40_000)
    assert c >= np.quantile(null, 0.95) - 0.05  # the smoothed bootstrap only ever widens it


def test_the_critical_value_grows_with_the_family_and_lies_below_bonferroni():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(10, 6)) + rng.normal(size=(10, 1))
    cs = [verdicts.simultaneous_intervals(values[:, :k], NAMES[:k], 0.95, 0, 8000)[1] for k in (2, 3, 6)]
    assert cs[0] < cs[1] < cs[2] < sps.t.ppf(1 - 0.025 / 15, 9)


def test_d_z_interval_inverts_the_noncentral_t():
    low, high = verdicts.d_z_interval(0.8, 10)
    t = 0.8 * np.sqrt(10)
    assert sps.nct.cdf(t, 9, low * np.sqrt(10)) == pytest.approx(0.975, abs=1e-6)
    assert sps.nct.cdf(t, 9, high * np.sqrt(10)) == pytest.approx(0.025, abs=1e-6)
    low, high = verdicts.d_z_interval(60.0, 8)  # beyond scipy's noncentral t: the normal approximation
    half = 1.959964 * np.sqrt(1 / 8 + 3600 / 14)
    assert (low, high) == pytest.approx((60 - half, 60 + half), rel=1e-5)


def test_far_worse_on_every_seed_is_worse_at_8_seeds_and_close_ones_are_not():
    rng = np.random.default_rng(4)
    seed_effect = rng.normal(0, 0.01, (8, 1))
    x = 0.85 + seed_effect + rng.normal(0, 0.005, (8, 8))
    x[:, 7] = 0.465  # zeros: 40 pp worse on every seed
    table = verdicts.verdicts(x, [f"i{k}" for k in range(8)]).set_index("arm")
    assert table.loc["i7", "verdict"] == "worse" and table.loc["i7", "p"] < 0.01
    assert (table["verdict"] == "best").sum() == 1
    assert set(table.drop("i7")["verdict"]) <= {"best", "inconclusive", "equivalent"}
    assert table.loc["i7", "win_rate"] == 0 and table.loc["i7", "to_best_high"] < -0.3


def test_equivalence_needs_the_whole_interval_within_the_margin():
    rng = np.random.default_rng(5)
    common = rng.normal(0, 0.01, (200, 1))
    x = 0.9 + common + rng.normal(0, 0.002, (200, 3))
    x[:, 2] -= 0.02
    table = verdicts.verdicts(x, "abc", margin=0.005).set_index("arm")
    assert {table.loc["a", "verdict"], table.loc["b", "verdict"]} == {"best", "equivalent"}
    assert table.loc["c", "verdict"] == "worse"
    few = verdicts.verdicts(x[:4] + np.random.default_rng(6).normal(0, 0.01, (4, 3)), "abc", margin=0.001)
    assert "equivalent" not in set(few["verdict"])  # 4 noisy seeds cannot show a 0.1 pp equivalence
    loss = verdicts.verdicts(1 - x, "abc", higher_is_better=False).set_index("arm")
    assert loss.loc["c", "verdict"] == "worse" and loss.loc["c", "diff"] < 0  # better > 0 for losses too


def test_reference_changes_the_difference_columns_not_the_verdicts():
    x = np.random.default_rng(7).normal(size=(10, 4)) + np.array([0.0, 0.3, 3.0, 0.1])
    best = verdicts.verdicts(x, "abcd").set_index("arm")
    vs_a = verdicts.verdicts(x, "abcd", reference="a").set_index("arm")
    assert (best["verdict"] == vs_a["verdict"]).all() and set(best.drop("c")["vs"]) == {"c"}
    assert set(vs_a.drop("a")["vs"]) == {"a"} and vs_a.loc["a", "vs"] == "c"


def test_too_few_runs_give_no_verdict_and_no_crash():
    x = np.full((6, 3), np.nan)
    x[:, 0] = np.linspace(0.8, 0.9, 6)
    x[0, 1] = 0.5
    table = verdicts.verdicts(x, "abc").set_index("arm")
    assert table.loc["a", "verdict"] == "best" and table.loc["b", "verdict"] == table.loc["c", "verdict"] == "no runs"


def _population(kind: str, k: int = 6, size: int = 4000, seed: int = 0) -> np.ndarray:
    """'Stored runs' to resample: `(size seeds, k)` with a seed effect shared by the initializers."""
    rng = np.random.default_rng(seed)
    x = 0.85 + rng.normal(0, 0.01, (size, 1)) + rng.normal(0, 0.01, (size, k))
    if kind == "gridded":  # accuracies are k / n_test on a 200-example test set
        x = rng.binomial(200, np.clip(x, 0, 1)) / 200
    if kind == "stuck":  # 8% of the runs stuck at chance
        x = np.where(rng.random((size, k)) < 0.08, 0.5, x)
    return x - np.nanmean(x, 0) + 0.85  # equal means: the null


@pytest.mark.parametrize("kind", ["normal", "gridded", "stuck"])
@pytest.mark.parametrize("n", [8, 16, 32])
def test_familywise_error_and_coverage_under_the_null(kind, n):
    reps = 200
    cell = calibrate.simulate(_population(kind), "null", n, reps, margin=0.005, shift=0.0, draws=1000, rng=n)
    se = np.sqrt(0.05 * 0.95 / reps)
    assert cell.false_claims <= 0.05 + 3 * se, cell
    assert cell.simultaneous_coverage >= 0.93 - 3 * se, cell


@pytest.mark.parametrize("kind", ["normal", "gridded"])
@pytest.mark.parametrize("n", [8, 16, 32])
def test_a_shift_is_found_without_false_claims(kind, n):
    reps = 150
    population = _population(kind)
    shift = 2 * np.std(population[:, 0] - population[:, 1])  # two sd of the paired differences
    cell = calibrate.simulate(population, "shift", n, reps, margin=0.005, shift=shift, draws=1000, rng=n)
    se = np.sqrt(0.05 * 0.95 / reps)
    assert cell.false_claims <= 0.05 + 3 * se and cell.simultaneous_coverage >= 0.93 - 3 * se, cell
    assert cell.power >= (0.5 if n == 8 else 0.9), cell


def test_per_initializer_intervals_cover_on_resampled_real_runs():
    """The committed default report's runs (real training), resampled at 8 seeds: Student t intervals cover."""
    from pathlib import Path

    from bench.analysis import compare, stats
    from bench.reporting import report

    results, _ = report.load(Path(__file__).parents[1] / "reports" / "default")
    final = stats.final_epoch(results)
    for _, task in final.groupby("dataset"):
        _, values = compare.final_matrix(task, "test_accuracy")
        values = values[:, np.nanstd(values, 0) > 0.002]  # zeros' single value has nothing to cover
        cell = calibrate.simulate(values, "resample", 8, 150, 0.005, 0.01, draws=500, rng=1)
        assert cell.mean_coverage >= 0.93 - 3 * np.sqrt(0.05 * 0.95 / (150 * values.shape[1])), cell


def test_mcb_by_hand():
    low = np.array([[0, -1, 2], [-3, 0, 1], [-6, -5, 0]], float)
    high = np.array([[0, 3, 6], [1, 0, 5], [-2, -1, 0]], float)
    labels, to_low, to_high = verdicts.mcb(low, high, np.array([1.0, 0.0, -4.0]), margin=3.5)
    assert labels == ["best", "equivalent", "worse"]
    np.testing.assert_array_equal(to_low, [-1, -3, -6])
    np.testing.assert_array_equal(to_high, [3, 1, -2])
    assert pd.Series(labels).isin(verdicts.VERDICTS).all()
