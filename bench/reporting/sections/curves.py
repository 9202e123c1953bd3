"""A task's learning curves in numbers: area under the curve, best epoch, epochs to a threshold."""

from __future__ import annotations

import pandas as pd

from bench.analysis import stats
from bench.reporting.analysed import Analysis, has_finished_runs
from bench.reporting.section import Section, View
from bench.reporting.text import interval, title


def curve_table(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """Learning-curve statistics: area under the curve, best epoch, epochs to the threshold."""
    rows = analysis.curves[analysis.curves["dataset"] == dataset]
    rows = rows.sort_values("auc", ascending=not stats.higher_is_better(analysis.metric))
    return pd.DataFrame(
        {
            "initializer": rows["arm"],
            "AUC (mean over epochs) [CI]": [
                interval(a, lo, hi) for a, lo, hi in zip(rows["auc"], rows["auc_low"], rows["auc_high"])
            ],
            "best (mean)": [f"{v:.3f}" for v in rows["best"]],
            "best epoch (median)": [f"{v:g}" for v in rows["best_epoch"]],
            "epochs to threshold (median)": [f"{v:g}" if pd.notna(v) else "never" for v in rows["epochs_to_threshold"]],
            "runs reaching it": [f"{v:.0%}" for v in rows["reached"]],
        }
    )


def markdown(view: View) -> list[str]:
    analysis, dataset = view.analysis, view.task
    threshold = analysis.curves.loc[analysis.curves["dataset"] == dataset, "threshold"].iloc[0]
    return ["### Learning curves", "", curve_table(analysis, dataset).to_markdown(index=False), "",
            f"Threshold: {threshold:.4f} (95% of the best initializer's mean final {title(analysis.metric)}).", ""]


SECTION = Section("curves", "task", markdown=markdown,
                  when=lambda view: view.record.has_curves() and has_finished_runs(view.analysis, view.task))
