"""The contract of a report section: one module exports a :class:`Section`, and ``bench.reporting.sections.SECTIONS``
lists them in the order the report shows them.

A section says what it renders in each format (markdown, LaTeX, the console) from a :class:`View` of the run, which
figures it owns (:class:`Figure`: when they can be drawn, whether they show anything, which function of
``bench.reporting.figures`` draws them), and optionally a statistic of its own (``compute``), kept in
``Analysis.sections[name]``. Its ``scope`` says whether it is rendered once for the run, once per task, or once
for all tasks together; ``when`` skips it where it has nothing to say (a task whose every run diverged).

Adding a section with a figure is one module exporting ``SECTION`` and one line in ``SECTIONS``
(``CONTRIBUTING.md``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from bench.reporting.analysed import Analysis, Compared
from bench.reporting.record import RunRecord, TaskRecord

Scope = Literal["run", "task", "across"]
Stage = Literal["runs", "compared", "late"]  # figures drawn from the runs alone, once compared, or last
ACROSS = "across-tasks"  # the task name of the figures of every task together


@dataclasses.dataclass(frozen=True)
class Figure:
    """A figure a section owns.

    Attributes:
      kind: its name in the file name (``{task}-{kind}-{metric}.png``).
      stage: ``runs`` (drawn from the runs while the statistics are computed), ``compared`` (once the comparisons
        exist) or ``late`` (once everything is).
      draw: ``(results, analysis, task) -> (function of bench.reporting.figures, its arguments)``; ``analysis`` is
        a :class:`Compared` at the ``runs`` and ``compared`` stages.
      has_content: ``(results, analysis, task) -> bool``: False where it would show nothing (its earlier files
        are then removed).
      shows: ``metric -> the quantity in its file name`` (the ranked metric unless it shows a fixed one).
      inline: the section links it in its own text; else it is linked after the task's sections.
      caption: its LaTeX caption, saying what it shows and what its intervals include; ``{metric}`` and
        ``{level}`` are filled in (``test accuracy``, ``95%``).
    """

    kind: str
    stage: Stage
    draw: Callable[[pd.DataFrame, Any, str], tuple[str, tuple]]
    has_content: Callable[[pd.DataFrame, Any, str], bool] = lambda results, analysis, task: True
    shows: Callable[[str], str] = lambda metric: metric
    inline: bool = False
    caption: str = ""


@dataclasses.dataclass(frozen=True)
class View:
    """What a section renders: the run's record and analysis, for one task (``task`` None for run-level and
    across-task sections), with the figure files linked (kind -> path relative to the report; those linked after
    the task's sections first, then those its sections show inline, which ``inline`` names)."""

    record: RunRecord
    analysis: Analysis
    task: str | None = None
    links: Mapping[str, str] = dataclasses.field(default_factory=dict)
    inline: frozenset[str] = frozenset()
    calibration: Sequence[str] | None = None
    shipped: dict | None = None
    captions: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def info(self) -> TaskRecord:
        """What the trainer measured of this view's task (``RunRecord.tasks[task]``)."""
        return self.record.tasks[self.task]

    def image(self, kind: str) -> list[str]:
        """The markdown image line of the figure ``kind`` if it was drawn, else none."""
        return [image(self.links[kind])] if kind in self.links else []


def image(link: str) -> str:
    """``![stem](figures/stem.png)``."""
    return f"![{Path(link).stem}]({link})"


FIGURES_MACRO = r"\initjaxfigures"  # the figures' folder in report.tex, which a paper may redefine


def figure_environments(view: View) -> list[str]:
    """``report.tex``'s figure environment of each figure of the view (every one drawn, inline ones too): the
    figure by its path without extension (LaTeX picks the PDF where both were written), its caption and a label."""
    from bench.reporting.text import tex_escape, title

    lines = []
    for kind, link in view.links.items():
        stem = link[: -len(Path(link).suffix)].removeprefix("figures/")
        what = view.captions.get(kind, "").format(metric=title(view.analysis.metric),
                                                   level=f"{view.analysis.settings.level:.0%}")
        where = f"{view.task}, {view.info.model}: " if view.task else "All tasks: "
        label = f"fig:initjax-{view.record.name}-{view.task or 'across'}-{kind}-{view.record.run_id()}"
        lines += [r"\begin{figure}[t]", r"\centering",
                  f"\\includegraphics[width=\\linewidth]{{{FIGURES_MACRO} {stem}}}",
                  f"\\caption{{{tex_escape(where + what)}}}",
                  f"\\label{{{tex_escape(label).replace(chr(92) + '_', '-')}}}", r"\end{figure}", ""]
    return lines


def _nothing(view: View) -> list[str]:
    return []


def _always(view: View) -> bool:
    return True


@dataclasses.dataclass(frozen=True)
class Section:
    """One part of the report.

    Attributes:
      name: unique; the key of what ``compute`` returns in ``Analysis.sections``.
      scope: ``run`` (once), ``task`` (once per task) or ``across`` (once, over every task).
      markdown: ``View -> lines`` of ``report.md``.
      latex: ``View -> lines`` of ``report.tex``.
      console: ``View -> a block`` printed after a run (a table; None: nothing).
      console_notes: ``View -> lines`` printed under the verdicts' legend.
      figures: the figures it owns.
      compute: ``(results, analysis, record) -> anything``: a statistic of its own, computed after the shared
        analysis and before rendering.
      when: ``View -> bool``: whether it is rendered for this view.
    """

    name: str
    scope: Scope
    markdown: Callable[[View], list[str]] = _nothing
    latex: Callable[[View], list[str]] = _nothing
    console: Callable[[View], str | None] | None = None
    console_notes: Callable[[View], list[str]] = _nothing
    figures: tuple[Figure, ...] = ()
    compute: Callable[[pd.DataFrame, Analysis, RunRecord], Any] | None = None
    when: Callable[[View], bool] = _always


def figures_of(sections: Sequence[Section], scope: Scope) -> list[Figure]:
    """The figures of the sections of a scope, in the sections' order."""
    return [figure for section in sections if section.scope == scope for figure in section.figures]


__all__ = ["ACROSS", "FIGURES_MACRO", "Analysis", "Compared", "Figure", "Section", "View", "figure_environments",
           "figures_of", "image"]
