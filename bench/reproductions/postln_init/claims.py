"""Xiong et al. 2020, T-Fixup and DeepNet: post-LN transformers without warm-up, and the inits that fix them.

Checked on the runs of ``experiment.toml`` beside this file (``bench.reproductions``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import stats
from bench.reproductions.reproduction import Finding, ci

PAPER = (
    "Xiong et al. 2020, On layer normalization in the transformer architecture, ICML; Huang, Perez, Ba & "
    "Volkovs 2020, Improving transformer optimization through better initialization (T-Fixup), ICML; Wang "
    "et al. 2022, DeepNet: scaling transformers to 1,000 layers"
)
NEEDS_DIAGNOSIS = False
POSTLN_VOCAB = 16  # the vocabulary of experiment.toml's language: a diverged run counts as the uniform guess
POSTLN_LOW, POSTLN_HIGH = 0.001, 0.01  # its two Adam learning rates, constant (no warm-up)


def _final_cell(results: pd.DataFrame, task: str, init: str, lr: float) -> pd.DataFrame:
    """The final rows of one (task, initializer, learning rate) of a grid."""
    final = stats.final_epoch(results)
    return final[(final["dataset"] == task) & (final["initializer"] == init) & np.isclose(final["lr"], lr)]


def final_test_losses(results: pd.DataFrame, task: str, init: str, lr: float) -> pd.Series:
    """Per seed, the final test loss of one (task, initializer, learning rate); a diverged run counts as
    ``ln POSTLN_VOCAB``, the loss of the uniform guess (a lower bound on what a diverged model scores)."""
    rows = _final_cell(results, task, init, lr)
    loss = rows["test_loss"].where(stats.finished(rows, "test_loss"), np.log(POSTLN_VOCAB))
    return pd.Series(loss.to_numpy(np.float64), index=rows["seed"].to_numpy()).sort_index()


def _paired(a: pd.Series, b: pd.Series) -> np.ndarray:
    """``a - b`` per seed, over the seeds both have."""
    return (a - b).dropna().to_numpy(np.float64)


def _ci_above_zero(differences: np.ndarray) -> bool:
    return bool(len(differences) >= 3 and stats.t_interval(differences)[0] > 0)


def _diverged(results: pd.DataFrame, task: str, init: str, lr: float) -> int:
    rows = _final_cell(results, task, init, lr)
    return int((~stats.finished(rows, "test_loss")).sum())


def evaluate(results: pd.DataFrame, diagnosis) -> list[Finding]:
    xavier, deepnorm, tfixup = "glorot_uniform", "deepnorm", "t_fixup"
    low, high = POSTLN_LOW, POSTLN_HIGH
    loss = {(t, i, lr): final_test_losses(results, t, i, lr) for t in ("pre-LN", "post-LN", "no-LN")
            for i in (xavier, deepnorm, tfixup) for lr in (low, high)}

    def line(task, init):
        return f"{init} on {task}: lr {low:g} {ci(loss[task, init, low])}, lr {high:g} {ci(loss[task, init, high])}"

    def diverged(task, init, lr):
        n = _diverged(results, task, init, lr)
        return f" ({n} diverged)" if n else ""

    post_up = _paired(loss["post-LN", xavier, high], loss["post-LN", xavier, low])
    pre_down = _paired(loss["pre-LN", xavier, low], loss["pre-LN", xavier, high])
    deep_gain = _paired(loss["post-LN", xavier, high], loss["post-LN", deepnorm, high])
    fixup_gain = _paired(loss["no-LN", xavier, high], loss["no-LN", tfixup, high])
    pre_best = min(loss["pre-LN", xavier, lr].mean() for lr in (low, high))
    fixup_diverged = _diverged(results, "no-LN", tfixup, high)
    return [
        Finding(
            "Xiong et al. 2020, Sec. 3 (and Liu et al. 2020): a post-LN transformer with the standard Xavier init, "
            "trained by Adam without warm-up, trains poorly at a large learning rate.",
            f"final test loss (nats/token), {line('post-LN', xavier)}{diverged('post-LN', xavier, high)}; paired "
            f"difference (lr {high:g} - lr {low:g}) {ci(post_up)}",
            "the 95% CI of the paired difference lies above 0 (the larger rate is worse)",
            _ci_above_zero(post_up),
        ),
        Finding(
            "Xiong et al. 2020, Sec. 4: the pre-LN transformer needs no warm-up: with Xavier init it trains at the "
            "large learning rate.",
            f"{line('pre-LN', xavier)}{diverged('pre-LN', xavier, high)}; paired difference "
            f"(lr {low:g} - lr {high:g}) {ci(pre_down)}",
            "the 95% CI of the paired difference lies above 0 (the larger rate is better)",
            _ci_above_zero(pre_down),
        ),
        Finding(
            "Wang et al. 2022 (DeepNet): DeepNorm's init and residual scaling let post-LN train without warm-up at a "
            "rate where Xavier post-LN fails.",
            f"{line('post-LN', deepnorm)}{diverged('post-LN', deepnorm, high)}; paired difference at lr {high:g} "
            f"(Xavier - DeepNorm) {ci(deep_gain)}",
            f"the 95% CI of the paired difference lies above 0 and DeepNorm's mean at lr {high:g} is below its mean "
            f"at lr {low:g}",
            _ci_above_zero(deep_gain)
            and loss["post-LN", deepnorm, high].mean() < loss["post-LN", deepnorm, low].mean(),
        ),
        Finding(
            "Huang et al. 2020 (T-Fixup): with T-Fixup a transformer trains without LayerNorm and without warm-up, "
            "as well as a normalized one.",
            f"{line('no-LN', tfixup)}{diverged('no-LN', tfixup, high)}, {line('no-LN', xavier)}"
            f"{diverged('no-LN', xavier, high)}; paired difference at lr {high:g} (Xavier - T-Fixup) "
            f"{ci(fixup_gain)}; pre-LN Xavier's better mean {pre_best:.4g}",
            f"no T-Fixup run diverges at lr {high:g}, the 95% CI of the paired difference lies above 0, and T-Fixup's "
            f"mean at lr {high:g} is within 0.05 nats of pre-LN Xavier's better mean",
            fixup_diverged == 0 and _ci_above_zero(fixup_gain)
            and loss["no-LN", tfixup, high].mean() <= pre_best + 0.05,
        ),
    ]
