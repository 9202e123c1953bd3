"""The figures of a task's runs alone, drawn while the statistics are computed: the learning curves (epoch 0 is
drawn even when every run diverged later) and the final values' distribution."""

from __future__ import annotations

from bench.reporting.analysed import finished_arms, runs_of
from bench.reporting.section import Figure, Section


def _curves(results, analysis, task):
    return "learning_curves", (runs_of(results, task), task, analysis.metric, analysis.settings.level)


def _final(results, analysis, task):
    return "final_distribution", (runs_of(results, task), task, analysis.metric)


def _any_finished_epoch(results, analysis, task) -> bool:
    """Whether the task's runs have curves (two epochs or more: runs trained elsewhere may have their final values
    alone) with an epoch that did not diverge."""
    rows = results[results["dataset"] == task]
    return rows["epoch"].nunique() > 1 and bool((~rows["diverged"].astype(bool)).any())


SECTION = Section("runs", "task", figures=(
    Figure("curves", "runs", _curves, _any_finished_epoch, caption=(
        "mean {metric} per epoch (epoch 0: at initialization) with {level} Student t bands over seeds, the test "
        "set held fixed (the tables' intervals also count its sampling error, so they are wider); right: epochs "
        "from 1 of the initializers within 10% of the best.")),
    Figure("final", "runs", _final, lambda results, analysis, task: finished_arms(results, analysis.metric, task) > 0,
           caption=("final {metric}, one dot per seed, best mean first; boxes: quartiles, whiskers: 1.5 IQR, "
                    "black line: median; right: the initializers within 10% of the best.")),
))
