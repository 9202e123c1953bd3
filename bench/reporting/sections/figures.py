"""The figures of a task not shown inside a section, linked after its sections (curves, final distribution,
forest plot, wins)."""

from __future__ import annotations

from bench.reporting.analysed import has_finished_runs
from bench.reporting.section import Section, View, image


def markdown(view: View) -> list[str]:
    if not view.links:
        return []
    return ["", *[image(link) for kind, link in view.links.items() if kind not in view.inline]]


SECTION = Section("figures", "task", markdown=markdown, when=lambda view: has_finished_runs(view.analysis, view.task))
