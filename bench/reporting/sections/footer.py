"""The report's last line: where the raw runs are."""

from __future__ import annotations

from bench.reporting.section import Section, View


def markdown(view: View) -> list[str]:
    return ["", "Raw runs, one row per (dataset, model, arm, seed, epoch): [results.csv](results.csv).", ""]


SECTION = Section("footer", "run", markdown=markdown)
