"""Depth-muP and CompleteP: with residual branches scaled by the depth, the best learning rate stays put as blocks
are added; under muP alone it moves.

Checked on the runs of ``experiment.toml`` beside this file (``bench.reproductions``), with the report's
learning-rate transfer analysis along depth (``bench.analysis.transfer``, ``axis="depth"``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analysis import transfer
from bench.experiments import presets
from bench.reproductions.reproduction import BEST_RATE, Finding, best_rates, moved

PAPER = (
    "Bordelon et al. 2024, Depthwise hyperparameter transfer in residual networks: dynamics and scaling limit, "
    "ICLR (arXiv:2309.16620); Yang et al. 2024, Tensor Programs VI: feature learning in infinite-depth neural "
    "networks, ICLR (arXiv:2310.02244); Dey et al. 2025, Don't be lazy: CompleteP enables compute-efficient deep "
    "transformers, NeurIPS (arXiv:2505.01618)"
)
NEEDS_DIAGNOSIS = False
MODELS = {"resmlp": "ResMLP", "transformer": "transformer"}  # the preset's model kinds, as the claims name them
RULES = {"depth_mup": ("Depth-muP (branches x L^-1/2)", "Bordelon et al. 2024, Fig. 1"),
         "completep": ("CompleteP (branches x L^-1)", "Dey et al. 2025, Fig. 1, left")}


def transfer_tasks(results: pd.DataFrame) -> dict:
    """Task name -> (family, depth), the family ``"<model> <parameterization>"``, from the preset's tasks that are in
    ``results``."""
    tasks = {t.name: (f"{MODELS[t.model]} {t.model_args['parameterization']}", len(t.hidden))
             for t in presets.get("depth-transfer").tasks}
    return {name: spec for name, spec in tasks.items() if name in set(results["dataset"])}


def _findings(model: str, found: dict[str, transfer.Transfer]) -> list[Finding]:
    """muP's optimum moves to smaller rates as the ``model`` deepens; under each depth rule it stays."""
    mup = found[f"{model} mup"]
    findings = [Finding(
        f"Without a depth rule (muP alone, its branches unscaled) the best learning rate of Adam falls as the {model} "
        "deepens (Bordelon et al. 2024, Fig. 1; Dey et al. 2025, Fig. 1, left).",
        f"{BEST_RATE}: {best_rates(mup)}; {moved(mup)}",
        "the shift's 95% interval lies below 1 (verdict 'moves', to a smaller rate)",
        mup.shift["verdict"] == "moves" and mup.shift["high"] < 0,
    )]
    for rule, (name, where) in RULES.items():
        t = found[f"{model} {rule}"]
        findings.append(Finding(
            f"Under {name} the best learning rate stays put as the {model} deepens ({where}).",
            f"{best_rates(t)}; {moved(t)}",
            "the shift's 95% interval lies within [1/2, 2] (verdict 'stays')",
            t.shift["verdict"] == "stays",
        ))
    return findings


def evaluate(results: pd.DataFrame, diagnosis) -> list[Finding]:
    found = transfer.analyze(results, transfer_tasks(results), transfer.METRIC, axis="depth")
    return [finding for model in MODELS.values() if f"{model} mup" in found
            for finding in _findings(model, found)]


def figures(results: pd.DataFrame, folder: Path) -> list[Path]:
    from bench.reporting import figures

    found = transfer.analyze(results, transfer_tasks(results), transfer.METRIC, axis="depth")
    return figures.save(figures.transfer(found, transfer.METRIC), folder / "loss-vs-lr", ("png",))
