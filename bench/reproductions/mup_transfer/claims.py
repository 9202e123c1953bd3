"""Tensor Programs V (Yang et al. 2021): under muP the best learning rate stays put as the model widens.

Checked on the runs of ``experiment.toml`` beside this file (``bench.reproductions``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analysis import transfer
from bench.experiments import presets
from bench.reproductions.reproduction import BEST_RATE, Finding, best_rates, moved

PAPER = (
    "Yang et al. 2021, Tensor Programs V: tuning large neural networks via zero-shot hyperparameter "
    "transfer, NeurIPS (arXiv:2203.03466)"
)
NEEDS_DIAGNOSIS = False
MODELS = {"mlp": "MLP", "transformer": "transformer"}  # the preset's model kinds, as the claims name them


def transfer_tasks(results: pd.DataFrame) -> dict:
    """Task name -> (family, width), the family ``"<model> <parameterization>"``, from the preset's tasks that are in
    ``results``."""
    tasks = {t.name: (f"{MODELS[t.model]} {t.model_args['parameterization']}", int(t.hidden[0]))
             for t in presets.get("mup-transfer").tasks}
    return {name: spec for name, spec in tasks.items() if name in set(results["dataset"])}


def _transfer_findings(model: str, sp: transfer.Transfer, mup: transfer.Transfer) -> list[Finding]:
    """The three claims of Fig. 1 for one model: SP's optimum moves, muP's stays, and under muP wider is better."""
    losses = [mup.best_loss[w] for w in mup.sizes]
    return [
        Finding(
            f"Fig. 1 (left): under the standard parameterization the best learning rate of Adam shifts as the "
            f"{model} widens.",
            f"{BEST_RATE}: {best_rates(sp)}; {moved(sp)}",
            "the shift's 95% interval excludes 1 (verdict 'moves')",
            sp.shift["verdict"] == "moves",
        ),
        Finding(
            f"Fig. 1 (right): under muP the best learning rate stays put as the {model} widens.",
            f"{best_rates(mup)}; {moved(mup)}",
            "the shift's 95% interval lies within [1/2, 2] (verdict 'stays')",
            mup.shift["verdict"] == "stays",
        ),
        Finding(
            f"Fig. 1 (right): under muP wider is better: at its best learning rate a wider {model} reaches a lower "
            "training loss.",
            "mean final training loss at the best grid rate: " + ", ".join(
                f"width {w}: {mup.best_loss[w]:.4g}" for w in mup.sizes),
            "it decreases with every step in width",
            bool(all(b < a for a, b in zip(losses, losses[1:]))),
        ),
    ]


def evaluate(results: pd.DataFrame, diagnosis) -> list[Finding]:
    found = transfer.analyze(results, transfer_tasks(results), transfer.METRIC)
    return [finding for model in MODELS.values() if f"{model} sp" in found
            for finding in _transfer_findings(model, found[f"{model} sp"], found[f"{model} mup"])]


def figures(results: pd.DataFrame, folder: Path) -> list[Path]:
    tasks = transfer_tasks(results)
    from bench.reporting import figures

    found = transfer.analyze(results, tasks, transfer.METRIC)
    return figures.save(figures.transfer(found, transfer.METRIC), folder / "loss-vs-lr", ("png",))
