"""What training a task produced: the evaluation sums of every run turned into per-epoch records and the tidy
table (one row per arm x seed x epoch, diverged runs marked from their first non-finite epoch)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.models import losses
from bench.training import memory


@dataclasses.dataclass
class TaskResult:
    """What training one task produced.

    Attributes:
      frame: tidy results, one row per (initializer, seed, epoch), epoch 0 being
        the untrained network.
      params: final parameters, leaves `(n_initializers, n_seeds, ...)` on the
        host; None unless asked for (and always None with several processes).
      n_params: parameters of one run.
      plan: how the runs were split into chunks.
      init_s: seconds spent initializing all runs and evaluating them before training (compilation excluded): the
        evaluation at epoch 0 is nearly all of it; draw_s: those spent drawing the initial states alone.
      compile_s: seconds spent lowering and compiling the task's programs (or loading them from the
        persistent compilation cache, ``bench.training.compilation``).
      train_s: seconds spent training and evaluating, compilation excluded (chunks trained side by side:
        the sum of their shares of the wall time, ``bench.training.lanes.WallShares``).
      program_bytes: memory XLA reserves for one chunk's training epoch
        (arguments + outputs + temporaries - donated aliases).
      trained_seed_epochs: run-epochs trained by this call (fewer than runs x
        epochs when chunks were loaded or resumed from a store; padding not counted).
      earlier_train_s, earlier_seed_epochs: training seconds and run-epochs that
        earlier, interrupted or finished, runs spent on the chunks loaded or
        resumed here (as recorded in the store; 0 without one).
      outcomes: per-example ``{"loss", "correct"}`` of every run on the test split
        after the last epoch, `(n_initializers, n_seeds, n_test)`; None when a chunk
        loaded from an older store lacks them.
      flops_per_example: one model's training FLOPs per example as XLA's cost analysis counts them, for a model
        whose convolutions make ``6 x n_params`` far too few (None: ``6 x n_params`` counts it).
    """

    frame: pd.DataFrame
    params: dict | None
    n_params: int
    plan: memory.ChunkPlan
    init_s: float
    compile_s: float
    train_s: float
    program_bytes: int
    trained_seed_epochs: int
    earlier_train_s: float = 0.0
    earlier_seed_epochs: int = 0
    outcomes: dict[str, np.ndarray] | None = None
    flops_per_example: float | None = None
    draw_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class ChunkTimes:
    """What training one chunk took: seconds are its share of the wall time (``lanes.WallShares``)."""

    init_s: float
    train_s: float
    seed_epochs: int
    earlier_s: float  # recorded by the run that checkpointed it
    earlier_seed_epochs: int
    draw_s: float = 0.0  # of init_s, drawing the initial state (the rest: evaluating it)


def evaluation_epochs(epochs: int, evals_per_epoch: int = 1) -> list[int] | list[float]:
    """The epoch each evaluation is recorded at: ``0, 1, ..., epochs``, or with several evaluations an epoch
    ``k / evals_per_epoch`` for ``k = 0 .. epochs x evals_per_epoch`` (``bench.training.programs.evaluation_steps``:
    each is made less than one step after it). The reader of a results table checks its rows against these."""
    if evals_per_epoch == 1:
        return list(range(epochs + 1))
    return [k / evals_per_epoch for k in range(epochs * evals_per_epoch + 1)]


def records(sums: np.ndarray, finite: np.ndarray, splits: list[str], split_sizes: np.ndarray,
            target_variances: np.ndarray | None = None, epochs: list | None = None) -> list[dict]:
    """Per-evaluation metric arrays `(n_arms, n_seeds)` from the evaluation sums.

    Args:
      sums: `(evaluations, n_splits, 2, n_arms, n_seeds)` summed loss and metric
        (float32, as computed); divided by the split sizes in float64, so an accuracy
        of 168/200 is recorded as 0.84.
      finite: `(evaluations, n_arms, n_seeds)`: every minibatch loss of the epoch up to the evaluation was finite.
      target_variances: `(n_splits,)` for a regression loss, whose summed metric is
        the squared error: recorded as ``{split}_r2`` (``bench.models.losses.r2``); None for
        classification (``{split}_accuracy``).
      epochs: the epoch of each evaluation (:func:`evaluation_epochs`; None: one an epoch, ``0, 1, ...``).

    A run is diverged from the first evaluation with a non-finite minibatch or evaluation loss on.
    """
    metrics = np.asarray(sums, np.float64) / split_sizes[None, :, None, None, None]
    bad = ~finite | ~np.isfinite(metrics[:, :, 0]).all(axis=1)
    diverged = np.logical_or.accumulate(bad, axis=0)
    epochs = list(range(sums.shape[0])) if epochs is None else epochs
    records = []
    for row, epoch in enumerate(epochs):
        record = {"epoch": epoch}
        for j, split in enumerate(splits):
            record[f"{split}_loss"] = metrics[row, j, 0]
            if target_variances is None:
                record[f"{split}_accuracy"] = metrics[row, j, 1]
            else:
                record[f"{split}_r2"] = losses.r2(metrics[row, j, 1], target_variances[j])
        records.append({**record, "diverged": diverged[row]})
    return records


def tidy(records: list[dict], names: Sequence[str], seeds: Sequence[int]) -> pd.DataFrame:
    """Stacks per-epoch `(n_inits, n_seeds)` arrays into one row per (initializer, seed, epoch)."""
    init_index, seed_index = np.meshgrid(np.arange(len(names)), np.arange(len(seeds)), indexing="ij")
    frames = []
    for rec in records:
        columns = {
            "arm": np.asarray(names, dtype=object)[init_index.ravel()],
            "seed": np.asarray(seeds)[seed_index.ravel()],
            "epoch": rec["epoch"],
        }
        columns.update({k: np.ravel(v) for k, v in rec.items() if k != "epoch"})
        frames.append(pd.DataFrame(columns))
    frame = pd.concat(frames, ignore_index=True).sort_values(
        ["arm", "seed", "epoch"], key=_arm_order(names), kind="stable").reset_index(drop=True)
    first = frame["epoch"].where(frame["diverged"]).groupby([frame["arm"], frame["seed"]]).transform("min")
    # the run's first diverged epoch (empty if it never diverged); integers unless evaluated within epochs
    frame["diverged_epoch"] = first.astype("Int64" if pd.api.types.is_integer_dtype(frame["epoch"]) else "Float64")
    return frame


def _arm_order(names):
    rank = {name: i for i, name in enumerate(names)}
    return lambda col: col.map(rank) if col.name == "arm" else col
