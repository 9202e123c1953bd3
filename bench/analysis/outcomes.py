"""Per-example test outcomes of every run, and the test set's own sampling error.

A run's test accuracy on 200 examples has a binomial standard error of ~2.4 pp,
more than the spread over seeds; intervals over seeds alone treat the test set as
fixed and answer "how would *this* test set score", not "how well does it
generalize". With every run's per-example correctness and loss on the test split
(kept compactly in ``outcomes.npz`` beside ``results.csv``), the variance of a mean
over ``n`` seeds and ``m`` shared test examples is estimated as

    Var = s_seeds^2 / n + s_examples^2 / m,

with ``s_seeds^2`` the variance over seeds of the runs' scores (of the paired
differences, for comparisons) and ``s_examples^2`` the variance over examples of the
per-example score averaged over seeds (of the per-example paired difference). This is
the two-way random-effects (seeds x examples) variance of a grand mean, with the
interaction counted in both terms (slightly conservative); the same examples are
shared by every seed and initializer, so the example term does not shrink with
seeds and the pairing over examples cancels what the initializers share.

References: Bouthillier et al. 2021, arXiv:2103.03098 (data sampling as a source of
variance); Dietterich 1998, Neural Comput. 10(7); Nadeau & Bengio 2003, Mach. Learn. 52.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.stats import final_epoch, run_table
from bench.errors import UserError
from bench.store import read_npz_verified, write_npz_verified

FILE = "outcomes.npz"
METRICS = {"test_accuracy": "correct", "test_loss": "loss"}  # the metric each per-example array gives


def save(out_dir: str | Path, per_task: dict[str, dict]) -> Path | None:
    """Writes ``outcomes.npz``: per task, the initializers, seeds, correctness and float16 losses.

    Correctness is packed to bits where every example is right or wrong; a language model's
    per-example accuracy (the share of its counted positions predicted right) is a fraction,
    kept as float32 (packing it to bits would turn every partly right sequence into a right one).

    Args:
      per_task: task label -> ``{"names", "seeds", "correct", "loss"}`` with arrays
        `(initializers, seeds, n_test)`; tasks without outcomes are left out.
    """
    arrays = {}
    for i, (task, item) in enumerate(per_task.items()):
        correct = np.asarray(item["correct"])
        arrays.update(
            {
                f"t{i}_task": np.array(task),
                f"t{i}_names": np.array(item["names"]),
                f"t{i}_seeds": np.asarray(item["seeds"]),
                f"t{i}_shape": np.array(correct.shape),
                f"t{i}_loss": np.asarray(item["loss"], np.float16),
                **({f"t{i}_correct": np.packbits(correct.astype(bool), axis=-1)} if _binary(correct)
                   else {f"t{i}_accuracy": correct.astype(np.float32)}),
            }
        )
    if not arrays:
        return None
    return write_npz_verified(Path(out_dir) / FILE, arrays, compressed=True)


def _binary(correct: np.ndarray) -> bool:
    """Whether every per-example score is exactly 0 or 1 (a classifier's), so bits hold it."""
    return bool(np.all((correct == 0) | (correct == 1)))


def as_stored(outcomes: dict) -> dict:
    """A task's outcomes as :func:`save` stores and :func:`load` returns them (losses rounded to float16).

    The run's own report analyses these, so that it equals the report re-rendered from the files.
    """
    correct = np.asarray(outcomes["correct"])
    return {**outcomes, "correct": correct.astype(bool) if _binary(correct) else correct.astype(np.float32),
            "loss": np.asarray(outcomes["loss"], np.float16).astype(np.float64)}


def load(run_dir: str | Path, results: pd.DataFrame) -> dict[str, dict]:
    """Reads ``outcomes.npz`` and checks it against ``results``; {} when absent.

    Every task's per-example correctness must give back exactly the final test
    accuracy of each run in ``results`` (a stale or foreign file is refused).

    Raises:
      UserError: the file is damaged or does not match the results, naming it.
    """
    path = Path(run_dir) / FILE
    if not path.is_file():
        return {}
    remedy = "delete it (reports then leave the test set's sampling error out)"
    raw = read_npz_verified(path, remedy)
    try:
        out = {}
        for i in range(sum(name.endswith("_task") for name in raw)):
            shape = tuple(int(v) for v in raw[f"t{i}_shape"])
            correct = (np.unpackbits(raw[f"t{i}_correct"], axis=-1, count=shape[-1]).astype(bool).reshape(shape)
                       if f"t{i}_correct" in raw else raw[f"t{i}_accuracy"].reshape(shape))
            out[str(raw[f"t{i}_task"])] = {"names": [str(n) for n in raw[f"t{i}_names"]],
                                           "seeds": raw[f"t{i}_seeds"].tolist(), "correct": correct,
                                           "loss": raw[f"t{i}_loss"].astype(np.float64)}
    except (ValueError, KeyError):
        raise UserError(f"{path} is damaged; {remedy}") from None
    final = final_epoch(results)
    for task, item in out.items():
        rows = final[final["dataset"] == task]
        rows = rows.assign(run=run_numbers(rows)).set_index(["arm", "run"])["test_accuracy"]
        accuracy = item["correct"].astype(np.float64).mean(-1)
        atol = 1e-12 if item["correct"].dtype == bool else 1e-6  # fractions: float32 sums in another order
        for (i, name), (j, seed) in _pairs(item):
            if (name, seed) not in rows.index or not np.isclose(rows[(name, seed)], accuracy[i, j], rtol=0, atol=atol):
                raise UserError(f"{path} does not match results.csv (task {task}, {name}, seed {seed}); "
                                "delete it or rerun the experiment")
    return out


def run_numbers(frame: pd.DataFrame) -> np.ndarray:
    """The run number of each row as trained: the seed, or ``seed * K + data_seed`` with ``K`` data orders."""
    run = frame["seed"].to_numpy()
    if "data_seed" in frame and frame["data_seed"].notna().all():
        run = run * (int(frame["data_seed"].max()) + 1) + frame["data_seed"].to_numpy().astype(int)
    return run


def _pairs(item: dict):
    return [((i, n), (j, s)) for i, n in enumerate(item["names"]) for j, s in enumerate(item["seeds"])]


def per_example(item: dict, metric: str, names: list[str], seeds: list, finished: np.ndarray) -> np.ndarray | None:
    """`(seeds, initializers, n_test)` per-example scores in the order of ``names`` and ``seeds``; NaN where diverged.

    Args:
      finished: `(seeds, initializers)` True where the run did not diverge.
    """
    if metric not in METRICS or set(names) - set(item["names"]):
        return None
    values = item[METRICS[metric]].astype(np.float64)
    rows = [item["seeds"].index(s) for s in seeds]
    cols = [item["names"].index(n) for n in names]
    scores = np.moveaxis(values[cols][:, rows], 0, 1)  # (seeds, inits, m)
    return np.where(finished[..., None], scores, np.nan)


def example_variance(scores: np.ndarray, paired: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The test set's share of the variance of means and of mean differences.

    Args:
      scores: `(seeds, k, m)` per-example scores (sign already in the better direction),
        NaN for diverged runs.

    Returns:
      ``(of_means, of_differences)``: `(k,)` ``var_e(mean_s x_ske) / m`` and `(k, k)`
      the same of the per-example differences ``x_sie - x_sje`` (paired: over the seeds
      both finished; unpaired: the sum of the two initializers' terms).
    """
    m = scores.shape[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_example_mean = np.nanmean(scores, axis=0)  # (k, m)
        of_means = np.nanvar(per_example_mean, axis=-1, ddof=1) / m
        if not paired:
            return of_means, of_means[:, None] + of_means[None, :]
        k = scores.shape[1]
        of_differences = np.zeros((k, k))
        for i in range(k):
            d = scores[:, i:i + 1, :] - scores[:, i + 1:, :]  # (seeds, k - i - 1, m); NaN where either diverged
            var = np.nanvar(np.nanmean(d, axis=0), axis=-1, ddof=1) / m
            of_differences[i, i + 1:] = of_differences[i + 1:, i] = var
    return of_means, np.nan_to_num(of_differences)


def task_scores(task_final: pd.DataFrame, item: dict, metric: str, names: list[str]) -> np.ndarray | None:
    """Per-example scores `(runs, initializers, m)` of one task's final rows; NaN where the run diverged.

    Runs are numbered as trained: the seed, or ``seed * K + data_seed`` with ``K`` crossed data orders.
    """
    run = run_numbers(task_final)
    runs = sorted(set(run.tolist()))
    ok = run_table(task_final.assign(run=run), ~task_final["diverged"].astype(bool), "run", names)
    return per_example(item, metric, names, runs, ok.reindex(index=runs).fillna(False).to_numpy(bool))


def arm_variances(results: pd.DataFrame, per_task: dict[str, dict], metrics) -> dict[tuple, float]:
    """``(dataset, initializer, metric) -> var_e(mean over seeds) / m`` for the metrics outcomes give."""
    out, every = {}, final_epoch(results)
    for task, item in per_task.items():
        final = every[every["dataset"] == task]
        names = list(dict.fromkeys(final["arm"]))
        for metric in metrics:
            scores = task_scores(final, item, metric, names)
            if scores is not None:
                of_means, _ = example_variance(scores)
                out.update({(task, n, metric): float(v) for n, v in zip(names, of_means)})
    return out
