"""Across tasks: which initializer is best over several datasets or models, with intervals and ranks.

A single task's verdicts (:mod:`bench.analysis.verdicts`) do not say which initializer wins
*overall*. Following Agarwal et al. (2021, rliable) each run's final score is put on
a common scale per task, then aggregated over tasks and seeds with stratified
bootstrap intervals; following Demšar (2006) the initializers are ranked within each
task and the ranks compared over tasks (Friedman test, Nemenyi critical difference).

Normalization (per task): ``(x - untrained) / (best - untrained)`` in the better
direction, with ``best`` the highest initializer mean of the task and ``untrained``
the mean score of all its networks at epoch 0, before any training: 1 is the best
initializer's mean, 0 is what an untrained network scores (about chance). This plays
the part of rliable's random-agent reference; initialization studies have no human
one. A task where no initializer beats the untrained networks is left out. Diverged runs
are scored as untrained networks (``bench.analysis.scoring``), about 0 on this scale.

The rank test is exact: the Friedman statistic's null distribution is that of the observed
within-task ranks permuted independently in each task (all ``(k!)^(N-1)`` arrangements where
they are few, 20,000 seeded draws otherwise), and so is the critical difference of mean ranks
(the permutation distribution of their range, the exact counterpart of Nemenyi's studentized
range). The chi-square and studentized-range approximations are for many tasks: at 2 tasks
and 8 initializers they gave p = 0.154 where the exact p is 0.098, and a critical difference
(7.42) above the largest gap two mean ranks can have (7). Where no gap can reach 5%, no
critical difference is claimed.

References: Agarwal et al. 2021, arXiv:2108.13264 (IQM, optimality gap, performance
profiles, stratified bootstrap); Demšar 2006, JMLR 7 (Friedman + Nemenyi, critical
difference diagrams); Friedman 1937, JASA 32(200); Hollander, Wolfe & Chicken 2014,
*Nonparametric Statistical Methods*, 7.1-7.3 (exact Friedman, distribution-free multiple
comparisons of rank sums).
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from bench.analysis import compare
from bench.analysis.stats import TASK, Settings, group_rng, higher_is_better, iqm

THRESHOLDS = np.linspace(0, 1, 41)  # of the performance profiles
EXACT_LIMIT = 200_000  # arrangements of the ranks enumerated for an exact test; beyond, PERMUTATIONS draws
PERMUTATIONS = 20_000


def _column_means(values: np.ndarray) -> np.ndarray:
    """Means of the finite values of each column; NaN for a column of diverged runs only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, 0)


def normalized_scores(results: pd.DataFrame, metric: str) -> tuple[list[str], list[str], list[np.ndarray]]:
    """Final scores of every task on the ``[untrained mean, best mean] -> [0, 1]`` scale.

    Returns:
      ``(names, tasks, scores)``: the initializers common to every task, the task labels,
      and per task a `(seeds, initializers)` array (NaN = diverged) in the better direction.
    """
    sign = 1 if higher_is_better(metric) else -1
    per_task = {}
    untrained = results[results["epoch"] == 0].groupby(TASK, sort=False)[metric].mean()
    for key, _, names, values in compare.scored_matrices(results, metric):
        per_task[key] = (names, sign * values, sign * untrained.get(key, np.nan))
    common = [n for n in next(iter(per_task.values()))[0] if all(n in v[0] for v in per_task.values())] \
        if per_task else []
    tasks, scores = [], []
    for key, (names, values, reference) in per_task.items():
        values = values[:, [names.index(n) for n in common]]
        means = _column_means(values)
        if not np.isfinite(means).any() or not np.nanmax(means) > reference:
            continue
        scores.append((values - reference) / (np.nanmax(means) - reference))
        tasks.append(" / ".join(str(k) for k in key))
    return common, tasks, scores


def _aggregates(scores: list[np.ndarray]) -> np.ndarray:
    """`(3, initializers)`: IQM, mean and optimality gap of the pooled runs of every task."""
    pooled = np.concatenate(scores, axis=0)
    out = np.empty((3, pooled.shape[1]))
    for i in range(pooled.shape[1]):
        column = pooled[:, i][np.isfinite(pooled[:, i])]
        out[:, i] = (iqm(column), column.mean(), np.mean(np.maximum(1 - column, 0))) if column.size else np.nan
    return out


def stratum(scores: np.ndarray, rng: np.random.Generator, n_resamples: int) -> np.ndarray:
    """`(n_resamples, seeds, initializers)` resamples of one task's `(seeds, initializers)` scores: the seeds drawn
    with replacement jointly for every initializer where each has a score on the same seeds (paired), else each
    initializer's own scores drawn alone (unpaired runs of unequal counts, NaN past each one's count): a joint draw
    of rows would give an initializer a random number of its runs."""
    finite = np.isfinite(scores)
    if (finite == finite[:, :1]).all():
        return scores[rng.integers(0, len(scores), (n_resamples, len(scores)))]
    out = np.full((n_resamples, *scores.shape), np.nan)
    for j in range(scores.shape[1]):
        own = scores[finite[:, j], j]
        if own.size:
            out[:, :own.size, j] = own[rng.integers(0, own.size, (n_resamples, own.size))]
    return out


def aggregate(results: pd.DataFrame, metric: str = "test_accuracy", settings: Settings = Settings(),
              n_resamples: int = 2000) -> pd.DataFrame:
    """IQM, mean and optimality gap of normalized scores over tasks, with stratified bootstrap CIs.

    Each resample draws the seeds of every task with replacement, independently per
    task (strata) and jointly for the initializers of a task (their runs are paired), or each initializer's own
    runs where they are not the same seeds (:func:`resampled`). Percentile intervals at ``settings.level``.

    Returns:
      One row per initializer (best IQM first): ``tasks``, ``iqm, iqm_low, iqm_high,
      mean, mean_low, mean_high, gap, gap_low, gap_high``; empty with fewer than 2 tasks.
    """
    names, tasks, scores = normalized_scores(results, metric)
    if len(tasks) < 2:
        return pd.DataFrame()
    point = _aggregates(scores)
    rng = group_rng(settings.seed, metric, *tasks, "aggregate")
    resampled = np.concatenate([stratum(s, rng, n_resamples) for s in scores], axis=1)
    if np.isfinite(resampled).all():  # (resamples, runs, initializers) at once
        boot = np.stack([iqm(resampled, axis=1), resampled.mean(1), np.maximum(1 - resampled, 0).mean(1)], axis=1)
    else:  # diverged runs: each resample on its own finite values
        boot = np.stack([_aggregates([sample]) for sample in resampled])
    tail = (1 - settings.level) / 2
    low, high = np.nanquantile(boot, tail, axis=0), np.nanquantile(boot, 1 - tail, axis=0)
    table = pd.DataFrame({"arm": names, "tasks": len(tasks)})
    for row, label in enumerate(("iqm", "mean", "gap")):
        table[label], table[f"{label}_low"], table[f"{label}_high"] = point[row], low[row], high[row]
    return table.sort_values("iqm", ascending=False, kind="stable").reset_index(drop=True)


def performance_profile(results: pd.DataFrame, metric: str, thresholds: np.ndarray | None = None) -> pd.DataFrame:
    """Share of runs (over tasks and seeds) whose normalized score exceeds each threshold.

    Args:
      thresholds: where to evaluate it; by default :data:`THRESHOLDS` and every score a run reached, so that the
        step function is exact wherever the runs are (a grid alone left 4 steps between 0.9 and 1).

    Returns:
      `(thresholds, initializers)` table indexed by threshold.
    """
    names, _, scores = normalized_scores(results, metric)
    if not scores:
        return pd.DataFrame()
    pooled = np.concatenate(scores, axis=0)
    if thresholds is None:
        thresholds = np.union1d(THRESHOLDS, pooled[np.isfinite(pooled)])
    shares = {n: [np.mean(pooled[np.isfinite(pooled[:, i]), i] > t) for t in thresholds] for i, n in enumerate(names)}
    return pd.DataFrame(shares, index=pd.Index(thresholds, name="threshold"))


def mean_ranks(results: pd.DataFrame, metric: str) -> tuple[list[str], np.ndarray]:
    """`(tasks, initializers)` rank of each initializer's mean within each task (1 = best, ties averaged)."""
    names, _, scores = normalized_scores(results, metric)
    means = np.array([_column_means(s) for s in scores]) if scores else np.empty((0, len(names)))
    return names, stats.rankdata(-np.nan_to_num(means, nan=-np.inf), axis=1) if len(means) else means


def enumerable(n_tasks: int, k: int) -> bool:
    """Whether the ``(k!)^(N - 1)`` arrangements of ``k`` ranks over ``N`` tasks are few enough to enumerate."""
    return math.factorial(k) ** (n_tasks - 1) <= EXACT_LIMIT


def rank_arrangements(ranks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`(arrangements, k)` rank sums over tasks when each task's ranks are permuted: every arrangement (the first
    task's ranks held, which loses nothing by symmetry) where there are at most :data:`EXACT_LIMIT`, else
    :data:`PERMUTATIONS` seeded draws.

    Args:
      ranks: `(tasks, k)` ranks within each task (midranks for ties).
    """
    n_tasks, k = ranks.shape
    if enumerable(n_tasks, k):
        orders = np.array(list(itertools.permutations(range(k))))
        sums = ranks[0][None, :]
        for row in ranks[1:]:
            sums = (sums[:, None, :] + row[orders][None, :, :]).reshape(-1, k)
        return sums
    draws = rng.permuted(np.broadcast_to(ranks, (PERMUTATIONS, n_tasks, k)), axis=2)
    return draws.sum(1)


def rank_test(results: pd.DataFrame, metric: str = "test_accuracy", alpha: float = 0.05, seed: int = 0) -> dict | None:
    """Exact Friedman test of the ranks over tasks and the exact critical difference of mean ranks
    (:func:`ranks_test` on :func:`mean_ranks`).

    Returns:
      ``{"names", "mean_rank", "tasks", "statistic", "p", "cd", "exact"}`` (``exact``: every arrangement
      enumerated, else permutation draws); None with fewer than 2 tasks or 3 initializers.
    """
    names, ranks = mean_ranks(results, metric)
    n_tasks, k = ranks.shape if ranks.ndim == 2 else (0, 0)
    if n_tasks < 2 or k < 3:
        return None
    return {"names": names, **ranks_test(ranks, alpha, group_rng(seed, metric, "friedman"))}


def ranks_test(ranks: np.ndarray, alpha: float, rng: np.random.Generator) -> dict:
    """The Friedman statistic ``12 / (N k (k + 1)) sum_j R_j^2 - 3 N (k + 1)`` (``R_j`` rank sums over ``N``
    tasks) referred to its permutation distribution (:func:`rank_arrangements`), and the range of the mean ranks
    too: two initializers whose mean ranks differ by at least ``cd`` differ at ``alpha``, all pairs together.
    ``cd`` is None where even the largest possible gap is not that rare (no pair can differ with these tasks).

    Args:
      ranks: `(tasks >= 2, initializers >= 3)` ranks within each task (1 = best, midranks for ties).

    Returns:
      ``{"mean_rank", "tasks", "statistic", "p", "cd", "exact"}``.
    """
    n_tasks, k = ranks.shape
    sums, exact = rank_arrangements(ranks, rng), enumerable(n_tasks, k)

    def friedman(rank_sums: np.ndarray) -> np.ndarray:
        return 12 / (n_tasks * k * (k + 1)) * (rank_sums**2).sum(-1) - 3 * n_tasks * (k + 1)

    observed = float(friedman(ranks.sum(0)))
    null = friedman(sums)
    tolerance = 1e-9 * max(1.0, abs(observed))
    p = float(np.mean(null >= observed - tolerance)) if exact else float(
        (1 + np.sum(null >= observed - tolerance)) / (len(null) + 1))
    spans = np.round((sums.max(1) - sums.min(1)) / n_tasks, 9)
    levels = np.unique(spans)
    tail = np.array([np.mean(spans >= g) for g in levels])
    rare = levels[tail <= alpha]
    cd = float(rare.min()) if rare.size else None
    return {"mean_rank": ranks.mean(0), "tasks": n_tasks, "statistic": observed, "p": p, "cd": cd, "exact": exact}
