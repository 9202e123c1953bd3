"""Crossed seeds: every initialization seed trained with every data-order seed, and where the spread comes from.

By default seed ``s`` fixes both the initial weights and the data order of a run, so
a report cannot say which of the two its spread comes from. With ``--data-seeds K``
each initialization seed ``s`` is trained with data orders ``d = 0..K-1``, the *same*
``K`` orders for every ``s`` and every initializer (a crossed design). For one
initializer the final metric of run ``(s, d)`` is modelled as

    x_sd = mu + a_s + b_d + e_sd,   Var a = s2_init, Var b = s2_data, Var e = s2_rest,

(``e`` holds the interaction and everything else, inseparable with one run a cell),
estimated from the two-way ANOVA mean squares with one observation per cell:
``s2_rest = MS_res``, ``s2_init = (MS_init - MS_res) / K``, ``s2_data = (MS_data -
MS_res) / n`` (clipped at 0). Intervals: exact chi-square for ``s2_rest``,
Satterthwaite's approximation for the other two. Simulated coverage (normal effects,
200 replications, 95% nominal): init / data / rest 0.97 / 0.89 / 0.96 at 8 x 4 seeds,
0.98 / 0.94 / 0.97 at 16 x 4; the pigeonhole bootstrap (Owen 2007) reached only
0.93 / 0.83 / 0.78 and 0.96 / 0.73 / 0.84 there, so it is not used.

Inference on means uses the init-seed means over data orders (``n`` rows, independent
given the data orders) plus the data orders' share of the grand mean's variance,
``s2_data / K``, which more init seeds cannot average away:
``Var(mean) = Var(init-seed means) / n + s2_data / K``. Comparisons do the same on the
paired differences. The data orders' share is estimated with few degrees of freedom
(Satterthwaite's, at most ``K - 1``), so intervals take theirs from both parts
(``bench.analysis.components``): with the seeds' ``n - 1`` alone the mean's interval covered
0.875 at 8 x 3 seeds and 0.877 at 16 x 4 where the data orders dominate.

References: Searle, Casella & McCulloch 1992, *Variance Components*, ch. 4;
Satterthwaite 1946, Biometrics Bull. 2(6); Owen 2007, Ann. Appl. Stat. 1(2) (pigeonhole
bootstrap); Bouthillier et al. 2021, arXiv:2103.03098 (sources of variance in ML benchmarks).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from bench.analysis import scoring
from bench.analysis.components import Component, difference_of_mean_squares
from bench.analysis.stats import GROUP, Settings, final_epoch, run_table

COLUMN = "data_seed"


def is_crossed(results: pd.DataFrame) -> bool:
    """Whether the runs cross initialization seeds with several data-order seeds."""
    return COLUMN in results.columns and results[COLUMN].nunique() > 1


def cells(task_final: pd.DataFrame, metric: str, names: list[str], score: float = np.nan) -> np.ndarray:
    """`(init seeds, data seeds, initializers)` final values of one task; a diverged run's is ``score``
    (``bench.analysis.scoring``; NaN: left missing)."""
    table = run_table(task_final, scoring.scored_values(task_final, metric, score), ["seed", COLUMN], names)
    seeds = sorted(task_final["seed"].unique())
    data_seeds = sorted(task_final[COLUMN].unique())
    values = table.reindex(index=pd.MultiIndex.from_product([seeds, data_seeds])).to_numpy(np.float64)
    return values.reshape(len(seeds), len(data_seeds), len(names))


def mean_squares(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """``(MS_init, MS_data, MS_rest)``, their degrees of freedom, and ``(n, K)``.

    Over the complete init seeds of the `(n, K)` matrix."""
    x = x[np.isfinite(x).all(axis=1)]
    n, k = x.shape
    if n < 2 or k < 2:
        return np.full(3, np.nan), np.full(3, np.nan), (n, k)
    grand = x.mean()
    ms_init = k * np.sum((x.mean(1) - grand) ** 2) / (n - 1)
    ms_data = n * np.sum((x.mean(0) - grand) ** 2) / (k - 1)
    rest = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + grand
    ms_rest = np.sum(rest**2) / ((n - 1) * (k - 1))
    return np.array([ms_init, ms_data, ms_rest]), np.array([n - 1, k - 1, (n - 1) * (k - 1)], float), (n, k)


def components(x: np.ndarray) -> np.ndarray:
    """``(s2_init, s2_data, s2_rest)`` of an `(n, K)` table, from the init seeds with every data order finished.

    Returns NaNs with fewer than 2 complete init seeds or fewer than 2 data seeds.
    """
    ms, _, (n, k) = mean_squares(x)
    return np.array([max((ms[0] - ms[2]) / k, 0.0), max((ms[1] - ms[2]) / n, 0.0), ms[2]]) if np.isfinite(ms).all() \
        else np.full(3, np.nan)


def data_order_share(x: np.ndarray) -> tuple[float, float]:
    """``s2_data / K`` of an `(n, K)` table, the data orders' share of a grand mean's variance, and the
    Satterthwaite degrees of freedom of its estimate ``(MS_data - MS_rest) / (n K)``; ``(0, inf)`` where
    it is estimated at 0 or cannot be estimated."""
    ms, df, (n, k) = mean_squares(x)
    if not np.isfinite(ms).all():
        return 0.0, np.inf
    value, dof = difference_of_mean_squares(ms[1], df[1], ms[2], df[2])
    return float(value) / (n * k), float(dof)


def component_intervals(x: np.ndarray, level: float = 0.95) -> np.ndarray:
    """`(3, 2)` intervals of ``(s2_init, s2_data, s2_rest)``: chi-square for the rest, Satterthwaite for the others."""
    ms, df, (n, k) = mean_squares(x)
    out = np.full((3, 2), np.nan)
    if not np.isfinite(ms).all():
        return out
    tail = (1 - level) / 2
    out[2] = df[2] * ms[2] / stats.chi2.ppf([1 - tail, tail], df[2])
    for i, size in ((0, k), (1, n)):
        estimate = (ms[i] - ms[2]) / size
        if estimate <= 0:
            out[i] = (0.0, np.nan)  # estimated at 0: no upper bound this way
            continue
        nu = (ms[i] - ms[2]) ** 2 / (ms[i] ** 2 / df[i] + ms[2] ** 2 / df[2])
        with np.errstate(divide="ignore", over="ignore"):
            out[i] = nu * estimate / stats.chi2.ppf([1 - tail, tail], nu)
        if nu < 1:  # less than one degree of freedom: the upper bound says nothing (it runs to 1e15 and beyond)
            out[i, 1] = np.nan
    return out


def seed_means(x: np.ndarray) -> np.ndarray:
    """`(n, initializers)` means over data orders of each init seed's finished runs (NaN if none finished)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=1)


def data_order_component(x: np.ndarray) -> Component:
    """The data orders' share of the variance of means and of paired mean differences (:func:`data_order_share`).

    Args:
      x: `(n, K, k)` cells (sign irrelevant).
    """
    k = x.shape[2]
    means = [data_order_share(x[:, :, i]) for i in range(k)]
    of_differences, df_differences = np.zeros((k, k)), np.full((k, k), np.inf)
    for i in range(k):
        for j in range(i + 1, k):
            share = data_order_share(x[:, :, i] - x[:, :, j])
            of_differences[i, j] = of_differences[j, i] = share[0]
            df_differences[i, j] = df_differences[j, i] = share[1]
    return Component("data orders", np.array([v for v, _ in means]), of_differences,
                     np.array([d for _, d in means]), df_differences)


def arm_variances(results: pd.DataFrame, metrics) -> dict[tuple, tuple[float, float]]:
    """``(dataset, initializer, metric) -> (s2_data / K, its degrees of freedom)``: the data orders' share of
    each mean's variance (diverged runs scored, ``bench.analysis.scoring``)."""
    if not is_crossed(results):
        return {}
    out = {}
    for metric in metrics:
        scores = scoring.task_scores(results, metric)
        for (dataset, model, name), group in final_epoch(results).groupby(GROUP, sort=False):
            x = cells(group, metric, [name], scores[(dataset, model)])[:, :, 0]
            out[(dataset, name, metric)] = data_order_share(x)
    return out


def decomposition(
    results: pd.DataFrame, metric: str = "test_accuracy", settings: Settings = Settings()
) -> pd.DataFrame:
    """Per (task, initializer): standard deviations of the init, data-order and remaining parts, with intervals.

    Returns:
      One row per (dataset, model, initializer) with ``n_init, n_data``, and for each
      part ``init, data, rest``: ``sd_<part>, sd_<part>_low, sd_<part>_high`` and
      ``share_<part>`` (of the total variance); empty when the runs are not crossed.
    """
    if not is_crossed(results):
        return pd.DataFrame()
    rows = []
    scores = scoring.task_scores(results, metric)
    for key, group in final_epoch(results).groupby(GROUP, sort=False):
        x = cells(group, metric, [key[-1]], scores[key[:2]])[:, :, 0]
        point = components(x)
        low, high = np.sqrt(component_intervals(x, settings.level)).T
        total = point.sum()
        _, _, (n, k) = mean_squares(x)
        row = {**dict(zip(GROUP, key)), "n_init": n, "n_data": k}
        for i, part in enumerate(("init", "data", "rest")):
            row.update({f"sd_{part}": np.sqrt(point[i]), f"sd_{part}_low": low[i], f"sd_{part}_high": high[i],
                        f"share_{part}": point[i] / total if total > 0 else np.nan})
        rows.append(row)
    return pd.DataFrame(rows)
