"""Each initializer against the best (or the baseline): verdict, simultaneous intervals, step-down p-values,
effect sizes and wins; the forest plot of the intervals and the matrix of wins."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import compare
from bench.reporting.analysed import Analysis, finished_arms, has_finished_runs, runs_of
from bench.reporting.section import Figure, Section, View
from bench.reporting.shown import initializers_of, shown
from bench.reporting.text import interval, p_value, points, signed, title

EXPLANATION = (
    "Intervals hold together at {level:.0%} over all pairs (better > 0); "
    "\"to the best of the others\" is the interval of the difference to the best other initializer, "
    "whichever it is. p: step-down max-T adjusted (Westfall & Young). d_z: mean paired difference over its "
    "sd, with the exact noncentral-t CI of this pair alone: unadjusted and over seeds only (no test-set term), "
    "so it can exclude 0 where the simultaneous interval, which the verdict follows, does not. wins: share of "
    "seeds on which it beats the reference (ties half). †: the "
    "paired differences hardly varied over seeds (below the data's resolution), which then stands in for "
    "their spread. ‡: worse by the step-down test, which rejects more than the intervals show (its "
    "interval to the best may still touch 0).")
UNDECIDED = (" §: the claim changes within the Monte Carlo error of the critical value or of p even at {draws:,} "
             "null draws (an interval's end or a p value on its threshold), so it is not made: *inconclusive*, or "
             "for the best not \"better than all\" (Gandy 2009).")


def comparison_table(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """Each initializer against the best (or the baseline): verdict, simultaneous intervals, effect sizes."""
    rows = analysis.comparisons[(analysis.comparisons["dataset"] == dataset) & analysis.comparisons["vs"].notna()]
    scale, unit = points(analysis.metric)
    digits = 2 if unit else 4
    return pd.DataFrame(
        {
            "initializer": rows["arm"],
            "verdict": rows["verdict"] + np.where(rows["significant"], " (better than all)", "")
            + np.where(rows["step_down"].fillna(False).astype(bool), " ‡", "")
            + np.where(rows["undecided"].fillna(False).astype(bool), " §", ""),
            "to the best of the others [sim. CI]": [
                f"[{scale * lo:+.{digits}f}, {scale * hi:+.{digits}f}]{unit}"
                for lo, hi in zip(rows["to_best_low"], rows["to_best_high"])
            ],
            "vs": rows["vs"],
            "n": rows["n"],
            "Δ vs [sim. CI]": [
                signed(d, lo, hi, scale, unit, digits) + (" †" if floored else "")
                for d, lo, hi, floored in zip(rows["diff"], rows["low"], rows["high"], rows["floored"].fillna(False))
            ],
            "p (step-down max-T)": [p_value(p) for p in rows["p"]],
            ("d_z [unadjusted CI]" if analysis.paired else "d_av"): [
                interval(d, lo, hi, 2) for d, lo, hi in zip(rows["d_z"], rows["d_z_low"], rows["d_z_high"])
            ],
            ("wins vs" if analysis.paired else "P(better) vs"): [f"{w:.0%}" for w in rows["win_rate"]],
        }
    )


def markdown(view: View) -> list[str]:
    analysis = view.analysis
    return [f"### Comparisons with the best: {title(analysis.metric)}", "",
            comparison_table(analysis, view.task).to_markdown(index=False), "",
            EXPLANATION.format(level=analysis.settings.level) + _undecided_note(analysis, view.task), ""]


def _undecided_note(analysis: Analysis, task: str) -> str:
    """The § mark's explanation where a verdict of ``task`` was left undecided by the draws; "" elsewhere."""
    rows = analysis.comparisons[analysis.comparisons["dataset"] == task]
    undecided = rows["undecided"].fillna(False).astype(bool)
    return UNDECIDED.format(draws=int(rows.loc[undecided, "draws"].max())) if undecided.any() else ""


def _forest(results, analysis, task):
    return "forest", (analysis.comparisons, task, analysis.settings.level)


def _has_intervals(results, analysis, task) -> bool:
    rows = analysis.comparisons
    return bool(rows.loc[rows["dataset"] == task, "to_best_low"].notna().any())


def _wins(results, analysis, task):
    rows = runs_of(results, task)
    matrix = compare.win_matrix(rows, analysis.metric, task, analysis.paired)
    kept, left_out = shown(list(matrix.mean(axis=1, skipna=True).sort_values(ascending=False, kind="stable").index),
                           initializers_of(rows))
    return "win_matrix", (matrix.loc[kept, kept], task, analysis.metric, analysis.paired, left_out)


SECTION = Section(
    "comparisons", "task", markdown=markdown,
    figures=(Figure("forest", "compared", _forest, _has_intervals, caption=(
                 "each initializer's difference in final {metric} to the best of the others (better > 0) with "
                 "its {level} simultaneous interval, the one of the comparisons table (Hsu's multiple comparisons "
                 "with the best from max-T intervals over all pairs), coloured by its verdict; dashed: the "
                 "equivalence margin; right: the initializers not called worse.")),
             Figure("wins", "runs", _wins,
                    lambda results, analysis, task: finished_arms(results, analysis.metric, task) >= 2, caption=(
                        "share of seeds on which the row initializer's final {metric} beats the column's (ties "
                        "count half), most wins first; descriptive, with no interval."))),
    when=lambda view: has_finished_runs(view.analysis, view.task),
)
