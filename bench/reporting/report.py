"""A report written: the statistics computed, the figures drawn while they are, and the files written atomically.

A report is rendered from two files only, ``results.csv`` (the tidy runs) and ``run.json`` (the run record,
``record.RunRecord``), so ``python -m bench report DIR`` can re-render it with other options without training
anything. The parts live apart: ``record`` (the run record), ``files`` (reading, checking, writing),
``analysed`` (the statistics), ``sections`` (what the report shows, one module each), ``render`` (markdown,
LaTeX, console), ``figure_plan`` (which figures are drawn when).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bench.analysis import calibrate, stats, transfer
from bench.errors import UserError, option
from bench.reporting import FORMATS, check_formats, drawing, figure_plan, image_formats, render
from bench.reporting.analysed import Analysis, Compared, analyse, check_options, ranked_metric, settings_of
from bench.reporting.files import write_record, write_results
from bench.reporting.record import RunRecord, TaskRecord
from bench.reporting.section import Section, Stage
from bench.reporting.sections import SECTIONS
from bench.store import write_atomic
from bench.training import memory


def write(
    out_dir: str | Path,
    results: pd.DataFrame,
    record: RunRecord,
    formats: Sequence[str] = FORMATS,
    metric: str | None = None,
    baseline: str | None = None,
    paired: bool = True,
    margin: float | None = None,
    test_outcomes: dict[str, dict] | None = None,
    fixed_test_set: bool | None = None,
    early: Sequence[drawing.Drawing] = (),
    statistic: str | None = None,
    previous: str | Path | None = None,
    dropped: set[str] | None = None,
    measure_peak: bool = False,
    shipped: dict | None = None,
    sections: Sequence[Section] = SECTIONS,
) -> tuple[Analysis, list[Path]]:
    """Writes the report files into ``out_dir``, each atomically.

    ``previous``: where the report this one replaces is (``out_dir`` itself, or, where ``out_dir`` is a staged copy
    that replaces it as a whole, ``bench.store.staged``, the folder it replaces): its calibration is read there,
    and the figures a markdown-only render links; ``dropped`` (with a staged copy) collects the figures of that
    folder that must not be carried over (nothing to show this time). ``measure_peak``: the run that trained these
    results writes them, so the record's peak memory is taken again once the statistics and figures are done (the
    report's own peak was left out: 642 MiB recorded against 902 MiB measured on a 2,048-run study).
    ``shipped``: the record of the preset these runs are of, as shipped, that the report's first line compares
    them with (``describe.describe_run``). ``sections``: what the report shows, in order
    (``bench.reporting.sections.SECTIONS``).

    ``run.json`` and ``results.csv`` (floats in full precision, so a re-rendered
    report is identical; plus ``results.parquet`` when pyarrow is installed) with ``csv``; ``report.md`` with ``md``;
    ``report.tex`` with ``tex``; figures under ``figures/`` with ``png``/``pdf``.
    ``test_outcomes``: per-example test outcomes for the statistics (``outcomes.npz`` is
    the runner's to write, this only reads them). ``early``: figures begun before (:func:`draw_early`); those
    this report draws alike are not drawn again.

    Raises:
      UserError: unknown format, metric or baseline.
    """
    check_formats(formats)
    out_dir = Path(out_dir)
    settings = settings_of(record, margin, fixed_test_set, statistic)
    metric = metric or ranked_metric(results, record.tasks)
    check_options(results, metric, baseline, settings, paired)  # before any figure is drawn
    images = _figure_folder(out_dir, formats)
    started = []  # (figures, their drawing): of the runs alone, drawn while the statistics are computed, then of
    # the comparisons, then of the rest

    previous = Path(previous) if previous is not None else out_dir

    def draw(analysed: Compared | Analysis, stage: Stage) -> None:
        shown = figure_plan.plan(out_dir, results, analysed, list(record.tasks), (stage,), images, previous,
                                 dropped, sections)
        started.append((shown, drawing.draw(shown.jobs, images, started=early if stage == "runs" else ())))

    draw(Compared(metric, None, paired, settings), "runs")
    analysis = analyse(results, metric, baseline, paired, settings,
                       None if settings.fixed_test_set else test_outcomes, record.reference(),
                       lambda compared: draw(compared, "compared"),
                       transfer.families(record.experiment.get("tasks", [])))
    analysis.sections.update({s.name: s.compute(results, analysis, record) for s in sections if s.compute})
    files = []
    if "csv" in formats:
        record, written = write_results(out_dir, results, record)
        files += written
    draw(analysis, "late")
    drawn = [being_drawn for _, being_drawn in started]
    figure_files = [path for being_drawn in drawn for path in being_drawn.paths()]  # saved before the peak is read
    if measure_peak:
        record = record.replace(peak_rss_bytes=max(record.peak_rss_bytes or 0, memory.peak_rss_bytes()))
    if "csv" in formats:
        files.append(write_record(out_dir, record))
    links = {key: link for shown, _ in started for key, link in shown.links.items()}
    calibration = out_dir if (out_dir / "calibration.json").is_file() else previous
    files += figure_files  # the text is written once the figures it links are
    files += [write_atomic(out_dir / name, text) for name, text in
              _texts(formats, results, record, analysis, links, calibration, shipped, sections).items()]
    return analysis, files


def _figure_folder(out_dir: Path, formats: Sequence[str]) -> tuple[str, ...]:
    """The image formats asked for, once ``out_dir/figures`` exists (the figure workers warming up meanwhile)."""
    images = image_formats(formats)
    if images:
        drawing.warm()  # the workers import matplotlib while the statistics are computed
        try:
            (out_dir / "figures").mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"cannot write figures to {out_dir / 'figures'}: {error.strerror}; "
                            f"choose another folder or {option('format', 'md,csv')}") from None
    return images


def _texts(formats, results, record, analysis, links, calibration: Path, shipped, sections) -> dict[str, str]:
    """File name -> text of the report's text files (``report.tex``, ``report.md``); ``calibration``: the folder
    whose ``calibration.json`` the markdown's calibration line reads."""
    texts = {}
    if "tex" in formats:
        texts["report.tex"] = render.latex(record, analysis, sections, links)
    if "md" in formats:
        lines = calibrate.summary_lines(calibration, results, analysis)
        texts["report.md"] = render.markdown(record, analysis, links, lines, shipped, sections)
    return texts


def draw_early(out_dir: str | Path, task_results: pd.DataFrame, task: str, task_info: TaskRecord,
               settings: stats.Settings, formats: Sequence[str] = FORMATS) -> drawing.Drawing | None:
    """Starts drawing the figures of a finished task's runs alone (curves, final distributions, win matrix) in the
    figure workers, while the next tasks train; :func:`write` takes them as ``early`` and draws again only those
    that differ from its own (another ranked metric once every task is in, say). None where figures are drawn in
    this process (that would hold up the training) or the folder cannot be written (:func:`write` says so).

    ``task_results``: the task's rows as the full table will hold them; ``task_info``: its entry of
    ``RunRecord.tasks``.
    """
    if drawing.default_workers() == 0:
        return None
    out_dir = Path(out_dir)
    try:
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    images = image_formats(formats)
    compared = Compared(ranked_metric(task_results, {task: task_info}), None, True, settings)
    shown = figure_plan.plan(out_dir, task_results, compared, [task], ("runs",), images)
    return drawing.draw(shown.jobs, images)
