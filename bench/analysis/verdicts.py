"""Multiple comparisons with the best: simultaneous intervals of paired differences and verdicts.

The question a report answers is *which initializer is best, and which are worse*,
with the best picked from the same runs. The procedure controls the family-wise
error of every claim it prints, the pick included:

1. For every pair of initializers ``(i, j)`` of a task, the paired differences
   ``d_s = x_si - x_sj`` over the seeds ``s`` where both runs finished give
   ``mean_ij``, ``se_ij = sd(d) / sqrt(n_ij)`` and ``T_ij = mean_ij / se_ij``.
2. One critical value ``c`` makes all ``k (k - 1) / 2`` intervals
   ``mean_ij +- c se_ij`` hold *together* with probability ``level``: ``c`` is the
   ``level`` quantile of ``max_ij |T_ij|`` under the null, simulated from normal seeds
   with the observed covariance of the initializers (the runs of one seed are
   correlated: same data order, same init stream) and the observed pattern of
   diverged runs. This is the single-step max-T method (Hothorn, Bretz & Westfall
   2008) with per-pair (unpooled) variances; each ``T_ij`` is Student t with
   ``n_ij - 1`` degrees of freedom, so the intervals keep their coverage at 8 seeds.
3. Hsu's multiple comparisons with the best follow from the all-pairs intervals:
   ``theta_i - max_{j != i} theta_j`` lies in ``[min_j L_ij, min_j U_ij]`` whenever
   every pairwise interval holds (``theta - max = min_j (theta_i - theta_j)``).
   Nothing depends on which initializer happened to come first, so picking the best
   costs nothing.
4. Verdicts (``better`` means in the metric's direction; accuracies in points):
   - ``best``: the highest mean (with ``significant`` if its interval against every
     other initializer is above 0);
   - ``worse``: some initializer is significantly better (``min_j U_ij < 0``);
   - ``equivalent``: within ``margin`` of the best, whichever it is
     (``min_j L_ij > -margin``); the interval-inclusion form of two one-sided tests
     (TOST, Schuirmann 1987) at the simultaneous level;
   - ``inconclusive``: neither; more seeds are needed.
   Every ``worse`` and ``equivalent`` claim is true whenever the intervals hold, so
   the family-wise error of the verdicts is at most ``1 - level``
   (:func:`bench.analysis.calibrate` measures it on simulated and resampled runs).

Why not a sign-flip (Rademacher) max-T: it covers normal runs at 8 seeds too (0.96,
8 initializers, 400 replications) but was no better on resampled real runs, has only
2^8 sign patterns at 8 seeds, and does not handle diverged runs; the plain
bootstrap-t is far too conservative at 8 seeds (``c`` ~ 9.7 instead of 4.8).
Coverage on skewed, gridded (``k / n_test``) and stuck-at-chance runs is measured in
``tests/test_verdicts.py``; on a report's own runs by ``python -m bench calibrate``.
Why not Wilcoxon + Holm against the observed best, as before: at 8 seeds and 7
comparisons the smallest Holm p is 0.055, so it could never reject, and testing
against the best picked from the same data inflated the error (9-12% at 32 seeds).

References: Hsu 1996, *Multiple Comparisons: Theory and Methods*, ch. 4 (MCB);
Hothorn, Bretz & Westfall 2008, Biometrical J. 50(3) (max-T, multcomp);
Schuirmann 1987, J. Pharmacokinet. Biopharm. 15(6) (TOST);
Silverman & Young 1987, Biometrika 74(3) (smoothed bootstrap);
Lakens 2013, Front. Psychol. 4:863 (d_z).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
from scipy import optimize, stats

VERDICTS = ("best", "equivalent", "worse", "inconclusive", "no runs")
DRAWS = 10_000  # null draws of max |T|: the 95% quantile's Monte Carlo sd is ~0.3% of it


@dataclasses.dataclass(frozen=True)
class PairStats:
    """Paired differences of every pair of initializers of one task.

    Attributes:
      names: `(k,)` initializer names, in column order.
      diff: `(k, k)` ``mean(x_i - x_j)`` over the seeds both finished (in the
        metric's units, sign as measured; ``diff[i, j] = -diff[j, i]``).
      se: `(k, k)` its standard error.
      sd: `(k, k)` the standardizer of the effect size: the standard deviation of the
        paired differences (``d_z``), or unpaired ``sqrt((s_i^2 + s_j^2) / 2)``.
      n: `(k, k)` seeds in each pair (unpaired: runs of both).
      df: `(k, k)` degrees of freedom of ``T = diff / se``.
      wins: `(k, k)` share of seeds where ``x_i > x_j`` plus half the ties (unpaired:
        over all pairs of runs, Vargha & Delaney's A12).
    """

    names: tuple[str, ...]
    diff: np.ndarray
    se: np.ndarray
    sd: np.ndarray
    n: np.ndarray
    df: np.ndarray
    wins: np.ndarray


def pair_stats(values: np.ndarray, names, paired: bool = True) -> PairStats:
    """Statistics of every pair of columns of ``values`` `(seeds, k)`; NaN = the run diverged.

    Paired: differences over the seeds where both runs finished. Unpaired (runs not
    matched by seed): difference of the means with Welch's standard error and
    Welch-Satterthwaite degrees of freedom.
    """
    values = np.asarray(values, np.float64)
    ok = np.isfinite(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        if not paired:
            count = ok.sum(0).astype(np.float64)
            mean = np.nansum(values, 0) / count
            var = np.nansum((values - mean) ** 2, 0) / (count - 1)
            var = np.where(is_constant(values), 0.0, var)  # exactly: a sum of equal floats leaves ~1e-16
            n = count[:, None] + count[None, :]
            se = np.sqrt(var[:, None] / count[:, None] + var[None, :] / count[None, :])
            d = values[:, None, :, None] - values[None, :, None, :]
            valid = ok[:, None, :, None] & ok[None, :, None, :]
            wins = (np.where(valid, d > 0, False).sum((0, 1)) + 0.5 * np.where(valid, d == 0, False).sum((0, 1))) \
                / valid.sum((0, 1))
            ok_pair = (count[:, None] >= 2) & (count[None, :] >= 2)
            a, b = (var / count)[:, None], (var / count)[None, :]
            df = (a + b) ** 2 / (a**2 / (count[:, None] - 1) + b**2 / (count[None, :] - 1))
            return PairStats(tuple(names), mean[:, None] - mean[None, :], np.where(ok_pair, se, np.nan),
                             np.where(ok_pair, np.sqrt((var[:, None] + var[None, :]) / 2), np.nan), n.astype(int),
                             df, wins)
        both = ok[:, :, None] & ok[:, None, :]
        d = np.where(both, values[:, :, None] - values[:, None, :], 0.0)
        n = both.sum(0)
        diff = d.sum(0) / n
        dev = np.where(both, d - diff, 0.0)
        sd = np.sqrt((dev**2).sum(0) / (n - 1))
        spread = np.where(both, d, -np.inf).max(0) - np.where(both, d, np.inf).min(0)
        sd = np.where(spread == 0, 0.0, sd)  # equal differences: exactly 0, not ~1e-16
        wins = (np.where(both, d > 0, False).sum(0) + 0.5 * np.where(both, d == 0, False).sum(0)) / n
    sd = np.where(n >= 2, sd, np.nan)
    return PairStats(tuple(names), diff, sd / np.sqrt(n), sd, n, n - 1.0, wins)


def is_constant(values: np.ndarray) -> np.ndarray:
    """`(k,)` whether each column's finite values are all equal (exactly)."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmax(values, 0) == np.nanmin(values, 0)


def covariance(values: np.ndarray) -> np.ndarray:
    """`(k, k)` covariance of the initializers over seeds, shrunk as Ledoit & Wolf (2004) do.

    With 8 seeds the sample covariance of 8 initializers has rank 7 and spurious
    correlations that make the simulated ``max |T|`` too small (simultaneous coverage
    0.92 at 8 seeds in simulation; 0.945 with shrinkage toward a scaled identity).
    Seeds where some run diverged are left out; with fewer than 3 complete seeds the
    diagonal of pairwise-complete variances is used.
    """
    complete = values[np.isfinite(values).all(1)]
    if len(complete) >= 3:
        from sklearn.covariance import ledoit_wolf  # here: scikit-learn takes 0.2 s to import, figures need none

        return ledoit_wolf(complete)[0]
    variances = pd.DataFrame(values).var().to_numpy()
    return np.diag(np.where(np.isfinite(variances), variances, 0.0))


def _null_max_t(values: np.ndarray, draws: int, rng: np.random.Generator, paired: bool = True) -> np.ndarray:
    """`(draws,)` samples of ``max |T_ij|`` when every initializer has the same mean.

    Seeds are drawn from ``N(0, S)`` with ``S`` the shrunk covariance of the columns
    (:func:`covariance`; unpaired: independent columns with their own variances), with
    the observed diverged entries removed, and the statistics of :func:`pair_stats`
    computed on each draw. Pairs whose observed differences are constant are left out
    (their difference is known exactly, as far as these seeds tell).
    """
    m = np.isfinite(values).astype(np.float64)
    if paired:
        eigval, eigvec = np.linalg.eigh(covariance(values))
        root = eigvec * np.sqrt(np.clip(eigval, 0, None))
    else:
        root = np.diag(
            np.nan_to_num(np.nanstd(values, 0, ddof=1)) if values.shape[0] > 1 else np.zeros(values.shape[1])
        )
    z = rng.standard_normal((draws, values.shape[0], values.shape[1])) @ root.T * m
    observed = pair_stats(values, range(values.shape[1]), paired)
    keep = np.triu(observed.sd > 0, 1)
    if not keep.any():
        return np.zeros(draws)
    if paired:
        rows, cols = np.nonzero(keep)
        t = paired_abs_t(np.where(m > 0, z, np.nan), rows, cols)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            count = m.sum(0)
            mean = z.sum(1) / count
            var = ((z - mean[:, None, :]) ** 2 * m).sum(1) / (count - 1)
            t = (np.abs(mean[:, :, None] - mean[:, None, :]) / np.sqrt(
                (var / count)[:, :, None] + (var / count)[:, None, :]))[:, keep]
    return np.max(np.nan_to_num(t, nan=0.0), axis=1)


def paired_abs_t(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """`(draws, pairs)` paired ``|t|`` of columns ``rows[p]`` minus ``cols[p]`` of each draw ``x[d]`` `(seeds, k)`,
    over the seeds where both are finite (NaN: a diverged run): ``|mean(d)| / (sd(d) / sqrt(count))``.

    From each draw's column sums and cross products (batched `(k, seeds) @ (seeds, k)` products of the columns
    centred per draw), not from the `(draws, seeds, pairs)` differences: 3-10x less time and memory. A sum of
    squares of differences from cross products cancels digits where two columns are nearly equal; pairs whose
    squared deviations fall below :data:`CANCELLED` of their columns' squares in some draw are computed from their
    differences instead, so every statistic keeps about 10 significant digits (1e-15 relative for real runs).
    NaN where fewer than 2 seeds count; inf where ``sd`` is 0.
    """
    finite = np.isfinite(x)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        given = x
        centres = np.nanmean(x, axis=1, keepdims=True)  # (draws, 1, k); centred, the cross products hold the spread
        x = x - centres
        if finite.all():
            count = float(x.shape[1])
            sums, products = x.sum(1), np.matmul(x.transpose(0, 2, 1), x)
            s1 = sums[:, rows] - sums[:, cols]
            squares_i, squares_j = products[:, rows, rows], products[:, cols, cols]
        else:
            ones = finite.astype(np.float64)
            x = np.where(finite, x, 0.0)
            # over the seeds where both are finite: sum_s x_si m_sj, sum_s x_si^2 m_sj, sum_s x_si x_sj, sum_s m_si m_sj
            sums, squares = np.matmul(x.transpose(0, 2, 1), ones), np.matmul((x * x).transpose(0, 2, 1), ones)
            products = np.matmul(x.transpose(0, 2, 1), x)
            count = np.matmul(ones.transpose(0, 2, 1), ones)[:, rows, cols]
            s1 = sums[:, rows, cols] - sums[:, cols, rows]
            squares_i, squares_j = squares[:, rows, cols], squares[:, cols, rows]
        s2 = squares_i + squares_j - 2 * products[:, rows, cols]
        mean = s1 / count  # of the centred differences; the variance is that of the differences
        deviations = s2 - count * mean * mean  # sum of the squared deviations of the differences
        t = np.abs(mean + centres[:, 0, rows] - centres[:, 0, cols]) / np.sqrt(
            np.maximum(deviations, 0.0) / (count - 1) / count)
        cancelled = (deviations < CANCELLED * (squares_i + squares_j)).any(0)
        if cancelled.any():  # nearly equal columns: from the differences themselves
            d = given[:, :, rows[cancelled]] - given[:, :, cols[cancelled]]  # (a constant one exactly: sd 0)
            t[:, cancelled] = np.abs(np.nanmean(d, 1)) / (np.nanstd(d, 1, ddof=1) / np.sqrt(np.isfinite(d).sum(1)))
    return t


CANCELLED = 1e-6  # a sum of squares below this share of its terms' is computed from the differences


def _smoothed_bootstrap_max_t(values: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """`(draws,)` null samples of ``max |T_ij|`` from a smoothed bootstrap of the centred seeds.

    Seeds (rows, each initializer centred at its mean) are drawn with replacement and
    blurred with ``N(0, h^2 S)`` (``S``: :func:`covariance`, ``h``: Silverman's
    multivariate bandwidth), rescaled by ``1 / sqrt(1 + h^2)`` to keep the variance
    (Silverman & Young 1987). Unlike the normal simulation it keeps the skew and the
    heavy tails of real runs (a seed stuck at chance, a lattice of ``k / n_test``
    accuracies); unlike the plain bootstrap-t it does not collapse at 8 seeds, where
    resamples with few distinct seeds give near-zero standard errors.
    """
    n, k = values.shape
    observed = pair_stats(values, range(k))
    rows, cols = np.nonzero(np.triu(observed.sd > 0, 1))
    if rows.size == 0:
        return np.zeros(draws)
    eigval, eigvec = np.linalg.eigh(covariance(values))
    root = eigvec * np.sqrt(np.clip(eigval, 0, None))
    h = (4 / (k + 2)) ** (1 / (k + 4)) * n ** (-1 / (k + 4))
    centred = values - np.nanmean(values, 0)
    x = (centred[rng.integers(0, n, (draws, n))] + h * rng.standard_normal((draws, n, k)) @ root.T) / np.sqrt(1 + h * h)
    return np.max(np.nan_to_num(paired_abs_t(x, rows, cols), nan=0.0, posinf=0.0), axis=1)  # NaN: a run diverged


def simultaneous_intervals(
    values: np.ndarray, names, level: float = 0.95, rng: np.random.Generator | int = 0, draws: int = DRAWS,
    paired: bool = True, example_var: np.ndarray | None = None,
) -> tuple[PairStats, float, np.ndarray]:
    """All-pairs intervals ``diff +- c se`` holding together with probability ``level``.

    Args:
      values: `(seeds, k)` the metric of seed ``s`` and initializer ``i``; NaN where the run diverged.
      names: `(k,)` initializer names.
      level: simultaneous coverage.
      rng: generator (or seed) of the null simulation; fixed for reproducible reports.
      draws: null draws.
      paired: runs matched by seed (rows); False treats each column as an independent sample.
      example_var: `(k, k)` the test set's sampling variance of each mean difference
        (``bench.analysis.outcomes``), added to ``se^2``; the critical value stays the seeds'
        (its degrees of freedom are the seeds', so this errs on the wide side).

    Returns:
      ``(pairs, c, p_adjusted)``: the pair statistics, the critical value and `(k, k)`
      single-step max-T adjusted p values ``P(max |T| >= |T_ij|)``.
    """
    values = np.asarray(values, np.float64)
    pairs = pair_stats(values, names, paired)
    if example_var is not None:
        pairs = dataclasses.replace(pairs, se=np.sqrt(pairs.se**2 + example_var))
    rng = np.random.default_rng(rng)
    null = np.sort(_null_max_t(values, draws, rng, paired))
    if paired:  # the more conservative of the two references, quantile by quantile
        null = np.maximum(null, np.sort(_smoothed_bootstrap_max_t(values, draws, rng)))
    c = float(np.quantile(null, level))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(pairs.diff) / pairs.se
    t = np.where(pairs.se == 0, np.where(pairs.diff == 0, 0.0, np.inf), t)
    p = (np.sum(null[:, None, None] >= t[None], axis=0) + 1) / (draws + 1)
    p = np.where(np.isfinite(pairs.diff), np.where(t == 0, 1.0, p), np.nan)
    return pairs, c, p


def d_z_interval(d_z: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Interval of the paired standardized effect ``d_z = mean(d) / sd(d)``.

    ``sqrt(n) d_z`` is noncentral t with ``n - 1`` degrees of freedom and
    noncentrality ``sqrt(n) delta``; the interval inverts its CDF (Lakens 2013;
    Cumming & Finch 2001). Where scipy's noncentral t cannot be inverted (huge
    effects, e.g. ``|d_z| > 5``), the normal approximation
    ``d_z +- z sqrt(1 / n + d_z^2 / (2 (n - 1)))`` is used instead.
    """
    if not (n >= 2 and np.isfinite(d_z)):
        return (np.nan, np.nan)
    t, df, root_n = d_z * np.sqrt(n), n - 1, np.sqrt(n)
    tail = (1 - level) / 2

    def solve(target: float) -> float:
        f = lambda ncp: stats.nct.cdf(t, df, ncp) - target  # noqa: E731
        span = 10 + 2 * abs(t)
        return optimize.brentq(f, t - span, t + span, xtol=1e-10) / root_n

    try:
        with np.errstate(all="ignore"):
            return (solve(1 - tail), solve(tail))
    except ValueError:
        half = stats.norm.ppf(1 - tail) * np.sqrt(1 / n + d_z**2 / (2 * (n - 1)))
        return (d_z - half, d_z + half)


def mcb(
    low: np.ndarray, high: np.ndarray, means: np.ndarray, margin: float
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Verdicts from all-pairs intervals (better direction), Hsu's MCB.

    Args:
      low, high: `(k, k)` simultaneous intervals of ``theta_i - theta_j``.
      means: `(k,)` the estimates; the largest is the best.
      margin: equivalence margin.

    Returns:
      ``(labels, to_best_low, to_best_high)``: a verdict per column and the interval of
      ``theta_i - max_{j != i} theta_j``.
    """
    k = len(means)
    off = ~np.eye(k, dtype=bool)
    to_best_low = np.array([np.min(low[i, off[i]]) for i in range(k)])
    to_best_high = np.array([np.min(high[i, off[i]]) for i in range(k)])
    best = int(np.argmax(means))
    labels = ["best" if i == best else "worse" if to_best_high[i] < 0 else
              "equivalent" if to_best_low[i] > -margin else "inconclusive" for i in range(k)]
    return labels, to_best_low, to_best_high


def verdicts(values: np.ndarray, names, higher_is_better: bool = True, margin: float = 0.005, level: float = 0.95,
             rng: np.random.Generator | int = 0, draws: int = DRAWS, paired: bool = True,
             reference: str | None = None, example_var: np.ndarray | None = None) -> pd.DataFrame:
    """Verdict of each initializer of one task against the best, with simultaneous intervals.

    Args:
      values: `(seeds, k)` the final metric, NaN where a run diverged; rows are seeds
        matched across columns (same data order and init stream).
      names: `(k,)` initializer names.
      higher_is_better: the metric's direction (accuracy True, loss False).
      margin: equivalence margin in the metric's units (0.005 = 0.5 pp of accuracy).
      level: simultaneous confidence level.
      rng: seed of the null simulation.
      draws: null draws.
      paired: rows are matched seeds; False compares independent samples (Welch).
      reference: the initializer the ``vs`` columns compare with; None (or one
        without runs): the best. The verdicts are about the best either way.
      example_var: `(k, k)` test-set sampling variance of the mean differences, or None
        (intervals over seeds only, conditional on the test set).

    Returns:
      One row per initializer, best first, with ``initializer, n, mean, verdict,
      significant`` (for the best: better than every other), ``vs`` (``reference``, or
      the best; for that one the best other), ``diff, low, high``
      (``x - vs`` in the better direction, with its interval from the all-pairs family),
      ``to_best_low, to_best_high`` (the MCB interval of ``theta_i - max_{j != i} theta_j``,
      better direction), ``p`` (max-T adjusted p against ``vs``), ``d_z, d_z_low, d_z_high``
      (paired standardized effect with its exact interval; unpaired: Cohen's ``d_av``, no interval),
      ``win_rate`` (share of seeds where it beats ``vs``; unpaired: A12) and ``critical_value``.
      Initializers with fewer than 2 finished runs get ``no runs`` and NaNs.
    """
    values = np.asarray(values, np.float64)
    sign = 1.0 if higher_is_better else -1.0
    names = list(names)
    counts = np.isfinite(values).sum(0)
    usable = [i for i in range(len(names)) if counts[i] >= 2]
    rows = [_no_runs(names[i], int(counts[i])) for i in range(len(names)) if counts[i] < 2]
    if len(usable) < 2:
        rows = [_alone(names[i], values[:, i]) for i in usable] + rows
        return pd.DataFrame(rows, columns=COLUMNS)  # every column, NaN where nothing could be compared
    sub = sign * values[:, usable]
    extra = None if example_var is None else np.asarray(example_var)[np.ix_(usable, usable)]
    pairs, c, p = simultaneous_intervals(sub, [names[i] for i in usable], level, rng, draws, paired, extra)
    with np.errstate(invalid="ignore"):
        low, high = pairs.diff - c * pairs.se, pairs.diff + c * pairs.se
    means = np.nanmean(sub, axis=0)
    order = np.argsort(-means, kind="stable")
    best = order[0]
    labels, to_best_low, to_best_high = mcb(low, high, means, margin)
    usable_names = [names[i] for i in usable]
    anchor = usable_names.index(reference) if reference in usable_names else best
    found = []
    for i in order:
        ref = anchor if i != anchor else (best if i != best else order[1])
        sd = pairs.sd[i, ref]
        d_z = pairs.diff[i, ref] / sd if sd > 0 else np.nan
        dz_low, dz_high = d_z_interval(d_z, int(pairs.n[i, ref]), level) if paired else (np.nan, np.nan)
        found.append({
            "arm": names[usable[i]], "n": int(counts[usable[i]]), "mean": sign * means[i],
            "verdict": labels[i], "significant": bool(i == best and to_best_low[i] > 0),
            "vs": names[usable[ref]], "diff": pairs.diff[i, ref], "low": low[i, ref], "high": high[i, ref],
            "to_best_low": to_best_low[i], "to_best_high": to_best_high[i], "p": p[i, ref],
            "d_z": d_z, "d_z_low": dz_low, "d_z_high": dz_high, "win_rate": pairs.wins[i, ref],
            "critical_value": c,
        })
    return pd.DataFrame(found + rows, columns=COLUMNS)


COLUMNS = ["arm", "n", "mean", "verdict", "significant", "vs", "diff", "low", "high", "to_best_low",
           "to_best_high", "p", "d_z", "d_z_low", "d_z_high", "win_rate", "critical_value"]


def _no_runs(name: str, n: int) -> dict:
    return {"arm": name, "n": n, "mean": np.nan, "verdict": "no runs", "significant": False}


def _alone(name: str, column: np.ndarray) -> dict:
    return {"arm": name, "n": int(np.isfinite(column).sum()), "mean": float(np.nanmean(column)),
            "verdict": "best", "significant": False}
