"""How many seeds? A power simulation of the report's own procedure.

For a difference ``delta`` the report asks: with how many seeds per initializer would the
procedure of ``bench.analysis.verdicts`` call an initializer ``delta`` worse than ``k - 1`` equal
others *worse*, with 80% power? Seeds are simulated as exchangeable normal runs with the task's
median spread of paired differences (:func:`paired_spread`, degenerate initializers left out) and
the part of a difference's variance that seeds do not lower (the test set's examples, crossed data
orders: :func:`floor_spread`), and each simulated table is judged with the critical values the
procedure itself gives on such tables (:func:`procedure_critical_values`: the larger of the
normal and smoothed-bootstrap references, the covariance shrinkage, the component's null draws),
not a simpler normal reference, which made the advice optimistic at small n ("16 seeds, 84%" on
digits held 0.787; "4 seeds, 80%" on MNIST 0.776).

The search is cheap then exact: the simpler normal reference is never above the procedure's
critical value, so its answer is a lower bound; the procedure's own power is then computed there
and up the grid until it reaches the target.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from bench.analysis import compare, maxt, scoring
from bench.analysis.components import Component
from bench.analysis.stats import Settings, group_rng

SEED_GRID = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256)
TABLES = 16  # simulated tables per seed count whose critical values the procedure computes
TABLE_DRAWS = 500  # null draws of each (the quantile moves by ~2%; the power by ~1 point), fewer from 128 seeds on
DRAWN_VALUES = 64_000  # seeds x draws of one table's null: its cost


@functools.lru_cache(maxsize=256)
def normal_quantile(n: int, k: int, level: float, draws: int = 2000) -> float:
    """``level`` quantile of max |T| over the k(k-1)/2 pairs of k exchangeable normal initializers, n seeds: the
    plain reference, never above the procedure's critical value. Seeded by ``(n, k)`` and cached."""
    rng = np.random.default_rng([n, k, 7])
    rows, cols = np.triu_indices(k, 1)
    t = np.empty(draws)
    for start in range(0, draws, 250):  # in blocks: (250, n, pairs) stays small at 256 seeds
        z = rng.standard_normal((min(250, draws - start), n, k))
        d = z[:, :, rows] - z[:, :, cols]
        t[start:start + len(z)] = (np.abs(d.mean(1)) / (d.std(1, ddof=1) / np.sqrt(n))).max(1)
    return float(np.quantile(t, level))


@functools.lru_cache(maxsize=256)
def procedure_critical_values(n: int, k: int, level: float, test_var: float = 0.0, statistic: str = "mean"
                              ) -> np.ndarray:
    """`(TABLES,)` the critical values ``bench.analysis.maxt.simultaneous_intervals`` gives on exchangeable normal
    tables of ``n`` seeds and ``k`` initializers (paired sd 1), with a test-set component of ``test_var`` per
    difference where given. Seeded by the arguments and cached."""
    rng = np.random.default_rng([n, k, int(level * 1e6), int(test_var * 1e9) % (1 << 31), 11])
    parts = []
    if test_var > 0:
        off = test_var * (1 - np.eye(k))
        parts.append(Component("test set", np.full(k, test_var / 2), off, np.full(k, np.inf), np.full((k, k), np.inf)))
    out = np.empty(TABLES)
    for r in range(TABLES):
        table = rng.standard_normal((n, k)) / np.sqrt(2)
        draws = int(np.clip(DRAWN_VALUES // n, 200, TABLE_DRAWS))
        out[r] = maxt.simultaneous_intervals(table, range(k), level, rng, draws, components=parts, floor=0.0,
                                             statistic=statistic)[1]
    return out


def detection_power(n: int, k: int, delta_over_sd: float, level: float, rng: np.random.Generator,
                    reps: int = 2000, test_var: float = 0.0, critical: np.ndarray | float | None = None,
                    statistic: str = "mean") -> float:
    """Probability that the procedure calls one initializer *worse* when it is ``delta`` below k - 1 equal others.

    Seeds are exchangeable normal: each pair's differences have sd 1, the shifted
    initializer's mean is ``-delta_over_sd``. ``test_var``: the variance of a mean difference
    that seeds do not lower, in units of the paired sd squared, added to every ``se^2`` as the
    report does; the test set itself is one draw, so the difference measured on it is drawn
    around ``-delta`` with that variance too. ``critical``: the critical values to judge with, one
    drawn for each simulated table (None: :func:`normal_quantile`). ``statistic``: the mean or the
    trimmed mean of the paired differences (``bench.analysis.maxt``).
    """
    if critical is None:
        critical = normal_quantile(n, k, level)
    critical = np.asarray(critical, np.float64).ravel()
    c = critical[rng.integers(0, critical.size, reps)][:, None]
    x = rng.standard_normal((reps, n, k)) / np.sqrt(2)
    if statistic == "trimmed":
        x[:, :, 0] -= delta_over_sd
        mean, variance = maxt.pair_moments(x, np.zeros(k - 1, int), np.arange(1, k), statistic="trimmed")
        upper = mean + np.sqrt(test_var) * rng.standard_normal((reps, 1)) + c * np.sqrt(variance + test_var)
        return float(np.mean((upper < 0).any(axis=1)))
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
    statistic: str = "mean",
) -> tuple[int | None, float]:
    """Smallest seed count in ``grid`` at which the procedure's :func:`detection_power` reaches ``power``.

    The grid is bisected with the plain normal reference (power grows with seeds; each count simulated with
    its own seeded generator, so the answer does not depend on the search path), then the procedure's own
    critical values (:func:`procedure_critical_values`) are used from there up the grid.

    Returns:
      ``(n, power_at_n)``, or ``(None, power_at_the_largest)`` when even ``grid[-1]`` seeds fall short.
    """
    root = int(np.random.default_rng(rng).integers(1 << 31))

    def at(n: int, exact: bool) -> float:
        critical = procedure_critical_values(n, k, level, round(test_var, 12), statistic) if exact else None
        return detection_power(n, k, delta_over_sd, level, np.random.default_rng([root, n, exact]),
                               test_var=test_var, critical=critical, statistic=statistic)

    top = at(grid[-1], False)
    if top < power:
        return None, top
    low, high = 0, len(grid) - 1
    while low < high:  # invariant: grid[high] reaches the power with the plain reference
        middle = (low + high) // 2
        if at(grid[middle], False) >= power:
            high = middle
        else:
            low = middle + 1
    reached = np.nan
    for n in grid[high:]:
        reached = at(n, True)
        if reached >= power:
            return n, reached
    return None, reached


def paired_spread(values: np.ndarray, paired: bool = True) -> float:
    """Median standard deviation of the paired differences between non-degenerate initializers.

    Initializers whose runs are all equal (``zeros``; one whose runs all diverged, scored alike) are
    left out: their pairs measure one initializer's spread only and would understate a typical pair's.
    Unpaired: ``sqrt(2)`` times the median standard deviation of the initializers.
    """
    varying = _varying(values)
    if len(varying) < 2:
        return np.nan
    if not paired:
        return float(np.sqrt(2) * np.median([np.nanstd(values[:, i], ddof=1) for i in varying]))
    pairs = maxt.pair_stats(values[:, varying], varying)
    iu = np.triu_indices(len(varying), 1)
    sds = pairs.sd[iu]
    sds = sds[np.isfinite(sds) & (sds > 0)]
    return float(np.median(sds)) if sds.size else np.nan


def _varying(values: np.ndarray) -> list[int]:
    constant = maxt.is_constant(values)
    return [i for i in range(values.shape[1]) if not constant[i] and np.isfinite(values[:, i]).sum() > 1]


def floor_spread(parts: list[Component], values: np.ndarray) -> float:
    """Median, over pairs of non-degenerate initializers, of the standard error of a mean difference that seeds
    do not lower (the components: the test set's examples, crossed data orders); 0 when there is none."""
    varying = _varying(values)
    if not parts or len(varying) < 2:
        return 0.0
    extra = sum(np.nan_to_num(part.of_differences) for part in parts)
    return float(np.sqrt(np.median(extra[np.ix_(varying, varying)][np.triu_indices(len(varying), 1)])))


def seeds_advice(results: pd.DataFrame, metric: str, deltas: tuple[float, ...], paired: bool = True,
                 settings: Settings = Settings(), power: float = 0.8,
                 test_outcomes: dict[str, dict] | None = None) -> pd.DataFrame:
    """Seeds per initializer for the report's procedure to call a ``delta`` worse one *worse* with ``power``.

    Simulated (:func:`seeds_for_power`) with the task's number of initializers, the
    median observed spread of paired differences (:func:`paired_spread`; diverged runs scored)
    and the median variance of a mean difference that seeds do not lower (:func:`floor_spread`),
    where the report counts it.

    Returns:
      One row per (dataset, model, delta): ``k``, ``sd``, ``test_sd`` (the standard error of
      a difference that seeds do not lower; 0 when none is counted), ``seeds`` (None beyond
      ``SEED_GRID[-1]`` or when the spread is unknown), ``power`` (at ``seeds``, or at
      the largest count tried), ``max_seeds``.
    """
    rows = []
    scores = scoring.task_scores(results, metric)
    for task_key, task, names, values in compare.scored_matrices(results, metric):
        k = int((np.isfinite(values).sum(0) >= 2).sum())
        sd = paired_spread(values, paired)
        parts, _ = compare.components(task, metric, names, (test_outcomes or {}).get(task_key[0]), paired,
                                      scores[task_key])
        test_sd = floor_spread(parts, values)
        for delta in deltas:
            seeds, reached = (None, np.nan)
            if np.isfinite(sd) and k >= 2:
                rng = group_rng(settings.seed, *task_key, metric, delta, "power")
                seeds, reached = seeds_for_power(k, delta / sd, settings.level, power, rng,
                                                 test_var=(test_sd / sd) ** 2,
                                                 statistic=settings.statistic if paired else "mean")
            rows.append({"dataset": task_key[0], "model": task_key[1], "metric": metric, "delta": delta, "k": k,
                         "sd": sd, "test_sd": test_sd, "seeds": seeds, "power": reached,
                         "max_seeds": SEED_GRID[-1]})
    return pd.DataFrame(rows)
