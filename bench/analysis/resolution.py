"""The resolution of measured values, and the spread it implies where runs tie.

An accuracy on ``m`` test examples moves in steps of ``1 / m``: runs of two initializers that
differ by exactly one example on every seed have paired differences with a standard deviation
of exactly 0, and a studentized statistic divides by it (an infinite t from two seeds). A value
read on a lattice of step ``h`` is only known to within its rounding, whose error is uniform
on ``[-h/2, h/2]`` where the lattice is fine against the spread (Sheppard 1898): variance
``h^2 / 12`` for one value, ``h^2 / 6`` for the difference of two. Those are the floors the
statistics put under an observed standard deviation, so a tie on a lattice counts as "no
finer than the lattice", never as "no spread at all". On continuous values (losses) the step
is the smallest gap between distinct values, far below any real spread, and the floors do
nothing.

The step is found from the data, not declared, so tables trained anywhere get it too: the
largest ``h`` of which every gap between the distinct values within a column is a whole multiple
(:func:`common_step`; a shift of a whole column, as a resampling scheme may apply, leaves it
unchanged), or, where no column has two distinct values, of the gaps between the pooled values.
Continuous values have no such ``h`` above float noise (their smallest gap is not a step: 4
seeds spread by a large seed effect have gaps far above the paired differences'
spread), and get step 0.

References: Sheppard 1898, Proc. London Math. Soc. 29 (grouping corrections);
Kendall & Stuart, *The Advanced Theory of Statistics*, vol. 1, sec. 3.18-3.20.
"""

from __future__ import annotations

import numpy as np

RELATIVE_EPS = 1e-6  # gaps below this share of the values' magnitude are float noise (float32 accuracies), not a step
FRACTIONS = 8  # the step may be the smallest gap over 1 to 8 (no two values one step apart)
TOLERANCE = 0.01  # of a step: how far from a whole multiple a gap may be (float32 noise, not another lattice)

SINGLE = 1 / np.sqrt(12)  # sd of one value's rounding error, in steps
DIFFERENCE = 1 / np.sqrt(6)  # sd of the difference of two values' rounding errors, in steps


def _gaps(values: np.ndarray, eps: float) -> np.ndarray:
    distinct = np.unique(values[np.isfinite(values)])
    gaps = np.diff(distinct)
    return gaps[gaps > eps]


def common_step(gaps: np.ndarray, eps: float) -> float:
    """The largest ``h`` of the smallest gap's fractions ``gap_min / j`` (``j`` up to :data:`FRACTIONS`) of which
    every gap is a whole multiple, to within :data:`TOLERANCE` of ``h``; 0 where none is (continuous values).

    A float Euclid's algorithm would not do: float32 accuracies (``k / 10,000`` to 1e-7) lose the step in the
    error its remainders multiply.
    """
    gaps = np.asarray(gaps, np.float64)
    if gaps.size == 0:
        return 0.0
    smallest = float(gaps.min())
    for j in range(1, FRACTIONS + 1):
        h = smallest / j
        if h <= eps:
            break
        multiples = np.round(gaps / h)
        h = float(np.sum(gaps * multiples) / np.sum(multiples**2))  # least squares: float32 noise averages out
        if np.all(np.abs(gaps - multiples * h) <= TOLERANCE * h):
            return h
    return 0.0


def step(values) -> float:
    """The lattice step of ``values``: `(runs, columns)`, `(runs,)`, or a list of columns of any lengths; 0 where no
    two values differ.

    Returns:
      The common step of the gaps between distinct finite values within the columns (:func:`common_step`);
      where no column holds two distinct values, of the gaps between the pooled values; 0 where none differ
      or the values lie on no lattice.
    """
    if isinstance(values, (list, tuple)):
        columns = [np.asarray(c, np.float64).ravel() for c in values]
    else:
        values = np.asarray(values, np.float64)
        values = values.reshape(len(values), -1) if values.ndim else values.reshape(1, 1)
        columns = list(values.T)
    pooled = np.concatenate(columns) if columns else np.empty(0)
    finite = pooled[np.isfinite(pooled)]
    if finite.size < 2:
        return 0.0
    eps = RELATIVE_EPS * max(1.0, float(np.abs(finite).max()))
    within = np.concatenate([_gaps(c, eps) for c in columns])
    return common_step(within if within.size else _gaps(finite, eps), eps)


def difference_floor(values: np.ndarray) -> float:
    """The least standard deviation a paired difference of ``values``' columns is given: ``step / sqrt 6``."""
    return step(values) * DIFFERENCE


def value_floor(values: np.ndarray) -> float:
    """The least standard deviation one column of ``values`` is given: ``step / sqrt 12``."""
    return step(values) * SINGLE
