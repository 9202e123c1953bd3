"""Statistics: our intervals are scipy's, and they cover the true mean as often as promised."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench import stats


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
                rows.append(dict(dataset="d", model="m", initializer=init, seed=seed, epoch=epoch,
                                 test_accuracy=v if epoch else 0.1, test_loss=1 - v, diverged=div and epoch == 1))
    return pd.DataFrame(rows)


def test_summarize_uses_the_last_epoch_and_leaves_out_diverged_runs():
    table = _results({"a": [0.9, 0.8, 0.7, np.nan], "b": [0.5, 0.6, 0.7, 0.8]}, {"a": [3]})
    summary = stats.summarize(table, n_resamples=500).set_index("initializer")
    assert summary.loc["a", "diverged"] == 1 and summary.loc["a", "n"] == 3 and summary.loc["a", "runs"] == 4
    assert summary.loc["a", "test_accuracy_mean"] == pytest.approx(0.8)
    assert summary.loc["b", "test_accuracy_mean"] == pytest.approx(0.65)
    assert summary.loc["b", "test_accuracy_low"] < 0.65 < summary.loc["b", "test_accuracy_high"]
    # the interval of a group depends on its own data and name only, not on the other groups
    alone = stats.summarize(table[table.initializer == "b"], n_resamples=500)
    assert alone.iloc[0]["test_accuracy_low"] == summary.loc["b", "test_accuracy_low"]
