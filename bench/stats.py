"""Statistics over seeds, computed from the tidy results table.

Every function takes the table that ``bench.train`` produces (one row per
dataset, model, initializer, seed and epoch) and returns a new table; nothing here
trains. Confidence intervals are ``scipy.stats.bootstrap`` intervals with a
generator seeded from the experiment seed *and* the group's name, so a report is
reproducible bit for bit and does not change when other groups are added.

References: Efron & Tibshirani 1993, *An Introduction to the Bootstrap* (BCa);
Agarwal et al. 2021, arXiv:2108.13264 (reporting with interval estimates).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

GROUP = ["dataset", "model", "initializer"]


def group_rng(seed: int, *labels: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the group's labels."""
    return np.random.default_rng([seed, zlib.crc32("|".join(map(str, labels)).encode())])


def bootstrap_mean_ci(
    values: np.ndarray,
    level: float = 0.95,
    n_resamples: int = 10_000,
    rng: np.random.Generator | int = 0,
    method: str = "BCa",
) -> tuple[float, float]:
    """Bootstrap confidence interval of the mean.

    Args:
      values: `(n,)` one value per seed; NaNs must be removed beforehand.
      level: confidence level, e.g. 0.95.
      n_resamples: bootstrap resamples.
      rng: generator or seed for ``scipy.stats.bootstrap``.
      method: ``"BCa"`` (default), ``"percentile"`` or ``"basic"``.

    Returns:
      ``(low, high)``. Equal to the value when all values are equal (the bootstrap
      distribution is a point), ``(nan, nan)`` for fewer than two values.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return (np.nan, np.nan)
    if np.all(values == values[0]):
        return (float(values[0]), float(values[0]))
    rng = np.random.default_rng(rng)
    with warnings.catch_warnings():
        # BCa warns on near-degenerate samples (e.g. 31 equal accuracies and one
        # other); its interval is still the right one to report.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (values,), np.mean, confidence_level=level, n_resamples=n_resamples, method=method, rng=rng
        )
    low, high = result.confidence_interval
    return float(low), float(high)


def final_epoch(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's last epoch."""
    last = results.groupby(GROUP + ["seed"], sort=False)["epoch"].transform("max")
    return results[results["epoch"] == last]


def summarize(
    results: pd.DataFrame,
    metrics: Sequence[str] = ("test_accuracy", "test_loss"),
    level: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean and bootstrap CI over seeds of each metric at the final epoch.

    Diverged runs are counted in ``diverged`` and left out of the means: their
    metrics are NaN or meaningless.

    Returns:
      One row per (dataset, model, initializer), in the results' order, with
      columns ``n`` (runs that did not diverge), ``diverged``, ``runs``, and for
      each metric ``<metric>_mean``, ``<metric>_low``, ``<metric>_high``.
    """
    rows = []
    for key, group in final_epoch(results).groupby(GROUP, sort=False):
        ok = group[~group["diverged"].astype(bool)]
        row = dict(zip(GROUP, key), runs=len(group), n=len(ok), diverged=len(group) - len(ok))
        for metric in metrics:
            values = ok[metric].to_numpy(np.float64)
            values = values[np.isfinite(values)]
            low, high = bootstrap_mean_ci(values, level, n_resamples, group_rng(seed, *key, metric))
            row[f"{metric}_mean"] = values.mean() if values.size else np.nan
            row[f"{metric}_low"], row[f"{metric}_high"] = low, high
        rows.append(row)
    return pd.DataFrame(rows)
