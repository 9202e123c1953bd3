"""A language model's losses against the generating process's own (generated data, ``bench.data.sequences``), or
in bits per token where that is unknown."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.reporting.analysed import Analysis
from bench.reporting.record import TaskRecord
from bench.reporting.section import Section, View


def _test_loss_rows(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """The summary rows of a task's final test loss, lowest first."""
    summary = analysis.summary
    return summary[(summary["dataset"] == dataset) & (summary["metric"] == "test_loss")].sort_values("mean")


def optimum_gaps(analysis: Analysis, dataset: str, info: TaskRecord) -> tuple[float | None, pd.DataFrame]:
    """The Bayes-optimal loss of the task's own test examples (generated data, ``bench.data.sequences``; None when
    unknown) and, per initializer, best first, its mean final test loss minus that optimum with the table's CI
    (columns ``arm, gap, gap_low, gap_high``)."""
    optimum = (info.optimal_loss or {}).get("test")
    rows = _test_loss_rows(analysis, dataset)
    if optimum is None or rows.empty:
        return None, pd.DataFrame(columns=["arm", "gap", "gap_low", "gap_high"])
    gaps = pd.DataFrame({"arm": rows["arm"], "gap": rows["mean"] - optimum, "gap_low": rows["mean_low"] - optimum,
                         "gap_high": rows["mean_high"] - optimum})
    return optimum, gaps.reset_index(drop=True)


def markdown(view: View) -> list[str]:
    """The paragraph on :func:`optimum_gaps`; a language model's losses in bits where the optimum is unknown."""
    analysis, dataset, info = view.analysis, view.task, view.info
    optimum, gaps = optimum_gaps(analysis, dataset, info)
    if optimum is None:
        return bits_lines(analysis, dataset) if info.language_model else []
    parts = [f"`{r.arm}` {r.gap:+.4f} [{r.gap_low:+.4f}, {r.gap_high:+.4f}]"
             for r in gaps.itertuples() if pd.notna(r.gap)]
    return [f"Gap to the optimum: the generating process's own loss on these test examples is {optimum:.4f} "
            f"nats/token ({optimum / np.log(2):.4f} bits); each initializer's mean final test loss exceeds it by "
            f"(nats/token, {analysis.settings.level:.0%} CI as in the table): " + "; ".join(parts) + ".", ""]


def bits_lines(analysis: Analysis, dataset: str) -> list[str]:
    """A language model's mean final test loss per initializer in bits per token (per character for text)."""
    rows = _test_loss_rows(analysis, dataset)
    parts = [f"`{r.arm}` {r.mean / np.log(2):.4f} [{r.mean_low / np.log(2):.4f}, {r.mean_high / np.log(2):.4f}]"
             for r in rows.itertuples() if pd.notna(r.mean)]
    if not parts:
        return []
    return ["In bits per token (per character for text; the test loss over ln 2, "
            f"{analysis.settings.level:.0%} CI as in the table): " + "; ".join(parts) + ".", ""]


SECTION = Section("optimum", "task", markdown=markdown)
