"""What the columns of a results table mean: which hold metrics, which way a metric is better, which rows end a run.

The tidy table of ``bench.training.train`` has one row per dataset, model, initializer (``arm``), seed and epoch.
This module needs pandas alone, so the figures' worker processes read the table without the statistics' imports
(SciPy's, 0.4-0.5 s of CPU in the fork server the workers come from); ``bench.analysis.stats``
re-exports it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TASK = ["dataset", "model"]
GROUP = TASK + ["arm"]
LOWER_IS_BETTER = ("loss", "error")
# the metric columns of a results table: the suite's own, and a metric of runs trained elsewhere
# (bench.experiments.external), named ..._score when higher is better and ..._error when lower is
METRIC_SUFFIXES = ("_accuracy", "_r2", "_loss", "_score", "_error")


def metric_columns(results: pd.DataFrame) -> list[str]:
    """The metric columns of a results table (``test_accuracy``, ``val_r2``, ``train_loss``, ...)."""
    return [c for c in results.columns if c.endswith(METRIC_SUFFIXES)]


def default_metric(results: pd.DataFrame) -> str:
    """The metric a report ranks unless told: test accuracy, or R² for regression, else the test loss."""
    return next((m for m in ("test_accuracy", "test_r2") if m in results.columns), "test_loss")


def higher_is_better(metric: str) -> bool:
    """Accuracies, R² and scores go up; losses and errors go down."""
    return not any(word in metric for word in LOWER_IS_BETTER)


def final_epoch(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's last epoch."""
    last = results.groupby(GROUP + ["seed"], sort=False)["epoch"].transform("max")
    return results[results["epoch"] == last]


def finished(rows: pd.DataFrame, metric: str) -> pd.Series:
    """Whether each row's run did not diverge and has a finite ``metric``."""
    return ~rows["diverged"].astype(bool) & np.isfinite(rows[metric].to_numpy(np.float64))
