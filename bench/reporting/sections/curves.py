"""A task's learning curves in numbers: the best value of any epoch and when it comes (speed: ``sections/speed.py``)."""

from __future__ import annotations

import pandas as pd

from bench.analysis import stats
from bench.reporting.analysed import Analysis, has_finished_runs
from bench.reporting.section import Section, View
from bench.reporting.text import title


def curve_table(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """Each initializer's mean over seeds of each run's best value and the median epoch it comes; how fast it gets to
    a target and its area under the curve, with intervals and verdicts, are the speed section's."""
    rows = analysis.curves[analysis.curves["dataset"] == dataset]
    rows = rows.sort_values("best", ascending=not stats.higher_is_better(analysis.metric))
    return pd.DataFrame(
        {
            "initializer": rows["arm"],
            "best (mean)": [f"{v:.3f}" for v in rows["best"]],
            "best epoch (median)": [f"{v:g}" for v in rows["best_epoch"]],
        }
    )


def markdown(view: View) -> list[str]:
    analysis, dataset = view.analysis, view.task
    return ["### Learning curves", "", curve_table(analysis, dataset).to_markdown(index=False), "",
            f"Best: the mean over seeds of each run's best {title(analysis.metric)} of any epoch (lowest for a "
            "loss); its epoch: the median over seeds of each run's best epoch. How fast each gets to a target, and "
            "the area under its curve: the speed section below.", ""]


SECTION = Section("curves", "task", markdown=markdown,
                  when=lambda view: view.record.has_curves() and has_finished_runs(view.analysis, view.task))
