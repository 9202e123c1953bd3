"""Every statistic a report shows, computed once from the results table (``analyse``), and the settings and
metric a run's record implies."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType

import pandas as pd

from bench.analysis import advice, aggregate, compare, crossed, maxt, outcomes, stats, transfer, tuning
from bench.errors import UserError, option
from bench.reporting.record import RunRecord, TaskRecord

# differences the power advice is given for
DELTAS = {"accuracy": (0.005, 0.01), "r2": (0.005, 0.01), "loss": (0.01, 0.05)}


def deltas(metric: str, settings: stats.Settings) -> tuple[float, float]:
    """The differences the seeds advice sizes for: the metric kind's (:data:`DELTAS`), or for a metric of runs
    trained elsewhere (``_score``, ``_error``: no scale known) the equivalence margin and twice it."""
    kind = metric.rpartition("_")[2]
    if kind in DELTAS:
        return DELTAS[kind]
    if settings.margin is None:
        raise UserError(f"give the equivalence margin of {metric!r} in its own units ({option('margin')})")
    return (settings.margin, 2 * settings.margin)


@dataclasses.dataclass(frozen=True)
class Compared:
    """The part of an :class:`Analysis` computed first (same names): what the early figures read
    (``comparisons`` None for the figures of the runs alone, drawn before any statistic)."""

    metric: str
    comparisons: pd.DataFrame | None
    paired: bool
    settings: stats.Settings


@dataclasses.dataclass
class Analysis:
    """Everything a report shows, computed once from the results table.

    Attributes:
      metric: the metric ranked, compared and tested (e.g. ``test_accuracy``).
      summary: ``stats.summarize`` of every metric shown.
      comparisons: ``compare.compare``: verdicts and simultaneous intervals per initializer.
      curves: ``stats.summarize_curves`` of ``metric``.
      advice: ``advice.seeds_advice`` of ``metric``.
      baseline: the reference of the difference columns given, or None for the best.
      paired: whether runs were compared as seed-matched pairs.
      settings: level, seeds and margin of the statistics.
      divergence: ``stats.divergence``: when the diverged runs diverged.
      across: ``aggregate.aggregate``: normalized scores over tasks (empty with one task).
      ranks: ``aggregate.rank_test``: exact Friedman test and critical difference over tasks, or None.
      test_examples: per task, the test examples whose sampling error the test
        metrics' intervals include (absent: intervals over seeds only).
      sources: ``crossed.decomposition``: init / data-order / rest standard deviations
        (empty unless data orders were crossed with init seeds).
      tuning: ``tuning.analyse``: per task ``(dataset, model)``, the grid's tuned comparison,
        sensitivity and ranking verdict (empty without a grid).
      transfer: ``transfer.analyze``: per width family, the best learning rate at each width and whether it
        moves (empty without width series trained over a learning-rate grid).
      sections: what report sections with a ``compute`` of their own computed, by section name
        (``bench.reporting.section.Section``).
    """

    metric: str
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    curves: pd.DataFrame
    advice: pd.DataFrame
    baseline: str | None
    paired: bool
    settings: stats.Settings
    divergence: pd.DataFrame
    across: pd.DataFrame
    ranks: dict | None
    test_examples: dict[str, int]
    sources: pd.DataFrame
    tuning: dict = dataclasses.field(default_factory=dict)
    transfer: dict = dataclasses.field(default_factory=dict)
    sections: dict = dataclasses.field(default_factory=dict)

    @property
    def margin(self) -> float:
        return compare.default_margin(self.metric) if self.settings.margin is None else self.settings.margin


def analyse(
    results: pd.DataFrame,
    metric: str | None = None,
    baseline: str | None = None,
    paired: bool = True,
    settings: stats.Settings = stats.Settings(),
    test_outcomes: dict[str, dict] | None = None,
    reference: dict | None = None,
    on_comparisons: Callable[[Compared], None] | None = None,
    widths: dict[str, tuple[str, int]] | None = None,
) -> Analysis:
    """Computes every statistic of the report.

    ``reference``: the recipe's hyperparameters (``{"lr": 1e-3}``), where a grid's ranking is checked.
    ``widths``: task name -> (family, width) of the tasks that form width series (``transfer.families``), whose
    best learning rates are compared across widths when the runs have a learning-rate grid.
    ``on_comparisons`` is told the comparisons as soon as they exist (the report starts drawing
    the figures that need no more while the rest is computed).

    ``test_outcomes`` (``bench.analysis.outcomes``): per task, every run's per-example test
    outcomes; with them the intervals of test metrics include the test set's own
    sampling error.

    Raises:
      UserError: unknown metric or baseline, or a negative margin.
    """
    metric = metric or stats.default_metric(results)
    check_options(results, metric, baseline, settings, paired)
    metrics = stats.metric_columns(results)
    shown = [m for m in dict.fromkeys([metric, stats.default_metric(results), "test_loss"]) if m in metrics]
    test_outcomes = test_outcomes or {}
    extras: dict[tuple, list] = {}
    for source in (outcomes.arm_variances(results, test_outcomes, shown), crossed.arm_variances(results, shown)):
        for key, part in source.items():
            extras.setdefault(key, []).append(part)
    comparisons = compare.compare(results, metric, baseline, paired, settings, test_outcomes)
    if on_comparisons is not None:
        on_comparisons(Compared(metric, comparisons, paired, settings))
    examples = {task: int(item["correct"].shape[-1]) for task, item in test_outcomes.items()}
    summary = stats.summarize(results, shown, settings, extras, examples)
    return Analysis(
        metric=metric,
        summary=summary,
        comparisons=comparisons,
        curves=stats.summarize_curves(results, summary, metric, settings=settings),
        advice=advice.seeds_advice(results, metric, deltas(metric, settings), paired, settings,
                                   test_outcomes=test_outcomes),
        baseline=baseline,
        paired=paired,
        settings=settings,
        divergence=stats.divergence(results),
        across=aggregate.aggregate(results, metric, settings),
        ranks=aggregate.rank_test(results, metric, seed=settings.seed),
        test_examples=examples,
        sources=crossed.decomposition(results, metric, settings),
        tuning=tuning.analyse(results, metric, settings,
                              compare.default_margin(metric) if settings.margin is None else settings.margin,
                              reference),
        transfer=transfer.analyze(results, widths) if widths and "lr" in results else {},
    )


def check_options(results: pd.DataFrame, metric: str, baseline: str | None, settings: stats.Settings,
                  paired: bool = True) -> None:
    """Raises UserError when the metric or baseline is not in the results, the margin is negative or the
    statistic unknown."""
    metrics = stats.metric_columns(results)
    if metric not in metrics:
        raise UserError(f"unknown metric {metric!r}; the results have {', '.join(metrics)}")
    if baseline is not None and baseline not in set(results["arm"]):
        raise UserError(f"baseline {baseline!r} is not among the initializers {sorted(set(results['arm']))}")
    if settings.margin is not None and not settings.margin >= 0:
        raise UserError(f"{option('margin')} must be >= 0 (in the metric's units, 0.005 = 0.5 pp), "
                        f"got {settings.margin}")
    if settings.statistic not in maxt.STATISTICS or (settings.statistic == "trimmed" and not paired):
        raise UserError(f"{option('statistic')} must be one of {', '.join(maxt.STATISTICS)} (trimmed only for "
                        "paired runs), "
                        f"got {settings.statistic!r}")


def ranked_metric(results: pd.DataFrame, tasks: Mapping[str, TaskRecord] = MappingProxyType({})) -> str:
    """The metric a report ranks unless told: the test loss when every task is a language model (token accuracy
    ignores how much probability the right token got), else ``stats.default_metric``, else (runs trained elsewhere)
    the table's one metric.

    ``tasks``: the record's tasks (``RunRecord.tasks``), or the one task of an early figure."""
    if tasks and all(info.language_model for info in tasks.values()) and "test_loss" in results.columns:
        return "test_loss"
    metric = stats.default_metric(results)
    if metric not in results.columns:  # runs trained elsewhere (bench.experiments.external): the metric read
        return next(iter(stats.metric_columns(results)), metric)
    return metric


def settings_of(record: RunRecord, margin: float | None = None, fixed_test_set: bool | None = None,
                statistic: str | None = None) -> stats.Settings:
    """The statistics settings a run recorded in ``run.json`` (older runs lack some: defaults), with overrides."""
    fields = {f.name for f in dataclasses.fields(stats.Settings)}
    recorded = {k: v for k, v in record.statistics.items() if k in fields}
    overrides = {k: v for k, v in (("margin", margin), ("fixed_test_set", fixed_test_set), ("statistic", statistic))
                 if v is not None}
    return dataclasses.replace(stats.Settings(**recorded), **overrides)


# ---------------------------------------------------------------- what sections read of an analysis


def ranked(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """Summary rows of ``analysis.metric`` for a dataset, best first, with the verdicts."""
    rows = analysis.summary[(analysis.summary["dataset"] == dataset) & (analysis.summary["metric"] == analysis.metric)]
    rows = rows.sort_values("mean", ascending=not stats.higher_is_better(analysis.metric), na_position="last")
    verdict = analysis.comparisons[analysis.comparisons["dataset"] == dataset].set_index("arm")["verdict"]
    return rows.assign(verdict=rows["arm"].map(verdict).fillna("no runs"))


def finished_initializers(analysis: Analysis, dataset: str) -> int:
    """How many initializers of the task have a run that finished without diverging (diverged runs are scored and
    compared, but a task whose runs all diverged has nothing to compare)."""
    rows = analysis.summary
    return int((rows.loc[(rows["dataset"] == dataset) & (rows["metric"] == analysis.metric), "finished"] > 0).sum())


def finished_arms(results: pd.DataFrame, metric: str, dataset: str) -> int:
    """How many initializers of the task have a run whose last epoch did not diverge and has a finite ``metric``:
    :func:`finished_initializers` from the runs, before the comparisons exist."""
    rows = stats.final_epoch(results[results["dataset"] == dataset])
    return int(rows.loc[stats.finished(rows, metric), "arm"].nunique())


def has_finished_runs(analysis: Analysis, dataset: str) -> bool:
    """Whether any run of the task finished without diverging (else there is nothing to compare)."""
    return finished_initializers(analysis, dataset) > 0


def tuning_of(analysis: Analysis, dataset: str):
    """The grid analysis of the task on ``dataset`` (``tuning.TaskTuning``), None without a grid."""
    return next((item for (name, _), item in analysis.tuning.items() if name == dataset), None)


def runs_of(results: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One dataset's rows, indexed from 0 (a figure is the same drawn from the task's table alone)."""
    return results[results["dataset"] == dataset].reset_index(drop=True)
