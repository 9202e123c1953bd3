"""How many seeds this report's procedure needs to call a given difference *worse* with 80% power
(``bench.analysis.advice``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.reporting.analysed import Analysis, has_finished_runs
from bench.reporting.section import Section, View
from bench.reporting.text import points


def advice_sentences(analysis: Analysis, dataset: str) -> list[str]:
    """'For this procedure to call an initializer 0.5 pp worse *worse* with 80% power, N seeds' per difference."""
    rows = analysis.advice[analysis.advice["dataset"] == dataset]
    scale, unit = points(analysis.metric)
    spread = "paired differences" if analysis.paired else "runs, times sqrt 2"
    sources = [name for name, counted in (("the test set's", dataset in analysis.test_examples),
                                          ("the data orders'", not analysis.sources.empty)) if counted]
    what, helps = " and ".join(sources), " or ".join(
        [h for h, counted in (("a larger test set", dataset in analysis.test_examples),
                              ("more data orders", not analysis.sources.empty)) if counted])
    out = []
    for r in rows.itertuples():
        size = f"{scale * r.delta:g}{unit}"
        others = "the other" if r.k == 2 else f"{r.k - 1} others"
        if not np.isfinite(r.sd):
            out.append(f"No advice for a {size} difference: fewer than two initializers whose runs vary.")
            continue
        test = (f"; {what} own standard error of a difference, {scale * r.test_sd:.2g}{unit}, does not shrink "
                f"with seeds: {helps} helps where seeds cannot" if r.test_sd > 0 and sources else "")
        if r.seeds is None or pd.isna(r.seeds):
            out.append(f"To call an initializer {size} worse than {others} *worse* with 80% power, more than "
                       f"{r.max_seeds} seeds per initializer are needed (power at {r.max_seeds}: {r.power:.0%}; "
                       f"median sd of {spread}: {scale * r.sd:.3g}{unit}{test}).")
            continue
        out.append(
            f"To call an initializer {size} worse than {others} *worse* with 80% power, this report's "
            f"procedure needs {int(r.seeds)} seeds per initializer (simulated power there {r.power:.0%}; "
            f"{analysis.settings.level:.0%} simultaneous intervals over the {r.k * (r.k - 1) // 2} pairs; "
            f"median sd of {spread}: {scale * r.sd:.3g}{unit}{test})."
        )
    return out


def markdown(view: View) -> list[str]:
    return ["### How many seeds?", "", *[f"- {sentence}" for sentence in advice_sentences(view.analysis, view.task)]]


SECTION = Section("advice", "task", markdown=markdown, when=lambda view: has_finished_runs(view.analysis, view.task))
