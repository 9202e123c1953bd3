"""One task's grid as a cube of final metrics `(seeds, initializers, cells)`, and the choices made on it: each
initializer's cell chosen on validation (:func:`choose`), means over seeds, and seed resamples for the bootstraps of
``bench.analysis.tuning`` and ``bench.analysis.sensitivity``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bench import schema
from bench.analysis import compare, stats
from bench.analysis.stats import run_table

RESAMPLES = 4000  # bootstrap resamples of the tuned comparison and the sensitivity figures
BATCH = 500  # resamples computed at once (bounds memory: BATCH x seeds x arms)


def grid_factors(results: pd.DataFrame) -> list[str]:
    """The grid factors of a results table that take more than one value (``bench.schema.FACTORS``)."""
    return [f for f in schema.FACTORS if f in results and results[f].nunique(dropna=True) > 1]


def selection_metric(results: pd.DataFrame, metric: str) -> str | None:
    """The validation metric cells are chosen by (``val_accuracy`` for ``test_accuracy``; ``val_bleu_score`` for a
    metric ``bleu_score`` of runs trained elsewhere), None without one."""
    if metric.startswith(("train_", "val_")):
        return None
    name = "val_" + metric.removeprefix("test_")
    return name if name in results else None


@dataclasses.dataclass(frozen=True)
class Cube:
    """One task's final metrics by seed, initializer and grid cell.

    Attributes:
      initializers: `(k,)` in table order.
      factors: the grid factors, in ``schema.FACTORS`` order.
      cells: `(m,)` tuples of factor values, sorted.
      arms: `(k, m)` arm names.
      test, val: `(seeds, k, m)` the ranked metric and the selection metric (better direction:
        higher is better; a loss is negated), a diverged run scored as an untrained network
        (``bench.analysis.scoring``), NaN where the arm is absent.
      failed: `(seeds, k, m)` whether the run diverged (crossed data orders: in any data order).
    """

    initializers: list[str]
    factors: list[str]
    cells: list[tuple]
    arms: np.ndarray
    test: np.ndarray
    val: np.ndarray
    failed: np.ndarray


def cube(task_final: pd.DataFrame, metric: str, selection: str, factors: list[str], test_score: float = np.nan,
         val_score: float = np.nan) -> Cube:
    """The :class:`Cube` of one task's final-epoch rows (crossed data orders: each init seed's mean); a diverged
    run's test and validation values are ``test_score`` and ``val_score`` (``bench.analysis.scoring``)."""
    arms = task_final.drop_duplicates("arm").set_index("arm")
    initializers = list(dict.fromkeys(arms["initializer"]))
    cells = sorted({tuple(float(row[f]) for f in factors) for _, row in arms.iterrows()})
    where = {(row["initializer"], tuple(float(row[f]) for f in factors)): name for name, row in arms.iterrows()}
    names = np.array([[where.get((i, c), "") for c in cells] for i in initializers], dtype=object)
    sign = 1.0 if stats.higher_is_better(metric) else -1.0

    def arranged(column, score, direction=sign):
        listed, values = compare.final_matrix(task_final, column, score)
        out = np.full((values.shape[0], len(initializers), len(cells)), np.nan)
        for (i, c), name in np.ndenumerate(names):
            if name:
                out[:, i, c] = direction * values[:, listed.index(name)]
        return out

    failed = task_final.assign(failed=task_final["diverged"].astype(np.float64))
    return Cube(initializers, factors, cells, names, arranged(metric, test_score), arranged(selection, val_score),
                arranged_flags(failed, names, initializers, cells))


def arranged_flags(task_final: pd.DataFrame, names: np.ndarray, initializers: list[str], cells: list) -> np.ndarray:
    """`(seeds, k, m)` whether each run diverged (with crossed data orders, in any of them)."""
    listed = list(dict.fromkeys(task_final["arm"]))
    index = ["seed"]
    flags = run_table(task_final, task_final["failed"], index, listed).to_numpy(np.float64)
    if "data_seed" in task_final and task_final["data_seed"].nunique() > 1:
        flags = task_final.pivot_table(index="seed", columns="arm", values="failed", aggfunc="max") \
            .reindex(columns=listed).to_numpy(np.float64)
    out = np.zeros((flags.shape[0], len(initializers), len(cells)), bool)
    for (i, c), name in np.ndenumerate(names):
        if name:
            out[:, i, c] = flags[:, listed.index(name)] > 0
    return out


def choose(val_means: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    """Index of each initializer's chosen cell: fewest diverged runs, then the best validation mean.

    Args:
      val_means: `(..., k, m)` validation means (better direction; NaN where no run finished).
      diverged: `(..., k, m)` runs that did not finish.

    Returns:
      `(..., k)` cell indices.
    """
    fewest = diverged == diverged.min(axis=-1, keepdims=True)
    score = np.where(fewest & np.isfinite(val_means), val_means, -np.inf)
    return np.argmax(score, axis=-1)


def cell_means(x: np.ndarray, failed: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Means over seeds of the runs with a value (diverged ones scored) and counts of diverged runs: `(..., k, m)`
    each.

    ``rows`` `(B, n)` resamples the seeds (None: the sample itself).
    """
    x, failed = (x, failed) if rows is None else (x[rows], failed[rows])  # (B, n, k, m)
    present = np.isfinite(x)
    count = present.sum(axis=-3)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(present, x, 0.0).sum(axis=-3) / count
    return np.where(count > 0, means, np.nan), failed.sum(axis=-3)


def take(means: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """``means[..., i, chosen[..., i]]`` for every initializer ``i``: `(..., k)`."""
    return np.take_along_axis(means, chosen[..., None], axis=-1)[..., 0]


def resamples(n: int, rng: np.random.Generator, total: int = RESAMPLES):
    """Seed resamples in batches of :data:`BATCH`, each `(b, n)` indices with replacement."""
    done = 0
    while done < total:
        size = min(BATCH, total - done)
        yield rng.integers(0, n, size=(size, n))
        done += size
