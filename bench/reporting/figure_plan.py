"""Which figures a report draws at each stage, and the files its markdown links (the sections' ``Figure``s)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bench.reporting import drawing
from bench.reporting.analysed import Analysis, Compared
from bench.reporting.section import ACROSS, Figure, Section, Stage
from bench.reporting.sections import SECTIONS
from bench.store import path_name


@dataclasses.dataclass
class Plan:
    """Figures of some stages: the jobs to draw them, and the files the markdown links by (task or ACROSS, kind)."""

    jobs: list
    links: dict[tuple[str, str], str]


def _owners(tasks: Sequence[str], sections: Sequence[Section]) -> list[tuple[str, Figure]]:
    """(task or ACROSS, figure) of every figure of the sections, task by task, then across tasks."""
    task_figures = [f for s in sections if s.scope == "task" for f in s.figures]
    across = [f for s in sections if s.scope != "task" for f in s.figures]
    return [(task, f) for task in tasks for f in task_figures] + [(ACROSS, f) for f in across]


def plan(out_dir: Path, results: pd.DataFrame, analysis: Analysis | Compared, tasks: Sequence[str],
         stages: Sequence[Stage], image_formats: tuple[str, ...], previous: Path | None = None,
         dropped: set[str] | None = None, sections: Sequence[Section] = SECTIONS) -> Plan:
    """The figures of ``stages`` to draw (none without an image format) and the files the markdown links: those
    drawn now, or with ``md`` alone, those an earlier render drew (in ``previous``). A figure with nothing to show
    this time has its earlier files removed (they are not of these runs), or listed in ``dropped``."""
    previous = out_dir if previous is None else previous
    suffix = f".{image_formats[0]}" if image_formats else ".png"
    shown = Plan([], {})
    for task, figure in _owners(tasks, sections):
        if figure.stage not in stages:
            continue
        name = path_name(f"{task}-{figure.kind}-{figure.shows(analysis.metric)}")
        stem = out_dir / "figures" / name
        if not figure.has_content(results, analysis, task):  # e.g. every run diverged: nothing to draw
            for fmt in ("png", "pdf"):
                drawing.with_format(stem, fmt).unlink(missing_ok=True)
                if dropped is not None:
                    dropped.add(str(drawing.with_format(Path("figures") / name, fmt)))
            continue
        if image_formats:
            shown.jobs.append(drawing.Job(*figure.draw(results, analysis, task), stem))
        if image_formats or drawing.with_format(previous / "figures" / name, suffix).is_file():
            shown.links[task, figure.kind] = str(drawing.with_format(Path("figures") / name, suffix))
    return shown
