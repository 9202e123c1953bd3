"""How each initializer's test metric moves along the grid's main factor (the learning rate when it is one): the
curves with Student t bands, the best value's interval from the bootstrap of the interpolated argmax (a parabola
through the best grid point and its neighbours, in log x for learning rates and scales), the width of the range
within a tolerance of the curve's best (decades for a log factor) and the normalized area under the curve.

References: Sivaprasad et al. 2020 (arXiv:1910.11758); Wortsman et al. 2023 (arXiv:2309.14322).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bench.analysis import resolution, stats
from bench.analysis.grid_cube import RESAMPLES, Cube, cell_means, choose, resamples, take

LOG_FACTORS = ("lr", "weight_decay", "init_scale")  # drawn and interpolated in log x when every value is > 0


def main_factor_groups(cube: Cube) -> tuple[np.ndarray, list[np.ndarray]]:
    """The main factor's values `(v,)` and, per value, the indices of the cells that have it."""
    values = np.array(sorted({cell[0] for cell in cube.cells}))
    return values, [np.array([j for j, cell in enumerate(cube.cells) if cell[0] == v]) for v in values]


def on_log_scale(factor: str, values: np.ndarray) -> bool:
    """Whether a factor's values are drawn and interpolated in log10 (:data:`LOG_FACTORS`, every value > 0)."""
    return factor in LOG_FACTORS and bool((values > 0).all())


def _curves(val_means, val_diverged, test_means, groups) -> np.ndarray:
    """Test means `(..., k, v)` along the main factor, the other factors chosen on validation per value."""
    out = []
    for cells in groups:
        picked = choose(val_means[..., cells], val_diverged[..., cells])
        out.append(take(test_means[..., cells], picked))
    return np.stack(out, axis=-1)


def interpolated_argmax(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Where each curve peaks: the vertex of the parabola through its best point and both neighbours.

    Args:
      x: `(v,)` increasing positions (log10 of the values for a log factor).
      y: `(..., v)` curves; NaN points are ignored (a curve with none finite gives NaN).

    Returns:
      `(...)` the peak's position, within ``[x_{j-1}, x_{j+1}]`` around the best point ``j``
      (the best point itself at either end of the grid).
    """
    y = np.asarray(y, np.float64)
    flat = y.reshape(-1, y.shape[-1])
    out = np.full(flat.shape[0], np.nan)
    for r, curve in enumerate(flat):
        if not np.isfinite(curve).any():
            continue
        j = int(np.nanargmax(curve))
        out[r] = x[j]
        if 0 < j < len(x) - 1 and np.isfinite(curve[j - 1]) and np.isfinite(curve[j + 1]):
            (x0, x1, x2), (y0, y1, y2) = x[j - 1:j + 2], curve[j - 1:j + 2]
            denominator = (x0 - x1) * (x0 - x2) * (x1 - x2)
            a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denominator
            b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / denominator
            if a < 0:
                out[r] = float(np.clip(-b / (2 * a), x0, x2))
    return out.reshape(y.shape[:-1])


def width_within(x: np.ndarray, y: np.ndarray, tolerance: float, points: int = 4001) -> np.ndarray:
    """Length of the range of x where each curve, linearly interpolated, is within ``tolerance`` of its best.

    Args:
      x: `(v,)` increasing positions; y: `(..., v)` curves (better direction).

    Returns:
      `(...)` lengths in x units (decades for log10 positions); NaN where a point is NaN.
    """
    fine = np.linspace(x[0], x[-1], points)
    flat = np.asarray(y, np.float64).reshape(-1, y.shape[-1])
    out = np.full(flat.shape[0], np.nan)
    for r, curve in enumerate(flat):
        if np.isfinite(curve).all():
            inside = np.interp(fine, x, curve) >= curve.max() - tolerance
            out[r] = inside.sum() / (points - 1) * (x[-1] - x[0]) if points > 1 else 0.0
    return out.reshape(np.shape(y)[:-1])


def normalized_area(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Area under each curve (trapezoids) over the length of the range: the curve's mean over x, `(...)`."""
    y = np.asarray(y, np.float64)
    if len(x) < 2:
        return y[..., 0]
    return np.trapezoid(y, x, axis=-1) / (x[-1] - x[0])


@dataclasses.dataclass(frozen=True)
class Sensitivity:
    """Each initializer's test metric along the grid's main factor.

    Attributes:
      factor: the main factor (``lr`` when the grid has it).
      values: `(v,)` its values; log: positions are ``log10(values)``.
      means, low, high: `(k, v)` test means with Student t intervals (better direction).
      best, best_low, best_high: `(k,)` the interpolated argmax and its bootstrap interval (in values).
      width, width_low, width_high: `(k,)` range within ``tolerance`` of the best (decades when ``log``).
      area, area_low, area_high: `(k,)` the curve's mean over the range (:func:`normalized_area`).
      tolerance: in the metric's units.
    """

    factor: str
    values: np.ndarray
    log: bool
    means: np.ndarray
    low: np.ndarray
    high: np.ndarray
    best: np.ndarray
    best_low: np.ndarray
    best_high: np.ndarray
    width: np.ndarray
    width_low: np.ndarray
    width_high: np.ndarray
    area: np.ndarray
    area_low: np.ndarray
    area_high: np.ndarray
    tolerance: float


def sensitivity(cube: Cube, tolerance: float, level: float = 0.95, rng: np.random.Generator | int = 0,
                draws: int = RESAMPLES) -> Sensitivity:
    """The :class:`Sensitivity` of a :class:`Cube` along its first factor (percentile bootstrap intervals)."""
    rng = np.random.default_rng(rng)
    values, groups = main_factor_groups(cube)
    log = on_log_scale(cube.factors[0], values)
    x = np.log10(values) if log else values
    val_means, val_diverged = cell_means(cube.val, cube.failed)
    test_means, _ = cell_means(cube.test, cube.failed)
    curves = _curves(val_means, val_diverged, test_means, groups)  # (k, v)
    floor = resolution.value_floor(cube.test.reshape(cube.test.shape[0], -1))
    n = cube.test.shape[0]
    low, high = np.full(curves.shape, np.nan), np.full(curves.shape, np.nan)
    for i in range(curves.shape[0]):  # t intervals of the runs at each point's chosen cell
        for g, cells in enumerate(groups):
            picked = choose(val_means[i, cells], val_diverged[i, cells])
            runs = cube.test[:, i, cells[picked]]
            low[i, g], high[i, g] = stats.t_interval(runs[np.isfinite(runs)], level, floor=floor)
    boot = []
    for rows in resamples(n, rng, draws):
        v_means, v_div = cell_means(cube.val, cube.failed, rows)
        t_means, _ = cell_means(cube.test, cube.failed, rows)
        boot.append(_curves(v_means, v_div, t_means, groups))
    boot = np.concatenate(boot)  # (B, k, v)
    tail = (1 - level) / 2

    def interval(samples):
        return np.nanquantile(samples, tail, axis=0), np.nanquantile(samples, 1 - tail, axis=0)

    position = (lambda p: 10**p) if log else (lambda p: p)
    best, peaks = interpolated_argmax(x, curves), interpolated_argmax(x, boot)
    width, widths = width_within(x, curves, tolerance), width_within(x, boot, tolerance)
    area, areas = normalized_area(x, curves), normalized_area(x, boot)
    (best_low, best_high), (width_low, width_high), (area_low, area_high) = (
        interval(peaks), interval(widths), interval(areas))
    return Sensitivity(cube.factors[0], values, log, curves, low, high, position(best), position(best_low),
                       position(best_high), width, width_low, width_high, area, area_low, area_high, tolerance)
