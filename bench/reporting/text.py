"""How the report writes numbers and words: intervals, p-values, units, the verdicts' legend, LaTeX escapes."""

from __future__ import annotations

import pandas as pd

from bench.analysis import stats


def interval(mean: float, low: float, high: float, digits: int = 3) -> str:
    """``0.912 [0.905, 0.919]``; the mean alone without an interval; ``n/a`` without a mean."""
    if pd.isna(mean):
        return "n/a"
    if pd.isna(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def p_value(p: float) -> str:
    """A p-value to four decimals, ``<0.0001`` below."""
    if pd.isna(p):
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def title(metric: str) -> str:
    """``test accuracy`` of ``test_accuracy``."""
    return metric.replace("_", " ")


def points(metric: str) -> tuple[float, str]:
    """Differences of accuracies are shown in percentage points."""
    return (100.0, " pp") if metric.endswith("accuracy") else (1.0, "")


def signed(value: float, low: float, high: float, scale: float, unit: str, digits: int = 2) -> str:
    """A signed difference with its interval, scaled (``+0.52 pp [-0.10, +1.14]``)."""
    if pd.isna(value):
        return "n/a"
    return f"{scale * value:+.{digits}f}{unit} [{scale * low:+.{digits}f}, {scale * high:+.{digits}f}]"


def rate(value: float) -> str:
    """1,050 or 0.734: three significant digits without scientific notation."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


VERDICT_LEGEND = (
    "best: {direction} mean; equivalent: within {margin} of the best, whichever it is; worse: some initializer is "
    "significantly better; inconclusive: neither, more seeds needed ({level:.0%} simultaneous intervals over all "
    "pairs and step-down max-T tests, so the verdicts hold together)"
)


def legend(metric: str, margin: float, level: float) -> str:
    """The verdicts' legend under the tables: what best, equivalent, worse and inconclusive mean."""
    scale, unit = points(metric)
    return VERDICT_LEGEND.format(direction=best_direction(metric), margin=f"{scale * margin:g}{unit}", level=level)


def best_direction(metric: str) -> str:
    """Which mean is best: ``highest`` (accuracy) or ``lowest`` (a loss)."""
    return "highest" if stats.higher_is_better(metric) else "lowest"


_TEX_ESCAPE = {
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def tex_escape(text: str) -> str:
    """Escapes LaTeX's special characters in a plain string."""
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(text))
