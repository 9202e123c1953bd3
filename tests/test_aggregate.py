"""Across tasks: normalized scores by hand, Friedman's test is scipy's, Nemenyi's CD is Demšar's formula, and the
stratified bootstrap intervals cover."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.analysis import aggregate
from bench.analysis.stats import Settings


def tidy(tasks: dict[str, dict[str, np.ndarray]], untrained: float = 0.1) -> pd.DataFrame:
    """Results with epoch 0 at ``untrained`` and epoch 1 at values[task][initializer][seed]."""
    rows = []
    for task, values in tasks.items():
        for name, v in values.items():
            for seed, x in enumerate(v):
                for epoch, acc in ((0, untrained), (1, x)):
                    rows.append(dict(dataset=task, model="m", arm=name, seed=seed, epoch=epoch,
                                     test_accuracy=acc, test_loss=1 - acc, diverged=False))
    return pd.DataFrame(rows)


def test_scores_are_normalized_between_untrained_and_the_best_mean():
    table = tidy({"t1": {"a": np.array([0.9, 0.7]), "b": np.array([0.5, 0.5])},
                  "t2": {"a": np.array([0.3, 0.3]), "b": np.array([0.55, 0.65])}})
    names, tasks, scores = aggregate.normalized_scores(table, "test_accuracy")
    assert names == ["a", "b"] and tasks == ["t1 / m", "t2 / m"]
    np.testing.assert_allclose(scores[0], [[(0.9 - 0.1) / 0.7, 0.4 / 0.7], [0.6 / 0.7, 0.4 / 0.7]])
    np.testing.assert_allclose(scores[1][:, 1].mean(), 1.0)  # the best mean of the task is 1
    _, _, loss = aggregate.normalized_scores(table, "test_loss")  # lower is better: the same scale
    np.testing.assert_allclose(loss[0], scores[0])


def test_friedman_is_scipys_and_the_critical_difference_is_demsars():
    rng = np.random.default_rng(0)
    tasks = {f"t{t}": {n: rng.normal(0.8 + 0.01 * i, 0.01, 5) for i, n in enumerate("abcd")} for t in range(6)}
    table = tidy(tasks)
    result = aggregate.rank_test(table)
    _, ranks = aggregate.mean_ranks(table, "test_accuracy")
    means = np.array([[v.mean() for v in task.values()] for task in tasks.values()])
    np.testing.assert_array_equal(ranks, sps.rankdata(-means, axis=1))
    ref = sps.friedmanchisquare(*ranks.T)
    assert (result["statistic"], result["p"]) == pytest.approx((ref.statistic, ref.pvalue))
    assert result["cd"] == pytest.approx(2.569 * np.sqrt(4 * 5 / (6 * 6)), rel=1e-3)  # q_0.05 = 2.569 for k = 4
    assert aggregate.rank_test(tidy({"t": tasks["t0"]})) is None  # one task: no rank test


def test_stratified_bootstrap_intervals_cover_the_population_iqm():
    """Two tasks whose normalized scores are N(1, 0.1) around a known centre: the IQM of normal data is its mean."""
    rng = np.random.default_rng(1)
    hits, reps = 0, 60
    for _ in range(reps):
        tasks = {t: {"a": 0.1 + 0.8 * rng.normal(1, 0.1, 16), "b": np.full(16, 0.9)} for t in ("t1", "t2")}
        table = aggregate.aggregate(tidy(tasks), settings=Settings(seed=int(rng.integers(1 << 30))), n_resamples=400)
        row = table.set_index("arm").loc["a"]
        hits += row.iqm_low <= 1.0 <= row.iqm_high
    assert hits / reps >= 0.85  # 95% nominal; 60 reps: sd 0.03
    again = aggregate.aggregate(tidy(tasks), n_resamples=400)
    pd.testing.assert_frame_equal(again, aggregate.aggregate(tidy(tasks), n_resamples=400))  # seeded


def test_performance_profile_counts_runs_above_each_threshold():
    table = tidy({"t1": {"a": np.array([0.9, 0.5]), "b": np.array([0.8, 0.8])},
                  "t2": {"a": np.array([0.6, 0.6]), "b": np.array([0.4, 0.4])}})
    profile = aggregate.performance_profile(table, "test_accuracy", np.array([0.0, 0.9]))
    _, _, scores = aggregate.normalized_scores(table, "test_accuracy")
    pooled = np.concatenate(scores)
    assert profile.loc[0.9, "a"] == np.mean(pooled[:, 0] > 0.9) and profile.loc[0.0, "b"] == 1.0
