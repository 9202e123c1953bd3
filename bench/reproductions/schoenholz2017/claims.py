"""Schoenholz et al. 2017: a network trains if and only if its depth is below about 6 xi_c.

Checked on the runs of ``experiment.toml`` beside this file (``bench.reproductions``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from bench.reporting.figures import plt, save
from bench.reproductions.reproduction import Finding, final_values
from initjax import mean_field

PAPER = "Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017, Deep information propagation, ICLR"
NEEDS_DIAGNOSIS = False
SIGMA_B2 = 0.05  # sigma_b^2 of every arm of experiment.toml


def _sigma_w2(init: str) -> float:
    return float(re.search(r"sigma_w2=([0-9.]+)", init).group(1))


def _trainability(results: pd.DataFrame) -> pd.DataFrame:
    """Per (sigma_w2, depth): mean final training accuracy, trainable (> 0.5), and 6 xi_c."""
    rows = []
    for task in results["dataset"].unique():
        depth = int(task.rsplit("depth", 1)[1])
        for init in results["arm"].unique():
            acc = final_values(results, task, init, "train_accuracy")
            w2 = _sigma_w2(init)
            limit = 6 * mean_field.xi_c(w2, SIGMA_B2)
            rows.append({"sigma_w2": w2, "depth": depth, "accuracy": acc.mean() if len(acc) else 0.0,
                         "trainable": bool(len(acc) and acc.mean() > 0.5), "six_xi_c": limit,
                         "predicted": depth <= limit})
    return pd.DataFrame(rows)


def evaluate(results: pd.DataFrame, diagnosis) -> list[Finding]:
    table = _trainability(results)
    agree = table["trainable"] == table["predicted"]
    misses = "; ".join(f"sigma_w2 {r.sigma_w2:g} depth {r.depth}: accuracy {r.accuracy:.2f}, 6 xi_c {r.six_xi_c:.0f}"
                       for r in table[~agree].itertuples()) or "none"
    critical = table[table["sigma_w2"] == 1.8]
    return [
        Finding(
            "Fig. 5: a network trains if and only if its depth is below about 6 xi_c, the mean-field depth scale of "
            "correlations, over the (sigma_w^2, depth) plane.",
            f"{int(agree.sum())} of {len(table)} (sigma_w2, depth) cells agree with depth <= 6 xi_c; disagreements: "
            f"{misses}",
            "at least 80% of the cells agree",
            bool(agree.mean() >= 0.8),
        ),
        Finding(
            "Sec. 4: at the order-to-chaos transition (sigma_w^2 ~ 1.76 for sigma_b^2 = 0.05) the deepest networks "
            "train.",
            "mean final training accuracy at sigma_w2 = 1.8: " + ", ".join(
                f"depth {r.depth}: {r.accuracy:.3f}" for r in critical.sort_values("depth").itertuples()),
            "trainable (> 0.5) at every depth",
            bool(len(critical) and critical["trainable"].all()),
        ),
    ]


def figures(results: pd.DataFrame, folder: Path) -> list[Path]:
    table = _trainability(results)
    grid = table.pivot(index="depth", columns="sigma_w2", values="accuracy")
    fig, ax = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    mesh = ax.pcolormesh(np.arange(len(grid.columns) + 1), np.arange(len(grid.index) + 1), grid.values,
                         vmin=0, vmax=1, cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="final training accuracy (mean over seeds)")
    ws = np.linspace(min(grid.columns), max(grid.columns), 200)
    limit = [6 * mean_field.xi_c(w, SIGMA_B2) for w in ws]
    # map sigma_w2 and depth onto the cell grid (cells are evenly spaced, values are not)
    x = np.interp(ws, grid.columns, np.arange(len(grid.columns))) + 0.5
    y = np.interp(np.clip(limit, grid.index[0], grid.index[-1] * 2), list(grid.index) + [grid.index[-1] * 2],
                  list(np.arange(len(grid.index))) + [len(grid.index)]) + 0.5
    ax.plot(x, y, "w--", label="6 xi_c (mean field)")
    ax.set_xticks(np.arange(len(grid.columns)) + 0.5, [f"{w:g}" for w in grid.columns])
    ax.set_yticks(np.arange(len(grid.index)) + 0.5, grid.index)
    ax.set_xlabel("sigma_w^2")
    ax.set_ylabel("depth")
    ax.set_ylim(0, len(grid.index))
    ax.legend(loc="upper right", fontsize=8)
    return save(fig, folder / "trainability", ("png",))
