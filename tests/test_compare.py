"""Comparisons: the tests are scipy's, the correction is Holm's, effect sizes match their
formulas, and on simulated runs the corrected tests hold their error rates."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from bench import compare
from bench.stats import Settings

FAST = Settings(n_resamples=300)


def tidy(values: dict[str, np.ndarray], dataset="d", diverged=None) -> pd.DataFrame:
    """A results table of one epoch: values[name][seed]."""
    rows = []
    for name, v in values.items():
        for seed, x in enumerate(v):
            rows.append(dict(dataset=dataset, model="m", initializer=name, seed=seed, epoch=1, test_accuracy=x,
                             test_loss=1 - x, diverged=bool(diverged and (name, seed) in diverged)))
    return pd.DataFrame(rows)


def test_holm_by_hand_and_as_statsmodels():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    np.testing.assert_allclose(compare.holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(compare.holm(p), multipletests(p, method="holm")[1])
    np.testing.assert_array_equal(np.isnan(compare.holm(np.array([0.01, np.nan]))), [False, True])


def test_paired_comparisons_use_scipy_tests_and_one_holm_family_per_task():
    rng = np.random.default_rng(0)
    base = rng.normal(0.8, 0.02, 16)
    values = {"best": base + 0.01, "b": base + rng.normal(0, 0.01, 16), "c": base - 0.005 + rng.normal(0, 0.01, 16)}
    table = pd.concat([tidy(values, "d1"), tidy({k: v[::-1] for k, v in values.items()}, "d2")])
    result = compare.compare(table, "test_accuracy", baseline="best", settings=FAST)
    assert len(result) == 4 and set(result.b) == {"best"}
    for _, row in result[result.dataset == "d1"].iterrows():
        x, y = values[row.a], values["best"]
        assert row.p_rank == pytest.approx(sps.wilcoxon(x, y).pvalue)
        assert row.p_t == pytest.approx(sps.ttest_rel(x, y).pvalue)
        assert row["diff"] == pytest.approx(x.mean() - y.mean())
    for _, family in result.groupby("dataset"):
        np.testing.assert_allclose(family.p_rank_holm, multipletests(family.p_rank, method="holm")[1])


def test_unpaired_comparisons_use_welch_and_mann_whitney():
    rng = np.random.default_rng(1)
    values = {"a": rng.normal(0.8, 0.02, 12), "b": rng.normal(0.79, 0.04, 12)}
    row = compare.compare(tidy(values), baseline="b", paired=False, settings=FAST).iloc[0]
    assert row.p_t == pytest.approx(sps.ttest_ind(values["a"], values["b"], equal_var=False).pvalue)
    assert row.p_rank == pytest.approx(sps.mannwhitneyu(values["a"], values["b"]).pvalue)
    assert row.n == 24


def test_diverged_seeds_drop_out_of_the_pairs():
    values = {"a": np.linspace(0.7, 0.9, 8), "b": np.linspace(0.6, 0.8, 8)}
    row = compare.compare(tidy(values, diverged={("a", 2), ("b", 5)}), baseline="b", settings=FAST).iloc[0]
    assert row.n == 6


def test_hedges_g_and_its_interval_by_hand():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 3.0, 4.0, 5.0, 6.0])
    s = np.sqrt((3 * np.var(x, ddof=1) + 4 * np.var(y, ddof=1)) / 7)
    g_expected = (1 - 3 / (4 * 9 - 9)) * (2.5 - 4.0) / s
    g, low, high = compare.hedges_g(x, y)
    assert g == pytest.approx(g_expected)
    se = np.sqrt(9 / 20 + g_expected**2 / 18)
    assert (low, high) == pytest.approx((g_expected - 1.959964 * se, g_expected + 1.959964 * se), rel=1e-5)


def test_a12_is_mann_whitney_u_over_pairs_with_a_bootstrap_interval():
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 5, 20).astype(float), rng.integers(1, 6, 15).astype(float)  # with ties
    u = sps.mannwhitneyu(x, y).statistic
    assert compare.a12(x, y) == pytest.approx(u / (20 * 15))
    value, low, high = compare.a12_ci(x, y, FAST, np.random.default_rng(0))
    assert low <= value <= high and 0 <= low and high <= 1
    assert compare.a12_ci(np.ones(4), np.zeros(4), FAST, np.random.default_rng(0)) == (1.0, 1.0, 1.0)


def _simulate(shift: float, reps: int, paired: bool, seed: int):
    """Per repetition: 4 initializers x 16 seeds, i0 shifted by `shift` sd, each tested against i3
    and Holm-corrected as one family (what `compare` does per task); returns the rates of
    any false rejection and of detecting i0."""
    rng = np.random.default_rng(seed)
    any_false, detected = 0, 0
    for _ in range(reps):
        common = rng.normal(0, 1, 16) if paired else 0  # a seed effect shared by the initializers
        values = [0.8 + 0.01 * (common + rng.normal(0, 1, 16)) for _ in range(4)]
        values[0] = values[0] + 0.01 * shift
        p = [compare.two_sample_tests(values[k], values[3], paired)["p_rank"] for k in range(3)]
        rejected = compare.holm(np.array(p)) < 0.05
        any_false += bool(rejected[1:].any() if shift else rejected.any())
        detected += bool(rejected[0])
    return any_false / reps, detected / reps


@pytest.mark.parametrize("paired", [True, False])
def test_corrected_tests_keep_the_familywise_error_near_alpha(paired):
    false_rate, _ = _simulate(shift=0.0, reps=400, paired=paired, seed=5)
    assert 0.02 <= false_rate <= 0.08, false_rate


def test_a_real_shift_is_detected():
    _, power = _simulate(shift=1.5, reps=150, paired=True, seed=6)
    assert power > 0.8, power


def test_ties_with_the_best():
    rng = np.random.default_rng(4)
    values = {"best": rng.normal(0.90, 0.01, 20), "close": rng.normal(0.8995, 0.01, 20), "bad": rng.normal(0.80, 0.01, 20)}
    ties = compare.tied_with_best(tidy(values), settings=FAST).set_index("initializer")
    assert ties.loc["best", "tied"] and ties.loc["close", "tied"] and not ties.loc["bad", "tied"]
    assert set(ties.best) == {"best"}
    values["gone"] = np.full(20, np.nan)  # every run diverged: nothing to test, so never "tied"
    ties = compare.tied_with_best(tidy(values, diverged={("gone", s) for s in range(20)}), settings=FAST)
    assert not ties.set_index("initializer").loc["gone", "tied"]


def test_seeds_needed_agrees_with_statsmodels_and_with_simulation():
    n = compare.seeds_needed(sd=0.01, delta=0.005)
    assert n == np.ceil(TTestPower().solve_power(0.5, alpha=0.05, power=0.8))
    rng = np.random.default_rng(8)
    hits = sum(sps.ttest_1samp(rng.normal(0.005, 0.01, int(n)), 0).pvalue < 0.05 for _ in range(2000))
    assert 0.77 <= hits / 2000 <= 0.86  # ~80% power at the advised number of seeds


def test_probability_matrix_is_complementary():
    rng = np.random.default_rng(9)
    matrix = compare.probability_matrix(tidy({k: rng.normal(size=10) for k in "abc"}), "test_accuracy", "d")
    for r, c in itertools.product(matrix.index, matrix.columns):
        assert matrix.loc[r, c] + matrix.loc[c, r] == pytest.approx(1.0)
    table = tidy({"a": np.array([0.9, 0.8]), "b": np.array([0.7, 0.6])})
    assert compare.probability_matrix(table, "test_accuracy", "d").loc["a", "b"] == 1.0
    assert compare.probability_matrix(table, "test_loss", "d").loc["a", "b"] == 1.0  # lower loss is better
