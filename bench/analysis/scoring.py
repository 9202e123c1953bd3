"""How a diverged run counts: as an untrained network.

A run that diverges (a NaN or inf loss) has no final metric, but it is a result: an initializer
whose worst runs diverge is worse than one whose runs all train. Leaving diverged runs out
favours the initializer that diverges (its remaining runs are its best ones: in simulation an
initializer equal to the others whose worst 38% diverge was called best 0.62 of the time at 8
seeds, 0.97 at 32). So every mean, interval, verdict and aggregate scores a diverged run as

    score = the worse of (the median, over the task's runs, of the metric at epoch 0, before any
            training) and (the task's worst final value of a run that did not diverge),

in the metric's direction: chance accuracy for a classifier (the untrained network's), the loss
at initialization for a loss, and never better than any run that trained. The report states the
rule beside the count of diverged runs. Where neither exists (no epoch 0 recorded and every run
diverged) the runs stay missing and the initializer gets no verdict.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis.columns import TASK, final_epoch, finished, higher_is_better

RULE = ("a diverged run scores as an untrained network: the task's median metric at epoch 0, or its worst "
        "final value of a run that trained where that is worse")


def diverged_score(task_rows: pd.DataFrame, metric: str) -> float:
    """The score of a diverged run of one task (module docstring); NaN where nothing gives one.

    Args:
      task_rows: every epoch's rows of one task (``dataset, model``).
    """
    up = higher_is_better(metric)
    final = final_epoch(task_rows)
    trained = final.loc[finished(final, metric), metric].to_numpy(np.float64)
    start = task_rows.loc[task_rows["epoch"] == 0, metric].to_numpy(np.float64) if "epoch" in task_rows else []
    start = np.asarray(start)[np.isfinite(start)]
    candidates = ([float(np.median(start))] if start.size else []) + \
                 ([float(trained.min() if up else trained.max())] if trained.size else [])
    if not candidates:
        return np.nan
    return min(candidates) if up else max(candidates)


def task_scores(results: pd.DataFrame, metric: str) -> dict[tuple, float]:
    """``(dataset, model) -> diverged_score`` of every task of ``results``."""
    return {key: diverged_score(rows, metric) for key, rows in results.groupby(TASK, sort=False)}


def scored_values(rows: pd.DataFrame, metric: str, score: float) -> pd.Series:
    """``rows[metric]`` with each diverged run's value replaced by ``score`` (NaN stays where ``score`` is NaN)."""
    return rows[metric].where(finished(rows, metric), score).astype(np.float64)
