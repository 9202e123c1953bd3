"""The report's texts rendered section by section (``bench.reporting.sections.SECTIONS``): ``report.md``,
``report.tex`` and the tables printed after a run."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence

from bench.reporting.analysed import Analysis
from bench.reporting.record import RunRecord
from bench.reporting.section import ACROSS, Section, View
from bench.reporting.sections import SECTIONS
from bench.reporting.text import legend


def views(record: RunRecord, analysis: Analysis, sections: Sequence[Section] = SECTIONS,
          links: Mapping[tuple[str, str], str] | None = None, **context) -> Iterator[tuple[Section, View]]:
    """Each section with each view it is rendered for, in the report's order: consecutive task sections for
    each task in turn, skipping a section where its ``when`` says so.

    ``links``: (task or ``ACROSS``, figure kind) -> the figure's file (``figure_plan``); ``context``: the views'
    ``calibration`` and ``shipped``.
    """
    links = links or {}
    inline = frozenset(f.kind for section in sections for f in section.figures if f.inline)
    captions = {f.kind: f.caption for section in sections for f in section.figures}

    def view(task: str | None) -> View:
        kinds = [f.kind for section in sections if section.scope == ("task" if task else "across")
                 for f in sorted(section.figures, key=lambda f: f.inline)]
        own = sorted((kind for kind in kinds if (task or ACROSS, kind) in links), key=lambda kind: kind in inline)
        return View(record, analysis, task, {kind: links[task or ACROSS, kind] for kind in own}, inline,
                    captions=captions, **context)

    for scope, group in itertools.groupby(sections, key=lambda section: section.scope):
        group = list(group)
        for task in (record.tasks if scope == "task" else [None]):
            shown = view(task)
            yield from ((section, shown) for section in group if section.when(shown))


def markdown(record: RunRecord, analysis: Analysis, links: Mapping[tuple[str, str], str] | None = None,
             calibration: Sequence[str] | None = None, shipped: dict | None = None,
             sections: Sequence[Section] = SECTIONS) -> str:
    """``report.md``.

    Args:
      links: the figures drawn (``figure_plan.Plan.links``).
      calibration: lines from ``bench calibrate`` on these runs, if it was run.
      shipped: the preset these runs are of, as shipped (``describe.describe_run``).
    """
    return "\n".join(line for section, view in views(record, analysis, sections, links, calibration=calibration,
                                                      shipped=shipped) for line in section.markdown(view))


def latex(record: RunRecord, analysis: Analysis, sections: Sequence[Section] = SECTIONS,
          links: Mapping[tuple[str, str], str] | None = None) -> str:
    """``report.tex``: one booktabs table per task (and of the transfer across widths) and a figure environment of
    each figure drawn (``links``), ready for ``\\input{}``; needs ``\\usepackage{booktabs}`` and ``graphicx``."""
    return "\n".join(line for section, view in views(record, analysis, sections, links)
                     for line in section.latex(view))


def console(record: RunRecord, analysis: Analysis, sections: Sequence[Section] = SECTIONS) -> str:
    """The tables printed after a run, one per task, the verdicts' legend, then the sections' one-line notes."""
    blocks, notes = [], []
    for section, view in views(record, analysis, sections):
        block = section.console(view) if section.console else None
        blocks += [block] if block else []
        notes += section.console_notes(view)
    blocks.append(f"Verdicts: {legend(analysis.metric, analysis.margin, analysis.settings.level)}.")
    return "\n\n".join(blocks + (["\n".join(notes)] if notes else []))
