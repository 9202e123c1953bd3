"""Verdicts from the simultaneous intervals: Hsu's MCB by hand, the effect size's interval, what the verdicts say
on clear cases, ties and failures. (The intervals: tests/analysis/test_maxt.py; error rates:
tests/analysis/test_error_rates.py.)"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.analysis import verdicts


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
