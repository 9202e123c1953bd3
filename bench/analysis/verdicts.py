"""Multiple comparisons with the best: verdicts from simultaneous intervals of paired differences.

The question a report answers is *which initializer is best, and which are worse*,
with the best picked from the same runs. The procedure controls the family-wise
error of every claim it prints, the pick included:

1. All-pairs simultaneous intervals of ``theta_i - theta_j`` (``bench.analysis.maxt``: paired
   differences over seeds, single-step max-T with Student-t small-sample behaviour, ties floored
   at the data's resolution, the test set's and data orders' variance with their own degrees of
   freedom).
2. Hsu's multiple comparisons with the best follow from them:
   ``theta_i - max_{j != i} theta_j`` lies in ``[min_j L_ij, min_j U_ij]`` whenever
   every pairwise interval holds (``theta - max = min_j (theta_i - theta_j)``).
   Nothing depends on which initializer happened to come first, so picking the best
   costs nothing.
3. Verdicts (``better`` means in the metric's direction; accuracies in points):
   - ``best``: the highest mean (with ``significant`` if its interval against every
     other initializer is above 0);
   - ``worse``: some initializer is significantly better (``min_j U_ij < 0``, or the step-down
     max-T test of Westfall & Young, which rejects a superset: ``bench.analysis.maxt.step_down_p``);
   - ``equivalent``: within ``margin`` of the best, whichever it is
     (``min_j L_ij > -margin``); the interval-inclusion form of two one-sided tests
     (TOST, Schuirmann 1987) at the simultaneous level;
   - ``inconclusive``: neither; more seeds are needed.
   A claim within the Monte Carlo error of the null's draws is not made (``undecided``: Gandy 2009, whose
   resampling risk ``bench.analysis.monte_carlo`` bounds).
   Every ``worse`` and ``equivalent`` claim is true whenever the intervals hold, so
   the family-wise error of the verdicts is at most ``1 - level``
   (:func:`bench.analysis.calibrate` measures it on simulated and resampled runs).

Diverged runs reach this module already scored (``bench.analysis.scoring``: as an untrained
network), so an initializer that diverges is compared with its failures counted. With
``statistic="trimmed"`` the pairwise estimands are 20% trimmed means of the paired differences
(robust to a few stuck runs, and blind to up to 20% of failures on either side): the claims
are about those estimands, ``best`` is the highest per-initializer trimmed mean.

Why not Wilcoxon + Holm against the observed best, as before: at 8 seeds and 7
comparisons the smallest Holm p is 0.055, so it could never reject, and testing
against the best picked from the same data inflated the error (9-12% at 32 seeds).

References: Hsu 1996, *Multiple Comparisons: Theory and Methods*, ch. 4 (MCB);
Hothorn, Bretz & Westfall 2008, Biometrical J. 50(3) (max-T, multcomp);
Schuirmann 1987, J. Pharmacokinet. Biopharm. 15(6) (TOST);
Lakens 2013, Front. Psychol. 4:863 (d_z).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from bench.analysis import maxt
from bench.analysis.components import Component

VERDICTS = ("best", "equivalent", "worse", "inconclusive", "no runs")
DRAWS = maxt.DRAWS


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
             reference: str | None = None, components: Sequence[Component] = (),
             statistic: str = "mean") -> pd.DataFrame:
    """Verdict of each initializer of one task against the best, with simultaneous intervals.

    Args:
      values: `(seeds, k)` the final metric, diverged runs scored (``bench.analysis.scoring``; a NaN left
        is a run without a value, left out of its pairs); rows are seeds matched across columns (same
        data order and init stream).
      names: `(k,)` initializer names.
      higher_is_better: the metric's direction (accuracy True, loss False).
      margin: equivalence margin in the metric's units (0.005 = 0.5 pp of accuracy).
      level: simultaneous confidence level.
      rng: seed of the null simulation.
      draws: null draws.
      paired: rows are matched seeds; False compares independent samples (Welch).
      reference: the initializer the ``vs`` columns compare with; None (or one
        without runs): the best. The verdicts are about the best either way.
      components: variance that seeds do not average away (the test set's sampling, crossed data
        orders; ``bench.analysis.components``), or none (intervals over seeds only, conditional on the
        test set).
      statistic: ``"mean"``, or ``"trimmed"`` (20% trimmed means of the paired differences; the
        ``mean`` column then holds each initializer's trimmed mean).

    Returns:
      One row per initializer, best first, with ``initializer, n, mean, verdict,
      significant`` (for the best: better than every other), ``vs`` (``reference``, or
      the best; for that one the best other), ``diff, low, high``
      (``x - vs`` in the better direction, with its interval from the all-pairs family),
      ``to_best_low, to_best_high`` (the MCB interval of ``theta_i - max_{j != i} theta_j``,
      better direction), ``p`` (step-down max-T adjusted p against ``vs``), ``d_z, d_z_low, d_z_high``
      (paired standardized effect with its exact interval; unpaired or trimmed: ``diff`` over the
      standardizer, no interval),
      ``win_rate`` (share of seeds where it beats ``vs``; unpaired: A12), ``critical_value`` and
      ``floored`` (the seeds' spread of the difference against ``vs`` was below the data's resolution,
      which stands in for it: ``bench.analysis.resolution``), ``step_down`` (*worse* by the step-down test
      only: its interval to the best still touches 0), ``undecided`` and ``draws``.
      Initializers with fewer than 2 runs with a value get ``no runs`` and NaNs.

    The verdicts rest on the data, not on the null's draws: where one differs between the ends of the Monte Carlo
    bounds of ``c`` and of the p values (``bench.analysis.monte_carlo``), the null is drawn on, continuing ``rng``,
    to ten times ``draws``; where one still differs (``undecided``), every claim is the one of the bounds' strict
    ends (an interval's end on 0 at 2 seeds: *inconclusive*, not *worse* under some seeds and not others).
    ``draws`` is the number made; the intervals shown are at ``c``.
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
    components = [c.take(usable) for c in components if c is not None]
    means = maxt.location(sub, statistic)
    found = maxt.intervals(sub, [names[i] for i in usable], level, rng, draws, paired, components,
                           statistic=statistic, settled=lambda f: not _undecided(f, means, margin, level).any())
    pairs, c, p = found.pairs, found.c, found.p
    low, high = found.limits()
    labels, step_down, significant, to_best_low, to_best_high = _claims(found, c, p, means, margin, level)
    undecided = _undecided(found, means, margin, level)
    if undecided.any():  # only the claims the draws carry: those at the strict ends of c's and p's bounds
        labels, step_down, significant = _claims(found, found.c_bounds[1], found.p_bounds[1], means, margin,
                                                 level)[:3]
    order = np.argsort(-means, kind="stable")
    best = order[0]
    usable_names = [names[i] for i in usable]
    anchor = usable_names.index(reference) if reference in usable_names else best
    out = []
    for i in order:
        ref = anchor if i != anchor else (best if i != best else order[1])
        sd = pairs.sd[i, ref]
        d_z = pairs.diff[i, ref] / sd if sd > 0 else np.nan
        exact = paired and statistic == "mean"
        dz_low, dz_high = d_z_interval(d_z, int(pairs.n[i, ref]), level) if exact else (np.nan, np.nan)
        out.append({
            "arm": names[usable[i]], "n": int(counts[usable[i]]), "mean": sign * means[i],
            "verdict": labels[i], "significant": bool(i == best and significant),
            "vs": names[usable[ref]], "diff": pairs.diff[i, ref], "low": low[i, ref], "high": high[i, ref],
            "to_best_low": to_best_low[i], "to_best_high": to_best_high[i], "p": p[i, ref],
            "d_z": d_z, "d_z_low": dz_low, "d_z_high": dz_high, "win_rate": pairs.wins[i, ref],
            "critical_value": c, "floored": bool(pairs.floored[i, ref]), "step_down": bool(step_down[i]),
            "undecided": bool(undecided[i]), "draws": found.draws,
        })
    return pd.DataFrame(out + rows, columns=COLUMNS)


def _claims(found: maxt.Intervals, c: float, p: np.ndarray, means: np.ndarray, margin: float, level: float
            ) -> tuple[list[str], np.ndarray, bool, np.ndarray, np.ndarray]:
    """``(labels, step_down, significant, to_best_low, to_best_high)``: :func:`mcb` and :func:`with_step_down` at
    critical value ``c`` and p values ``p``, and whether the best is better than all."""
    low, high = found.limits(None if c == found.c else c)
    labels, to_best_low, to_best_high = mcb(low, high, means, margin)
    labels, step_down = with_step_down(labels, found.pairs.diff, p, level)
    return labels, step_down, bool(to_best_low[int(np.argmax(means))] > 0), to_best_low, to_best_high


def _undecided(found: maxt.Intervals, means: np.ndarray, margin: float, level: float) -> np.ndarray:
    """`(k,)` whether each initializer's verdict (the best's: whether it is better than all) differs between the
    ends of the Monte Carlo bounds of ``c`` and ``p`` (``bench.analysis.monte_carlo``): at the low ends every claim
    is at least as easy as at the high ones."""
    (c_low, c_high), (p_low, p_high) = found.c_bounds, found.p_bounds
    generous = _claims(found, c_low, p_low, means, margin, level)
    strict = _claims(found, c_high, p_high, means, margin, level)
    best = int(np.argmax(means))
    return np.array([a != b or (i == best and generous[2] != strict[2])
                     for i, (a, b) in enumerate(zip(generous[0], strict[0]))])


def with_step_down(labels: list[str], diff: np.ndarray, p: np.ndarray, level: float) -> tuple[list[str], np.ndarray]:
    """The verdicts with ``worse`` also where the step-down test finds some initializer significantly better
    (``diff[j, i] > 0`` at step-down adjusted ``p[j, i] <= 1 - level``, ``bench.analysis.maxt.step_down_p``), and
    which of them only the step-down finds (their interval to the best may still touch 0)."""
    k = len(labels)
    better = (diff.T > 0) & (np.nan_to_num(p.T, nan=1.0) <= 1 - level) & ~np.eye(k, dtype=bool)  # [i, j]: j beats i
    found = better.any(axis=1)
    step_down = np.array([found[i] and labels[i] not in ("worse", "best") for i in range(k)])
    return [("worse" if step_down[i] else label) for i, label in enumerate(labels)], step_down


COLUMNS = ["arm", "n", "mean", "verdict", "significant", "vs", "diff", "low", "high", "to_best_low",
           "to_best_high", "p", "d_z", "d_z_low", "d_z_high", "win_rate", "critical_value", "floored", "step_down",
           "undecided", "draws"]


def _no_runs(name: str, n: int) -> dict:
    return {"arm": name, "n": n, "mean": np.nan, "verdict": "no runs", "significant": False, "floored": False,
            "step_down": False, "undecided": False}


def _alone(name: str, column: np.ndarray) -> dict:
    return {"arm": name, "n": int(np.isfinite(column).sum()), "mean": float(np.nanmean(column)),
            "verdict": "best", "significant": False, "floored": False, "step_down": False, "undecided": False}
