"""Comparisons between initializers of each task, from the tidy results table.

Seed ``i`` of every initializer sees the same data order and random stream
(``bench.training.train``), so runs are compared as pairs matched by seed. The procedure is
:mod:`bench.analysis.verdicts`: all-pairs simultaneous intervals (max-T) and, from them,
Hsu's multiple comparisons with the best, with verdicts *best*, *equivalent* (within
the margin of the best), *worse* or *inconclusive*. With ``paired=False`` the runs are
independent samples (Welch).

Diverged runs are scored as untrained networks (``bench.analysis.scoring``), so an
initializer's failures count against it. The seeds advice is a power simulation of this
procedure (``bench.analysis.advice``).

References: Hsu 1996, *Multiple Comparisons*; Hothorn, Bretz & Westfall 2008,
Biometrical J. 50(3); Bouthillier et al. 2021, arXiv:2103.03098 (variance in ML benchmarks).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import crossed, maxt, outcomes, scoring, verdicts
from bench.analysis.components import Component
from bench.analysis.stats import TASK, Settings, final_epoch, group_rng, higher_is_better, run_table


def default_margin(metric: str) -> float:
    """Equivalence margin when none is given: 0.5 pp of accuracy, 0.01 of a loss or of R²."""
    return 0.005 if metric.endswith("accuracy") else 0.01


def final_matrix(task: pd.DataFrame, metric: str, score: float = np.nan) -> tuple[list[str], np.ndarray]:
    """The final ``metric`` of one task as `(seeds, initializers)`, a diverged run's value ``score``.

    Args:
      task: final-epoch rows of one (dataset, model).
      score: the value of a diverged run (``bench.analysis.scoring.diverged_score``); NaN leaves it missing.

    Returns:
      ``(names, values)`` with the initializers in the results' order. With crossed data
      orders (``bench.analysis.crossed``) a row is an init seed's mean over its data orders.
    """
    names = list(dict.fromkeys(task["arm"]))
    if crossed.is_crossed(task):
        return names, crossed.seed_means(crossed.cells(task, metric, names, score))
    table = run_table(task, scoring.scored_values(task, metric, score), "seed", names)
    return names, table.to_numpy(np.float64)


def scored_matrices(results: pd.DataFrame, metric: str):
    """``(task key, final rows, names, values)`` of every task, diverged runs scored (:func:`final_matrix`); a task
    none of whose runs trained has nothing to compare: its values are all missing."""
    scores = scoring.task_scores(results, metric)
    for key, task in final_epoch(results).groupby(TASK, sort=False):
        trained = bool(scoring.finished(task, metric).any())
        yield (key, task, *final_matrix(task, metric, scores[key] if trained else np.nan))


def compare(
    results: pd.DataFrame,
    metric: str = "test_accuracy",
    baseline: str | None = None,
    paired: bool = True,
    settings: Settings = Settings(),
    test_outcomes: dict[str, dict] | None = None,
) -> pd.DataFrame:
    """Verdicts and intervals of every initializer of every task, at the final epoch.

    Args:
      results: tidy results.
      metric: the column compared.
      baseline: the reference of the ``vs`` columns (difference, effect size, win rate);
        None: the best. The verdicts are always about the best.
      paired: match runs by seed.
      settings: level, seed and draws of the null simulation, and the equivalence
        margin (None: :func:`default_margin`).
      test_outcomes: per task, the runs' per-example test outcomes (``bench.analysis.outcomes``);
        where given, test metrics' intervals include the test set's sampling error.

    Returns:
      :func:`bench.analysis.verdicts.verdicts` rows with ``dataset, model, metric, margin, test_set``
      (test examples whose sampling error the intervals include; 0: none) in front.
    """
    margin = default_margin(metric) if settings.margin is None else settings.margin
    scores = scoring.task_scores(results, metric)
    frames = []
    for task_key, task, names, values in scored_matrices(results, metric):
        if baseline is not None and baseline not in names:
            raise ValueError(f"baseline {baseline!r} is not among the initializers {names}")
        parts, examples = components(task, metric, names, (test_outcomes or {}).get(task_key[0]), paired,
                                     scores[task_key])
        table = verdicts.verdicts(values, names, higher_is_better(metric), margin, settings.level,
                                  group_rng(settings.seed, *task_key, metric, "max-t"), settings.draws, paired,
                                  reference=baseline, components=parts, statistic=settings.statistic)
        frames.append(table.assign(**dict(zip(TASK, task_key)), metric=metric, margin=margin,
                                   test_set=examples))
    if not frames:
        return pd.DataFrame(columns=TASK + ["metric", "margin", "test_set"] + verdicts.COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    front = TASK + ["metric", "margin", "test_set"]
    return table[front + [c for c in table.columns if c not in front]]


def components(task: pd.DataFrame, metric: str, names: list[str], item: dict | None, paired: bool = True,
               score: float = np.nan) -> tuple[list[Component], int]:
    """The parts of each mean difference's variance that seeds do not average away, and the test examples counted.

    The test set's sampling (``bench.analysis.outcomes``, where ``item`` holds the task's
    per-example outcomes; its example count is returned, 0 when not counted) and, with
    crossed data orders, the data orders' share (``bench.analysis.crossed``; diverged runs
    scored ``score``).
    """
    parts = []
    scores = None if item is None else outcomes.task_scores(task, item, metric, names)
    if scores is not None:
        parts.append(outcomes.example_component(scores, paired))
    if crossed.is_crossed(task):
        parts.append(crossed.data_order_component(crossed.cells(task, metric, names, score)))
    return parts, 0 if scores is None else scores.shape[-1]


def win_matrix(results: pd.DataFrame, metric: str, dataset: str, paired: bool = True) -> pd.DataFrame:
    """Share of seeds on which the row initializer beats the column one (ties count half), one dataset.

    Unpaired: ``P(row better than column)`` over all pairs of runs (A12).
    """
    names, values = next((names, values) for key, _, names, values in scored_matrices(results, metric)
                         if key[0] == dataset)
    sign = 1 if higher_is_better(metric) else -1
    wins = maxt.pair_stats(sign * values, names, paired).wins
    return pd.DataFrame(wins, index=pd.Index(names, name="arm"), columns=names)
