"""A paper reproduction: its claims checked with confidence intervals on the runs of its experiment.

A reproduction runs its experiment (``experiment.toml`` in its folder, a preset like any other: resumable, so an
interrupted reproduction continues), measures initialization diagnostics where the claim is about signal
propagation (``bench.studies.diagnose``), then evaluates each claim of the paper on the measured runs: the claim,
our numbers with 95% Student t CIs over seeds, the criterion, and whether it held. ``<out>/reproduction.md`` holds
the verdicts next to the usual ``report.md``.

Our set-ups are smaller than the papers' (2 CPU cores): each experiment's description says how; a claim that does
not hold here may still hold at the paper's scale, and the report says so rather than tuning until it holds.

The measures the claims share are here: :func:`ci`, :func:`times`, :func:`final`, :func:`epochs_to`,
:func:`time_to` (the report's time-to-target verdicts), :func:`ratio`, and for learning-rate transfer
:func:`best_rates` and :func:`moved`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import scoring, speed, stats, transfer
from bench.experiments import experiment_file, presets
from bench.store import write_atomic
from bench.studies import diagnose


@dataclasses.dataclass(frozen=True)
class Finding:
    """One claim checked: what the paper says, what we measured, the criterion, the verdict."""

    claim: str
    measured: str
    criterion: str
    held: bool


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """A paper, its preset, and how its claims are checked.

    Attributes:
      name: its folder's name, and the name of the experiment it runs (``experiment.toml`` there).
      paper: citation.
      needs_diagnosis: run ``bench.studies.diagnose`` (signal propagation at init) first.
      evaluate: ``evaluate(results, diagnosis) -> [Finding, ...]``.
      notes: what differs from the paper and what it means for the verdicts.
      figures: ``figures(results, folder) -> [path, ...]``, the reproduction's own figures.
      experiment: its ``experiment.toml`` (None: the preset of its name).
    """

    name: str
    paper: str
    needs_diagnosis: bool
    evaluate: Callable[[pd.DataFrame, diagnose.Diagnosis | None], list[Finding]]
    notes: str = ""
    figures: Callable[[pd.DataFrame, Path], list[Path]] | None = None
    experiment: Path | None = None


def ci(values) -> str:
    """``mean [low, high]`` with a 95% Student t CI.

    The report's per-initializer interval; BCa under-covers at 8 seeds."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return "n/a (no finite value)"
    if len(values) < 3 or np.ptp(values) == 0:
        return f"{values.mean():.4g} (n={len(values)})"
    low, high = stats.t_interval(values)
    return f"{values.mean():.4g} [{low:.4g}, {high:.4g}]"


def time_text(values) -> str:
    """Epochs to a threshold: the CI over the runs that reached it, and how many never did."""
    values = np.asarray(values, np.float64)
    never = int(np.isinf(values).sum())
    if never == len(values):
        return f"never within the epochs ({never} of {never} runs)"
    return ci(values[np.isfinite(values)]) + (f", {never} of {len(values)} runs never" if never else "")


def final_values(results: pd.DataFrame, task: str, init: str, metric: str) -> np.ndarray:
    final = stats.final_epoch(results)
    rows = final[(final["dataset"] == task) & (final["arm"] == init) & ~final["diverged"].astype(bool)]
    return rows.sort_values("seed")[metric].to_numpy(np.float64)


def epochs_to(results: pd.DataFrame, task: str, init: str, metric: str, threshold: float) -> np.ndarray:
    """Per seed, the first epoch at or past ``threshold`` (inf where never; diverged runs count as never)."""
    rows = results[(results["dataset"] == task) & (results["arm"] == init)]
    up = stats.higher_is_better(metric)
    out = []
    for _, run in rows.groupby("seed", sort=True):
        run = run.sort_values("epoch")
        ok = ~run["diverged"].astype(bool) & ((run[metric] >= threshold) if up else (run[metric] <= threshold))
        out.append(float(run["epoch"][ok].iloc[0]) if ok.any() else np.inf)
    return np.asarray(out)


def time_to(results: pd.DataFrame, task: str, metric: str, level: float) -> speed.TaskSpeed | None:
    """The report's time-to-target analysis of one task at a given level (``bench.analysis.speed``: each run censored
    at the end of training where it never gets there, restricted mean times compared by simultaneous intervals,
    paired by seed, at the report's default settings)."""
    rows = results[results["dataset"] == task]
    return speed.task_speed(rows, metric, level, scoring.diverged_score(rows, metric), stats.Settings())


def ratio(diagnosis: diagnose.Diagnosis, init: str, column: str, top: int, bottom: int) -> np.ndarray:
    """Per seed, ``column`` at layer ``top`` over ``column`` at layer ``bottom`` (depths counted from 1)."""
    layers = diagnosis.layers[diagnosis.layers["arm"] == init].pivot(index="seed", columns="depth",
                                                                             values=column)
    return (layers[top] / layers[bottom]).to_numpy(np.float64)


BEST_RATE = ("best learning rate (argmin of the mean final training loss located by three shape models, their median; "
             "the union of their expanded percentile bootstrap intervals over seeds)")  # what best_rates gives


def best_rates(t: transfer.Transfer) -> str:
    """A series' best learning rate at each width (or depth) with its interval (``bench.analysis.transfer``)."""
    return ", ".join(f"{t.axis} {w}: {2 ** t.best[w][0]:.3g} [{2 ** t.best[w][1]:.3g}, {2 ** t.best[w][2]:.3g}]"
                     for w in t.sizes)


UNDECIDED = ("§: the verdict changes within the Monte Carlo error of the bootstrap's percentiles, so it is the one of "
             "their outer bounds, as the report's § says")


def moved(t: transfer.Transfer) -> str:
    """How far a series' optimum moves from its smallest size to its largest, with its interval and verdict (marked
    § where the resamples cannot settle it: ``transfer.shift``'s ``undecided``, the interval as printed may then lie
    on the other side of a verdict's line)."""
    s = t.shift
    verdict = f"{s['verdict']} {UNDECIDED}" if s.get("undecided") else s["verdict"]
    return (f"from {t.axis} {t.sizes[0]} to {t.sizes[-1]} it moves by a factor {2 ** s['estimate']:.3g} "
            f"[{2 ** s['low']:.3g}, {2 ** s['high']:.3g}] ({verdict})")


def render(reproduction: Reproduction, experiment: presets.Experiment, findings: list[Finding], command: str) -> str:
    """``reproduction.md``: the paper, our set-up, then each claim with its verdict."""
    held = sum(f.held for f in findings)
    lines = [f"# Reproduction: {reproduction.paper}", "", f"Set-up: {experiment.description}", "",
             f"Command: `{command}`. Full statistics of the runs: [report.md](report.md)"
             + (", signal propagation at init: [diagnostics/diagnostics.md](diagnostics/diagnostics.md)"
                if reproduction.needs_diagnosis else "") + ".", "",
             f"**{held} of {len(findings)} claims held here.**", ""]
    for n, f in enumerate(findings, 1):
        lines += [f"## Claim {n}: {'held' if f.held else 'did not hold'}", "", f"- Paper: {f.claim}",
                  f"- Measured (mean [95% Student t CI] over seeds): {f.measured}.", f"- Criterion: {f.criterion}.",
                  ""]
    if reproduction.notes:
        lines += ["## Notes", "", reproduction.notes, ""]
    return "\n".join(lines)


def reproduce(reproduction: Reproduction, out: str | Path, run: Callable, command: str, data_dir=None,
              smoke: bool = False) -> tuple[list[Finding], list[Path]]:
    """Runs (or resumes) the reproduction's experiment with ``run(experiment, out)``, diagnoses if needed, writes
    ``reproduction.md``."""
    experiment = (presets.get(reproduction.name) if reproduction.experiment is None
                  else experiment_file.load(reproduction.experiment))
    if smoke:
        experiment = presets.smoke(experiment)
    outcome = run(experiment, out)
    diagnosis = None
    files = list(outcome.files)
    if reproduction.needs_diagnosis:
        diagnosis = diagnose.diagnose(experiment, seeds=experiment.seeds, data_dir=data_dir)
        files += diagnose.write(diagnosis, Path(out) / "diagnostics", experiment, command)
    findings = reproduction.evaluate(outcome.results, diagnosis)
    figures = []
    if reproduction.figures is not None:
        (Path(out) / "figures").mkdir(parents=True, exist_ok=True)
        figures = reproduction.figures(outcome.results, Path(out) / "figures")
        files += figures
    text = render(reproduction, experiment, findings, command)
    text += "".join(f"\n![{p.stem}](figures/{p.name})\n" for p in figures)
    files.append(write_atomic(Path(out) / "reproduction.md", text))
    return findings, files
