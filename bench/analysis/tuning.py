"""Comparisons over a hyperparameter grid: each initializer tuned on validation, sensitivity curves, and
whether the ranking at the recipe's learning rate survives tuning.

A grid run (``bench.training.grid``) trains every initializer at every cell (a learning
rate, weight decay, ... combination) with the same seeds. Its final metrics form a cube
`(seeds, initializers, cells)`. Three questions are asked of it:

1. **Tuned comparison.** Each initializer is run at its own best cell, chosen on the
   *validation* split (a cell where fewer runs diverged is preferred, then the better
   validation mean) and reported on *test*. The choice is random too, so every
   bootstrap resample of the seeds (the same seeds for every initializer and cell:
   they are paired) chooses again, and the intervals cover the tuning: the tuned
   mean's interval (bias-corrected, and never narrower than a tie-proof interval of the
   best cell's mean, :func:`best_cell_interval`), and simultaneous intervals of all
   pairwise differences of tuned initializers (max-T over the bootstrap, with Student-t
   small-sample scaling), from which Hsu's verdicts follow as in ``bench.analysis.verdicts``. Their coverage and
   error rates are measured by simulation in ``tests/analysis/test_tuning.py``.
2. **Sensitivity** (``bench.analysis.sensitivity``). Along the grid's first factor (the learning rate when it
   is one), each initializer's mean test metric per value (other factors tuned on validation per value), the
   best value with its interval, the width of the range near the best and the area under the curve.
3. **Does the ranking hold?** The all-pairs intervals at the recipe's value (e.g. lr
   1e-3) against those of the tuned initializers: the ranking *changes* if the best at
   the reference value is significantly worse once every initializer is tuned, or if
   some pair is significantly ordered one way at the reference and the other way tuned.

References: Sivaprasad et al. 2020 (arXiv:1910.11758); Wortsman et al. 2023
(arXiv:2309.14322); Bouthillier et al. 2021, "Accounting for variance in machine
learning benchmarks" (MLSys); Hsu 1996 (MCB); Efron & Tibshirani 1993, ch. 12
(bootstrap-t style scaling).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import stats as sps

from bench.analysis import grid_cube, maxt, resolution, scoring, stats, verdicts
from bench.analysis.grid_cube import RESAMPLES, Cube, cell_means, choose, cube, grid_factors, selection_metric, take
from bench.analysis.sensitivity import Sensitivity, main_factor_groups, on_log_scale, sensitivity

# "within tolerance of the best" (1 pp of accuracy); a metric of runs trained elsewhere: its equivalence margin
TOLERANCE = {"accuracy": 0.01, "r2": 0.01, "loss": 0.01}


@dataclasses.dataclass(frozen=True)
class Tuned:
    """Initializers each at their own best cell (chosen on validation), compared on test.

    Attributes:
      names: `(k,)` initializers.
      chosen: `(k,)` the cell each is run at (indices into ``cube.cells``).
      stability: `(k,)` share of bootstrap resamples that choose that same cell.
      means, low, high: `(k,)` tuned test means (better direction) and their intervals.
      diff, diff_low, diff_high: `(k, k)` ``tuned_i - tuned_j`` with simultaneous intervals.
      critical_value: their multiplier of the bootstrap standard errors.
      verdicts, to_best_low, to_best_high: Hsu's verdicts and MCB intervals (``verdicts.mcb``).
      n: seeds.
    """

    names: list[str]
    chosen: np.ndarray
    stability: np.ndarray
    means: np.ndarray
    low: np.ndarray
    high: np.ndarray
    diff: np.ndarray
    diff_low: np.ndarray
    diff_high: np.ndarray
    critical_value: float
    verdicts: list[str]
    to_best_low: np.ndarray
    to_best_high: np.ndarray
    n: int


def small_sample_scale(n: int) -> float:
    """``sqrt(n / (n - 1))``: the bootstrap's plug-in standard error uses ``1/n``, Student's ``1/(n - 1)``."""
    return float(np.sqrt(n / (n - 1))) if n > 1 else np.nan


def _t_scaled(z: float, n: int) -> float:
    """A normal-scale quantile ``z`` taken to Student t's with ``n - 1`` degrees of freedom (same tail area)."""
    return float(sps.t.ppf(sps.norm.cdf(z), n - 1)) if n > 1 else np.inf


def best_cell_interval(test: np.ndarray, level: float = 0.95, floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per initializer, an interval of its best cell's true mean ``max_c mu_c`` valid whatever the ties.

    Bonferroni-t intervals of every cell's mean (``t_{n_c - 1}`` at ``1 - (1 - level) / (2 m)``, ``m``
    cells with finished runs) hold together with probability >= ``level``; then
    ``max_c mu_c`` lies in ``[max_c L_c, max_c U_c]``. The bootstrap alone under-covers when
    several cells are nearly as good (the choice's upward bias is a max of noises that the
    resamples only partly repeat: 0.83 at 16 seeds and 8 tied cells, simulated).

    Args:
      test: `(seeds, k, m)`, NaN where a run has no value.
      floor: the least standard deviation of a cell's runs (the data's resolution, ``bench.analysis.resolution``).

    Returns:
      ``(low, high)``, each `(k,)`.
    """
    finished = np.isfinite(test)
    n = finished.sum(axis=0)  # (k, m)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(finished, test, 0.0).sum(axis=0) / n
        sd = np.maximum(np.sqrt(np.where(finished, (test - means) ** 2, 0.0).sum(axis=0) / (n - 1)), floor)
    usable = n >= 2
    m = np.maximum(usable.sum(axis=1, keepdims=True), 1)
    t = sps.t.ppf(1 - (1 - level) / (2 * m), np.maximum(n - 1, 1))
    half = np.where(usable, t * sd / np.sqrt(np.maximum(n, 1)), np.nan)
    with np.errstate(invalid="ignore"):
        low = np.where(usable, means - half, -np.inf).max(axis=1)
        high = np.where(usable, means + half, -np.inf).max(axis=1)
    bad = ~usable.any(axis=1)
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def tuned(cube: Cube, margin: float, level: float = 0.95, rng: np.random.Generator | int = 0,
          resamples: int = RESAMPLES, draws: int = verdicts.DRAWS) -> Tuned:
    """The tuned comparison of a :class:`Cube` (see the module docstring).

    Each resample of the seeds chooses every initializer's cell again on validation;
    the tuned means' intervals are ``mean - bias* +- t_{n-1} s*`` (``bias*`` and ``s*`` the
    bootstrap's bias and standard error, scaled by :func:`small_sample_scale`) widened to hold
    :func:`best_cell_interval`; the pairwise differences' are ``diff +- c s*_ij`` with ``c`` the
    ``level`` quantile of the bootstrap's ``max_ij |diff*_ij - diff_ij| / s*_ij``, taken to
    Student t's scale (:func:`_t_scaled`), and never below the paired max-T's critical value at
    the chosen cells (``bench.analysis.maxt``). Where runs tie on a lattice (every resample the same
    difference), the standard errors are floored at the data's resolution
    (``bench.analysis.resolution``) as the untuned comparison's are.
    """
    rng = np.random.default_rng(rng)
    n, k = cube.test.shape[0], cube.test.shape[1]
    val_means, val_diverged = cell_means(cube.val, cube.failed)
    test_means, _ = cell_means(cube.test, cube.failed)
    chosen = choose(val_means, val_diverged)
    means = take(test_means, chosen)
    diff = means[:, None] - means[None, :]
    boot_means, boot_diffs, same = [], [], np.zeros(k)
    for rows in grid_cube.resamples(n, rng, resamples):
        v_means, v_div = cell_means(cube.val, cube.failed, rows)
        t_means, _ = cell_means(cube.test, cube.failed, rows)
        picked = choose(v_means, v_div)
        same += (picked == chosen).sum(axis=0)
        values = take(t_means, picked)
        boot_means.append(values)
        boot_diffs.append(values[:, :, None] - values[:, None, :])
    boot_means, boot_diffs = np.concatenate(boot_means), np.concatenate(boot_diffs)
    scale = small_sample_scale(n)
    se = np.nanstd(boot_means, axis=0) * scale
    se_diff = np.nanstd(boot_diffs, axis=0) * scale
    t_crit = float(sps.t.ppf(0.5 + level / 2, n - 1)) if n > 1 else np.inf
    off = ~np.eye(k, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        deviation = np.abs(boot_diffs - diff) / se_diff
    deviation = np.where(se_diff > 0, deviation, 0.0)[:, off]
    worst = np.nanmax(np.where(np.isfinite(deviation), deviation, np.nan), axis=1) if k > 1 else np.zeros(1)
    c = _t_scaled(float(np.nanquantile(worst, level)), n) if k > 1 else np.nan
    if k > 1 and np.isfinite(means).sum() > 1:  # the paired max-T at the chosen cells holds at small n
        at_chosen = np.take_along_axis(cube.test, np.broadcast_to(chosen, (n, k))[..., None], axis=-1)[..., 0]
        _, c_paired, _ = maxt.simultaneous_intervals(at_chosen, cube.initializers, level, rng, draws)
        c = max(c, c_paired)
    bias = np.nanmean(boot_means, axis=0) - means  # of the choice: the bootstrap repeats it
    step = resolution.step(cube.test.reshape(n, -1))
    se = np.maximum(se, step * resolution.SINGLE / np.sqrt(n))
    se_diff = np.where(off, np.maximum(se_diff, step * resolution.DIFFERENCE / np.sqrt(n)), se_diff)
    diff_low, diff_high = diff - c * se_diff, diff + c * se_diff
    finite = np.isfinite(means)
    labels, to_low, to_high = (["best"], np.array([np.nan]), np.array([np.nan])) if k < 2 else verdicts.mcb(
        np.where(np.isfinite(diff_low), diff_low, -np.inf), np.where(np.isfinite(diff_high), diff_high, np.inf),
        np.where(finite, means, -np.inf), margin)
    labels = [label if finite[i] else "no runs" for i, label in enumerate(labels)]
    center = means - bias
    cells_low, cells_high = best_cell_interval(cube.test, level, step * resolution.SINGLE)
    low, high = np.fmin(center - t_crit * se, cells_low), np.fmax(center + t_crit * se, cells_high)
    return Tuned(list(cube.initializers), chosen, same / resamples, means, low, high,
                 diff, diff_low, diff_high, c, labels, to_low, to_high, n)


@dataclasses.dataclass(frozen=True)
class Ranking:
    """Whether the ranking at the recipe's value of the main factor holds once every initializer is tuned.

    Attributes:
      factor, reference: the main factor and its reference value (the recipe's, or the grid's nearest).
      means: `(k,)` test means at the reference (other factors tuned on validation), better direction.
      low, high: `(k, k)` simultaneous intervals of ``mean_i - mean_j`` at the reference (paired max-T).
      verdict: ``"changes"`` (some pair significantly reversed, or the best at the reference
        significantly worse than another tuned initializer), ``"holds"`` (no reversal, and the
        best at the reference is best or equivalent when tuned) or ``"unsettled"`` (neither:
        more seeds needed).
      reversed: pairs ``(i, j)`` with ``i`` significantly better at the reference and significantly worse tuned.
      lost: pairs significantly ordered at the reference and not tuned; gained: the other way round.
      tau: Kendall's tau between the two orders of means.
    """

    factor: str
    reference: float
    means: np.ndarray
    low: np.ndarray
    high: np.ndarray
    verdict: str
    reversed: list[tuple[int, int]]
    lost: list[tuple[int, int]]
    gained: list[tuple[int, int]]
    tau: float


def reference_index(values: np.ndarray, reference: float | None, log: bool) -> int:
    """The grid value equal to the recipe's ``reference``, else the nearest (in log for a log factor)."""
    if reference is None:
        return 0
    x, r = (np.log10(values), np.log10(reference)) if log and reference > 0 else (values, reference)
    return int(np.argmin(np.abs(x - r)))


def ranking(cube: Cube, tuned_arms: Tuned, reference: float | None, level: float = 0.95,
            rng: np.random.Generator | int = 0) -> Ranking:
    """The :class:`Ranking` of a :class:`Cube` against its :class:`Tuned` comparison."""
    values, groups = main_factor_groups(cube)
    log = on_log_scale(cube.factors[0], values)
    g = reference_index(values, reference, log)
    val_means, val_diverged = cell_means(cube.val, cube.failed)
    picked = choose(val_means[:, groups[g]], val_diverged[:, groups[g]])
    at = cube.test[:, np.arange(len(picked)), groups[g][picked]]  # (seeds, k)
    k = at.shape[1]
    means = cell_means(at[:, :, None], np.zeros(at.shape + (1,), bool))[0][:, 0]
    if k < 2 or np.isfinite(at).sum(axis=0).min() < 2:
        low = high = np.full((k, k), np.nan)
    else:
        pairs, c, _ = maxt.simultaneous_intervals(at, cube.initializers, level, rng)
        low, high = pairs.diff - c * pairs.se, pairs.diff + c * pairs.se
    off = ~np.eye(k, dtype=bool)
    ordered_ref = (low > 0) & off
    ordered_tuned = (tuned_arms.diff_low > 0) & off
    reversed_pairs = [tuple(p) for p in np.argwhere(ordered_ref & (tuned_arms.diff_high < 0))]
    lost = [tuple(p) for p in np.argwhere(ordered_ref & ~ordered_tuned)]
    gained = [tuple(p) for p in np.argwhere(ordered_tuned & ~ordered_ref)]
    best_ref = int(np.nanargmax(np.where(np.isfinite(means), means, -np.inf))) if np.isfinite(means).any() else 0
    if reversed_pairs or tuned_arms.verdicts[best_ref] == "worse":
        verdict = "changes"
    elif tuned_arms.verdicts[best_ref] in ("best", "equivalent"):
        verdict = "holds"
    else:
        verdict = "unsettled"
    both = np.isfinite(means) & np.isfinite(tuned_arms.means)
    tau = float(sps.kendalltau(means[both], tuned_arms.means[both]).statistic) if both.sum() > 1 else np.nan
    return Ranking(cube.factors[0], float(values[g]), means, low, high, verdict, reversed_pairs, lost, gained, tau)


@dataclasses.dataclass(frozen=True)
class TaskTuning:
    """Everything the report says about one task's grid."""

    cube: Cube
    tuned: Tuned
    sensitivity: Sensitivity
    ranking: Ranking | None  # None: no reference value of the main factor to check the ranking at
    cell_verdicts: np.ndarray  # (k, m) verdict of each initializer among the initializers at each cell


def analyse(results: pd.DataFrame, metric: str, settings: stats.Settings, margin: float,
            reference: dict | None = None) -> dict[tuple, TaskTuning]:
    """Per task ``(dataset, model)``, the grid's tuned comparison, sensitivity and ranking verdict.

    Empty when the results vary no grid factor or have no validation split to tune on.

    Args:
      reference: the recipe's value of each factor (``{"lr": 1e-3}``): the ranking is checked there (not checked
        where the main factor has none).
    """
    factors, selection = grid_factors(results), selection_metric(results, metric)
    if not factors or selection is None:
        return {}
    final = stats.final_epoch(results)
    kind = metric.rpartition("_")[2]
    out = {}
    test_scores, val_scores = scoring.task_scores(results, metric), scoring.task_scores(results, selection)
    for key, task in final.groupby(stats.TASK, sort=False):
        rng = stats.group_rng(settings.seed, *key, "tuning")
        c = cube(task, metric, selection, factors, test_scores[key], val_scores[key])
        t = tuned(c, margin, settings.level, rng, draws=settings.draws)
        marks = np.full(c.arms.shape, "", dtype=object)
        for j in range(len(c.cells)):  # each cell its own null stream: how many draws one takes moves no other
            table = verdicts.verdicts(c.test[:, :, j], c.initializers, True, margin, settings.level,
                                      stats.group_rng(settings.seed, *key, "tuning", j), settings.draws)
            labels = dict(zip(table["arm"], table["verdict"]))
            marks[:, j] = [labels.get(name, "no runs") for name in c.initializers]
        at = (reference or {}).get(factors[0])
        out[key] = TaskTuning(c, t, sensitivity(c, TOLERANCE.get(kind, margin), settings.level, rng),
                              None if at is None else ranking(c, t, at, settings.level, rng), marks)
    return out
