"""The report's sections about a hyperparameter grid (``bench.analysis.tuning``): the metric per
initializer and cell, the tuned comparison, the sensitivity along the main factor, and the
plain-language verdict on whether the ranking at the recipe's value holds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import grid_cube, stats
from bench.analysis.tuning import TaskTuning
from bench.reporting.analysed import has_finished_runs, tuning_of
from bench.reporting.section import Figure, Section, View
from bench.training import grid as grids

MARKS = {"best": "**{}**", "equivalent": "{} ≈", "worse": "{} ▼", "inconclusive": "{}", "no runs": "n/a"}


def _sign(metric: str) -> float:
    return 1.0 if stats.higher_is_better(metric) else -1.0


def _cell_name(factors: list[str], cell: tuple) -> str:
    return grids.cell_label(dict(zip(factors, cell)))


def _scale(metric: str) -> tuple[float, str]:
    """Differences of accuracy-like metrics in points (pp), of others as they are."""
    return (100.0, " pp") if metric.rpartition("_")[2] in ("accuracy", "r2") else (1.0, "")


def heatmap_table(item: TaskTuning, metric: str) -> pd.DataFrame:
    """Initializers x cells: the mean test metric (diverged runs scored as untrained networks), marked by its verdict
    among the initializers at that cell."""
    cube, sign = item.cube, _sign(metric)
    means, diverged = grid_cube.cell_means(cube.test, cube.failed)
    means, runs = sign * means, cube.test.shape[0]
    finished = runs - diverged
    columns = {"initializer": cube.initializers}
    for j, cell in enumerate(cube.cells):
        texts = []
        for i in range(len(cube.initializers)):
            if finished[i, j] == 0:
                texts.append(f"diverged {runs}/{runs}")
                continue
            text = MARKS.get(item.cell_verdicts[i, j], "{}").format(f"{means[i, j]:.3f}")
            texts.append(text + (f" ({runs - finished[i, j]}/{runs} diverged)" if finished[i, j] < runs else ""))
        columns[_cell_name(cube.factors, cell)] = texts
    return pd.DataFrame(columns)


def tuned_table(item: TaskTuning, metric: str, level: float) -> pd.DataFrame:
    """Each initializer at its chosen cell: what was chosen, how stably, the tuned mean and verdict."""
    t, cube, sign = item.tuned, item.cube, _sign(metric)
    scale, unit = _scale(metric)
    order = np.argsort(-np.where(np.isfinite(t.means), t.means, -np.inf), kind="stable")
    rows = []
    for i in order:
        low, high = sorted((sign * t.low[i], sign * t.high[i]))
        to_best = ("" if not np.isfinite(t.to_best_low[i]) else
                   f"[{scale * t.to_best_low[i]:+.2f}, {scale * t.to_best_high[i]:+.2f}]{unit}")
        rows.append({
            "initializer": t.names[i],
            "chosen on validation": _cell_name(cube.factors, cube.cells[t.chosen[i]]),
            "chosen in resamples": f"{t.stability[i]:.0%}",
            f"tuned {metric.replace('_', ' ')} [{level:.0%} CI]": (
                f"{sign * t.means[i]:.3f} [{low:.3f}, {high:.3f}]" if np.isfinite(t.means[i]) else "n/a"),
            "verdict": t.verdicts[i],
            "to the best of the others": to_best,
        })
    return pd.DataFrame(rows)


def _value(v: float) -> str:
    return f"{v:.2g}" if np.isfinite(v) else "n/a"


def sensitivity_table(item: TaskTuning, metric: str, level: float) -> pd.DataFrame:
    """Per initializer: the best value with its bootstrap interval, the width within tolerance, the area."""
    s, sign = item.sensitivity, _sign(metric)
    scale, unit = _scale(metric)
    span = "decades" if s.log else s.factor
    rows = []
    for i, name in enumerate(item.cube.initializers):
        area_low, area_high = sorted((sign * s.area_low[i], sign * s.area_high[i]))
        rows.append({
            "initializer": name,
            f"best {s.factor} [{level:.0%} CI]": f"{_value(s.best[i])} [{_value(s.best_low[i])}, "
                                                 f"{_value(s.best_high[i])}]",
            f"width within {scale * s.tolerance:g}{unit} of its best ({span}) [CI]": (
                f"{s.width[i]:.2f} [{s.width_low[i]:.2f}, {s.width_high[i]:.2f}]" if np.isfinite(s.width[i])
                else "n/a"),
            "mean over the range (AUC) [CI]": (f"{sign * s.area[i]:.3f} [{area_low:.3f}, {area_high:.3f}]"
                                               if np.isfinite(s.area[i]) else "n/a"),
        })
    return pd.DataFrame(rows)


def _pair(names, pair) -> str:
    return f"`{names[pair[0]]}` > `{names[pair[1]]}`"


def _pairs(names, pairs, shown: int = 6) -> str:
    return "; ".join(_pair(names, p) for p in pairs[:shown]) + ("; ..." if len(pairs) > shown else "")


def ranking_sentences(item: TaskTuning, metric: str) -> list[str]:
    """The plain-language verdict on the ranking at the reference value, then its evidence."""
    r, t, names = item.ranking, item.tuned, item.cube.initializers
    at = f"{grids.LABELS[r.factor]}={grids.format_value(r.reference)}"
    finite = np.where(np.isfinite(r.means), r.means, -np.inf)
    best_ref = int(np.argmax(finite))
    said = {"holds": "holds", "changes": "changes", "unsettled": "is not settled by these seeds"}[r.verdict]
    head = (f"**The ranking at {at} {said} when each initializer is tuned.** "
            f"At {at} the best is `{names[best_ref]}`; {tuned_best(item)}, and `{names[best_ref]}` is "
            f"*{t.verdicts[best_ref]}* among the tuned initializers.")
    lines = [head]
    if r.reversed:
        lines.append("Significant at " + at + " and significantly reversed when tuned: "
                     + "; ".join(_pair(names, p) for p in r.reversed) + ".")
    if r.lost:
        lines.append(f"Significant at {at}, no longer significant when tuned ({len(r.lost)} pair(s)): "
                     + _pairs(names, r.lost) + ".")
    if r.gained:
        lines.append(f"Significant only when tuned ({len(r.gained)} pair(s)): " + _pairs(names, r.gained) + ".")
    if not (r.reversed or r.lost or r.gained):
        lines.append("Every pair ordered significantly in one comparison is ordered the same way in the other.")
    if np.isfinite(r.tau):
        lines.append(f"Kendall's tau between the orders of the means at {at} and tuned: {r.tau:.2f}.")
    return lines


def grid_markdown(item: TaskTuning, metric: str, settings: stats.Settings, figure: str | None) -> list[str]:
    """The grid sections of one task in ``report.md``."""
    title = metric.replace("_", " ")
    level = settings.level
    factors = ", ".join(item.cube.factors)
    s = item.sensitivity
    lines = [
        f"### Hyperparameter grid: {title} per initializer and {factors}", "",
        heatmap_table(item, metric).to_markdown(index=False), "",
        f"Mean final {title} of each initializer at each cell. Marks compare the initializers at that cell "
        f"({level:.0%} simultaneous max-T intervals, as above): **best**; ≈ equivalent to the best; ▼ worse; "
        "unmarked: inconclusive.", "",
        f"### Tuned comparison: each initializer at its own best {factors}", "",
        tuned_table(item, metric, level).to_markdown(index=False), "",
        "Each initializer's cell is chosen on the validation split (fewest diverged runs, then the best mean) and "
        f"reported on test. The choice is repeated in each of the bootstrap resamples of the seeds, so the "
        f"intervals cover the tuning: {level:.0%} intervals of the tuned means (bias-corrected, bootstrap standard "
        "error with Student t scaling, widened to hold the Bonferroni-t interval of the best cell's mean, which "
        "holds whatever the ties), and simultaneous intervals of all pairwise differences (max-T over the "
        f"resamples, never narrower than the paired max-T at the chosen cells, c = {item.tuned.critical_value:.2f}) "
        "from which the verdicts follow (Hsu's MCB). \"Chosen in resamples\": how often the resamples chose the "
        "same cell.", "",
        f"### Sensitivity to {s.factor}", "",
        sensitivity_table(item, metric, level).to_markdown(index=False), "",
        f"Best {s.factor}: the peak of the parabola through the best grid point and its neighbours "
        f"({'in log10 ' + s.factor if s.log else 'linear'}), with its percentile bootstrap interval over seed "
        f"resamples; width: the range of {s.factor} where the interpolated curve is within the tolerance of its "
        f"best; AUC: the curve's mean over the range{' in log10 ' + s.factor if s.log else ''}."
        + (" Other factors at each value: chosen on validation." if len(item.cube.factors) > 1 else ""), "",
    ]
    if figure:
        lines += [f"![{figure.rsplit('/', 1)[-1].rsplit('.', 1)[0]}]({figure})", ""]
    if item.ranking is not None:
        lines += [f"### Does the ranking at {grids.LABELS[item.ranking.factor]}="
                  f"{grids.format_value(item.ranking.reference)} hold?", "", *ranking_sentences(item, metric), ""]
    return lines


def tuned_best(item: TaskTuning) -> str:
    """``tuned on validation, the best is `he` (at lr=0.01)``."""
    t, names = item.tuned, item.cube.initializers
    best = int(np.argmax(np.where(np.isfinite(t.means), t.means, -np.inf)))
    chosen = _cell_name(item.cube.factors, item.cube.cells[t.chosen[best]])
    return f"tuned on validation, the best is `{names[best]}` (at {chosen})"


UNTUNED = ("The runs vary hyperparameters but have no validation metric to choose each initializer's cell on "
           "(`--validation` names its column for runs trained elsewhere), so no initializer is tuned: each "
           "initializer at each cell is compared above as an arm of its own, and the best of those picked on test "
           "is optimistic.")


def markdown(view: View) -> list[str]:
    item = tuning_of(view.analysis, view.task)
    if item is None:
        return [UNTUNED, ""] if view.record.arms else []
    return grid_markdown(item, view.analysis.metric, view.analysis.settings, view.links.get("sensitivity"))


def console_notes(view: View) -> list[str]:
    """The ranking verdict and the tuned best of the task's grid (none without a grid)."""
    item = tuning_of(view.analysis, view.task)
    if item is None:
        return []
    if item.ranking is None:
        return [f"{view.task}: {tuned_best(item)}"]
    return [f"{view.task}: " + ranking_sentences(item, view.analysis.metric)[0].replace("**", "")]


def _sensitivity(results, analysis, task):
    return "sensitivity", (tuning_of(analysis, task), task, analysis.metric)


SECTION = Section(
    "tuning", "task", markdown=markdown, console_notes=console_notes,
    figures=(Figure("sensitivity", "late", _sensitivity,
                    lambda results, analysis, task: tuning_of(analysis, task) is not None, inline=True, caption=(
                        "final {metric} against the grid's main factor, one line per initializer, with each "
                        "point's {level} Student t interval over seeds; marker and bar: each initializer's "
                        "interpolated best value and its bootstrap interval.")),),
    when=lambda view: has_finished_runs(view.analysis, view.task),
)
