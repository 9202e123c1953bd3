"""Haas et al. 2025: under the standard parameterization, cross-entropy keeps large learning rates trainable as the
network widens ("controlled divergence": the logits grow, training does not break), squared error does not.

Checked on the runs of ``experiment.toml`` beside this file (``bench.reproductions``): one-hidden-layer ReLU MLPs of
four widths, He normal draws and one global SGD learning rate, on cross-entropy and on the squared error to the
one-hot label, over a grid of rates a factor 2 apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import stats
from bench.reproductions.reproduction import Finding, ci

PAPER = (
    "Haas, Bordt, von Luxburg and Vankadara 2025, On the surprising effectiveness of large learning rates under "
    "standard width scaling, NeurIPS (arXiv:2505.22491)"
)
NEEDS_DIAGNOSIS = False
WIDTHS = (64, 256, 1024, 4096)
LOSSES = {"ce": "cross-entropy", "mse": "squared error"}
TRAINED = 0.3  # the least mean final training accuracy (chance: 0.1) at which a rate counts as stable
LINE = 2.0**-1  # the rates lr = LINE (64 / width)^1/2: width^-1/2 through the narrowest squared-error model's
WIDEST_DIVERGED = 0.5  # the least share of diverged runs of the widest squared-error model on that line
RESAMPLES = 2000  # bootstrap resamples of the seeds for the slopes' intervals


def grid(results: pd.DataFrame, task: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(log2 lrs (n_lr,), values (n_seeds, n_lr))`` of one task's final ``column`` (``diverged`` as 0/1)."""
    final = stats.final_epoch(results[results["dataset"] == task])
    table = final.set_index(["seed", "lr"])[column].astype(np.float64).unstack("lr")  # NaN kept: a diverged run
    return np.log2(table.columns.to_numpy(np.float64)), table.to_numpy(np.float64)


def maximal_stable(log2_lrs: np.ndarray, accuracy: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    """The largest ``log2 lr`` at which no run diverged and the runs' mean final training accuracy is at least
    :data:`TRAINED`; NaN where no rate is. ``accuracy`` and ``diverged``: `(..., n_seeds, n_lr)`."""
    stable = (diverged.max(axis=-2) == 0) & (np.nan_to_num(accuracy, nan=0.0).mean(axis=-2) >= TRAINED)
    last = np.where(stable, np.arange(len(log2_lrs)), -1).max(axis=-1)
    return np.where(last >= 0, np.asarray(log2_lrs)[np.maximum(last, 0)], np.nan)


def slope(log2_widths: np.ndarray, log2_rates: np.ndarray) -> np.ndarray:
    """Least-squares slope of ``log2 rates`` `(..., n_widths)` against ``log2 widths``: the exponent ``a`` of
    ``rate ~ width^a``; NaN where a rate is NaN."""
    x = np.asarray(log2_widths, np.float64) - np.mean(log2_widths)
    return (np.asarray(log2_rates) * x).sum(-1) / (x * x).sum()


def exponent(results: pd.DataFrame, loss: str, seed: int = 0) -> dict:
    """The maximal stable rate per width of one loss's tasks, its exponent against width, and the exponent's 95%
    percentile interval over seeds resampled (the same draw of seeds for every width)."""
    tables = [(grid(results, f"{loss}-{w}", "train_accuracy"), grid(results, f"{loss}-{w}", "diverged"))
              for w in WIDTHS]
    log2_lrs = tables[0][0][0]
    accuracy = np.stack([a for (_, a), _ in tables])  # (widths, seeds, lrs)
    diverged = np.stack([d for _, (_, d) in tables])
    rates = maximal_stable(log2_lrs, accuracy, diverged)
    draws = np.random.default_rng(seed).integers(0, accuracy.shape[1], (RESAMPLES, accuracy.shape[1]))
    resampled = maximal_stable(log2_lrs, accuracy[:, draws].transpose(1, 0, 2, 3),
                               diverged[:, draws].transpose(1, 0, 2, 3))  # (resamples, widths)
    slopes = slope(np.log2(WIDTHS), resampled)
    low, high = np.nanpercentile(slopes, [2.5, 97.5]) if np.isfinite(slopes).any() else (np.nan, np.nan)
    return {"rates": rates, "slope": float(slope(np.log2(WIDTHS), rates)), "low": low, "high": high,
            "undefined": int(np.isnan(slopes).sum())}


def _exponent_text(found: dict) -> str:
    rates = ", ".join(f"width {w}: {2 ** r:.3g}" if np.isfinite(r) else f"width {w}: none"
                      for w, r in zip(WIDTHS, found["rates"]))
    return (f"maximal stable rate (the largest grid rate, a factor 2 apart, with no diverged run and a mean final "
            f"training accuracy of at least {TRAINED}): {rates}; exponent against width {found['slope']:.2f} "
            f"[{found['low']:.2f}, {found['high']:.2f}] (95% percentile interval over seeds resampled"
            + (f"; {found['undefined']} resamples left a width without a stable rate" if found["undefined"] else "")
            + ")")


def _on_the_line(results: pd.DataFrame, loss: str) -> list[tuple[int, float, np.ndarray, np.ndarray]]:
    """Per width, its rate on the line ``LINE (64 / width)^1/2`` and its runs' final training accuracy and
    divergence there."""
    out = []
    for w in WIDTHS:
        lr = LINE * (64 / w) ** 0.5
        final = stats.final_epoch(results[(results["dataset"] == f"{loss}-{w}") & np.isclose(results["lr"], lr)])
        out.append((w, lr, final["train_accuracy"].to_numpy(np.float64), final["diverged"].to_numpy(bool)))
    return out


def evaluate(results: pd.DataFrame, diagnosis) -> list[Finding]:
    ce, mse = exponent(results, "ce"), exponent(results, "mse")
    line_ce, line_mse = _on_the_line(results, "ce"), _on_the_line(results, "mse")
    widest = line_mse[-1]
    k, n = int(widest[3].sum()), len(widest[3])
    low, high = stats.wilson_ci(k, n)
    return [
        Finding(
            "Under cross-entropy the maximal stable learning rate of SGD in the standard parameterization falls no "
            "faster than width^-1/2 (the controlled-divergence regime reaches eta ~ n^-1/2; abstract).",
            _exponent_text(ce),
            "the exponent is at least -1/2",
            bool(np.isfinite(ce["slope"]) and ce["slope"] >= -0.5),
        ),
        Finding(
            "Under squared error it falls like width^-1, as the stability bound of the standard parameterization "
            "predicts (abstract: the networks operate in the controlled-divergence regime under cross-entropy but "
            "not under squared error).",
            _exponent_text(mse),
            "the exponent is at most -3/4 (nearer -1 than -1/2)",
            bool(np.isfinite(mse["slope"]) and mse["slope"] <= -0.75),
        ),
        Finding(
            "Under cross-entropy a learning rate scaled like width^-1/2 keeps every width trainable.",
            "on lr = 0.5 (64 / width)^1/2, final training accuracy and diverged "
            "runs: " + "; ".join(f"width {w} at lr {lr:.3g}: {ci(acc)}, {int(div.sum())} of {len(div)} diverged"
                                  for w, lr, acc, div in line_ce),
            "no run diverged and the mean final training accuracy is at least 0.9 at every width",
            all(not div.any() and len(acc) and np.mean(acc) >= 0.9 for _, _, acc, div in line_ce),
        ),
        Finding(
            "Under squared error the same width^-1/2 rates break the widest model.",
            "on the same rates, final training accuracy and diverged runs: " + "; ".join(
                f"width {w} at lr {lr:.3g}: {ci(acc)}, {int(div.sum())} of {len(div)} diverged"
                for w, lr, acc, div in line_mse) + f"; diverged share at width {WIDTHS[-1]}: {k / n:.2f} [{low:.2f}, "
            f"{high:.2f}] (Wilson 95%)",
            "at least half of the widest model's runs diverge",
            bool(n and k / n >= WIDEST_DIVERGED),
        ),
    ]


def figures(results: pd.DataFrame, folder: Path) -> list[Path]:
    from bench.reporting.figures import plt, save

    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4), constrained_layout=True, sharey=True)
    for ax, (loss, name) in zip(axes, LOSSES.items()):
        for w in WIDTHS:
            log2_lrs, accuracy = grid(results, f"{loss}-{w}", "train_accuracy")
            _, diverged = grid(results, f"{loss}-{w}", "diverged")
            mean = np.where(diverged.max(axis=0) > 0, np.nan, np.nanmean(accuracy, axis=0))
            ax.plot(2.0 ** log2_lrs, mean, marker="o", ms=3, label=f"width {w}")
        ax.plot([LINE * (64 / w) ** 0.5 for w in WIDTHS], [0.05] * len(WIDTHS), "k|", ms=10, label="0.5 (64/n)^1/2")
        ax.set_xscale("log", base=2)
        ax.set_title(f"{name}: final training accuracy (gaps: a run diverged)", fontsize=9)
        ax.set_xlabel("learning rate (SGD)")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("training accuracy")
    return save(fig, folder / "accuracy-vs-lr", ("png",))
