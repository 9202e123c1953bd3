"""Learning-rate transfer across widths: where is the best learning rate at each width, with an interval,
and does it move as the model widens? (Yang et al. 2021, "Tensor Programs V", Fig. 1: under SP the
optimum shifts with width, under muP it stays.) The same question is asked along depth, at one width
(:func:`families` with ``axis="depth"``): Depth-muP (Yang et al. 2024, "Tensor Programs VI"; Bordelon et al. 2024)
and CompleteP (Dey et al. 2025) scale residual branches so that the optimum stays as blocks are added, where muP
alone leaves it to move.

Per width, the loss at the end of training is averaged over seeds at each learning rate of the grid.
Where between the grid points the best rate lies depends on the curve's shape, which a grid a factor
2 apart cannot see: the vertex of a parabola through the best point and its neighbours is biased
where the curve is steeper on one side (3x steeper above the optimum: the interval covered 0.10 of
the time). So the optimum is located by three shape models (:data:`SHAPES`): that parabola, a two-
sided parabola (its own curvature each side) fitted to the five points around the best, and a cubic
spline through the finite points around it. The estimate is their median; its interval is the union
of their intervals, each from resampling seeds (:func:`bootstrap`: the same seed numbers for every
width and rate, as the runs share their draws and data order by seed) with the expanded percentile
interval (:func:`interval`). Where the models agree (symmetric curves) that is the interval of any
one of them; where the shape matters it says so by its width. The models are fitted to the logarithm
of the mean loss where it spans orders of magnitude near its best (:func:`best_log2_lr`). The shift
of the optimum from the narrowest to the widest model gets the same treatment and a verdict
(:func:`verdict`): ``stays`` when its interval lies within ``+-tolerance`` (a factor 2 in learning
rate by default: the interval-inclusion form of an equivalence test, asked first, so an optimum that
moves by less than the tolerance is not called moving), ``moves`` when its interval excludes 0,
``inconclusive`` otherwise; none when the narrowest or widest model's best rate is an end of the
grid (the optimum may lie beyond it). The coverage of the intervals and the error rates of the
verdicts are measured on simulated curves, symmetric and asymmetric, in ``tests/analysis/test_transfer.py``
and ``tests/analysis/test_error_rates.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import warnings

import numpy as np
import pandas as pd
from scipy import stats as distributions
from scipy.interpolate import CubicSpline

from bench import schema
from bench.analysis import monte_carlo, stats

TOLERANCE = 1.0  # log2: the optimum "stays" when it moves by less than a factor 2 in learning rate
METRIC = "train_loss"  # Tensor Programs V's Fig. 1 plots the final training loss
MIN_SEEDS = 8  # fewer: the intervals under-cover (88% at 4 seeds on simulated curves), no verdict is given
CANDIDATES = 201  # vertex positions tried by the two-sided parabola between the best point's neighbours
SPLINE_POINTS = 100  # evaluations of the spline per grid step
SPLINE_REACH = 3  # grid points each side of the best that the spline goes through
LOG_SPAN = 10.0  # a mean curve spanning more than this factor near its best is fitted on the log scale


def argmin_log2(log2_lrs: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """The best ``log2 lr`` of loss curves: the vertex of the parabola through each curve's best grid point and
    its neighbours, kept between them; the grid's end where the best point is an end or a neighbour is not
    finite.

    Args:
      log2_lrs: `(n_lr,)` increasing.
      losses: `(..., n_lr)`; NaN or inf (diverged) counts as worse than every finite value.

    Returns:
      `(...)` best ``log2 lr``.
    """
    x = np.asarray(log2_lrs, np.float64)
    y = np.where(np.isfinite(losses), losses, np.inf).astype(np.float64)
    i = np.argmin(y, axis=-1)
    inner = np.clip(i, 1, len(x) - 2)
    y0, y1, y2 = (np.take_along_axis(y, (inner + k)[..., None], -1)[..., 0] for k in (-1, 0, 1))
    x0, x1, x2 = x[inner - 1], x[inner], x[inner + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        num = (x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)
        den = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
        vertex = np.clip(x1 - 0.5 * num / den, x0, x2)
    usable = (i == inner) & np.isfinite(y0) & np.isfinite(y2) & (den < 0)  # an interior minimum of a convex fit
    return np.where(usable, vertex, x[i])


def argmin_two_sided(log2_lrs: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """The best ``log2 lr`` of a two-sided parabola ``y0 + a (x - v)^2`` left of ``v``, ``b (x - v)^2`` right of it
    (``a, b >= 0``), least-squares fitted to the best grid point and up to two points each side; ``v`` is searched
    on :data:`CANDIDATES` positions between the best point's neighbours. Where fewer than 4 finite points are
    around the best, or no convex fit exists, the parabola's :func:`argmin_log2`.

    Args, returns: as :func:`argmin_log2`.
    """
    x = np.asarray(log2_lrs, np.float64)
    y = np.where(np.isfinite(losses), losses, np.inf).astype(np.float64)
    shape = y.shape[:-1]
    y = y.reshape(-1, len(x))
    out = argmin_log2(x, y).astype(np.float64)
    best = np.argmin(y, axis=-1)
    for j in np.unique(best):
        lo, hi = max(0, j - 2), min(len(x) - 1, j + 2)
        rows = np.nonzero((best == j) & np.isfinite(y[:, lo:hi + 1]).all(-1))[0]
        if j in (0, len(x) - 1) or hi - lo < 3 or rows.size == 0:
            continue
        ys = y[rows, lo:hi + 1]
        candidates, design, fit = _two_sided_designs(tuple(x[lo:hi + 1]), x[j - 1], x[j + 1])
        k, c, p = fit.shape
        coef = (fit.reshape(k * c, p) @ ys.T).reshape(k, c, -1).transpose(2, 0, 1)  # (rows, candidates, 3)
        misfit = np.eye(p) - design @ fit  # (candidates, points, points): residual maker I - H
        off = (misfit.reshape(k * p, p) @ ys.T).reshape(k, p, -1)
        residual = np.where((coef[..., 1] >= 0) & (coef[..., 2] >= 0), (off * off).sum(1).T, np.inf)
        fitted = np.isfinite(residual).any(-1)
        out[rows[fitted]] = candidates[np.argmin(residual[fitted], -1)]
    return out.reshape(shape)


@functools.lru_cache(maxsize=64)
def _two_sided_designs(xs: tuple, left: float, right: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(candidates, design, fit)`` of :func:`argmin_two_sided` for the points ``xs`` and vertices between ``left``
    and ``right``: the designs `(candidates, points, 3)` and their least-squares solutions `(candidates, 3,
    points)`; the same for every curve on one grid, so computed once (read-only)."""
    candidates = np.linspace(left, right, CANDIDATES)
    d = np.asarray(xs)[None, :] - candidates[:, None]  # (candidates, points)
    design = np.stack([np.ones_like(d), np.where(d < 0, d * d, 0.0), np.where(d >= 0, d * d, 0.0)], -1)
    fit = np.linalg.pinv(design)  # (candidates, 3, points): least squares of each candidate's design
    for array in (candidates, design, fit):
        array.flags.writeable = False
    return candidates, design, fit


def _finite_span(finite: np.ndarray, best: np.ndarray, reach: int) -> np.ndarray:
    """`(rows, 2)` the first and last index of the run of finite values around each row's ``best`` index, at most
    ``reach`` each side; ``finite`` `(rows, n)`."""
    rows, n = np.arange(len(best)), finite.shape[1]
    lo, hi = best.copy(), best.copy()
    going_left = going_right = np.ones(len(best), bool)
    for k in range(1, reach + 1):
        going_left = going_left & (best - k >= 0) & finite[rows, np.clip(best - k, 0, n - 1)]
        going_right = going_right & (best + k < n) & finite[rows, np.clip(best + k, 0, n - 1)]
        lo, hi = np.where(going_left, best - k, lo), np.where(going_right, best + k, hi)
    return np.stack([lo, hi], axis=1)


def argmin_spline(log2_lrs: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """The best ``log2 lr`` of a cubic spline (not-a-knot) through the finite points around each curve's best grid
    point (the contiguous run of finite values that holds it, at most :data:`SPLINE_REACH` points each side; at
    least 3, else the grid point).

    Args, returns: as :func:`argmin_log2`.
    """
    x = np.asarray(log2_lrs, np.float64)
    y = np.where(np.isfinite(losses), losses, np.inf).astype(np.float64)
    shape = y.shape[:-1]
    y = y.reshape(-1, len(x))
    best = np.argmin(y, axis=-1)
    out = x[best].astype(np.float64)
    finite = np.isfinite(y)
    spans = _finite_span(finite, best, SPLINE_REACH)
    for lo, hi in np.unique(spans, axis=0):
        rows = np.nonzero((spans[:, 0] == lo) & (spans[:, 1] == hi) & finite[np.arange(len(y)), best])[0]
        if hi - lo < 2 or rows.size == 0:
            continue
        fine = np.linspace(x[lo], x[hi], (hi - lo) * SPLINE_POINTS + 1)
        curves = CubicSpline(x[lo:hi + 1], y[rows, lo:hi + 1], axis=1)(fine)
        out[rows] = fine[np.argmin(curves, axis=1)]
    return out.reshape(shape)


SHAPES = {"parabola": argmin_log2, "two-sided parabola": argmin_two_sided, "spline": argmin_spline}


def best_log2_lr(log2_lrs: np.ndarray, losses: np.ndarray, shape: str = "parabola") -> np.ndarray:
    """The ``shape`` model's best ``log2 lr`` (:data:`SHAPES`) of the seeds' mean curve; ``losses``
    `(..., n_seeds, n_lr)`. A rate at which any seed diverged has an infinite mean.

    Where the mean curve spans more than a factor :data:`LOG_SPAN` within :data:`SPLINE_REACH` points of its
    best (and is positive) the models are fitted to its logarithm: the argmin is the same, and a training loss
    that falls by orders of magnitude towards its optimum (0.002 between neighbours of 0.01 and 0.04) is far from
    any low-order shape on a linear scale, where a spline rang and moved the optimum by a factor 10 between
    resamples. A curve within a factor 10 keeps its scale, on which a shape model fits as it is meant to."""
    mean = np.where(np.isfinite(losses), losses, np.inf).mean(axis=-2)
    return SHAPES[shape](log2_lrs, on_fitting_scale(mean))


def on_fitting_scale(curves: np.ndarray) -> np.ndarray:
    """`(..., n_lr)` each curve, or its logarithm where it is positive and spans more than :data:`LOG_SPAN` within
    :data:`SPLINE_REACH` points of its lowest value (:func:`best_log2_lr`)."""
    curves = np.asarray(curves, np.float64)
    best = np.argmin(np.where(np.isfinite(curves), curves, np.inf), axis=-1)[..., None]
    index = np.arange(curves.shape[-1])
    near = (np.abs(index - best) <= SPLINE_REACH) & np.isfinite(curves)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        low = np.where(near, curves, np.inf).min(-1, keepdims=True)
        high = np.where(near, curves, -np.inf).max(-1, keepdims=True)
        logged = (low > 0) & (high > LOG_SPAN * low)
        return np.where(logged, np.log(np.where(logged & (curves > 0), curves, 1.0)) + np.where(
            np.isfinite(curves), 0.0, np.inf), curves)


def on_edge(log2_lrs: np.ndarray, losses: np.ndarray) -> bool:
    """Whether the seeds' mean curve (``losses`` `(n_seeds, n_lr)`) is lowest at the first or last rate of the grid."""
    mean = np.where(np.isfinite(losses), losses, np.inf).mean(axis=0)
    return int(np.argmin(mean)) in (0, len(log2_lrs) - 1)


def bootstrap(log2_lrs: np.ndarray, curves: dict, n_resamples: int = 2000, seed: int = 0,
              shapes: tuple[str, ...] = tuple(SHAPES)) -> dict:
    """Best ``log2 lr`` per width and shape model with resampled seeds.

    Args:
      log2_lrs: `(n_lr,)` increasing.
      curves: width -> losses `(n_seeds, n_lr)`, rows the same seed numbers for every width.
      n_resamples: bootstrap resamples of the seeds (one draw of seed indices serves every width and shape).
      shapes: the shape models to locate the optimum with (:data:`SHAPES`).

    Returns:
      width -> shape -> `(n_resamples,)` best ``log2 lr`` of each resample, and ``"estimate"`` -> width -> shape
      -> the estimate of the seeds themselves.
    """
    widths = sorted(curves)
    n = {curves[w].shape[0] for w in widths}
    if len(n) != 1:
        raise ValueError(f"every width needs the same seeds, got {sorted(n)} seeds")
    n_seeds = n.pop()
    draws = np.random.default_rng(seed).integers(0, n_seeds, size=(n_resamples, n_seeds))
    out = {w: {s: best_log2_lr(log2_lrs, np.asarray(curves[w])[draws], s) for s in shapes} for w in widths}
    out["estimate"] = {w: {s: float(best_log2_lr(log2_lrs, np.asarray(curves[w]), s)) for s in shapes}
                       for w in widths}
    return out


def interval(samples: np.ndarray, n_seeds: int, level: float = 0.95) -> tuple[float, float]:
    """The expanded percentile interval of bootstrap samples (Hesterberg 2015): the quantiles at
    ``Phi(sqrt(n / (n - 1)) t_{n-1, tail})`` rather than at ``tail``, which corrects the plain percentile
    interval's narrowness with few seeds (plain: 90% coverage at 8 seeds on simulated curves, 82% at 4;
    expanded: 94-96% from 8 seeds on, ``tests/analysis/test_transfer.py``)."""
    if n_seeds < 2:
        raise ValueError(f"an interval needs at least 2 seeds, got {n_seeds}")
    tail = percentile_tail(n_seeds, level)
    return float(np.quantile(samples, tail)), float(np.quantile(samples, 1 - tail))


def percentile_tail(n_seeds: int, level: float) -> float:
    """The lower tail of the expanded percentile interval of :func:`interval` (its upper: ``1 - tail``)."""
    return distributions.norm.cdf(np.sqrt(n_seeds / (n_seeds - 1)) * distributions.t.ppf((1 - level) / 2, n_seeds - 1))


def union_interval(samples: dict, n_seeds: int, level: float = 0.95) -> tuple[float, float]:
    """The union of the shape models' :func:`interval` of ``samples`` (shape -> `(n_resamples,)`)."""
    bounds = [interval(values, n_seeds, level) for values in samples.values()]
    return min(low for low, _ in bounds), max(high for _, high in bounds)


def best(boot: dict, width, n_seeds: int, level: float = 0.95) -> tuple[float, float, float]:
    """``(estimate, low, high)`` of one width's best ``log2 lr``: the shape models' median and the union of their
    intervals."""
    return (float(np.median(list(boot["estimate"][width].values()))), *union_interval(boot[width], n_seeds, level))


def verdict(shift_interval: tuple[float, float], tolerance: float = TOLERANCE) -> str:
    """``stays`` (the interval lies within ``+-tolerance``, asked first), ``moves`` (it excludes 0) or
    ``inconclusive``."""
    low, high = shift_interval
    if -tolerance < low and high < tolerance:
        return "stays"
    if low > 0 or high < 0:
        return "moves"
    return "inconclusive"


def shift(boot: dict, narrow, wide, n_seeds: int, level: float = 0.95, settle: bool = False) -> dict:
    """The optimum's move from width ``narrow`` to ``wide`` in ``log2 lr``: estimate (the shape models' median),
    interval (the union of theirs), verdict (``too few seeds`` below :data:`MIN_SEEDS`), and ``undecided``.

    With ``settle``, ``undecided`` is whether the verdict differs between the ends of the Monte Carlo bounds of the
    interval's percentiles (``bench.analysis.monte_carlo``: the order statistics holding each percentile the
    resamples estimate); where it does, the verdict is the one of the outer ends (the widest interval the
    resamples allow), which claims nothing they cannot carry."""
    samples = {s: boot[wide][s] - boot[narrow][s] for s in boot[wide]}
    low, high = union_interval(samples, n_seeds, level)
    estimate = float(np.median([boot["estimate"][wide][s] - boot["estimate"][narrow][s] for s in boot[wide]]))
    found = {"estimate": estimate, "low": low, "high": high, "undecided": False,
             "verdict": verdict((low, high)) if n_seeds >= MIN_SEEDS else "too few seeds"}
    if settle and n_seeds >= MIN_SEEDS:
        outer, inner = _percentile_bounds(samples, n_seeds, level)
        if verdict(outer) != verdict(inner):
            found.update(verdict=verdict(outer), undecided=True)
    return found


def _percentile_bounds(samples: dict, n_seeds: int, level: float
                       ) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(outer, inner)``: the union interval (:func:`union_interval`) at the ends of each percentile's Monte Carlo
    bounds that widen it, and at those that narrow it."""
    tail = percentile_tail(n_seeds, level)
    risk = monte_carlo.per_look(monte_carlo.RISK, 2 * len(samples))
    lows, highs = [], []
    for values in samples.values():
        ordered = np.sort(values)
        lows.append(monte_carlo.quantile_bounds(ordered, tail, risk))
        highs.append(monte_carlo.quantile_bounds(ordered, 1 - tail, risk))
    return ((min(lo for lo, _ in lows), max(hi for _, hi in highs)),
            (min(hi for _, hi in lows), max(lo for lo, _ in highs)))


def curves_of(results: pd.DataFrame, task: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """One task's final ``metric`` as `(n_seeds, n_lr)` with its ``log2 lr`` grid `(n_lr,)` (a diverged run: inf).

    ``results``: one setting's runs (one initializer, every other grid factor fixed) with an ``lr`` column. With
    crossed data orders, a seed's value is its mean over them: the init seeds are the units resampled.

    Raises:
      ValueError: a (seed, rate) cell holds runs of more than one setting.
    """
    final = stats.final_epoch(results[results["dataset"] == task])
    value = final[metric].where(stats.finished(final, metric), np.inf)
    keys = ["seed", "lr"] + (["data_seed"] if "data_seed" in final else [])
    if final.duplicated(keys).any():
        raise ValueError(f"{task}: several runs per seed and learning rate; pass one setting's runs")
    table = final.assign(value=value).pivot_table(index="seed", columns="lr", values="value", aggfunc="mean")
    return np.log2(table.columns.to_numpy(np.float64)), table.to_numpy(np.float64)


@dataclasses.dataclass(frozen=True)
class Transfer:
    """One family's optimum across widths (or depths).

    Attributes:
      sizes: `(n_sizes,)` the widths (or depths), increasing.
      tasks: per size, the task's name.
      best: per size, the estimated best ``log2 lr`` (the shape models' median), its interval low and high
        (the union of the models').
      best_loss: per size, the seeds' mean loss at the best grid rate.
      shift: :func:`shift` from the smallest size to the largest.
      n_seeds: seeds per (size, rate).
      log2_lrs: `(n_lr,)` the grid.
      curves: per size, `(n_lr,)` the mean loss over the seeds that finished (NaN where none did).
      axis: what the sizes are, ``"width"`` or ``"depth"`` (:data:`AXES`).
    """

    sizes: tuple[int, ...]
    tasks: dict
    best: dict
    best_loss: dict
    shift: dict
    n_seeds: int
    log2_lrs: np.ndarray
    curves: dict
    axis: str = "width"


AXES = {"width": "every hidden layer's width", "depth": "the number of hidden layers or residual blocks"}


def families(task_records: list[dict], axis: str = "width") -> dict[str, tuple[str, int]]:
    """The width (or depth) series of an experiment's tasks: task name -> ``(family, size)``.

    A family is the tasks under one parameterization (``model_args.parameterization``) that agree on everything
    but their name, label and ``axis`` (:data:`AXES`), each with every hidden layer of one width, at two sizes or
    more: a width series at one depth, or a depth series (``len(hidden)``: a ResMLP's or transformer's blocks) at
    one width. Its name is the parameterization's, with the model, the other size, the data and the loss added where
    two families share one, and then the model options in which they differ (``norm_gains=false``).

    Args:
      task_records: the experiment's tasks as ``run.json`` records them (``name``, ``model``, ``dataset``,
        ``hidden``, ``model_args``, ...).
      axis: ``"width"`` or ``"depth"``.
    """
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}; one of {', '.join(AXES)}")
    groups: dict[str, list[tuple[str, int]]] = {}
    labels: dict[str, str] = {}
    options: dict[str, dict] = {}
    for task in task_records:
        p = (task.get("model_args") or {}).get("parameterization")
        hidden = list(task.get("hidden") or [])
        if p is None or not hidden or len(set(hidden)) != 1:
            continue
        rest = {k: v for k, v in task.items() if k not in ("name", "label", "hidden")}
        size, other = (int(hidden[0]), f"x{len(hidden)}") if axis == "width" else (len(hidden), f"width {hidden[0]}")
        fixed = {"depth": len(hidden)} if axis == "width" else {"width": int(hidden[0])}
        key = json.dumps({**rest, **fixed}, sort_keys=True, default=str)
        groups.setdefault(key, []).append((task["name"], size))
        loss = f", {task['loss']}" if task.get("loss") else ""
        labels[key] = (f"{p}", f"{p} ({task.get('model')} {other}, {str(task.get('dataset')).split('(')[0]}{loss})")
        options[key] = {k: v for k, v in (task.get("model_args") or {}).items() if k != "parameterization"}
    groups = {k: v for k, v in groups.items() if len({w for _, w in v}) >= 2}
    short = [labels[k][0] for k in groups]
    base = {key: labels[key][0] if short.count(labels[key][0]) == 1 else labels[key][1] for key in groups}
    named = {key: base[key] + _options_apart({k: options[k] for k in groups if base[k] == base[key]}, key)
             for key in groups}
    out = {}
    for i, (key, members) in enumerate(groups.items()):
        label = named[key] + (f" #{i + 1}" if list(named.values()).count(named[key]) > 1 else "")
        for name, size in members:
            out[name] = (label, size)
    return out


def _options_apart(options: dict[str, dict], key: str) -> str:
    """``", norm_gains=false"``: the model options (``model_args``) in which the family ``key`` differs from the
    others in ``options`` that share its name (an option a family leaves unset reads ``default``); empty where
    they share them all."""
    def shown(value) -> str:
        return "default" if value is None else json.dumps(value) if isinstance(value, bool) else f"{value}"

    names = sorted({name for args in options.values() for name in args})
    apart = [name for name in names if len({shown(args.get(name)) for args in options.values()}) > 1]
    return "".join(f", {name}={shown(options[key].get(name))}" for name in apart)


def settings(results: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The results split by setting: initializer and every grid factor other than ``lr``; ``(label, rows)`` each,
    the label empty when there is one setting."""
    keys = [k for k in ("initializer", *schema.FACTORS) if k != "lr" and k in results]
    if any(results[k].nunique(dropna=False) > 1 for k in keys):
        groups = results.groupby(keys, sort=False, dropna=False)
        return [(" ".join(f"{v}" if k == "initializer" else f"{schema.LABELS[k]}={v:g}" for k, v in zip(keys, values)
                          if not (isinstance(v, float) and np.isnan(v))), rows) for values, rows in groups]
    return [("", results)]


def analyze(results: pd.DataFrame, tasks: dict, metric: str = METRIC, n_resamples: int = 2000,
            seed: int = 0, axis: str = "width") -> dict[str, Transfer]:
    """:class:`Transfer` per family and setting.

    Args:
      results: a run's tidy table with an ``lr`` column.
      tasks: task name -> ``(family, size)`` (:func:`families` along ``axis``).
      axis: what the sizes are (``"width"`` or ``"depth"``); the analysis is the same.

    Returns:
      family (and ``", setting"`` where runs differ by initializer or another grid factor) -> :class:`Transfer`.

    Raises:
      ValueError: the sizes of a family were trained at different learning rates or seeds.
    """
    out = {}
    for label, rows in settings(results[results["dataset"].isin(tasks)]):
        present = set(rows["dataset"])
        for family in dict.fromkeys(f for f, _ in tasks.values()):
            by_width = {w: t for t, (f, w) in tasks.items() if f == family and t in present}
            if len(by_width) < 2:
                continue
            grids, curves = {}, {}
            for w, t in by_width.items():
                grids[w], curves[w] = curves_of(rows, t, metric)
            log2_lrs = grids[min(grids)]
            if any(g.shape != log2_lrs.shape or not np.allclose(g, log2_lrs) for g in grids.values()):
                raise ValueError(f"{family}: every {axis} needs the same learning rates")
            if len(log2_lrs) < 3:
                continue
            n_seeds = curves[min(curves)].shape[0]
            widths = tuple(sorted(curves))
            for resamples in (n_resamples, monte_carlo.EXTENDED * n_resamples):  # more where the verdict is open
                boot = bootstrap(log2_lrs, curves, resamples, seed)  # the first n_resamples are the same
                moved = shift(boot, widths[0], widths[-1], n_seeds, settle=True)
                if not moved["undecided"]:
                    break
            bests = {w: best(boot, w, n_seeds) for w in widths}
            best_loss = {w: float(np.min(np.where(np.isfinite(c), c, np.inf).mean(axis=0)))
                         for w, c in curves.items()}
            if any(on_edge(log2_lrs, curves[w]) for w in (widths[0], widths[-1])):
                # the optimum may lie beyond it: no interval can say where (nor what the resamples left open)
                moved.update(verdict="at the grid's edge", undecided=False)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a rate at which every seed diverged: NaN
                means = {w: np.nanmean(np.where(np.isfinite(curves[w]), curves[w], np.nan), axis=0) for w in widths}
            out[f"{family}, {label}" if label else family] = Transfer(
                widths, {w: by_width[w] for w in widths}, bests, best_loss, moved, n_seeds, log2_lrs, means, axis)
    return out
