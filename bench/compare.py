"""Comparisons between initializers: tests, multiplicity correction, effect sizes, power.

Seed ``i`` of every initializer sees the same data order and random stream
(``bench.train``), so by default runs are compared as pairs matched by seed:
Wilcoxon signed-rank and paired t tests on the per-seed differences. With
``paired=False`` the runs are treated as independent samples: Welch's t test and the
Mann-Whitney U test. p values are corrected with Holm's step-down method over each
*family*: the comparisons of one task and one metric against the baseline, or all
pairs of one task and one metric.

Effect sizes are Hedges' g (standardized mean difference, small-sample corrected, with
the normal-approximation interval of Hedges & Olkin) and the probability of
improvement ``A12 = P(X > Y) + P(X = Y) / 2`` over independent draws (Vargha & Delaney),
with a bootstrap interval.

References: Holm 1979, Scand. J. Statist. 6(2); Hedges & Olkin 1985, *Statistical
Methods for Meta-Analysis*; Vargha & Delaney 2000, J. Educ. Behav. Stat. 25(2);
Agarwal et al. 2021, arXiv:2108.13264; Colas et al. 2018, arXiv:1806.08295.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

from bench.stats import TASK, Settings, final_epoch, finite_values, group_rng, higher_is_better


def hedges_g(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Hedges' g of ``x - y`` with its normal-approximation interval.

    ``g = J * (mean(x) - mean(y)) / s_pooled``, ``J = 1 - 3 / (4 (n_x + n_y) - 9)``,
    ``se = sqrt((n_x + n_y) / (n_x n_y) + g^2 / (2 (n_x + n_y)))``.

    Returns:
      ``(g, low, high)``; NaNs when a sample has fewer than 2 values; 0 when both
      samples are constant and equal, +-inf when they are constant and differ.
    """
    nx, ny = len(x), len(y)
    if nx < 2 or ny < 2:
        return (np.nan, np.nan, np.nan)
    pooled = np.sqrt(((nx - 1) * np.var(x, ddof=1) + (ny - 1) * np.var(y, ddof=1)) / (nx + ny - 2))
    diff = np.mean(x) - np.mean(y)
    if pooled == 0:
        g = 0.0 if diff == 0 else np.copysign(np.inf, diff)
        return (g, g, g)
    g = (1 - 3 / (4 * (nx + ny) - 9)) * diff / pooled
    se = np.sqrt((nx + ny) / (nx * ny) + g**2 / (2 * (nx + ny)))
    z = stats.norm.ppf(0.5 + level / 2)
    return (float(g), float(g - z * se), float(g + z * se))


def a12(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probability of improvement ``P(X > Y) + P(X = Y) / 2`` over all pairs (vectorized)."""
    x = np.moveaxis(np.asarray(x), axis, -1)[..., :, None]
    y = np.moveaxis(np.asarray(y), axis, -1)[..., None, :]
    return np.mean((x > y) + 0.5 * (x == y), axis=(-2, -1))


def a12_ci(x: np.ndarray, y: np.ndarray, settings: Settings, rng) -> tuple[float, float, float]:
    """A12 and its bootstrap interval (each sample resampled on its own)."""
    if len(x) == 0 or len(y) == 0:
        return (np.nan, np.nan, np.nan)
    value = float(a12(x, y))
    if len(x) < 2 or len(y) < 2 or np.all(np.concatenate([x, y]) == x[0]):
        return (value, value, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # BCa's acceleration is 0/0 when one sample dominates
        res = stats.bootstrap(
            (x, y), a12, confidence_level=settings.level, n_resamples=settings.n_resamples,
            method=settings.method, rng=rng,
        )
    low, high = res.confidence_interval
    if np.isnan(low):  # e.g. every x above every y: BCa is undefined, the resamples are (nearly) constant
        tail = (1 - settings.level) / 2
        low, high = np.quantile(res.bootstrap_distribution, [tail, 1 - tail])
    return (value, float(low), float(high))


def paired_values(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Values of the seeds where neither run diverged, aligned by seed."""
    keep = lambda g: g[~g["diverged"].astype(bool) & np.isfinite(g[metric])].set_index("seed")[metric]  # noqa: E731
    joined = pd.concat([keep(a), keep(b)], axis=1, join="inner").to_numpy(np.float64)
    return joined[:, 0], joined[:, 1]


def two_sample_tests(x: np.ndarray, y: np.ndarray, paired: bool) -> dict[str, float]:
    """Raw two-sided p values of the rank test and the t test."""
    if len(x) < 2 or len(y) < 2:
        return {"p_rank": np.nan, "p_t": np.nan}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant samples: scipy warns and returns NaN
        if paired:
            # Rounded so that equal differences are equal: 350/360 - 349/360 and 349/360 - 348/360
            # differ in the last bit, and the signed-rank test must see them as ties.
            d = np.round(x - y, 12)
            p_rank = 1.0 if np.all(d == 0) else stats.wilcoxon(d, zero_method="wilcox").pvalue
            p_t = stats.ttest_rel(x, y).pvalue
        else:
            same = np.all(np.concatenate([x, y]) == x[0])
            p_rank = 1.0 if same else stats.mannwhitneyu(x, y, alternative="two-sided").pvalue
            p_t = stats.ttest_ind(x, y, equal_var=False).pvalue
    if np.isnan(p_t):  # both constant: identical -> 1, different -> 0
        p_t = 1.0 if np.mean(x) == np.mean(y) else 0.0
    return {"p_rank": float(p_rank), "p_t": float(p_t)}


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjusted p values (statsmodels ``multipletests(method='holm')``); NaNs stay NaN."""
    p_values = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p_values, np.nan)
    finite = np.isfinite(p_values)
    if finite.any():
        adjusted[finite] = multipletests(p_values[finite], method="holm")[1]
    return adjusted


def best_initializer(final: pd.DataFrame, metric: str) -> str:
    """The initializer with the best mean of ``metric`` over its non-diverged runs."""
    means = final[~final["diverged"].astype(bool)].groupby("initializer", sort=False)[metric].mean()
    return means.idxmax() if higher_is_better(metric) else means.idxmin()


def compare(
    results: pd.DataFrame,
    metric: str = "test_accuracy",
    baseline: str | None = None,
    pairs: str = "baseline",
    paired: bool = True,
    alpha: float = 0.05,
    settings: Settings = Settings(),
    effect_sizes: bool = True,
) -> pd.DataFrame:
    """Tests, corrected p values and effect sizes at the final epoch.

    Args:
      results: tidy results.
      metric: column to compare.
      baseline: initializer every other is compared with (``pairs="baseline"``);
        None picks the best by mean, per task.
      pairs: ``"baseline"`` (each initializer vs the baseline) or ``"all"``.
      paired: match runs by seed (Wilcoxon, paired t) or not (Mann-Whitney, Welch).
      alpha: level for ``significant`` and ``tied``.
      settings: bootstrap settings of the A12 interval.
      effect_sizes: False skips Hedges' g and A12 (NaN), for speed in simulations.

    Returns:
      One row per comparison ``a`` vs ``b`` with ``n`` (pairs, or ``n_a + n_b``),
      ``mean_a, mean_b, diff`` (``mean_a - mean_b``), ``p_rank, p_rank_holm, p_t,
      p_t_holm``, ``g, g_low, g_high``, ``a12, a12_low, a12_high`` (the probability
      that a run of a is better than one of b: ``P(a > b)`` for accuracies, ``P(a < b)`` for losses),
      ``significant`` (Holm-adjusted rank-test p < alpha) and ``better`` (a is
      significantly better than b, in the metric's direction).
    """
    final = final_epoch(results)
    sign = 1 if higher_is_better(metric) else -1  # A12 is the probability that a is *better*
    rows = []
    for task_key, task in final.groupby(TASK, sort=False):
        by_init = {name: g for name, g in task.groupby("initializer", sort=False)}
        if pairs == "all":
            comparisons = list(itertools.combinations(by_init, 2))
        else:
            base = baseline or best_initializer(task, metric)
            if base not in by_init:
                raise ValueError(f"baseline {base!r} is not among the initializers {list(by_init)}")
            comparisons = [(name, base) for name in by_init if name != base]
        family = []
        for a, b in comparisons:
            if paired:
                x, y = paired_values(by_init[a], by_init[b], metric)
            else:
                x, y = finite_values(by_init[a], metric), finite_values(by_init[b], metric)
            g, g_low, g_high = hedges_g(x, y, settings.level) if effect_sizes else (np.nan,) * 3
            rng = group_rng(settings.seed, *task_key, a, b, metric, "a12")
            poi = a12_ci(sign * x, sign * y, settings, rng) if effect_sizes else (np.nan,) * 3
            family.append(
                {
                    **dict(zip(TASK, task_key)), "metric": metric, "a": a, "b": b,
                    "n": len(x) if paired else len(x) + len(y),
                    "mean_a": np.mean(x) if len(x) else np.nan, "mean_b": np.mean(y) if len(y) else np.nan,
                    **two_sample_tests(x, y, paired), "g": g, "g_low": g_low, "g_high": g_high,
                    "a12": poi[0], "a12_low": poi[1], "a12_high": poi[2],
                }
            )
        if not family:
            continue
        table = pd.DataFrame(family)
        table["diff"] = table["mean_a"] - table["mean_b"]
        table["p_rank_holm"] = holm(table["p_rank"].to_numpy())
        table["p_t_holm"] = holm(table["p_t"].to_numpy())
        table["significant"] = table["p_rank_holm"] < alpha
        table["better"] = table["significant"] & (sign * table["diff"] > 0)
        rows.append(table)
    columns = TASK + ["metric", "a", "b", "n", "mean_a", "mean_b", "diff", "p_rank", "p_rank_holm", "p_t", "p_t_holm",
                      "g", "g_low", "g_high", "a12", "a12_low", "a12_high", "significant", "better"]
    return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)


def tied_with_best(results: pd.DataFrame, metric: str = "test_accuracy", paired: bool = True, alpha: float = 0.05,
                   settings: Settings = Settings(), versus_best: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per task, which initializers are not significantly worse than the best (Holm over the family).

    Args:
      versus_best: ``compare(..., baseline=None)`` of the same results and options, if
        already computed; computed here otherwise.

    Returns:
      One row per (dataset, model, initializer) with ``best`` (the best initializer)
      and ``tied`` (True for the best itself; False where fewer than 2 runs did not
      diverge: nothing was tested, so nothing is claimed).
    """
    if versus_best is None:
        versus_best = compare(results, metric, None, "baseline", paired, alpha, settings, effect_sizes=False)
    significant = {tuple(r): s for r, s in zip(versus_best[TASK + ["a"]].to_numpy(), versus_best["significant"])}
    rows = []
    for task_key, task in final_epoch(results).groupby(TASK, sort=False):
        best = best_initializer(task, metric)
        finite = task[~task["diverged"].astype(bool)].groupby("initializer")[metric].count()
        for name in task["initializer"].unique():
            tied = name == best or (finite.get(name, 0) >= 2 and not significant[(*task_key, name)])
            rows.append({**dict(zip(TASK, task_key)), "initializer": name, "best": best, "tied": tied})
    return pd.DataFrame(rows)


def seeds_needed(sd: float, delta: float, paired: bool = True, alpha: float = 0.05, power: float = 0.8) -> float:
    """Seeds per initializer for a two-sided t test to detect ``delta`` with ``power``.

    ``sd`` is the standard deviation of the per-seed differences (paired) or of one
    initializer's runs (unpaired, equal variances). statsmodels' ``TTestPower`` /
    ``TTestIndPower`` solve for n; the answer is rounded up, at least 2.
    """
    if not (sd > 0 and delta > 0):
        return np.nan if not delta > 0 else 2.0
    solver = TTestPower() if paired else TTestIndPower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = solver.solve_power(effect_size=delta / sd, alpha=alpha, power=power, alternative="two-sided")
    return float(max(2, np.ceil(n)))


def power_advice(results: pd.DataFrame, metric: str, deltas: tuple[float, ...], paired: bool = True,
                 alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """Seeds needed to detect each difference in ``deltas``, from the observed spread.

    The spread is the median, over initializers other than the best, of the standard
    deviation of their per-seed differences from the best (paired), or the median of
    the initializers' standard deviations (unpaired). Constant initializers (zeros)
    are left out: they would understate the spread.

    Returns:
      One row per (dataset, model, delta): ``sd``, ``seeds``.
    """
    rows = []
    for task_key, task in final_epoch(results).groupby(TASK, sort=False):
        best = best_initializer(task, metric)
        by_init = dict(tuple(task.groupby("initializer", sort=False)))
        spreads = []
        for name, group in by_init.items():
            if paired and name != best:
                x, y = paired_values(group, by_init[best], metric)
                spreads.append(np.std(x - y, ddof=1) if len(x) > 1 else np.nan)
            elif not paired:
                v = finite_values(group, metric)
                spreads.append(np.std(v, ddof=1) if len(v) > 1 else np.nan)
        spreads = [s for s in spreads if np.isfinite(s) and s > 0]
        sd = float(np.median(spreads)) if spreads else np.nan
        for delta in deltas:
            rows.append({**dict(zip(TASK, task_key)), "metric": metric, "delta": delta, "sd": sd,
                         "seeds": seeds_needed(sd, delta, paired, alpha, power) if np.isfinite(sd) else np.nan})
    return pd.DataFrame(rows)


def probability_matrix(results: pd.DataFrame, metric: str, dataset: str) -> pd.DataFrame:
    """``P(row better than column)`` (A12) of the final ``metric``, for every pair of initializers of a dataset."""
    final = final_epoch(results)
    task = final[final["dataset"] == dataset]
    names = list(task["initializer"].unique())
    sign = 1 if higher_is_better(metric) else -1
    values = {n: sign * finite_values(g, metric) for n, g in task.groupby("initializer", sort=False)}
    matrix = [[float(a12(values[r], values[c])) if len(values[r]) and len(values[c]) else np.nan for c in names]
              for r in names]
    return pd.DataFrame(matrix, index=pd.Index(names, name="initializer"), columns=names)

