"""A task whose every run diverged: the diverged runs are the result, and there is nothing to compare."""

from __future__ import annotations

from bench.reporting.analysed import has_finished_runs
from bench.reporting.section import Section, View, image


def markdown(view: View) -> list[str]:
    return ["**Every run of this task diverged** (a NaN or inf loss): there is nothing to compare. "
            "The diverged runs are the result; a lower learning rate or smaller initial weights may train.",
            "", *[image(link) for link in view.links.values()]]


SECTION = Section("diverged", "task", markdown=markdown,
                  when=lambda view: not has_finished_runs(view.analysis, view.task))
