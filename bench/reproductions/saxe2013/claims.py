"""Saxe et al. 2013: with orthogonal init a deep linear network learns in a time independent of depth.

Checked on the runs of ``experiment.toml`` beside this file (``bench.reproductions``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.reporting.figures import plt, save
from bench.reproductions.reproduction import Finding, epochs_to, time_text

PAPER = (
    "Saxe, McClelland & Ganguli 2013, Exact solutions to the nonlinear dynamics of learning in deep "
    "linear neural networks, arXiv:1312.6120"
)
NEEDS_DIAGNOSIS = False
SAXE_THRESHOLD = 0.3


def evaluate(results: pd.DataFrame, diagnosis) -> list[Finding]:
    ortho, gauss = "orthogonal", "variance_scaling(distribution='normal')"
    depths = sorted(int(t.removeprefix("digits-depth")) for t in results["dataset"].unique())
    times = {(i, d): epochs_to(results, f"digits-depth{d}", i, "train_loss", SAXE_THRESHOLD)
             for i in (ortho, gauss) for d in depths}
    lines = "; ".join(f"depth {d}: orthogonal {time_text(times[ortho, d])}, Gaussian {time_text(times[gauss, d])}"
                      for d in depths)
    shallow, deep = depths[0], depths[-1]
    median = {key: float(np.median(value)) for key, value in times.items()}
    ortho_growth = median[ortho, deep] / median[ortho, shallow]
    gap = [median[gauss, d] / median[ortho, d] for d in depths]
    gaps = ", ".join(f"depth {d}: {g:.2f}" for d, g in zip(depths, gap))
    return [
        Finding(
            "Sec. 4 / Fig. 6: with orthogonal init the learning time of a deep linear network is independent of depth.",
            f"epochs to a training loss of {SAXE_THRESHOLD} with one learning rate for every depth: {lines}. "
            f"Median at depth {deep} / depth {shallow} for orthogonal: {ortho_growth:.2f}",
            f"orthogonal's median epochs at depth {deep} / depth {shallow} within [2/3, 3/2]",
            bool(2 / 3 <= ortho_growth <= 1.5),
        ),
        Finding(
            "Fig. 6: scaled Gaussian init learns ever slower than orthogonal init as depth grows.",
            f"median epochs Gaussian / orthogonal: {gaps}",
            f"the ratio grows with depth (each depth >= the previous) and exceeds 2 at depth {deep}",
            bool(all(b >= a for a, b in zip(gap, gap[1:])) and gap[-1] > 2),
        ),
    ]


def figures(results: pd.DataFrame, folder: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    depths = sorted(int(t.removeprefix("digits-depth")) for t in results["dataset"].unique())
    for init in results["arm"].unique():
        times = [epochs_to(results, f"digits-depth{d}", init, "train_loss", SAXE_THRESHOLD) for d in depths]
        reached = [(d, t[np.isfinite(t)]) for d, t in zip(depths, times) if np.isfinite(t).any()]  # drawn if reached
        if not reached:
            continue
        xs, ts = zip(*reached)
        mid = np.array([np.median(t) for t in ts])
        ax.errorbar(xs, mid, yerr=[mid - [t.min() for t in ts], [t.max() for t in ts] - mid], marker="o", capsize=3,
                    label=init)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("depth (weight layers)")
    ax.set_ylabel(f"epochs to training loss {SAXE_THRESHOLD} (median, min-max of runs that reach it)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.set_title("no run reached the threshold")
    return save(fig, folder / "learning-time-vs-depth", ("png",))
