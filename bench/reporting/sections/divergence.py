"""A task's diverged runs: how many of each initializer, from which epoch, and how they are scored."""

from __future__ import annotations

from bench.analysis import scoring
from bench.reporting.section import Section, View


def markdown(view: View) -> list[str]:
    """A paragraph on the runs that diverged (none: no lines)."""
    rows = view.analysis.divergence[view.analysis.divergence["dataset"] == view.task]
    if rows.empty:
        return []
    parts = [f"`{r.arm}` {r.diverged} of {r.runs} (from epoch {r.first_epoch:g}, median {r.median_epoch:g})"
             for r in rows.itertuples()]
    return ["Diverged runs (a NaN or inf loss), counted in the `diverged` column with a Wilson CI: "
            + "; ".join(parts) + f". In every mean, interval, verdict and aggregate {scoring.RULE}, so an "
            "initializer's failures count against it.", ""]


SECTION = Section("divergence", "task", markdown=markdown)
