"""Statistics over seeds, computed from the tidy results table.

Every function takes the table that ``bench.training.train`` produces (one row per
dataset, model, initializer, seed and epoch) and returns a new table; nothing here
trains. Confidence intervals are ``scipy.stats.bootstrap`` intervals (BCa by
default) with a generator seeded from the report seed *and* the group's labels, so a
report is reproducible bit for bit and a group's interval does not change when other
groups are added. Divergence rates get Wilson intervals (SciPy's ``binomtest``).

References: Efron & Tibshirani 1993, *An Introduction to the Bootstrap* (BCa);
Agarwal et al. 2021, arXiv:2108.13264 (IQM, interval estimates);
Wilson 1927, JASA 22(158) (score interval for a proportion).
"""

from __future__ import annotations

import dataclasses
import warnings
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from bench.analysis import resolution, scoring
from bench.analysis.columns import (  # noqa: F401 (the table's columns, re-exported: stats.final_epoch and so on)
    GROUP,
    TASK,
    default_metric,
    final_epoch,
    finished,
    higher_is_better,
    metric_columns,
)
from bench.analysis.components import satterthwaite

IQM_MIN_SEEDS = 16  # below, the IQM's bootstrap interval under-covers (0.92-0.93 at 8 seeds, simulated)


@dataclasses.dataclass(frozen=True)
class Settings:
    """How intervals are computed; stored in the report so it can be re-rendered.

    Attributes:
      level: confidence level of every interval.
      method: ``"BCa"``, ``"percentile"`` or ``"basic"`` (``scipy.stats.bootstrap``).
      n_resamples: bootstrap resamples.
      seed: root of every bootstrap generator and null simulation.
      draws: null draws of the max-T critical value (``bench.analysis.verdicts``).
      margin: equivalence margin in the metric's units; None: 0.5 pp of accuracy, 0.01 of a loss.
      fixed_test_set: intervals conditional on the test set (over seeds only), even where
        per-example outcomes would let them count its sampling error.
      statistic: what the comparisons estimate of each paired difference: ``"mean"``, or ``"trimmed"``
        (20% trimmed means, Yuen's standard errors; robust to a few stuck runs, ``bench.analysis.maxt``).
    """

    level: float = 0.95
    method: str = "BCa"
    n_resamples: int = 10_000
    seed: int = 0
    draws: int = 10_000
    margin: float | None = None
    fixed_test_set: bool = False
    statistic: str = "mean"


def group_rng(seed: int, *labels) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the group's labels."""
    return np.random.default_rng([seed, zlib.crc32("|".join(map(str, labels)).encode())])


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50%, ``scipy.stats.trim_mean(x, 0.25)``."""
    return stats.trim_mean(values, 0.25, axis=axis)


def bootstrap_ci(
    values: np.ndarray,
    statistic: Callable = np.mean,
    settings: Settings = Settings(),
    rng: np.random.Generator | int | None = None,
) -> tuple[float, float]:
    """Bootstrap confidence interval of ``statistic`` over seeds.

    Args:
      values: `(n,)` one value per seed, NaNs removed.
      statistic: vectorized ``f(x, axis) -> value``, e.g. ``np.mean`` or :func:`iqm`.
      settings: level, method and resamples.
      rng: generator or seed; ``settings.seed`` when None.

    Returns:
      ``(low, high)``; the value itself when all values are equal (the bootstrap
      distribution is a point); ``(nan, nan)`` for fewer than two values.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return (np.nan, np.nan)
    if np.all(values == values[0]):
        return (float(values[0]), float(values[0]))
    with warnings.catch_warnings():
        # BCa warns on near-degenerate samples (31 equal accuracies and one other);
        # its interval is still the one to report.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (values,),
            statistic,
            confidence_level=settings.level,
            n_resamples=settings.n_resamples,
            method=settings.method,
            rng=np.random.default_rng(settings.seed if rng is None else rng),
        )
    low, high = result.confidence_interval
    return float(low), float(high)


def t_interval(values: np.ndarray, level: float = 0.95, extra_var: float = 0.0, extra_df: float = np.inf,
               floor: float = 0.0, bounds: tuple[float, float] = (-np.inf, np.inf)) -> tuple[float, float]:
    """Student t interval of the mean, ``mean +- t_df sqrt(max(s, floor)^2 / n + extra_var)``.

    ``extra_var``: variance of the mean from another source than seeds, e.g. the test set's
    sampling (``bench.analysis.outcomes``) or crossed data orders', estimated with ``extra_df``
    degrees of freedom; ``df`` is Welch-Satterthwaite's over the seeds' ``n - 1`` and ``extra_df``
    (``bench.analysis.components``). Where ``extra_df`` is few (at most ``GPQ_LIMIT``: 3 data orders
    give about 2) Satterthwaite's degrees of freedom grow whenever the estimate comes out small by
    chance (0.933 coverage at 8 seeds x 3 orders); there the half-width is the ``level`` quantile
    of the generalized pivotal quantity ``|Z| sqrt(s^2/n (n-1) / chi2_{n-1} + extra (df / chi2_df))``
    (Weerahandi 1993), 0.955 there and as wide as Satterthwaite's where it holds. ``floor``: the
    least standard deviation of one value (the data's resolution, ``bench.analysis.resolution``:
    runs that tie on a lattice). ``bounds``: the metric's range, which the interval is clipped to
    (an accuracy's ``[0, 1]``).

    Over seeds it keeps its coverage from 8 seeds on (BCa: 0.87-0.89 at 8 seeds on
    resampled real runs); ``python -m bench calibrate`` measures it on a report's runs.

    Returns:
      ``(low, high)``; the value itself when all values are equal and nothing else adds variance;
      ``(nan, nan)`` for fewer than two.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return (np.nan, np.nan)
    mean = values.mean()
    spread = 0.0 if np.all(values == values[0]) else values.var(ddof=1)
    seeds = max(spread, floor**2) / values.size
    if not seeds + extra_var > 0:
        return (float(values[0]), float(values[0]))
    if extra_var > 0 and extra_df <= GPQ_LIMIT:
        half = pivotal_half_width(seeds, values.size - 1, extra_var, extra_df, level)
    else:
        df = satterthwaite([seeds, extra_var], [values.size - 1, extra_df])
        half = stats.t.ppf(0.5 + level / 2, df) * np.sqrt(seeds + extra_var)
    return (float(max(mean - half, bounds[0])), float(min(mean + half, bounds[1])))


GPQ_LIMIT = 50  # an extra variance known to at most this many degrees of freedom: generalized pivotal quantity
GPQ_DRAWS = 40_000


def pivotal_half_width(seeds: float, seeds_df: float, extra: float, extra_df: float, level: float = 0.95) -> float:
    """The ``level`` quantile of ``|Z| sqrt(seeds df_s / chi2_{df_s} + extra df_e / chi2_{df_e})``: the half-width of
    the generalized confidence interval of a mean whose variance is a sum of two estimated parts (Weerahandi
    1993; Krishnamoorthy & Mathew 2009, ch. 1). Seeded: the same for the same arguments."""
    rng = np.random.default_rng(20240601)
    z = rng.standard_normal(GPQ_DRAWS)
    spread = seeds * seeds_df / np.maximum(rng.chisquare(max(seeds_df, 1e-9), GPQ_DRAWS), 1e-12) \
        + extra * extra_df / np.maximum(rng.chisquare(max(extra_df, 1e-9), GPQ_DRAWS), 1e-12)
    return float(np.quantile(np.abs(z) * np.sqrt(spread), level))


def proportion_interval(values: np.ndarray, examples: int, level: float = 0.95, extra_var: float = 0.0,
                        extra_df: float = np.inf) -> tuple[float, float]:
    """Interval of a mean accuracy that counts the test set's sampling: Clopper-Pearson at the effective size.

    A mean accuracy near 100% on a small test set is a few errors out of ``m`` examples: its
    sampling distribution is skewed and bounded, and ``mean +- t se`` under-covers there (0.91 at
    97% accuracy with 200 examples, 0.90 with 100, 32 seeds, simulated). The variance of the mean
    (seeds' plus the test set's, ``V``) defines an effective number of examples ``n_eff = p (1 - p)
    / V`` (Kish's design effect), scaled by ``(z / t_df)^2`` for the degrees of freedom of ``V``, and
    the exact binomial (Clopper-Pearson) interval of ``p n_eff`` successes in ``n_eff`` is given (Korn &
    Graubard 1998). Where ``V`` is 0 or ``p`` is 0 or 1 (every run right on every example) ``n_eff`` is
    the ``examples`` themselves; it never exceeds ``runs x examples``.

    References: Korn & Graubard 1998, Survey Methodology 24(2); Clopper & Pearson 1934, Biometrika 26(4).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return (np.nan, np.nan)
    p = float(values.mean())
    seeds = 0.0 if np.all(values == values[0]) else values.var(ddof=1) / values.size
    variance = seeds + extra_var
    df = satterthwaite([seeds, extra_var], [values.size - 1, extra_df])
    n_eff = p * (1 - p) / variance if variance > 0 and 0 < p < 1 else float(examples)
    n_eff = min(n_eff, float(values.size * examples))
    n_eff *= (stats.norm.ppf(0.5 + level / 2) / stats.t.ppf(0.5 + level / 2, df)) ** 2 if np.isfinite(df) else 1.0
    x, tail = p * n_eff, (1 - level) / 2
    low = stats.beta.ppf(tail, x, n_eff - x + 1) if x > 0 else 0.0
    high = stats.beta.ppf(1 - tail, x + 1, n_eff - x) if x < n_eff else 1.0
    return float(low), float(high)


def mean_interval(values: np.ndarray, metric: str, level: float = 0.95, extra: tuple[float, float] = (0.0, np.inf),
                  floor: float = 0.0, examples: int | None = None) -> tuple[float, float]:
    """The interval of a mean a report prints for ``metric``.

    An accuracy whose test examples are counted (``examples`` given, ``extra`` their share of the
    variance with its degrees of freedom): :func:`proportion_interval`. Otherwise :func:`t_interval`,
    clipped to what the metric can be (:func:`metric_range`): a mean of values in a range lies in it, so the clip
    only removes impossible values (at 2 seeds a loss interval reached below 0).
    """
    if metric.endswith("accuracy") and examples:
        return proportion_interval(values, examples, level, *extra)
    return t_interval(values, level, *extra, floor=floor, bounds=metric_range(metric))


def metric_range(metric: str) -> tuple[float, float]:
    """The values a metric can take: an accuracy in ``[0, 1]``, a loss (cross-entropy, squared error) ``>= 0``, an
    R^2 ``<= 1``; anything else unbounded."""
    if metric.endswith("accuracy"):
        return (0.0, 1.0)
    if metric.endswith("loss"):
        return (0.0, np.inf)
    if metric.endswith("r2"):
        return (-np.inf, 1.0)
    return (-np.inf, np.inf)


def bootstrap_mean_ci(values, level=0.95, n_resamples=10_000, rng=0, method="BCa") -> tuple[float, float]:
    """:func:`bootstrap_ci` of the mean, with the settings as arguments."""
    return bootstrap_ci(values, np.mean, Settings(level, method, n_resamples), rng)


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion such as a divergence rate (``(nan, nan)`` if n = 0)."""
    if n == 0:
        return (np.nan, np.nan)
    interval = stats.binomtest(int(successes), int(n)).proportion_ci(level, method="wilson")
    return float(interval.low), float(interval.high)


def divergence(results: pd.DataFrame) -> pd.DataFrame:
    """When runs diverged: per (task, initializer) with at least one diverged run.

    A run's divergence epoch is the first epoch whose row is flagged ``diverged``
    (a NaN/inf minibatch loss during that epoch's training, or a NaN/inf
    evaluation loss after it; epoch 0 = at initialization).

    Returns:
      ``dataset, model, initializer, runs, diverged, first_epoch, median_epoch, last_epoch``.
    """
    per_run = results.assign(bad_epoch=results["epoch"].where(results["diverged"].astype(bool)))
    first = per_run.groupby(GROUP + ["seed"], sort=False)["bad_epoch"].min().reset_index()
    table = first.groupby(GROUP, sort=False)["bad_epoch"].agg(
        runs="size", diverged="count", first_epoch="min", median_epoch="median", last_epoch="max").reset_index()
    return table[table["diverged"] > 0].reset_index(drop=True)


def run_table(rows: pd.DataFrame, values: pd.Series, index, names: Sequence[str]) -> pd.DataFrame:
    """``values`` of a task's final rows: one row per run key ``index``, one column per initializer in ``names``."""
    return rows.assign(value=values).pivot_table(index=index, columns="arm", values="value", aggfunc="first",
                                                 dropna=False, sort=True).reindex(columns=list(names))


def _std(x: np.ndarray) -> float:
    return x.std(ddof=1) if x.size > 1 else np.nan


# The point statistics of a summary row, each a function of the finished runs' values (never empty):
# adding one is a line here (its column follows), and the renderers pick columns by name.
DESCRIPTIVE: dict[str, Callable[[np.ndarray], float]] = {
    "mean": np.mean, "std": _std, "median": np.median, "iqm": lambda x: float(iqm(x)), "min": np.min, "max": np.max,
}
SUMMARY_COLUMNS = ("runs", "n", "finished", "diverged", "diverged_rate", "diverged_low", "diverged_high", "mean",
                   "mean_low", "mean_high", "std", "median", "iqm", "iqm_low", "iqm_high", "min", "max")


def describe(x: np.ndarray) -> dict[str, float]:
    """Every :data:`DESCRIPTIVE` statistic of ``x`` (NaN for an empty ``x``)."""
    return {name: fn(x) if x.size else np.nan for name, fn in DESCRIPTIVE.items()}


def summarize(
    results: pd.DataFrame,
    metrics: Sequence[str] = ("test_accuracy", "test_loss"),
    settings: Settings = Settings(),
    extras: dict[tuple, list[tuple[float, float]]] | None = None,
    examples: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Descriptive statistics and intervals over seeds, at the final epoch.

    Diverged runs are counted (with a Wilson interval of the rate) and scored as an untrained
    network in every other statistic (``bench.analysis.scoring``): the mean, its interval, the
    median, IQM, min and max are those of every run. The mean's interval is
    :func:`mean_interval` (Student t, its standard deviation floored at the data's resolution,
    ``bench.analysis.resolution``; for an accuracy clipped to ``[0, 1]``, and exact binomial at the
    effective size where the test examples are counted); the IQM's is the bootstrap of
    ``settings``, given from ``IQM_MIN_SEEDS`` runs on (NaN below). ``extras`` maps ``(dataset,
    initializer, metric)`` to the parts of the mean's variance that seeds do not average away, each
    ``(variance, degrees of freedom)`` (the test set's sampling, ``bench.analysis.outcomes``;
    crossed data orders' share, ``bench.analysis.crossed``), and ``examples`` a dataset to its test
    examples where the test set's part is among them; the IQM then gets no interval (its
    bootstrap over runs cannot count those parts). With crossed data orders the mean's interval
    is over the init seeds' means.

    Returns:
      One row per (dataset, model, initializer, metric), in the results' order, with
      ``runs, n, diverged, diverged_rate, diverged_low, diverged_high, mean,
      mean_low, mean_high, std, median, iqm, iqm_low, iqm_high, min, max``
      (``std`` with ``ddof=1``; ``n`` counts the runs with a value, diverged ones scored; ``finished`` those that
      did not diverge and have a finite value).
    """
    rows = []
    final = final_epoch(results)
    for metric in metrics:
        scores = scoring.task_scores(results, metric)
        steps = {key: resolution.step([group[metric].to_numpy(np.float64) for _, group in task.groupby("arm")])
                 for key, task in final.groupby(TASK, sort=False)}
        for key, group in final.groupby(GROUP, sort=False):
            runs = len(group)
            diverged = int(group["diverged"].astype(bool).sum())
            value = scoring.scored_values(group, metric, scores[key[:2]])
            x = value[np.isfinite(value)].to_numpy(np.float64)
            units = x
            if "data_seed" in group and group["data_seed"].nunique() > 1:  # crossed: init seeds are the units
                units = group.assign(value=value).groupby("seed")["value"].mean().dropna().to_numpy(np.float64)
            parts = (extras or {}).get((key[0], key[-1], metric), [])
            extra_var = float(sum(v for v, _ in parts))
            extra = (extra_var, float(satterthwaite([v for v, _ in parts], [d for _, d in parts]))) if parts \
                else (0.0, np.inf)
            m = (examples or {}).get(key[0]) if parts else None
            mean_ci = mean_interval(units, metric, settings.level, extra, steps[key[:2]] * resolution.SINGLE, m)
            # the IQM's bootstrap resamples runs only: with a test-set or data-order term it would claim too much
            iqm_ci = (bootstrap_ci(x, iqm, settings, group_rng(settings.seed, *key, metric, "iqm"))
                      if x.size >= IQM_MIN_SEEDS and not extra_var > 0 and units is x else (np.nan, np.nan))
            div_low, div_high = wilson_ci(diverged, runs, settings.level)
            rows.append({**dict(zip(GROUP, key)), "metric": metric, "runs": runs, "n": x.size,
                         "finished": int(finished(group, metric).sum()), "diverged": diverged,
                         "diverged_rate": diverged / runs, "diverged_low": div_low, "diverged_high": div_high,
                         **describe(x), "mean_low": mean_ci[0], "mean_high": mean_ci[1],
                         "iqm_low": iqm_ci[0], "iqm_high": iqm_ci[1]})
    columns = [*GROUP, "metric", *SUMMARY_COLUMNS, *(c for c in DESCRIPTIVE if c not in SUMMARY_COLUMNS)]
    order = {key: i for i, key in enumerate(final.groupby(GROUP, sort=False).groups)}
    table = pd.DataFrame(rows, columns=columns)
    if table.empty:
        return table
    rank = table[GROUP].apply(tuple, axis=1).map(order)
    return table.assign(_rank=rank).sort_values("_rank", kind="stable").drop(columns="_rank").reset_index(drop=True)


def run_curves(results: pd.DataFrame, metric: str, threshold: float, score: float | None = None) -> pd.DataFrame:
    """Learning-curve metrics of each run.

    Args:
      results: tidy results with epochs ``0..E``.
      metric: column, e.g. ``"test_accuracy"``.
      threshold: the level to reach (above it when higher is better, below otherwise).
      score: the value a diverged run has from the epoch it diverged on (``bench.analysis.scoring``);
        None: diverged runs are left out.

    Returns:
      One row per (dataset, model, initializer, seed) with ``final``, ``best``,
      ``best_epoch`` (first epoch at the best value), ``epochs_to_threshold`` (first
      epoch at or past ``threshold``; NaN if never) and ``auc``: the trapezoidal area
      under the curve over epochs ``0..E`` divided by ``E``, the curve's mean height.
    """
    up = higher_is_better(metric)
    if score is not None and np.isfinite(score):
        ok = results.assign(**{metric: scoring.scored_values(results, metric, score)})
    else:
        ok = results[~results.groupby(GROUP + ["seed"], sort=False)["diverged"].transform("max").astype(bool)]
    columns = [*GROUP, "seed", "final", "best", "best_epoch", "epochs_to_threshold", "auc"]
    if ok.empty:
        return pd.DataFrame(columns=columns)
    runs = ok.groupby(GROUP + ["seed"], sort=False)
    run = runs.ngroup().to_numpy()  # runs in order of appearance
    lengths = np.bincount(run)
    if (lengths != lengths[0]).any():  # runs of unequal lengths: each on its own
        return pd.concat([run_curves(part, metric, threshold, score) for _, part in runs], ignore_index=True)
    order = np.lexsort((ok["epoch"].to_numpy(), run))
    epochs = ok["epoch"].to_numpy()[order].reshape(len(lengths), -1)  # (runs, epochs), each run by epoch
    values = ok[metric].to_numpy(np.float64)[order].reshape(len(lengths), -1)
    best_index = np.argmax(values, 1) if up else np.argmin(values, 1)
    reached = values >= threshold if up else values <= threshold
    span = epochs[:, -1] - epochs[:, 0]

    def at(a: np.ndarray, index: np.ndarray) -> np.ndarray:
        return np.take_along_axis(a, index[:, None], 1)[:, 0]  # a[r, index[r]] for each run r

    with np.errstate(divide="ignore", invalid="ignore"):
        auc = np.where(span != 0, np.trapezoid(values, epochs, axis=1) / span, values[:, -1])
    first = ok.iloc[order[::values.shape[1]]]
    return pd.DataFrame({
        **{column: first[column].to_numpy() for column in GROUP + ["seed"]},
        "final": values[:, -1],
        "best": at(values, best_index),
        "best_epoch": at(epochs, best_index).astype(int),
        "epochs_to_threshold": np.where(reached.any(1), at(epochs, np.argmax(reached, 1)).astype(float), np.nan),
        "auc": auc,
    }, columns=columns)


def curve_threshold(summary: pd.DataFrame, metric: str, fraction: float = 0.95) -> dict[tuple, float]:
    """Per task: ``fraction`` of the best initializer's mean final value of ``metric``.

    For losses (lower is better) the threshold is the best mean divided by ``fraction``.
    """
    rows = summary[summary["metric"] == metric]
    up = higher_is_better(metric)
    out = {}
    for key, task in rows.groupby(TASK, sort=False):
        best = task["mean"].max() if up else task["mean"].min()
        out[key] = best * fraction if up else best / fraction
    return out


def summarize_curves(
    results: pd.DataFrame, summary: pd.DataFrame, metric: str = "test_accuracy", fraction: float = 0.95,
    settings: Settings = Settings(),
) -> pd.DataFrame:
    """Learning-curve statistics per initializer, over seeds.

    Returns:
      One row per (dataset, model, initializer) with ``threshold``, ``reached``
      (share of runs that reach it), ``epochs_to_threshold`` (median over the runs
      that reach it), ``best_epoch`` (median), ``best`` (mean), ``auc`` (mean) with
      ``auc_low``/``auc_high`` Student t interval; a diverged run counts with its scored value
      (``bench.analysis.scoring``) from the epoch it diverged on.
    """
    thresholds = curve_threshold(summary, metric, fraction)
    scores = scoring.task_scores(results, metric)
    frames = []
    for key, task in results.groupby(TASK, sort=False):
        curves = run_curves(task, metric, thresholds[key], scores[key]) if key in thresholds else pd.DataFrame()
        if curves.empty:  # no finished run: nothing to summarize
            continue
        for group_key, group in curves.groupby(GROUP, sort=False):
            auc = group["auc"].to_numpy(np.float64)
            low, high = t_interval(auc, settings.level)
            frames.append(
                {
                    **dict(zip(GROUP, group_key)),
                    "metric": metric,
                    "threshold": thresholds[key],
                    "reached": group["epochs_to_threshold"].notna().mean(),
                    "epochs_to_threshold": group["epochs_to_threshold"].median(),
                    "best_epoch": group["best_epoch"].median(),
                    "best": group["best"].mean(),
                    "auc": auc.mean(),
                    "auc_low": low,
                    "auc_high": high,
                }
            )
    return pd.DataFrame(frames)
