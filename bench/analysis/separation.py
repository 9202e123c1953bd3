"""Where two learning curves separate: simultaneous bands of every pair's difference at every evaluation.

For a pair of initializers ``(i, j)`` and an evaluation ``t`` (an epoch, or a point within one), the paired
differences over seeds ``d_st = y_ist - y_jst`` give a mean ``m_ijt`` and a standard error ``se_ijt``. One critical
value ``c`` makes every band ``m_ijt +- c se_ijt``, all pairs at all evaluations, hold *together* with probability
``level``: ``c`` is the ``level`` quantile of ``max_ijt |T_ijt|`` under the null of equal curves, from the two
references the final-metric comparisons use (``bench.analysis.maxt``): normal seeds with the shrunk covariance of
every (initializer, evaluation) column, and a smoothed bootstrap of the centred seeds, the larger quantile by
quantile. The columns of one run are strongly correlated over epochs, which both references keep, so ``c`` is
far below a Bonferroni bound over the evaluations.

A pair *separates* at ``t`` where its band excludes 0; the report gives, per pair that separates anywhere, which
is ahead, the first and the last evaluation where it is, and whether it still is at the end: "faster early, equal
late" is a first and a last epoch with an interval behind each, not a reading of a plot; curves that cross (one
ahead early, the other late) get a row each way. The family-wise error of
"some pair separates somewhere" under equal curves is measured by simulation (``tests/analysis/test_separation.py``).

A diverged run's curve is scored from its divergence on (``bench.analysis.scoring``); standard deviations are
floored at the values' lattice (``bench.analysis.resolution``), as for the final metric. Runs are paired by seed
(the suite's runs of one seed share data order); curves of unpaired runs get no bands.

References: Hothorn, Bretz & Westfall 2008, Biometrical J. 50(3) (max-T); Montiel Olea & Plagborg-Møller 2019,
J. Appl. Econometrics 34(1) (simultaneous sup-t bands).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import maxt, monte_carlo, resolution

DRAWS = 10_000  # null draws of the critical value (the report passes ``stats.Settings.draws``)
BATCH_FLOATS = 20_000_000  # the null is drawn in batches of draws whose columns' cross products hold this many floats
MAX_ARMS = 12  # more initializers than this (a grid's arms): no bands (66 pairs already; the table would not be read)


def _columns_of(curves: np.ndarray) -> np.ndarray:
    """`(seeds, arms x evaluations)` from `(arms, seeds, evaluations)`: column ``a * E + t``."""
    arms, seeds, evaluations = curves.shape
    return curves.transpose(1, 0, 2).reshape(seeds, arms * evaluations)


def _pairs(arms: int, evaluations: int) -> tuple[np.ndarray, np.ndarray]:
    """`(pairs,)` column indices ``(i E + t, j E + t)`` of every pair ``i < j`` at every evaluation ``t``."""
    i, j = np.triu_indices(arms, 1)
    t = np.arange(evaluations)
    return (i[:, None] * evaluations + t).ravel(), (j[:, None] * evaluations + t).ravel()


def _picking(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> maxt.PairStats:
    """Pair statistics that make ``bench.analysis.maxt``'s null draws test exactly the pairs ``(rows, cols)``
    (it tests the pairs whose ``sd`` is above 0, ``rows < cols``)."""
    k = values.shape[1]
    picked = np.zeros((k, k))
    picked[rows, cols] = 1.0
    nothing = np.zeros((k, k))
    return maxt.PairStats(tuple(range(k)), nothing, nothing, picked, nothing, nothing, nothing, nothing.astype(bool))


def critical_value(curves: np.ndarray, level: float, rng: np.random.Generator, draws: int = DRAWS,
                   floor: float | None = None) -> float:
    """``c``: the ``level`` quantile of ``max |T|`` over every pair at every evaluation under equal curves.

    Args:
      curves: `(arms, seeds, evaluations)`, NaN where a run has no value.
    """
    values = _columns_of(curves)
    floor = resolution.difference_floor(values) if floor is None else floor
    return float(np.quantile(_combined(_null_maxima(curves, values, rng, draws, floor)), level))


def _null_maxima(curves: np.ndarray, values: np.ndarray, rng: np.random.Generator, draws: int, floor: float
                 ) -> list[np.ndarray]:
    """Per reference (normal, smoothed bootstrap), `(draws,)` null draws of ``max |T|`` over the pairs and
    evaluations, in batches of at most :data:`BATCH_FLOATS` floats of cross products."""
    arms, _, evaluations = curves.shape
    rows, cols = _pairs(arms, evaluations)
    picked = _picking(values, rows, cols)
    root = maxt.covariance_root(values)
    batch = max(1, min(draws, BATCH_FLOATS // values.shape[1] ** 2))
    maxima = []
    for reference in (maxt.null_pair_t, maxt.smoothed_bootstrap_pair_t):
        t = [reference(values, min(batch, draws - start), rng, floor=floor, observed=picked, root=root)[0]
             for start in range(0, draws, batch)]
        maxima.append(np.concatenate([part.max(1) if part.shape[1] else np.zeros(len(part)) for part in t]))
    return maxima


def _combined(maxima: list[np.ndarray]) -> np.ndarray:
    """The references' sorted maxima, the larger quantile by quantile."""
    return np.maximum.reduce([np.sort(m) for m in maxima])


def bands(curves: np.ndarray, level: float, rng: np.random.Generator, draws: int = DRAWS,
          floor: float | None = None, settle: bool = True
          ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, int]:
    """``(mean, half_width, c, claimed_half_width, undecided)``: every pair's mean difference `(arms, arms,
    evaluations)` (``[i, j]``: ``i`` minus ``j``), its simultaneous band's half width ``c se`` and the half width
    its claims use; NaN where fewer than two seeds have both runs.

    With ``settle``, where a band's exclusion of 0 differs between the ends of ``c``'s Monte Carlo bounds
    (``bench.analysis.monte_carlo``), the claims take the bounds' upper end (no separation the draws cannot carry;
    a decided cell is apart at either end, so only the undecided ones change) and ``undecided`` counts them. Not
    drawn on, unlike the verdicts: the null of every pair at every evaluation is the costly part of a report (10x
    the draws made the default preset's report 4x slower), and among hundreds of cells one is often still open
    after it. Without ``settle``, the claims take ``c``, the plain estimate from ``draws`` (the simulations of the
    error rates measure that one: the settled procedure claims no more, but with probability ``RISK``). The bands
    shown are at ``c`` either way.

    Args:
      curves: `(arms, seeds, evaluations)`.
    """
    arms, _, evaluations = curves.shape
    values = _columns_of(curves)
    floor = resolution.difference_floor(values) if floor is None else floor
    maxima = _null_maxima(curves, values, rng, draws, floor)
    rows, cols = _pairs(arms, evaluations)
    mean, variance = maxt.paired_moments(values[None], rows, cols, floor)
    se = np.sqrt(variance[0])
    with np.errstate(invalid="ignore"):
        apart = lambda c: np.abs(mean[0]) > c * se  # noqa: E731
    combined = _combined(maxima)
    c = c_claims = float(np.quantile(combined, level))
    undecided = 0
    if settle:  # one look: drawing on costs 10x the whole null, and among hundreds of cells one is often still open
        low, high = monte_carlo.quantile_bounds(combined, level, monte_carlo.per_look(monte_carlo.RISK, 2, 1))
        undecided = int((apart(low) != apart(high)).sum())
        c_claims = high if undecided else c
    i, j, t = rows // evaluations, cols // evaluations, rows % evaluations
    diff, half, claims = (np.full((arms, arms, evaluations), np.nan) for _ in range(3))
    diff[i, j, t], diff[j, i, t] = mean[0], -mean[0]
    half[i, j, t] = half[j, i, t] = c * se
    claims[i, j, t] = claims[j, i, t] = c_claims * se
    return diff, half, c, claims, undecided


def _first_ahead(diff: np.ndarray, half: np.ndarray, sign: float, ahead: int, behind: int) -> float:
    """The first evaluation where ``ahead``'s curve is apart from ``behind``'s and better (inf: none)."""
    with np.errstate(invalid="ignore"):
        where = np.flatnonzero(sign * diff[ahead, behind] > half[ahead, behind])
    return float(where[0]) if where.size else np.inf


def separations(curves: np.ndarray, names, epochs: np.ndarray, higher_is_better: bool, level: float,
                rng: np.random.Generator, draws: int = DRAWS, settle: bool = True) -> pd.DataFrame:
    """Per pair of initializers whose curves separate somewhere, and per direction: one row with ``ahead, behind``
    (curves that cross give two rows, the one ahead first listed first), ``first, last`` (the first and last
    epochs where the band excludes 0 with ``ahead`` better), ``epochs`` (how many evaluations it does), ``at_end``
    (whether it does at the last), ``largest`` and its band (``low, high``: the difference ahead minus behind where
    it is largest, in the metric's direction, with its simultaneous band, at epoch ``at``); and the critical value
    in ``attrs["c"]``, the pair-evaluations the draws left undecided (not claimed) in ``attrs["undecided"]``
    (``settle``: :func:`bands`).

    Args:
      curves: `(arms, seeds, evaluations)` each run's curve (diverged epochs scored), NaN where a run is missing.
      epochs: `(evaluations,)` the epoch of each evaluation.
    """
    diff, half, c, claimed, undecided = bands(curves, level, rng, draws, settle=settle)
    sign = 1.0 if higher_is_better else -1.0
    rows = []
    for i, j in zip(*np.triu_indices(len(names), 1)):
        for ahead, behind in sorted([(i, j), (j, i)], key=lambda pair: _first_ahead(diff, claimed, sign, *pair)):
            gain = sign * diff[ahead, behind]
            with np.errstate(invalid="ignore"):
                apart = (np.abs(gain) > claimed[i, j]) & (gain > 0)
            if not apart.any():
                continue
            where = np.flatnonzero(apart)
            peak = int(np.nanargmax(np.where(apart, gain, -np.inf)))
            rows.append({"ahead": names[ahead], "behind": names[behind], "first": float(epochs[where[0]]),
                         "last": float(epochs[where[-1]]), "epochs": int(apart.sum()), "at_end": bool(apart[-1]),
                         "largest": float(gain[peak]), "low": float(gain[peak] - half[i, j, peak]),
                         "high": float(gain[peak] + half[i, j, peak]), "at": float(epochs[peak])})
    out = pd.DataFrame(rows, columns=["ahead", "behind", "first", "last", "epochs", "at_end", "largest", "low",
                                      "high", "at"])
    out.attrs["c"], out.attrs["undecided"] = c, undecided
    return out
