"""The report's section on learning-rate transfer across widths (``bench.analysis.transfer``): its table in
markdown, LaTeX and on the console.

A run gets the section when its tasks hold a width series under a parameterization (``model_args =
{ parameterization = ..., base_width = ... }`` on tasks that differ only in width) trained over a learning-rate
grid: per family, the best learning rate at each width with its interval, and whether it moves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pandas as pd

from bench.analysis import monte_carlo, transfer
from bench.reporting.record import RunRecord
from bench.reporting.section import Analysis, Figure, Section, View
from bench.reporting.text import tex_escape


@dataclasses.dataclass(frozen=True)
class Wording:
    """How the section names its axis: ``kind`` (its figure's), ``size`` (the table's column), ``smallest`` and
    ``largest`` (the ends of a series), ``title`` (the section's heading), ``console`` (its console lines' start)."""

    kind: str
    size: str
    smallest: str
    largest: str
    title: str
    console: str


WIDTH = Wording("transfer", "width", "narrowest", "widest", "Learning-rate transfer across widths",
                "learning-rate transfer")

EXPLANATION = (
    "Per family of tasks that differ only in {size} under one parameterization: the best learning rate at each "
    "{size}, where the seeds' mean final training loss (as Tensor Programs V's Fig. 1 plots it) is lowest between "
    "the grid's points. The grid cannot see the curve's shape there, so three shape models locate it (a parabola "
    "through the best point and its neighbours, a two-sided parabola through five points, a cubic spline; in log2 "
    "lr): the estimate is their median and the 95% interval the union of their expanded percentile bootstrap "
    "intervals over seeds (the same seed resamples for every {size}). The optimum's shift from the {smallest} to "
    "the {largest} model, as a factor: *stays* when its interval lies within [1/2, 2] (asked first), *moves* when it "
    f"excludes 1, *inconclusive* otherwise. Below {transfer.MIN_SEEDS} seeds the intervals under-cover (measured on "
    "simulated curves) and are not given, nor a verdict; none either when an end {size}'s optimum is an end of the "
    "grid (it may lie beyond it). A diverged run counts as worse than any finished one.")


def _rate(t: transfer.Transfer, log2_values) -> str:
    """``estimate [low, high]`` as learning rates (or factors); the estimate alone below ``MIN_SEEDS`` seeds,
    where the intervals under-cover."""
    estimate, low, high = (f"{2 ** v:.3g}" for v in log2_values)
    return f"{estimate} [{low}, {high}]" if t.n_seeds >= transfer.MIN_SEEDS else estimate


def _verdict(t: transfer.Transfer) -> str:
    verdict = t.shift["verdict"]
    if verdict == "too few seeds":
        return f"{verdict} ({t.n_seeds} < {transfer.MIN_SEEDS})"
    return verdict + (" (§)" if t.shift.get("undecided") else "")


UNDECIDED = (" (§): the verdict changes within the Monte Carlo error of the interval's percentiles even at {} "
             "resamples, so it is the one of their outer bounds (Gandy 2009).")


def _explanation(found: dict[str, transfer.Transfer], words: Wording = WIDTH) -> str:
    undecided = any(t.shift.get("undecided") for t in found.values())
    explanation = EXPLANATION.format(**dataclasses.asdict(words))
    return explanation + (UNDECIDED.format(f"{monte_carlo.EXTENDED}x the") if undecided else "")


def _shift(t: transfer.Transfer) -> str:
    return "x" + _rate(t, (t.shift["estimate"], t.shift["low"], t.shift["high"]))


def table(found: dict[str, transfer.Transfer], words: Wording = WIDTH) -> pd.DataFrame:
    """One row per (family, size): the best rate with its interval, the loss there, and on each family's largest
    row the shift from its smallest and the verdict."""
    rows = []
    for name, t in found.items():
        for w in t.sizes:
            largest = w == t.sizes[-1]
            rows.append({"family": name, words.size: w, "task": t.tasks[w],
                         "best lr [95% CI]": _rate(t, t.best[w]),
                         "train loss at the best grid rate": f"{t.best_loss[w]:.4g}",
                         f"shift from the {words.smallest} [95% CI]": _shift(t) if largest else "",
                         "verdict": _verdict(t) if largest else ""})
    frame = pd.DataFrame(rows)
    frame.loc[frame["family"].duplicated(), "family"] = ""
    return frame


def transfer_markdown(found: dict[str, transfer.Transfer], figure: str | None, words: Wording = WIDTH) -> list[str]:
    """The section in ``report.md`` (none without a series)."""
    if not found:
        return []
    lines = ["", f"## {words.title}", "", table(found, words).to_markdown(index=False), "",
             _explanation(found, words), ""]
    return lines + ([f"![{words.kind}]({figure})", ""] if figure else [])


def console_lines(found: dict[str, transfer.Transfer], words: Wording = WIDTH) -> list[str]:
    """One line per family: the best rate at the smallest and largest size, the shift and the verdict."""
    lines = []
    for name, t in found.items():
        small, large = t.sizes[0], t.sizes[-1]
        lines.append(f"{words.console}, {name}: best lr {2 ** t.best[small][0]:.3g} at {words.size} "
                     f"{small}, {2 ** t.best[large][0]:.3g} at {words.size} {large}: a shift {_shift(t)}, "
                     f"{_verdict(t)}")
    return lines


def transfer_latex(found: dict[str, transfer.Transfer], escape, label: str, words: Wording = WIDTH) -> list[str]:
    """A booktabs table of :func:`table` (none without a series); ``escape`` makes a string LaTeX-safe."""
    if not found:
        return []
    frame = table(found, words).drop(columns="task")
    rows = [" & ".join(escape(v) for v in row) + r" \\" for row in frame.astype(str).itertuples(index=False)]
    return [
        r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{lrlrll}", r"\toprule",
        " & ".join(escape(c) for c in frame.columns) + r" \\", r"\midrule",
        *rows, r"\bottomrule", r"\end{tabular}", f"\\caption{{{words.title}. "
        f"{escape(_explanation(found, words).replace('*', ''))}}}", f"\\label{{{label}}}", r"\end{table}", ""]


def section(name: str, words: Wording, found: Callable[[Analysis], dict],
            compute: Callable[[pd.DataFrame, Analysis, RunRecord], dict] | None = None) -> Section:
    """The section ``name`` over the series ``found(analysis)`` finds, worded by ``words``, with its figure."""

    def markdown(view: View) -> list[str]:
        return transfer_markdown(found(view.analysis), view.links.get(words.kind), words)

    def latex(view: View) -> list[str]:
        label = f"tab:initjax-{view.record.name}-{words.kind}-{view.record.run_id()}".replace("_", "-")
        return transfer_latex(found(view.analysis), tex_escape, label, words)

    def console_notes(view: View) -> list[str]:
        return console_lines(found(view.analysis), words)

    caption = (f"each {words.size}'s mean final training loss over the seeds that finished against the learning "
               f"rate, one panel per parameterization; on top, each {words.size}'s best rate with its interval.")
    return Section(
        name, "across", markdown=markdown, latex=latex, console_notes=console_notes, compute=compute,
        figures=(Figure(words.kind, "late", lambda results, analysis, task: ("transfer", (found(analysis),
                                                                                          transfer.METRIC)),
                        lambda results, analysis, task: bool(found(analysis)), lambda metric: transfer.METRIC,
                        inline=True, caption=caption),),
    )


SECTION = section("transfer", WIDTH, lambda analysis: analysis.transfer)
