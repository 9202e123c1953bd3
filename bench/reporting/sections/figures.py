"""The figures of a task not shown inside a section, linked after its sections (curves, final distribution,
forest plot, wins); in ``report.tex``, a figure environment of every figure of the task."""

from __future__ import annotations

from bench.reporting.analysed import has_finished_runs
from bench.reporting.section import Section, View, figure_environments, image


def markdown(view: View) -> list[str]:
    if not view.links:
        return []
    return ["", *[image(link) for kind, link in view.links.items() if kind not in view.inline]]


SECTION = Section("figures", "task", markdown=markdown, latex=figure_environments,
                  when=lambda view: has_finished_runs(view.analysis, view.task))
