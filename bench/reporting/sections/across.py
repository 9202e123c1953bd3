"""Across tasks: each initializer's final metric normalized per task and pooled (IQM, mean, optimality gap with
stratified bootstrap intervals), the rank test over tasks, the performance profile and the critical-difference
diagram (none with one task)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import aggregate
from bench.reporting.section import Figure, Section, View, figure_environments
from bench.reporting.shown import initializers_of, shown
from bench.reporting.text import interval, p_value, title


def markdown(view: View) -> list[str]:
    """Aggregates of normalized scores and the rank test, with their figures (none with one task)."""
    analysis = view.analysis
    if analysis.across.empty:
        return []
    level = f"{analysis.settings.level:.0%}"
    rows = analysis.across
    table = pd.DataFrame({
        "initializer": rows["arm"],
        f"IQM [{level} CI]": [interval(*r) for r in rows[["iqm", "iqm_low", "iqm_high"]].to_numpy()],
        f"mean [{level} CI]": [interval(*r) for r in rows[["mean", "mean_low", "mean_high"]].to_numpy()],
        f"optimality gap [{level} CI]": [interval(*r) for r in rows[["gap", "gap_low", "gap_high"]].to_numpy()],
    })
    lines = ["", f"## Across tasks ({int(rows['tasks'].iloc[0])})", "",
             f"Final {title(analysis.metric)} normalized per task (0 = untrained networks' mean, 1 = the task's best "
             f"initializer mean), pooled over tasks and seeds; {level} stratified bootstrap intervals (seeds resampled "
             "within each task; Agarwal et al. 2021). Optimality gap: mean shortfall below 1.", "",
             table.to_markdown(index=False), ""]
    if analysis.ranks:
        r = analysis.ranks
        ranked = sorted(zip(r["mean_rank"], r["names"]))
        lines += [f"Mean rank over {r['tasks']} tasks (1 = best): "
                  + ", ".join(f"`{n}` {m:.2f}" for m, n in ranked)
                  + f". Friedman statistic {r['statistic']:.2f}, {'exact' if r['exact'] else 'permutation'} "
                  f"p = {p_value(r['p'])}; " + (
                      f"critical difference {r['cd']:.2f} (the exact null distribution of the mean ranks' range, "
                      "as Nemenyi's test uses its asymptotic one; Demšar 2006): mean ranks at least that far apart "
                      "differ at 5%." if r["cd"] is not None else
                      f"with {r['tasks']} tasks no two mean ranks can be far enough apart to differ at 5%, so no "
                      "critical difference is claimed."), ""]
    lines += [*view.image("profile"), *view.image("ranks")]
    return lines


def _profile(results, analysis, task):
    """The profile of the initializers :func:`bench.reporting.shown.shown` keeps, ranked by the area under their
    profile (their mean normalized score, capped below at 0)."""
    profile = aggregate.performance_profile(results, analysis.metric)
    area = pd.Series(np.trapezoid(profile.to_numpy(), profile.index.to_numpy(), axis=0), index=profile.columns)
    kept, left_out = shown(list(area.sort_values(ascending=False, kind="stable").index), initializers_of(results))
    return "performance_profile", (profile, analysis.metric, kept, left_out)


SECTION = Section("across", "across", markdown=markdown, latex=figure_environments, figures=(
    Figure("profile", "late", _profile,
           lambda results, analysis, task: not analysis.across.empty, caption=(
               "performance profile: the share of runs, over tasks and seeds, whose final {metric} normalized "
               "per task (0: untrained, 1: the task's best mean) exceeds each threshold (Agarwal et al. 2021); "
               "descriptive, with no interval.")),
    Figure("ranks", "late", lambda results, analysis, task: ("critical_difference", (analysis.ranks,)),
           lambda results, analysis, task: analysis.ranks is not None, caption=(
               "mean rank of each initializer's mean final {metric} over tasks (1: best) with the critical "
               "difference of the exact Friedman-Nemenyi procedure at 5%: mean ranks at least that far apart "
               "differ.")),
))
