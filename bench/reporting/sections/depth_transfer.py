"""The report's section on learning-rate transfer across depths (``bench.analysis.transfer`` along depth): the
width section's table, verdicts and figure for tasks that differ only in their number of hidden layers or residual
blocks.

A run gets the section when its tasks hold a depth series under a parameterization (``model_args =
{ parameterization = ..., base_depth = ... }`` on tasks with one hidden width that differ only in depth, e.g. a
ResMLP of 2, 4, 8 and 16 blocks under ``depth_mup`` or ``completep``) trained over a learning-rate grid.
"""

from __future__ import annotations

import pandas as pd

from bench.analysis import transfer as analysis
from bench.reporting.record import RunRecord
from bench.reporting.section import Analysis
from bench.reporting.sections import transfer

DEPTH = transfer.Wording("depth-transfer", "depth", "shallowest", "deepest", "Learning-rate transfer across depths",
                         "learning-rate transfer over depth")


def compute(results: pd.DataFrame, analysed: Analysis, record: RunRecord) -> dict[str, analysis.Transfer]:
    """Per depth family (and setting), the best learning rate at each depth and whether it moves; empty without a
    depth series or a learning-rate grid."""
    depths = analysis.families(record.experiment.get("tasks", []), axis="depth")
    return analysis.analyze(results, depths, axis="depth") if depths and "lr" in results else {}


def found(analysed: Analysis) -> dict[str, analysis.Transfer]:
    """What :func:`compute` found (nothing where the analysis was made without the sections' statistics)."""
    return analysed.sections.get("depth_transfer", {})


SECTION = transfer.section("depth_transfer", DEPTH, found, compute)
