"""The Monte Carlo error of a simulated critical value and p value, so that no verdict rests on the draws.

A report's critical value ``c`` is the ``level`` quantile of draws of a null maximum, and its step-down p values are
shares of draws above the observed statistics: estimates, each with a Monte Carlo error (about 0.3% of ``c`` at
10,000 draws). A verdict whose interval ends within that error of its threshold changes with the simulation's seed
(at 2 seeds, an interval 87 points wide whose end sat 0.01 point below 0 was *worse* under 6 null seeds of 10 and
*inconclusive* under 4). Following Gandy (2009), each quantity is given an interval that holds, whatever the
draws, with probability at least ``1 - risk`` (:data:`RISK` over the whole sequence of looks), and a decision is
taken only where it is the same at both ends:

- the ``level`` quantile of ``B`` draws lies between their order statistics ``l`` and ``u``, the binomial
  ``(B, level)`` quantiles at ``risk / 2`` and ``1 - risk / 2`` (the distribution-free interval of a quantile;
  David & Nagaraja 2003, *Order Statistics*, sec. 7.1);
- a p value estimated as a share ``x / B`` lies in the Clopper-Pearson interval of ``x`` successes in ``B`` trials.

Where a decision differs between the ends after the draws asked for, more are drawn (up to :data:`EXTENDED` times
as many; the curves' separations, whose null is the costly part of a report, are not drawn on); where it still
differs, the caller reports the conservative end (no claim the draws cannot carry) and says so.

References: Gandy 2009, J. Am. Stat. Assoc. 104(488), *Sequential implementation of Monte Carlo tests with
uniformly bounded resampling risk*; Clopper & Pearson 1934, Biometrika 26(4).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

RISK = 0.001  # the chance that a decision differs from the one infinitely many draws would give, all looks together
LOOKS = 2  # the draws asked for, then EXTENDED times as many where a decision is still open
EXTENDED = 10


def quantile_bounds(sorted_draws: np.ndarray, level: float, risk: float) -> tuple[float, float]:
    """``(low, high)``: order statistics of ``sorted_draws`` `(B,)` (ascending) holding the true ``level``
    quantile between them with probability at least ``1 - risk`` (``high`` is inf where ``B`` is too small)."""
    b = len(sorted_draws)
    if b == 0:
        return (np.nan, np.nan)
    low = int(stats.binom.ppf(risk / 2, b, level))  # 1-based: P(X < low) <= risk / 2
    high = int(stats.binom.ppf(1 - risk / 2, b, level)) + 1
    return (float(sorted_draws[low - 1]) if low >= 1 else -np.inf,
            float(sorted_draws[high - 1]) if high <= b else np.inf)


def proportion_bounds(successes: np.ndarray, trials: int, risk: float) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` `(like successes)`: Clopper-Pearson interval of each success probability at ``1 - risk``."""
    x = np.asarray(successes, np.float64)
    with np.errstate(invalid="ignore"):
        low = np.where(x > 0, stats.beta.ppf(risk / 2, x, trials - x + 1), 0.0)
        high = np.where(x < trials, stats.beta.ppf(1 - risk / 2, x + 1, trials - x), 1.0)
    return low, high


def per_look(risk: float, quantities: int = 1, looks: int = LOOKS) -> float:
    """The risk each of ``quantities`` estimates may take at each of ``looks`` (Bonferroni)."""
    return risk / (looks * max(quantities, 1))
