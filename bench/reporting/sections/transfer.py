"""The report's section on learning-rate transfer across widths (``bench.analysis.transfer``): its table in
markdown, LaTeX and on the console.

A run gets the section when its tasks hold a width series under a parameterization (``model_args =
{ parameterization = ..., base_width = ... }`` on tasks that differ only in width) trained over a learning-rate
grid: per family, the best learning rate at each width with its interval, and whether it moves.
"""

from __future__ import annotations

import pandas as pd

from bench.analysis import monte_carlo, transfer
from bench.reporting.section import Figure, Section, View
from bench.reporting.text import tex_escape

EXPLANATION = (
    "Per family of tasks that differ only in width under one parameterization: the best learning rate at each "
    "width, where the seeds' mean final training loss (as Tensor Programs V's Fig. 1 plots it) is lowest between "
    "the grid's points. The grid cannot see the curve's shape there, so three shape models locate it (a parabola "
    "through the best point and its neighbours, a two-sided parabola through five points, a cubic spline; in log2 "
    "lr): the estimate is their median and the 95% interval the union of their expanded percentile bootstrap "
    "intervals over seeds (the same seed resamples for every width). The optimum's shift from the narrowest to "
    "the widest model, as a factor: *stays* when its interval lies within [1/2, 2] (asked first), *moves* when it "
    f"excludes 1, *inconclusive* otherwise. Below {transfer.MIN_SEEDS} seeds the intervals under-cover (measured on "
    "simulated curves) and are not given, nor a verdict; none either when an end width's optimum is an end of the "
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


def _explanation(found: dict[str, transfer.Transfer]) -> str:
    undecided = any(t.shift.get("undecided") for t in found.values())
    return EXPLANATION + (UNDECIDED.format(f"{monte_carlo.EXTENDED}x the") if undecided else "")


def _shift(t: transfer.Transfer) -> str:
    return "x" + _rate(t, (t.shift["estimate"], t.shift["low"], t.shift["high"]))


def table(found: dict[str, transfer.Transfer]) -> pd.DataFrame:
    """One row per (family, width): the best rate with its interval, the loss there, and on each family's widest
    row the shift from its narrowest and the verdict."""
    rows = []
    for name, t in found.items():
        for w in t.widths:
            widest = w == t.widths[-1]
            rows.append({"family": name, "width": w, "task": t.tasks[w],
                         "best lr [95% CI]": _rate(t, t.best[w]),
                         "train loss at the best grid rate": f"{t.best_loss[w]:.4g}",
                         "shift from the narrowest [95% CI]": _shift(t) if widest else "",
                         "verdict": _verdict(t) if widest else ""})
    frame = pd.DataFrame(rows)
    frame.loc[frame["family"].duplicated(), "family"] = ""
    return frame


def transfer_markdown(found: dict[str, transfer.Transfer], figure: str | None) -> list[str]:
    """The section in ``report.md`` (none without a width series)."""
    if not found:
        return []
    lines = ["", "## Learning-rate transfer across widths", "", table(found).to_markdown(index=False), "",
             _explanation(found), ""]
    return lines + ([f"![transfer]({figure})", ""] if figure else [])


def console_lines(found: dict[str, transfer.Transfer]) -> list[str]:
    """One line per family: the best rate at the narrowest and widest width, the shift and the verdict."""
    lines = []
    for name, t in found.items():
        narrow, wide = t.widths[0], t.widths[-1]
        lines.append(f"learning-rate transfer, {name}: best lr {2 ** t.best[narrow][0]:.3g} at width {narrow}, "
                     f"{2 ** t.best[wide][0]:.3g} at width {wide}: a shift {_shift(t)}, {_verdict(t)}")
    return lines


def transfer_latex(found: dict[str, transfer.Transfer], escape, label: str) -> list[str]:
    """A booktabs table of :func:`table` (none without a width series); ``escape`` makes a string LaTeX-safe."""
    if not found:
        return []
    frame = table(found).drop(columns="task")
    rows = [" & ".join(escape(v) for v in row) + r" \\" for row in frame.astype(str).itertuples(index=False)]
    return [
        r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{lrlrll}", r"\toprule",
        " & ".join(escape(c) for c in frame.columns) + r" \\", r"\midrule",
        *rows, r"\bottomrule", r"\end{tabular}", f"\\caption{{Learning-rate transfer across widths. "
        f"{escape(_explanation(found).replace('*', ''))}}}", f"\\label{{{label}}}", r"\end{table}", ""]


def markdown(view: View) -> list[str]:
    return transfer_markdown(view.analysis.transfer, view.links.get("transfer"))


def latex(view: View) -> list[str]:
    label = f"tab:initjax-{view.record.name}-transfer-{view.record.run_id()}".replace("_", "-")
    return transfer_latex(view.analysis.transfer, tex_escape, label)


def console_notes(view: View) -> list[str]:
    return console_lines(view.analysis.transfer)


SECTION = Section(
    "transfer", "across", markdown=markdown, latex=latex, console_notes=console_notes,
    figures=(Figure("transfer", "late", lambda results, analysis, task: ("transfer", (analysis.transfer,
                                                                                      transfer.METRIC)),
                    lambda results, analysis, task: bool(analysis.transfer), lambda metric: transfer.METRIC,
                    inline=True, caption=("each width's mean final training loss over the seeds that finished against "
                                          "the learning rate, one panel per parameterization; on top, each width's "
                                          "best rate with its interval.")),),
)
