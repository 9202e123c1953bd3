"""Comparisons between initializers of each task, from the tidy results table.

Seed ``i`` of every initializer sees the same data order and random stream
(``bench.training.train``), so runs are compared as pairs matched by seed. The procedure is
:mod:`bench.analysis.verdicts`: all-pairs simultaneous intervals (max-T) and, from them,
Hsu's multiple comparisons with the best, with verdicts *best*, *equivalent* (within
the margin of the best), *worse* or *inconclusive*. With ``paired=False`` the runs are
independent samples (Welch).

The seeds advice (:func:`seeds_advice`) is a power simulation of that same
procedure, with the task's family size and observed spread of paired differences.

References: Hsu 1996, *Multiple Comparisons*; Hothorn, Bretz & Westfall 2008,
Biometrical J. 50(3); Bouthillier et al. 2021, arXiv:2103.03098 (variance in ML benchmarks).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from bench.analysis import crossed, outcomes, verdicts
from bench.analysis.stats import TASK, Settings, final_epoch, finished, group_rng, higher_is_better, run_table

SEED_GRID = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256)


def default_margin(metric: str) -> float:
    """Equivalence margin when none is given: 0.5 pp of accuracy, 0.01 of a loss or of R²."""
    return 0.005 if metric.endswith("accuracy") else 0.01


def final_matrix(task: pd.DataFrame, metric: str) -> tuple[list[str], np.ndarray]:
    """The final ``metric`` of one task as `(seeds, initializers)`, NaN where the run diverged.

    Args:
      task: final-epoch rows of one (dataset, model).

    Returns:
      ``(names, values)`` with the initializers in the results' order. With crossed data
      orders (``bench.analysis.crossed``) a row is an init seed's mean over its finished data orders.
    """
    names = list(dict.fromkeys(task["arm"]))
    if crossed.is_crossed(task):
        return names, crossed.seed_means(crossed.cells(task, metric, names))
    table = run_table(task, task[metric].where(finished(task, metric)), "seed", names)
    return names, table.to_numpy(np.float64)


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
    frames = []
    for task_key, task in final_epoch(results).groupby(TASK, sort=False):
        names, values = final_matrix(task, metric)
        if baseline is not None and baseline not in names:
            raise ValueError(f"baseline {baseline!r} is not among the initializers {names}")
        example_var, examples = extra_variance(task, metric, names, (test_outcomes or {}).get(task_key[0]), paired)
        table = verdicts.verdicts(values, names, higher_is_better(metric), margin, settings.level,
                                  group_rng(settings.seed, *task_key, metric, "max-t"), settings.draws, paired,
                                  reference=baseline, example_var=example_var)
        frames.append(table.assign(**dict(zip(TASK, task_key)), metric=metric, margin=margin,
                                   test_set=examples))
    if not frames:
        return pd.DataFrame(columns=TASK + ["metric", "margin", "test_set"] + verdicts.COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    front = TASK + ["metric", "margin", "test_set"]
    return table[front + [c for c in table.columns if c not in front]]


def extra_variance(task: pd.DataFrame, metric: str, names: list[str], item: dict | None,
                   paired: bool = True) -> tuple[np.ndarray | None, int]:
    """`(k, k)` variance of each mean difference that seeds do not average away (or None), and the test examples.

    The test set's sampling (``bench.analysis.outcomes``, where ``item`` holds the task's
    per-example outcomes; its example count is returned, 0 when not counted) plus,
    with crossed data orders, the data orders' share (``bench.analysis.crossed``).
    """
    total = None
    scores = None if item is None else outcomes.task_scores(task, item, metric, names)
    if scores is not None:
        total = outcomes.example_variance(scores, paired)[1]
    if crossed.is_crossed(task):
        orders = crossed.data_order_variance(crossed.cells(task, metric, names))[1]
        total = orders if total is None else total + orders
    return total, 0 if scores is None else scores.shape[-1]


@functools.lru_cache(maxsize=256)
def _null_quantile(n: int, k: int, level: float, draws: int = 2000) -> float:
    """``level`` quantile of max |T| over the k(k-1)/2 pairs of k exchangeable initializers, n seeds.

    Seeded by ``(n, k)`` and cached: the same for every task and report.
    """
    rng = np.random.default_rng([n, k, 7])
    rows, cols = np.triu_indices(k, 1)
    t = np.empty(draws)
    for start in range(0, draws, 250):  # in blocks: (250, n, pairs) stays small at 256 seeds
        z = rng.standard_normal((min(250, draws - start), n, k))
        d = z[:, :, rows] - z[:, :, cols]
        t[start:start + len(z)] = (np.abs(d.mean(1)) / (d.std(1, ddof=1) / np.sqrt(n))).max(1)
    return float(np.quantile(t, level))


def detection_power(n: int, k: int, delta_over_sd: float, level: float, rng: np.random.Generator,
                    reps: int = 2000, test_var: float = 0.0) -> float:
    """Probability that the procedure calls one initializer *worse* when it is ``delta`` below k - 1 equal others.

    Seeds are exchangeable normal: each pair's differences have sd 1, the shifted
    initializer's mean is ``-delta_over_sd``; the critical value is the max-T one of
    ``n`` seeds and ``k`` initializers, as :mod:`bench.analysis.verdicts` computes it.
    ``test_var``: the test set's sampling variance of a mean difference, in units of
    the paired sd squared, added to every ``se^2`` as the report does (it does not
    shrink with seeds); the test set itself is one draw, so the difference measured on
    it is drawn around ``-delta`` with that variance too.
    """
    c = _null_quantile(n, k, level)
    x = rng.standard_normal((reps, n, k)) / np.sqrt(2)
    # the shifted one against each other, d_j = x_0 - delta - x_j, from each draw's means and cross products, not
    # from the (reps, n, k - 1) differences: of the unshifted, independent columns, so the sum of squares cancels no
    # digits whatever delta is (the shift moves the mean, not the variance)
    means, products = x.mean(1), np.matmul(x.transpose(0, 2, 1), x)
    squares = np.diagonal(products, axis1=1, axis2=2)
    centred = means[:, :1] - means[:, 1:]
    variance = (squares[:, :1] + squares[:, 1:] - 2 * products[:, 0, 1:] - n * centred * centred) / (n - 1)
    mean = centred - delta_over_sd
    upper = mean + np.sqrt(test_var) * rng.standard_normal((reps, 1)) + c * np.sqrt(variance / n + test_var)
    return float(np.mean((upper < 0).any(axis=1)))


def seeds_for_power(
    k: int,
    delta_over_sd: float,
    level: float = 0.95,
    power: float = 0.8,
    rng: np.random.Generator | int = 0,
    grid=SEED_GRID,
    test_var: float = 0.0,
) -> tuple[int | None, float]:
    """Smallest seed count in ``grid`` at which :func:`detection_power` reaches ``power``.

    Power grows with seeds, so the grid is bisected (each count simulated with its own
    seeded generator, so the answer does not depend on the search path).

    Returns:
      ``(n, power_at_n)``, or ``(None, power_at_the_largest)`` when even ``grid[-1]`` seeds fall short.
    """
    root = int(np.random.default_rng(rng).integers(1 << 31))

    def at(n: int) -> float:
        return detection_power(n, k, delta_over_sd, level, np.random.default_rng([root, n]), test_var=test_var)

    top = at(grid[-1])
    if top < power:
        return None, top
    low, high, found = 0, len(grid) - 1, (grid[-1], top)
    while low < high:  # invariant: grid[high] reaches the power
        middle = (low + high) // 2
        reached = at(grid[middle])
        if reached >= power:
            high, found = middle, (grid[middle], reached)
        else:
            low = middle + 1
    return found


def paired_spread(values: np.ndarray, paired: bool = True) -> float:
    """Median standard deviation of the paired differences between non-constant initializers.

    Initializers whose runs are all equal (``zeros``) are left out: their pairs
    measure one initializer's spread only and would understate a typical pair's.
    Unpaired: ``sqrt(2)`` times the median standard deviation of the initializers.
    """
    constant = verdicts.is_constant(values)
    varying = [i for i in range(values.shape[1]) if not constant[i] and np.isfinite(values[:, i]).sum() > 1]
    if len(varying) < 2:
        return np.nan
    if not paired:
        return float(np.sqrt(2) * np.median([np.nanstd(values[:, i], ddof=1) for i in varying]))
    pairs = verdicts.pair_stats(values[:, varying], varying)
    iu = np.triu_indices(len(varying), 1)
    sds = pairs.sd[iu]
    sds = sds[np.isfinite(sds) & (sds > 0)]
    return float(np.median(sds)) if sds.size else np.nan


def seeds_advice(results: pd.DataFrame, metric: str, deltas: tuple[float, ...], paired: bool = True,
                 settings: Settings = Settings(), power: float = 0.8,
                 test_outcomes: dict[str, dict] | None = None) -> pd.DataFrame:
    """Seeds per initializer for the report's procedure to call a ``delta`` worse one *worse* with ``power``.

    Simulated (:func:`seeds_for_power`) with the task's number of initializers, the
    median observed spread of paired differences (:func:`paired_spread`) and the median
    variance of a mean difference that seeds do not lower (the test set's, crossed data
    orders'), where the report counts it.

    Returns:
      One row per (dataset, model, delta): ``k``, ``sd``, ``test_sd`` (the standard error of
      a difference that seeds do not lower; 0 when none is counted), ``seeds`` (None beyond
      ``SEED_GRID[-1]`` or when the spread is unknown), ``power`` (at ``seeds``, or at
      the largest count tried), ``max_seeds``.
    """
    rows = []
    for task_key, task in final_epoch(results).groupby(TASK, sort=False):
        names, values = final_matrix(task, metric)
        k = int((np.isfinite(values).sum(0) >= 2).sum())
        sd = paired_spread(values, paired)
        test_sd = _floor_spread(task, (test_outcomes or {}).get(task_key[0]), metric, names, values, paired)
        for delta in deltas:
            seeds, reached = (None, np.nan)
            if np.isfinite(sd) and k >= 2:
                rng = group_rng(settings.seed, *task_key, metric, delta, "power")
                seeds, reached = seeds_for_power(
                    k, delta / sd, settings.level, power, rng, test_var=(test_sd / sd) ** 2
                )
            rows.append({**dict(zip(TASK, task_key)), "metric": metric, "delta": delta, "k": k, "sd": sd,
                         "test_sd": test_sd, "seeds": seeds, "power": reached, "max_seeds": SEED_GRID[-1]})
    return pd.DataFrame(rows)


def _floor_spread(task: pd.DataFrame, item: dict | None, metric: str, names: list[str], values: np.ndarray,
                  paired: bool) -> float:
    """Median, over pairs of non-constant initializers, of the standard error of a mean difference that seeds
    do not lower (:func:`extra_variance`: the test set's sampling, crossed data orders); 0 when there is none."""
    extra, _ = extra_variance(task, metric, names, item, paired)
    varying = [i for i, constant in enumerate(verdicts.is_constant(values)) if not constant]
    if extra is None or len(varying) < 2:
        return 0.0
    return float(np.sqrt(np.median(extra[np.ix_(varying, varying)][np.triu_indices(len(varying), 1)])))


def win_matrix(results: pd.DataFrame, metric: str, dataset: str, paired: bool = True) -> pd.DataFrame:
    """Share of seeds on which the row initializer beats the column one (ties count half), one dataset.

    Unpaired: ``P(row better than column)`` over all pairs of runs (A12).
    """
    final = final_epoch(results)
    task = final[final["dataset"] == dataset]
    names, values = final_matrix(task, metric)
    sign = 1 if higher_is_better(metric) else -1
    wins = verdicts.pair_stats(sign * values, names, paired).wins
    return pd.DataFrame(wins, index=pd.Index(names, name="arm"), columns=names)
