"""Where a task's spread comes from when init seeds were crossed with data orders: init, data order and the rest,
per initializer (``bench.analysis.crossed``)."""

from __future__ import annotations

import pandas as pd

from bench.reporting.section import Section, View
from bench.reporting.text import points


def markdown(view: View) -> list[str]:
    """'Where the spread comes from': init vs data-order vs rest, per initializer (crossed runs only)."""
    analysis, dataset = view.analysis, view.task
    if analysis.sources.empty:
        return []
    rows = analysis.sources[analysis.sources["dataset"] == dataset]
    scale, unit = points(analysis.metric)
    level = f"{analysis.settings.level:.0%}"

    def cell(r, part):
        high = r[f"sd_{part}_high"]
        return (f"{scale * r[f'sd_{part}']:.2f} [{scale * r[f'sd_{part}_low']:.2f}, "
                f"{'n/a' if pd.isna(high) else f'{scale * high:.2f}'}] ({r[f'share_{part}']:.0%})")

    table = pd.DataFrame({
        "initializer": rows["arm"],
        f"init seed sd{unit} [{level} CI] (share)": [cell(r, "init") for _, r in rows.iterrows()],
        f"data order sd{unit} [{level} CI] (share)": [cell(r, "data") for _, r in rows.iterrows()],
        f"interaction + rest sd{unit} [{level} CI] (share)": [cell(r, "rest") for _, r in rows.iterrows()],
    })
    first = rows.iloc[0]
    return [
        f"### Where the spread comes from: {int(first['n_init'])} init seeds x {int(first['n_data'])} data orders",
        "",
        table.to_markdown(index=False),
        "",
        "Two-way random-effects ANOVA of the final runs (one run a cell, so the interaction is not separable from "
        "the rest), on the init seeds with every data order finished; intervals: chi-square for the rest, "
        "Satterthwaite for init and data order (n/a: estimated at 0, or under one degree of freedom: more seeds "
        "needed). Means and comparisons count the "
        "data orders' share (s²_data / K), which more init seeds do not average away.",
        "",
    ]


SECTION = Section("sources", "task", markdown=markdown)
