"""Across tasks: normalized scores by hand, the exact Friedman test and critical difference against a brute-force
enumeration, and the stratified bootstrap intervals cover."""

import itertools

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


def _brute_force(ranks: np.ndarray, alpha: float = 0.05) -> tuple[float, float | None]:
    """Exact Friedman p and critical difference by enumerating every task's permutations (first task included)."""
    n_tasks, k = ranks.shape
    statistic = lambda sums: 12 / (n_tasks * k * (k + 1)) * (sums**2).sum() - 3 * n_tasks * (k + 1)  # noqa: E731
    observed = statistic(ranks.sum(0))
    stats_, spans = [], []
    for orders in itertools.product(itertools.permutations(range(k)), repeat=n_tasks):
        sums = sum(row[list(order)] for row, order in zip(ranks, orders))
        stats_.append(statistic(sums))
        spans.append((sums.max() - sums.min()) / n_tasks)
    stats_, spans = np.array(stats_), np.round(np.array(spans), 9)
    rare = [g for g in np.unique(spans) if np.mean(spans >= g) <= alpha]
    return float(np.mean(stats_ >= observed - 1e-9)), (min(rare) if rare else None)


@pytest.mark.parametrize("shape", [(2, 3), (3, 3), (2, 4), (3, 4)])
def test_the_rank_test_is_exact(shape):
    n_tasks, k = shape
    rng = np.random.default_rng(k * 10 + n_tasks)
    tasks = {f"t{t}": {n: rng.normal(0.8 + 0.01 * i, 0.01, 5) for i, n in enumerate("abcd"[:k])}
             for t in range(n_tasks)}
    result = aggregate.rank_test(tidy(tasks))
    _, ranks = aggregate.mean_ranks(tidy(tasks), "test_accuracy")
    p, cd = _brute_force(ranks)
    assert result["exact"] and result["p"] == pytest.approx(p) and result["cd"] == cd
    if shape == (2, 3):  # the largest gap, 2, happens 1 time in 6 under the null: no pair can differ
        assert result["cd"] is None


def test_two_tasks_of_eight_get_the_exact_p_not_the_chi_squares():
    """The default preset's ranks (review: chi-square p 0.154, exact 0.098; Nemenyi's CD 7.42 > the largest gap 7)."""
    ranks = np.array([[8, 1, 3, 4, 6, 7, 5, 2], [8, 5, 4, 2, 7, 6, 1, 3]], float)
    tasks = {f"t{t}": {n: np.full(3, 0.9 - 0.01 * r) for n, r in zip("abcdefgh", row)} for t, row in enumerate(ranks)}
    result = aggregate.rank_test(tidy(tasks))
    chi2 = sps.friedmanchisquare(*ranks.T).pvalue
    assert result["p"] < chi2 and result["p"] == pytest.approx(0.0983, abs=5e-4)
    assert result["cd"] <= 7  # a gap two mean ranks can have


def test_many_tasks_use_seeded_permutations_close_to_the_chi_square():
    rng = np.random.default_rng(0)
    tasks = {f"t{t}": {n: rng.normal(0.8 + 0.004 * i, 0.01, 5) for i, n in enumerate("abcd")} for t in range(12)}
    result = aggregate.rank_test(tidy(tasks))
    _, ranks = aggregate.mean_ranks(tidy(tasks), "test_accuracy")
    assert not result["exact"] and result["p"] == aggregate.rank_test(tidy(tasks))["p"]  # seeded
    assert result["p"] == pytest.approx(sps.friedmanchisquare(*ranks.T).pvalue, abs=0.02)
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


def test_unpaired_runs_of_unequal_counts_are_resampled_each_on_its_own():
    """Each resample keeps every initializer's own number of runs (drawn from its runs alone); paired runs are
    drawn by seed, the same rows for every initializer."""
    rng = np.random.default_rng(0)
    scores = np.full((8, 2), np.nan)
    scores[:, 0], scores[:3, 1] = np.arange(8.0), 100 + np.arange(3.0)
    draws = aggregate.stratum(scores, rng, 500)
    assert (np.isfinite(draws[:, :, 0]).sum(1) == 8).all() and (np.isfinite(draws[:, :, 1]).sum(1) == 3).all()
    assert set(np.unique(draws[:, :3, 1])) <= {100.0, 101.0, 102.0}
    paired = aggregate.stratum(np.stack([np.arange(8.0), 10 + np.arange(8.0)], axis=1), rng, 50)
    np.testing.assert_array_equal(paired[:, :, 1] - paired[:, :, 0], 10.0)


def test_performance_profile_counts_runs_above_each_threshold():
    table = tidy({"t1": {"a": np.array([0.9, 0.5]), "b": np.array([0.8, 0.8])},
                  "t2": {"a": np.array([0.6, 0.6]), "b": np.array([0.4, 0.4])}})
    profile = aggregate.performance_profile(table, "test_accuracy", np.array([0.0, 0.9]))
    _, _, scores = aggregate.normalized_scores(table, "test_accuracy")
    pooled = np.concatenate(scores)
    assert profile.loc[0.9, "a"] == np.mean(pooled[:, 0] > 0.9) and profile.loc[0.0, "b"] == 1.0
