"""Verdicts from the simultaneous intervals: Hsu's MCB by hand, the effect size's interval, what the verdicts say
on clear cases, ties and failures. (The intervals: tests/analysis/test_maxt.py; error rates:
tests/analysis/test_error_rates.py.)"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.analysis import maxt, monte_carlo, verdicts


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


def test_mcb_by_hand():
    low = np.array([[0, -1, 2], [-3, 0, 1], [-6, -5, 0]], float)
    high = np.array([[0, 3, 6], [1, 0, 5], [-2, -1, 0]], float)
    labels, to_low, to_high = verdicts.mcb(low, high, np.array([1.0, 0.0, -4.0]), margin=3.5)
    assert labels == ["best", "equivalent", "worse"]
    np.testing.assert_array_equal(to_low, [-1, -3, -6])
    np.testing.assert_array_equal(to_high, [3, 1, -2])
    assert pd.Series(labels).isin(verdicts.VERDICTS).all()


def test_ties_on_every_seed_give_no_verdict_from_two_seeds():
    """The review's case: 0.5 pp apart on both seeds was 'worse' with p = 0.0005 and a point interval."""
    table = verdicts.verdicts([[0.850, 0.845], [0.860, 0.855]], ["a", "b"]).set_index("arm")
    assert table.loc["b", "verdict"] == "inconclusive" and not table.loc["a", "significant"]
    assert table.loc["b", "low"] < table.loc["b", "diff"] < table.loc["b", "high"] and table.loc["b", "floored"]
    assert table.loc["b", "p"] > 0.05


def test_trimmed_verdicts_see_through_a_few_stuck_runs():
    """One seed stuck at chance in a better initializer: the mean's comparison loses it, the trimmed one keeps it."""
    rng = np.random.default_rng(8)
    x = 0.9 + rng.normal(0, 0.003, (16, 3)) + rng.normal(0, 0.01, (16, 1))
    x[:, 2] -= 0.02
    x[[3, 9], 0] = 0.1  # two runs of the best initializer stuck at chance
    mean = verdicts.verdicts(x, "abc", draws=4000).set_index("arm")
    trimmed = verdicts.verdicts(x, "abc", draws=4000, statistic="trimmed").set_index("arm")
    assert trimmed.loc["a", "mean"] == pytest.approx(sps.trim_mean(x[:, 0], 0.2))
    assert trimmed.loc["c", "verdict"] == "worse" and trimmed.loc["b", "verdict"] != "worse"
    assert mean.loc["a", "verdict"] != "best"  # the stuck runs cost the mean its lead


def _on_the_edge(draws_for_c: int = 200_000) -> np.ndarray:
    """5 seeds x 2 initializers, the second's interval to the first ending at 0 at the critical value of many
    draws (one pair: its step-down p value is the single-step one, on its threshold too)."""
    rng = np.random.default_rng(11)
    x = 0.85 + rng.normal(0, 0.01, (5, 1)) + rng.normal(0, 0.004, (5, 2))
    pairs, c, _ = maxt.simultaneous_intervals(x, "ab", 0.95, 0, draws_for_c)
    x[:, 1] += pairs.diff[0, 1] - c * pairs.se[0, 1] * (1 + 1e-4)  # theta_b - theta_a = -c se, a hair under
    return x


def test_a_verdict_on_the_edge_of_the_draws_is_the_same_under_every_null_seed_and_said_so():
    """Its interval to the best ends within the critical value's Monte Carlo error of 0: at a fixed number of draws
    the verdict is worse under some null seeds and inconclusive under others; drawn on where undecided and made only
    where the draws carry it, it is inconclusive under every seed, marked undecided, after 10x the draws (and the
    best is not called better than all)."""
    x = _on_the_edge()
    plain = set()
    for seed in range(10):
        pairs, c, _ = maxt.simultaneous_intervals(x, "ab", 0.95, seed, 2_000)
        plain.add(bool(pairs.diff[1, 0] + c * pairs.se[1, 0] < 0))
        table = verdicts.verdicts(x, "ab", rng=seed, draws=2_000).set_index("arm")
        assert table.loc["b", "verdict"] == "inconclusive" and table["undecided"].all(), seed
        assert not table.loc["a", "significant"] and (table["draws"] == 20_000).all()
    assert plain == {True, False}  # the point estimate alone is the draws' coin


def test_clear_verdicts_take_the_draws_asked_for_and_equal_the_plain_procedures():
    rng = np.random.default_rng(4)
    x = 0.85 + rng.normal(0, 0.01, (8, 1)) + rng.normal(0, 0.005, (8, 5))
    x[:, 4] -= 0.05
    table = verdicts.verdicts(x, "abcde", draws=2_000)
    assert (table["draws"] == 2_000).all() and not table["undecided"].any()
    pairs, c, p = maxt.simultaneous_intervals(x, "abcde", 0.95, 0, 2_000)
    labels, _ = verdicts.with_step_down(verdicts.mcb(pairs.diff - c * pairs.se, pairs.diff + c * pairs.se,
                                                     x.mean(0), 0.005)[0], pairs.diff, p, 0.95)
    assert dict(zip(table["arm"], table["verdict"])) == dict(zip("abcde", labels))
    assert table["critical_value"].iloc[0] == c


@pytest.mark.parametrize("level, draws", [(0.95, 1_000), (0.99, 5_000), (0.5, 200)])
def test_the_quantile_bounds_cover_the_true_quantile_as_often_as_promised(level, draws):
    """4,000 samples of uniform draws at risk 0.05: the bounds miss the true quantile at most 0.05 of the time (a
    doubled rate, 0.10, gives at least 0.088 with probability 1 - 1e-6; the bound allows 0.065), and each end is the
    order statistic the binomial distribution names."""
    rng = np.random.default_rng(int(level * 100) + draws)
    missed = 0
    for _ in range(4_000):
        sample = np.sort(rng.uniform(size=draws))
        low, high = monte_carlo.quantile_bounds(sample, level, 0.05)
        missed += not (low <= level <= high)
    assert missed / 4_000 <= 0.065
    sample = np.arange(1.0, draws + 1)  # the j-th order statistic is j
    low, high = monte_carlo.quantile_bounds(sample, level, 0.05)
    assert sps.binom.cdf(low - 1, draws, level) <= 0.025 < sps.binom.cdf(low, draws, level)
    assert sps.binom.sf(high - 1, draws, level) <= 0.025 < sps.binom.sf(high - 2, draws, level)


def test_the_p_value_bounds_are_clopper_pearsons():
    for successes, trials in [(0, 100), (3, 100), (50, 100), (100, 100), (17, 10_000)]:
        low, high = monte_carlo.proportion_bounds(np.array([successes]), trials, 0.01)
        exact = sps.binomtest(successes, trials).proportion_ci(0.99, method="exact")
        assert (low[0], high[0]) == pytest.approx((exact.low, exact.high), abs=1e-12)
