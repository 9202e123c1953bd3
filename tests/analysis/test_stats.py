"""Statistics: our intervals are scipy's, and they cover the true mean as often as promised."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.analysis import stats


def test_bootstrap_ci_equals_scipy_with_the_same_generator():
    values = np.random.default_rng(1).normal(0.8, 0.05, size=24)
    ours = stats.bootstrap_mean_ci(values, 0.95, 2000, np.random.default_rng(7))
    ref = sps.bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=2000, method="BCa",
                        rng=np.random.default_rng(7)).confidence_interval
    assert ours == (ref.low, ref.high)
    assert ours == stats.bootstrap_mean_ci(values, 0.95, 2000, 7)  # same seed, same interval


def test_degenerate_and_tiny_samples():
    assert stats.bootstrap_mean_ci(np.full(8, 0.465)) == (0.465, 0.465)
    low, high = stats.bootstrap_mean_ci(np.array([0.5]))
    assert np.isnan(low) and np.isnan(high)


def test_bca_ci_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    reps, n, hits = 300, 30, 0
    for _ in range(reps):
        x = rng.exponential(1.0, size=n)  # skewed, true mean 1
        low, high = stats.bootstrap_mean_ci(x, 0.95, 999, rng, method="BCa")
        hits += low <= 1.0 <= high
    # BCa on n=30 exponential undercovers slightly (about 0.92-0.94); 300 reps give sd 0.013
    assert 0.88 <= hits / reps <= 0.98


def _results(values_by_init, diverged_by_init=None):
    rows = []
    for init, values in values_by_init.items():
        for seed, v in enumerate(values):
            for epoch in (0, 1):
                div = bool(diverged_by_init and seed in diverged_by_init.get(init, ()))
                rows.append(dict(dataset="d", model="m", arm=init, seed=seed, epoch=epoch,
                                 test_accuracy=v if epoch else 0.1, test_loss=1 - v, diverged=div and epoch == 1))
    return pd.DataFrame(rows)


def test_summarize_uses_the_last_epoch_and_scores_diverged_runs_as_untrained():
    table = _results({"a": [0.9, 0.8, 0.7, np.nan], "b": [0.5, 0.6, 0.7, 0.8]}, {"a": [3]})
    settings = stats.Settings(n_resamples=500)
    summary = stats.summarize(table, ["test_accuracy"], settings).set_index("arm")
    a, b = summary.loc["a"], summary.loc["b"]
    scored = np.array([0.9, 0.8, 0.7, 0.1])  # the untrained networks' median accuracy, below any trained run
    assert (a.diverged, a.n, a.runs) == (1, 4, 4)
    assert a["mean"] == pytest.approx(scored.mean()) and a["std"] == pytest.approx(scored.std(ddof=1))
    assert a["median"] == pytest.approx(0.75) and (a["min"], a["max"]) == (pytest.approx(0.1), pytest.approx(0.9))
    assert (a.diverged_low, a.diverged_high) == pytest.approx(stats.wilson_ci(1, 4))
    assert b["mean"] == pytest.approx(0.65) and b.mean_low < 0.65 < b.mean_high
    # the interval of a group depends on its own data and name only, not on the other groups
    alone = stats.summarize(table[table.arm == "b"], ["test_accuracy"], settings)
    assert alone.iloc[0]["mean_low"] == b.mean_low


def test_iqm_is_the_25_percent_trimmed_mean_and_its_ci_is_scipys():
    x = np.random.default_rng(3).standard_t(3, size=40)
    assert stats.iqm(x) == pytest.approx(sps.trim_mean(x, 0.25))
    sorted_x = np.sort(x)
    assert stats.iqm(x) == pytest.approx(sorted_x[10:30].mean())  # by hand: the middle 20 of 40
    settings = stats.Settings(level=0.9, method="percentile", n_resamples=3000, seed=11)
    ref = sps.bootstrap((x,), lambda v, axis: sps.trim_mean(v, 0.25, axis=axis), confidence_level=0.9,
                        n_resamples=3000, method="percentile", rng=np.random.default_rng(11)).confidence_interval
    assert stats.bootstrap_ci(x, stats.iqm, settings) == (ref.low, ref.high)


def test_wilson_interval_is_statsmodels_at_every_count():
    """Against an independent code (statsmodels, in the test extra): every k of n up to 40, at two levels."""
    from statsmodels.stats.proportion import proportion_confint

    for n in range(1, 41):
        for k in range(n + 1):
            for level in (0.9, 0.95):
                expected = proportion_confint(k, n, alpha=1 - level, method="wilson")
                assert stats.wilson_ci(k, n, level) == pytest.approx(expected, abs=1e-14), (k, n, level)


def test_wilson_interval_matches_its_formula():
    k, n, z = 3, 32, sps.norm.ppf(0.975)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert stats.wilson_ci(k, n) == pytest.approx((centre - half, centre + half))
    low, high = stats.wilson_ci(0, 32)
    assert low == pytest.approx(0, abs=1e-12) and 0 < high < 0.15  # zero diverged still has an upper bound


def test_learning_curve_metrics_by_hand():
    rows = [dict(dataset="d", model="m", arm="a", seed=0, epoch=e, test_accuracy=v, diverged=False)
            for e, v in enumerate([0.1, 0.5, 0.9, 0.8])]
    curves = stats.run_curves(pd.DataFrame(rows), "test_accuracy", threshold=0.85).iloc[0]
    assert curves.final == 0.8 and curves.best == 0.9 and curves.best_epoch == 2
    assert curves.epochs_to_threshold == 2
    assert curves.auc == pytest.approx((0.3 + 0.7 + 0.85) / 3)  # three trapezoids over 3 epochs
    never = stats.run_curves(pd.DataFrame(rows), "test_accuracy", threshold=0.95).iloc[0]
    assert np.isnan(never.epochs_to_threshold)
    loss = [dict(r, test_loss=1 - r["test_accuracy"]) for r in rows]
    assert stats.run_curves(pd.DataFrame(loss), "test_loss", threshold=0.15).iloc[0].epochs_to_threshold == 2


def test_learning_curve_metrics_of_many_runs_are_each_runs_own():
    """Shuffled rows, a diverged run left out, one run a different length: every run as if alone, in first-seen
    order."""
    rng = np.random.default_rng(5)
    rows = [dict(dataset="d", model="m", arm=arm, seed=seed, epoch=e, test_accuracy=float(rng.random()),
                 diverged=(arm, seed, e) == ("b", 1, 3))
            for arm in "ab" for seed in range(3) for e in range(5 if (arm, seed) != ("a", 2) else 3)]
    frame = pd.DataFrame(rows).sample(frac=1, random_state=0).reset_index(drop=True)
    curves = stats.run_curves(frame, "test_accuracy", threshold=0.6)
    runs = frame.drop_duplicates(["arm", "seed"])[["arm", "seed"]]
    expected = [run for run in runs.itertuples(index=False) if (run.arm, run.seed) != ("b", 1)]
    assert list(zip(curves.arm, curves.seed)) == [(run.arm, run.seed) for run in expected]
    for row in curves.itertuples():
        run = frame[(frame.arm == row.arm) & (frame.seed == row.seed)].sort_values("epoch")
        values = run.test_accuracy.to_numpy()
        assert row.final == values[-1] and row.best == values.max() and row.best_epoch == values.argmax()
        above = np.flatnonzero(values >= 0.6)
        assert row.epochs_to_threshold == above[0] if above.size else np.isnan(row.epochs_to_threshold)
        assert row.auc == pytest.approx(np.trapezoid(values) / (len(values) - 1))


def test_divergence_epochs_by_hand():
    """Seed 0 diverges at epoch 1, seed 1 at 3, seed 2 never: 2 of 3, first 1, median 2, last 3."""
    rows = []
    for seed, at in [(0, 1), (1, 3), (2, None)]:
        for epoch in range(5):
            rows.append({"dataset": "d", "model": "m", "arm": "bad", "seed": seed, "epoch": epoch,
                         "diverged": at is not None and epoch >= at})
            rows.append({"dataset": "d", "model": "m", "arm": "good", "seed": seed, "epoch": epoch,
                         "diverged": False})
    table = stats.divergence(pd.DataFrame(rows))
    assert table[["arm", "runs", "diverged", "first_epoch", "median_epoch", "last_epoch"]].values.tolist() == [
        ["bad", 3, 2, 1.0, 2.0, 3.0]]


def test_accuracy_intervals_stay_within_0_and_1_and_ties_are_floored_at_the_resolution():
    """Two seeds of 0.6 and 0.99 gave [-0.007, 1.607] before; a column of equal values (runs tied on a 1/200
    lattice) gets the lattice's rounding spread, not a point."""
    table = _results({"a": [0.6, 0.99], "b": [0.85, 0.85, 0.85, 0.85], "c": [0.8, 0.805, 0.815, 0.82]})
    summary = stats.summarize(table, ["test_accuracy"], stats.Settings(n_resamples=100)).set_index("arm")
    assert 0 <= summary.loc["a", "mean_low"] and summary.loc["a", "mean_high"] == 1.0
    half = sps.t.ppf(0.975, 3) * (0.005 / np.sqrt(12)) / 2  # the step 0.005 of c, one value's rounding sd
    assert (summary.loc["b", "mean_low"], summary.loc["b", "mean_high"]) == pytest.approx((0.85 - half, 0.85 + half))


def test_the_proportion_interval_is_clopper_pearson_at_the_effective_size():
    """Korn & Graubard 1998: n_eff = p (1 - p) / V, scaled by (z / t_df)^2; Clopper-Pearson of p n_eff in n_eff."""
    x = np.array([0.96, 0.97, 0.975, 0.965, 0.97, 0.98, 0.96, 0.97])
    low, high = stats.proportion_interval(x, examples=200, level=0.95, extra_var=2e-4, extra_df=50.0)
    v_seeds = x.var(ddof=1) / 8
    df = (v_seeds + 2e-4) ** 2 / (v_seeds**2 / 7 + 2e-4**2 / 50)
    n_eff = x.mean() * (1 - x.mean()) / (v_seeds + 2e-4) * (sps.norm.ppf(0.975) / sps.t.ppf(0.975, df)) ** 2
    expected = (sps.beta.ppf(0.025, x.mean() * n_eff, n_eff - x.mean() * n_eff + 1),
                sps.beta.ppf(0.975, x.mean() * n_eff + 1, n_eff - x.mean() * n_eff))
    assert (low, high) == pytest.approx(expected)
    # every run right on every example: the examples themselves are the sample, as in Clopper-Pearson's n of n
    low, high = stats.proportion_interval(np.ones(8), examples=200)
    assert (low, high) == pytest.approx((0.025 ** (1 / 200), 1.0))


def test_t_interval_is_scipys_and_iqm_intervals_start_at_16_seeds():
    x = np.random.default_rng(5).normal(0.8, 0.02, 8)
    ref = sps.t.interval(0.9, 7, loc=x.mean(), scale=sps.sem(x))
    assert stats.t_interval(x, 0.9) == pytest.approx(ref, rel=1e-12)
    assert stats.t_interval(np.full(5, 0.465)) == (0.465, 0.465)
    table = _results({"a": list(np.linspace(0.7, 0.9, 15)), "b": list(np.linspace(0.7, 0.9, 16))})
    summary = stats.summarize(table, ["test_accuracy"], stats.Settings(n_resamples=300)).set_index("arm")
    assert np.isnan(summary.loc["a", "iqm_low"]) and summary.loc["b", "iqm_low"] < summary.loc["b", "iqm"]
    assert (summary.loc["a", "mean_low"], summary.loc["a", "mean_high"]) == pytest.approx(
        stats.t_interval(np.linspace(0.7, 0.9, 15)))


def test_an_extra_variance_term_widens_the_mean_and_withholds_the_iqm_interval():
    values = list(np.linspace(0.7, 0.9, 16))
    table = _results({"b": values})
    settings = stats.Settings(n_resamples=300)
    plain = stats.summarize(table, ["test_accuracy"], settings).iloc[0]
    extra = stats.summarize(table, ["test_accuracy"], settings, {("d", "b", "test_accuracy"): [(1e-4, np.inf)]}).iloc[0]
    assert (extra.mean_low, extra.mean_high) == pytest.approx(stats.t_interval(np.array(values), 0.95, 1e-4))
    assert extra.mean_high - extra.mean_low > plain.mean_high - plain.mean_low
    assert np.isfinite(plain.iqm_low) and np.isnan(extra.iqm_low)  # a bootstrap over runs cannot count the test set


def test_descriptive_statistics_match_scipy_and_a_new_one_is_one_line(monkeypatch):
    from scipy import stats as scipy_stats

    x = np.random.default_rng(3).normal(size=40)
    got = stats.describe(x)
    assert got["iqm"] == pytest.approx(scipy_stats.trim_mean(x, 0.25))
    assert got["std"] == pytest.approx(np.std(x, ddof=1)) and got["median"] == np.median(x)
    assert all(np.isnan(v) for v in stats.describe(np.array([])).values())
    monkeypatch.setitem(stats.DESCRIPTIVE, "mad", lambda v: float(scipy_stats.median_abs_deviation(v)))
    frame = pd.DataFrame({"dataset": "d", "model": "m", "arm": "a", "seed": range(40), "epoch": 1,
                          "test_accuracy": x, "diverged": False})
    row = stats.summarize(frame, ["test_accuracy"]).iloc[0]
    assert row["mad"] == pytest.approx(scipy_stats.median_abs_deviation(x)) and row["mean"] == pytest.approx(x.mean())


def test_a_mean_interval_stays_within_what_its_metric_can_be():
    """At 2 seeds a t interval of a loss reached below 0, of an R^2 above 1: each is clipped to its metric's range,
    and where the range does not bind the interval is the t interval itself."""
    loss = np.array([0.05, 2.6])  # two seeds far apart: mean 1.325, t(1) half-width ~ 16
    low, high = stats.mean_interval(loss, "test_loss")
    t_low, t_high = stats.t_interval(loss, 0.95)
    assert t_low < 0 and low == 0.0 and high == t_high
    low, high = stats.mean_interval(np.array([0.2, 0.99]), "test_r2")
    assert high == 1.0 and low == stats.t_interval(np.array([0.2, 0.99]), 0.95)[0]
    tight = np.array([0.30, 0.31, 0.29, 0.30])
    assert stats.mean_interval(tight, "test_loss") == stats.t_interval(tight, 0.95)  # far from 0: unchanged
    assert stats.metric_range("train_accuracy") == (0.0, 1.0) and stats.metric_range("val_loss") == (0.0, np.inf)
