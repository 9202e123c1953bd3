"""Variance that more seeds do not average away: the test set's examples, crossed data orders.

A mean over seeds has the variance ``s^2 / n`` of its seeds, and where every seed is scored on the
same test examples (or trained on the same few data orders) a part that does not shrink with
``n``: the examples' own sampling. Each such part is a :class:`Component`: its variance for every
initializer's mean and every paired difference of means, and the degrees of freedom of its
estimate (few data orders estimate their share poorly: 2 degrees of freedom at 3 orders). The
intervals combine the parts by Welch-Satterthwaite (:func:`satterthwaite`), and the max-T null
draws each part as a shift shared by all seeds with a chi-square-scaled estimate
(``bench.analysis.maxt``), so the critical value carries the parts' own degrees of freedom.

References: Satterthwaite 1946, Biometrics Bull. 2(6); Searle, Casella & McCulloch 1992,
*Variance Components*, ch. 4.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Component:
    """One source of variance of means that seeds do not average away.

    Attributes:
      name: what it is (``"test set"``, ``"data orders"``).
      of_means: `(k,)` its variance of each initializer's mean.
      of_differences: `(k, k)` its variance of each paired difference of means (0 on the diagonal).
      df_means: `(k,)` degrees of freedom of the estimates in ``of_means`` (inf: known exactly).
      df_differences: `(k, k)` likewise for ``of_differences``.
    """

    name: str
    of_means: np.ndarray
    of_differences: np.ndarray
    df_means: np.ndarray
    df_differences: np.ndarray

    def take(self, index: Sequence[int]) -> Component:
        """The component of the initializers ``index`` only."""
        index = np.asarray(index)
        grid = np.ix_(index, index)
        return Component(self.name, self.of_means[index], self.of_differences[grid], self.df_means[index],
                         self.df_differences[grid])

    def covariance(self) -> np.ndarray:
        """`(k, k)` a covariance of the initializers' shared shifts whose differences have ``of_differences``:
        ``C_ij = (v_i + v_j - v_ij) / 2``, its negative eigenvalues set to 0."""
        v = np.nan_to_num(self.of_means)
        c = (v[:, None] + v[None, :] - np.nan_to_num(self.of_differences)) / 2
        eigval, eigvec = np.linalg.eigh((c + c.T) / 2)
        return (eigvec * np.clip(eigval, 0, None)) @ eigvec.T


def satterthwaite(variances: Sequence, dfs: Sequence) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of a sum of independent variance estimates.

    ``(sum v_i)^2 / sum(v_i^2 / df_i)``; a term of infinite degrees of freedom adds no uncertainty; where
    every term is 0 the result is inf (nothing is estimated).
    """
    variances = [np.asarray(v, np.float64) for v in variances]
    total = sum(variances)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = sum(np.where(v > 0, v * v / np.asarray(df, np.float64), 0.0) for v, df in zip(variances, dfs))
        return np.where(spread > 0, total * total / spread, np.inf)


def difference_of_mean_squares(ms_a: np.ndarray, df_a, ms_b: np.ndarray, df_b) -> tuple[np.ndarray, np.ndarray]:
    """``max(ms_a - ms_b, 0)`` and its Satterthwaite degrees of freedom (a variance component estimated by a
    difference of mean squares, as in a random-effects ANOVA); inf degrees of freedom where it is 0."""
    ms_a, ms_b = np.asarray(ms_a, np.float64), np.asarray(ms_b, np.float64)
    value = np.maximum(ms_a - ms_b, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = value**2 / (ms_a**2 / df_a + ms_b**2 / df_b)
    return value, np.where(value > 0, df, np.inf)


def total(components: Sequence[Component]) -> Component | None:
    """The sum of independent components (None for none): variances added, degrees of freedom by
    :func:`satterthwaite`."""
    components = [c for c in components if c is not None]
    if not components:
        return None
    if len(components) == 1:
        return components[0]
    return Component(
        " and ".join(c.name for c in components),
        sum(c.of_means for c in components), sum(c.of_differences for c in components),
        satterthwaite([c.of_means for c in components], [c.df_means for c in components]),
        satterthwaite([c.of_differences for c in components], [c.df_differences for c in components]),
    )
