"""Lingle 2025: muP's learning-rate transfer holds for a transformer with non-parametric normalization and 1/d
attention, and breaks with trainable norm gains or the standard 1/sqrt(d) attention scale.

Checked on the runs of ``experiment.toml`` beside this file (``bench.reproductions``), with the report's
learning-rate transfer analysis along width (``bench.analysis.transfer``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analysis import transfer
from bench.experiments import presets
from bench.reproductions.reproduction import BEST_RATE, Finding, best_rates, moved

PAPER = ("Lingle 2025, An empirical study of muP learning rate transfer (first titled A large-scale exploration of "
         "mu-transfer), arXiv:2404.05728")
NEEDS_DIAGNOSIS = False
# the preset's variants (its task labels' prefix) -> what the claims call them, and whether muP transfers there
VARIANTS = {
    "baseline": ("non-parametric LayerNorms and 1/d attention (the paper's baseline)", "stays"),
    "gains": ("trainable LayerNorm gains and biases", "moves"),
    "sqrt-attention": ("the standard 1/sqrt(d) attention scale", "moves"),
}


def transfer_tasks(results: pd.DataFrame) -> dict:
    """Task name -> (variant, width), the variant its label's prefix, from the preset's tasks that are in
    ``results``."""
    tasks = {t.name: (t.name.rsplit("-", 1)[0], int(t.hidden[0])) for t in presets.get("lingle2025").tasks}
    return {name: spec for name, spec in tasks.items() if name in set(results["dataset"])}


def _finding(variant: str, t: transfer.Transfer) -> Finding:
    what, expected = VARIANTS[variant]
    if expected == "stays":
        return Finding(f"Under muP with {what} the best learning rate of Adam stays put as the transformer widens.",
                       f"{BEST_RATE}: {best_rates(t)}; {moved(t)}",
                       "the shift's 95% interval lies within [1/2, 2] (verdict 'stays')",
                       t.shift["verdict"] == "stays")
    return Finding(f"Under muP with {what} the best learning rate of Adam moves as the transformer widens: "
                   "muTransfer breaks.",
                   f"{BEST_RATE}: {best_rates(t)}; {moved(t)}",
                   "the shift's 95% interval excludes 1 (verdict 'moves')",
                   t.shift["verdict"] == "moves")


def evaluate(results: pd.DataFrame, diagnosis) -> list[Finding]:
    found = transfer.analyze(results, transfer_tasks(results), transfer.METRIC)
    return [_finding(variant, found[variant]) for variant in VARIANTS if variant in found]


def figures(results: pd.DataFrame, folder: Path) -> list[Path]:
    from bench.reporting import figures

    found = transfer.analyze(results, transfer_tasks(results), transfer.METRIC)
    return figures.save(figures.transfer(found, transfer.METRIC), folder / "loss-vs-lr", ("png",))
