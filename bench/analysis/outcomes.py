"""Per-example test outcomes of every run, and the test set's own sampling error.

A run's test accuracy on 200 examples has a binomial standard error of ~2.4 pp,
more than the spread over seeds; intervals over seeds alone treat the test set as
fixed and answer "how would *this* test set score", not "how well does it
generalize". With every run's per-example correctness and loss on the test split
(kept compactly in ``outcomes.npz`` beside ``results.csv``), the per-example scores
``x_se`` of ``n`` seeds on ``m`` shared examples follow the two-way random-effects model
``x_se = mu + a_s + b_e + (ab)_se``, and the variance of their grand mean is

    Var = s2_a / n + s2_b / m + s2_ab / (n m) = s_seeds^2 / n + s2_b / m,

with ``s_seeds^2`` the variance over seeds of the runs' scores (it holds ``s2_a + s2_ab / m``),
and the examples' own component ``s2_b = (MS_examples - MS_residual) / n`` from the two-way
ANOVA mean squares (clipped at 0), estimated with Satterthwaite's degrees of freedom. The
interaction is counted once, in the seeds' term, where it shrinks with seeds; the examples'
term ``s2_b / m`` does not (the same examples are shared by every seed and initializer). For
comparisons the same decomposition of the per-example paired differences cancels what the
initializers share. The variance over examples of the seeds' mean score, used before, holds
``s2_ab / n`` as well: 43-58% of the printed test-set term of the committed reports was that
interaction, counted twice, and the seeds advice said more seeds could not help where they can.

References: Bouthillier et al. 2021, arXiv:2103.03098 (data sampling as a source of
variance); Dietterich 1998, Neural Comput. 10(7); Nadeau & Bengio 2003, Mach. Learn. 52.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.components import Component, difference_of_mean_squares, satterthwaite
from bench.analysis.stats import final_epoch, run_table
from bench.errors import UserError
from bench.store import read_npz_verified, write_npz_verified

FILE = "outcomes.npz"
METRICS = {"test_accuracy": "correct", "test_loss": "loss"}  # the metric each per-example array gives


def stored_losses(loss) -> np.ndarray:
    """Per-example losses as :func:`save` stores them: float16, or float32 where a finite loss is beyond float16's
    range (65,504: a run far from converging that did not diverge), which float16 would turn into an infinity,
    dropping the run's seed from its initializer's test-set term (:func:`example_component`)."""
    loss = np.asarray(loss)
    with np.errstate(over="ignore"):  # the overflow is what is checked next, not a warning for the user
        half = loss.astype(np.float16)
    return loss.astype(np.float32) if (np.isfinite(loss) & ~np.isfinite(half)).any() else half


def save(out_dir: str | Path, per_task: dict[str, dict]) -> Path | None:
    """Writes ``outcomes.npz``: per task, the initializers, seeds, correctness and float16 losses (float32 where a
    loss is beyond float16's range, :func:`stored_losses`).

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
                f"t{i}_loss": stored_losses(item["loss"]),
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
    """A task's outcomes as :func:`save` stores and :func:`load` returns them (losses rounded to float16, or to
    float32 beyond its range).

    The run's own report analyses these, so that it equals the report re-rendered from the files.
    """
    correct = np.asarray(outcomes["correct"])
    return {**outcomes, "correct": correct.astype(bool) if _binary(correct) else correct.astype(np.float32),
            "loss": stored_losses(outcomes["loss"]).astype(np.float64)}


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


def examples_share(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The examples' own share ``s2_b / m`` of the variance of a grand mean, and its degrees of freedom.

    Args:
      scores: `(..., n, m)` per-example scores of ``n`` seeds on ``m`` examples (every value finite).

    Returns:
      `(...)` each: ``max(MS_examples - MS_residual, 0) / (n m)`` of the two-way ANOVA without
      replication, and the Satterthwaite degrees of freedom of that difference of mean squares (inf
      where it is 0). With one seed the interaction cannot be told apart: ``MS_examples / m`` with
      ``m - 1`` degrees of freedom.
    """
    scores = np.asarray(scores, np.float64)
    n, m = scores.shape[-2:]
    if m < 2:
        return np.zeros(scores.shape[:-2]), np.full(scores.shape[:-2], np.inf)
    grand = scores.mean((-2, -1), keepdims=True)
    by_example = scores.mean(-2, keepdims=True)
    ms_examples = n * ((by_example - grand) ** 2).sum((-2, -1)) / (m - 1)
    if n < 2:
        return ms_examples / m, np.full(ms_examples.shape, m - 1.0)
    by_seed = scores.mean(-1, keepdims=True)
    residual = ((scores - by_seed - by_example + grand) ** 2).sum((-2, -1)) / ((n - 1) * (m - 1))
    value, df = difference_of_mean_squares(ms_examples, m - 1, residual, (n - 1) * (m - 1))
    return value / (n * m), df


def example_component(scores: np.ndarray, paired: bool = True) -> Component:
    """The test set's share of the variance of means and of mean differences (:func:`examples_share`).

    Args:
      scores: `(seeds, k, m)` per-example scores (sign irrelevant), NaN for diverged runs, whose
        seeds are left out (of the initializer's, and of its pairs').

    Returns:
      A component named ``"test set"``: paired differences from the per-example differences
      ``x_sie - x_sje`` over the seeds both finished; unpaired, the sum of the two initializers' terms.
    """
    k = scores.shape[1]
    finished = np.isfinite(scores).all(-1)  # (seeds, k)
    means = [examples_share(scores[finished[:, i], i, :]) if finished[:, i].any() else (0.0, np.inf)
             for i in range(k)]
    of_means = np.array([float(v) for v, _ in means])
    df_means = np.array([float(d) for _, d in means])
    if not paired:
        return Component("test set", of_means, of_means[:, None] + of_means[None, :], df_means,
                         satterthwaite([of_means[:, None], of_means[None, :]], [df_means[:, None], df_means[None, :]]))
    of_differences, df_differences = np.zeros((k, k)), np.full((k, k), np.inf)
    for i in range(k):
        for j in range(i + 1, k):
            both = finished[:, i] & finished[:, j]
            if both.any():
                value, df = examples_share(scores[both, i, :] - scores[both, j, :])
                of_differences[i, j] = of_differences[j, i] = value
                df_differences[i, j] = df_differences[j, i] = df
    return Component("test set", of_means, of_differences, df_means, df_differences)


def task_scores(task_final: pd.DataFrame, item: dict, metric: str, names: list[str]) -> np.ndarray | None:
    """Per-example scores `(runs, initializers, m)` of one task's final rows; NaN where the run diverged.

    Runs are numbered as trained: the seed, or ``seed * K + data_seed`` with ``K`` crossed data orders.
    """
    run = run_numbers(task_final)
    runs = sorted(set(run.tolist()))
    ok = run_table(task_final.assign(run=run), ~task_final["diverged"].astype(bool), "run", names)
    return per_example(item, metric, names, runs, ok.reindex(index=runs).fillna(False).to_numpy(bool))


def arm_variances(results: pd.DataFrame, per_task: dict[str, dict], metrics) -> dict[tuple, tuple[float, float]]:
    """``(dataset, initializer, metric) -> (s2_b / m, its degrees of freedom)`` for the metrics outcomes give."""
    out, every = {}, final_epoch(results)
    for task, item in per_task.items():
        final = every[every["dataset"] == task]
        names = list(dict.fromkeys(final["arm"]))
        for metric in metrics:
            scores = task_scores(final, item, metric, names)
            if scores is not None:
                component = example_component(scores, paired=False)
                out.update({(task, n, metric): (float(v), float(d))
                            for n, v, d in zip(names, component.of_means, component.df_means)})
    return out
