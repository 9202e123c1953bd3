"""``python -m bench calibrate DIR``: the report's own error rates, measured on its runs.

The verdicts and intervals of :mod:`bench.analysis.verdicts` promise a family-wise error of at
most 5% and 95% coverage. Whether they keep that promise on *these* runs (skewed,
gridded at ``k / n_test``, with seeds stuck at chance) is measured by resampling the
stored final values, per task:

- ``null``: seeds drawn with replacement, each initializer's mean over the stored
  seeds subtracted: the initializers keep their own spread, skew and correlation
  across seeds but have equal means, so any *worse* verdict is false; simultaneous
  coverage: every pairwise interval holds 0.
- ``permuted``: seeds drawn with replacement and the initializers' labels permuted
  within each seed (the exchangeable null); initializers whose runs are all equal
  (``zeros``) are left out of it, as they would make every label a mixture with them.
- ``shift``: the ``null`` with the first initializer made ``shift`` worse: power = how often
  it is called *worse*; false claims: any other initializer called *worse*, or the
  shifted one called *equivalent* when the shift exceeds the margin; coverage of the
  true differences (0 and +-shift).
- ``resample``: seeds drawn with replacement, labels kept: coverage of each
  initializer's Student t interval of the mean, the truth being its mean over all
  stored seeds.

Each at 8, 16 and 32 seeds (or as asked). The result is written to
``DIR/calibration.json`` with its own checksum, a fingerprint of the settings and the
procedure's code, and the runs it measured; ``report.md`` shows its summary while the
fingerprint matches and the runs agree to 1e-3 (relative: the same runs trained on another
processor kind differ in their last bits, not in what a calibration measures).

References: Bouthillier et al. 2021, arXiv:2103.03098; Westfall & Young 1993,
*Resampling-Based Multiple Testing* (permutation under the complete null).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from bench.analysis import compare, maxt, resolution, stats, verdicts
from bench.errors import UserError
from bench.store import files_digest, read_json_verified, write_json_verified

FILE = "calibration.json"
SCENARIOS = ("null", "permuted", "shift", "resample")
FORMAT = 2  # 2: with its checksum and the runs it measured


@dataclasses.dataclass(frozen=True)
class Cell:
    """Error rates of one scenario at one number of seeds (shares of ``reps``)."""

    scenario: str
    seeds: int
    reps: int
    false_claims: float  # family-wise error: any false verdict
    simultaneous_coverage: float  # every pairwise interval holds its true difference
    mean_coverage: float  # per-initializer Student t intervals (resample scenario)
    power: float  # shift: the shifted initializer called worse


def one_replicate(values: np.ndarray, true_diff: np.ndarray, margin: float, level: float, draws: int,
                  rng: np.random.Generator, paired: bool = True, statistic: str = "mean") -> tuple[bool, bool, bool]:
    """Runs the report's procedure on one resampled table (better direction).

    Args:
      values: `(seeds, k)`, diverged runs scored; NaN = no value.
      true_diff: `(k, k)` the true ``theta_i - theta_j`` (of ``statistic``'s estimand: :func:`estimands`).

    Returns:
      ``(any false claim, all intervals cover, column 0 called worse)``.
    """
    if (np.isfinite(values).sum(0) < 2).any():
        return (False, True, False)
    pairs, c, p = maxt.simultaneous_intervals(values, range(values.shape[1]), level, rng, draws, paired,
                                              statistic=statistic)
    with np.errstate(invalid="ignore"):
        low, high = pairs.diff - c * pairs.se, pairs.diff + c * pairs.se
    labels, _ = verdicts.with_step_down(verdicts.mcb(low, high, maxt.location(values, statistic), margin)[0],
                                        pairs.diff, p, level)
    off = ~np.eye(len(labels), dtype=bool)
    gap = np.array([true_diff[off[i], i].max() for i in range(len(labels))])  # max_{j != i} theta_j - theta_i
    false = any((lab == "worse" and gap[i] <= 0) or (lab == "equivalent" and gap[i] >= margin)
                for i, lab in enumerate(labels))
    covered = bool(np.all(((low <= true_diff) & (true_diff <= high))[off & np.isfinite(low)]))
    return false, covered, labels[0] == "worse"


def estimands(values: np.ndarray, statistic: str = "mean") -> np.ndarray:
    """`(k, k)` the true ``theta_i - theta_j`` of a population of seeds ``values`` `(seeds, k)`: the difference of
    the means, or the trimmed mean of the paired differences (``bench.analysis.maxt``)."""
    if statistic == "mean":
        means = np.nanmean(values, 0)
        return means[:, None] - means[None, :]
    k = values.shape[1]
    out = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            d = values[:, i] - values[:, j]
            out[i, j] = sps.trim_mean(d[np.isfinite(d)], maxt.TRIM) if i != j else 0.0
    return out


def simulate(values: np.ndarray, scenario: str, seeds: int, reps: int, margin: float, shift: float,
             level: float = 0.95, draws: int = 2_000, rng: np.random.Generator | int = 0,
             paired: bool = True, statistic: str = "mean") -> Cell:
    """One cell of the calibration of a task's final values `(stored seeds, k)` (better direction)."""
    rng = np.random.default_rng(rng)
    k = values.shape[1]
    false = covered = detected = mean_hits = mean_total = 0
    truth_means = np.nanmean(values, 0)
    centred = estimands(values - truth_means, statistic)  # 0 for means; what trimmed means of differences keep
    floor = resolution.value_floor(values)
    for _ in range(reps):
        sample = values[rng.integers(0, len(values), seeds)]
        true_diff = np.zeros((k, k)) if scenario == "permuted" else centred.copy()
        if scenario in ("null", "shift"):
            sample = sample - truth_means
        if scenario == "permuted":
            sample = np.take_along_axis(sample, rng.permuted(np.tile(np.arange(k), (seeds, 1)), axis=1), axis=1)
        if scenario == "shift":
            sample[:, 0] -= shift
            true_diff[0, 1:] -= shift
            true_diff[1:, 0] += shift
        if scenario == "resample":
            true_diff = estimands(values, statistic)
            for i in range(k):
                column = sample[:, i][np.isfinite(sample[:, i])]
                low, high = stats.t_interval(column, level, floor=floor)
                if np.isfinite(low):
                    mean_total += 1
                    mean_hits += low <= truth_means[i] <= high
        f, c, d = one_replicate(sample, true_diff, margin, level, draws, rng, paired, statistic)
        false, covered, detected = false + f, covered + c, detected + d
    return Cell(scenario, seeds, reps, false / reps, covered / reps,
                mean_hits / mean_total if mean_total else np.nan, detected / reps if scenario == "shift" else np.nan)


def calibrate(results: pd.DataFrame, metric: str = "test_accuracy", seeds: Sequence[int] = (8, 16, 32),
              reps: int = 200, shift: float | None = None, settings: stats.Settings = stats.Settings(),
              paired: bool = True, draws: int = 2_000) -> pd.DataFrame:
    """Calibration of every task of ``results`` (see the module docstring).

    Args:
      shift: the worse initializer's handicap in the shift scenario; None: twice the margin.
      draws: null draws of each replicate's critical value (fewer than a report's
        10,000: the Monte Carlo error of one quantile averages out over replicates).

    Returns:
      One row per (dataset, model, scenario, seeds) with the :class:`Cell` fields and ``shift``.
    """
    margin = compare.default_margin(metric) if settings.margin is None else settings.margin
    shift = 2 * margin if shift is None else shift
    sign = 1 if stats.higher_is_better(metric) else -1
    rows = []
    for task_key, _, _, values in compare.scored_matrices(results, metric):
        keep = np.isfinite(values).sum(0) >= 2
        if keep.sum() < 2:
            continue
        values = sign * values[:, keep]
        varying = values[:, ~maxt.is_constant(values)]
        for scenario in SCENARIOS:
            table = varying if scenario == "permuted" else values
            if table.shape[1] < 2:
                continue
            for n in seeds:
                rng = stats.group_rng(settings.seed, *task_key, metric, scenario, n, "calibrate")
                cell = simulate(table, scenario, n, reps, margin, shift, settings.level, draws, rng, paired,
                                settings.statistic)
                rows.append({**dict(zip(stats.TASK, task_key)), **dataclasses.asdict(cell), "shift": shift})
    return pd.DataFrame(rows)


# the modules of bench.analysis the verdicts and intervals come from (this one and what it imports, transitively;
# a test keeps the list whole): editing another module (diagnostics, coordcheck) leaves a calibration valid
PROCEDURE = ("calibrate", "columns", "compare", "components", "crossed", "maxt", "monte_carlo", "outcomes",
             "resolution", "scoring", "stats", "verdicts")


def fingerprint(metric: str, settings: stats.Settings, paired: bool) -> str:
    """Hash of the settings and the code of the procedure (:data:`PROCEDURE`) a calibration measured; the runs it
    measured are stored beside it and compared within :data:`AGREE` (:func:`same_runs`)."""
    digest = hashlib.sha256(files_digest([Path(__file__).parent / f"{name}.py" for name in PROCEDURE]).encode())
    digest.update(json.dumps([metric, dataclasses.asdict(settings), paired], sort_keys=True).encode())
    return digest.hexdigest()[:16]


AGREE = 1e-3  # relative: runs that agree to this are the same runs (losses differ in their last bits across CPU kinds)
FLIPPED = 0.01  # the share of runs whose value may move by one step of the metric's lattice (one test example)


def measured_runs(results: pd.DataFrame, metric: str) -> dict[str, list]:
    """Per task, the final ``metric`` of every run as the calibration resamples it (diverged runs scored), as lists
    (``None`` for a missing value)."""
    return {"/".join(map(str, key)): [[None if not np.isfinite(v) else float(v) for v in row] for row in values]
            for key, _, _, values in compare.scored_matrices(results, metric)}


def same_runs(stored: dict, results: pd.DataFrame, metric: str) -> bool:
    """Whether ``stored`` (:func:`measured_runs` of the calibrated runs) describes ``results``: the same tasks and
    runs, every value within :data:`AGREE` (relative; 1e-9 absolute), not their last bits, except at most
    :data:`FLIPPED` of a task's runs by one step of the values' lattice (``bench.analysis.resolution.step``).

    Retrained on another processor kind the default preset's 512 runs differed in their test losses by up to 9e-4
    relative, and in one run's final accuracy by one of 200 test examples (a borderline example classified the
    other way): the same runs, whose calibration is the same to well within its Monte Carlo error."""
    current = measured_runs(results, metric)
    if not isinstance(stored, dict) or set(stored) != set(current):
        return False
    for task, values in current.items():
        a = np.array([[np.nan if v is None else v for v in row] for row in values], np.float64)
        try:
            b = np.array([[np.nan if v is None else v for v in row] for row in stored[task]], np.float64)
        except (TypeError, ValueError):
            return False
        if a.shape != b.shape or np.isnan(a).tolist() != np.isnan(b).tolist():
            return False
        apart = ~np.isclose(a, b, rtol=AGREE, atol=1e-9, equal_nan=True)
        if not apart.any():
            continue
        lattice = resolution.step(b)
        one_step = lattice > 0 and bool(np.all(np.abs(a - b)[apart] <= lattice * (1 + 1e-6)))
        if not one_step or apart.mean() > FLIPPED:
            return False
    return True


def save(out_dir: Path, table: pd.DataFrame, key: str, command: str, runs: dict) -> Path:
    """Writes ``calibration.json`` with its checksum: the cells, the :func:`fingerprint` and the runs measured."""
    payload = {"format": FORMAT, "fingerprint": key, "command": command, "runs": runs,
               "cells": json.loads(table.to_json(orient="records"))}
    return write_json_verified(Path(out_dir) / FILE, payload)


def summary_lines(out_dir: Path, results: pd.DataFrame, analysis) -> list[str] | None:
    """One sentence per task from ``calibration.json``; None when absent, a warning when damaged or stale."""
    path = Path(out_dir) / FILE
    if not path.is_file():
        return None
    rerun = "rerun `python -m bench calibrate` to measure these runs"
    try:
        payload = read_json_verified(path, rerun)
        cells = pd.DataFrame(payload["cells"])
        if payload.get("format") != FORMAT or cells.empty:
            raise ValueError("another format")
    except (UserError, ValueError, KeyError, TypeError):
        return [f"`{FILE}` is damaged, edited or of another version (its checksum or contents); {rerun}."]
    key = fingerprint(analysis.metric, analysis.settings, analysis.paired)
    if payload.get("fingerprint") != key or not same_runs(payload.get("runs"), results, analysis.metric):
        return [f"`{FILE}` was made from other runs, settings or code; {rerun}."]
    return [describe(cells, task) for task, cells in cells.groupby("dataset", sort=False)]


def describe(cells: pd.DataFrame, dataset: str) -> str:
    """'digits: false claims under the null 0.02/0.03/0.04 at 8/16/32 seeds; ...'."""
    def series(scenario: str, column: str) -> str:
        rows = cells[cells["scenario"] == scenario]
        return "/".join(f"{v:.2f}" for v in rows[column]) + " at " + "/".join(str(s) for s in rows["seeds"]) + " seeds"

    reps = int(cells["reps"].iloc[0])
    shift = cells["shift"].iloc[0]
    return (f"{dataset} ({reps} resamples a cell): family-wise error of the verdicts under the null "
            f"{series('null', 'false_claims')} (labels permuted within seed: {series('permuted', 'false_claims')}), "
            f"simultaneous coverage {series('null', 'simultaneous_coverage')}; "
            f"per-initializer mean CI coverage {series('resample', 'mean_coverage')}; one initializer "
            f"{shift:g} worse called worse {series('shift', 'power')} (false claims then "
            f"{series('shift', 'false_claims')}).")
