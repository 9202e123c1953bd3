"""Bassi et al. 2026: the initialization that trains best, at the edge of chaos, is biased rather than neutral: an
untrained network there assigns a large share of its inputs to one class (the initial guessing bias), a bias that
falls from the ordered phase, where every input gets one class, to the chaotic phase, where the guesses spread.

Checked on the runs of ``experiment.toml`` beside this file and the guessing bias of their untrained networks
(``bench.studies.diagnose``, ``initjax.diagnostics.guessing_bias``), seed by seed: the diagnosis draws each seed's
network as its run does."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bench.analysis import stats
from bench.reproductions.reproduction import Finding, ci, final_values

PAPER = (
    "Bassi, Albert, Lucchi, Baity-Jesi and Francazi 2026, When bias helps learning: bridging initial prejudice and "
    "trainability, ICLR (arXiv:2505.12096)"
)
NEEDS_DIAGNOSIS = True
TASK = "digits-depth16"
EDGE = 1.76  # sigma_w^2 of the edge of chaos at sigma_b^2 = 0.05 (initjax.mean_field.chi_1 = 1 at 1.761)
BIASED = 0.2  # twice the even spread's share over 10 classes: the least the edge's interval must exceed


def sigma_w2(arm: str) -> float:
    """The ``sigma_w2`` of a ``mean_field(...)`` arm."""
    return float(re.search(r"sigma_w2=([0-9.]+)", arm)[1])


def shares(diagnosis) -> dict[float, np.ndarray]:
    """sigma_w^2 -> the largest class share of each seed's untrained network `(seeds,)`, in seed order."""
    rows = diagnosis.guessing[diagnosis.guessing["dataset"] == TASK].sort_values("seed")
    return dict(sorted((sigma_w2(arm), group["max_share"].to_numpy(np.float64)) for arm, group in rows.groupby("arm")))


def early_accuracy(results: pd.DataFrame) -> dict[float, np.ndarray]:
    """sigma_w^2 -> each seed's training accuracy after the first epoch `(seeds,)`, in seed order."""
    rows = results[(results["dataset"] == TASK) & (results["epoch"] == 1)].sort_values("seed")
    return dict(sorted((sigma_w2(arm), group["train_accuracy"].to_numpy(np.float64))
                       for arm, group in rows.groupby("arm")))


def evaluate(results: pd.DataFrame, diagnosis) -> list[Finding]:
    bias = shares(diagnosis)
    edge, neutral = bias[EDGE], bias[max(bias)]
    low, _ = stats.t_interval(edge) if np.ptp(edge) > 0 else (edge.mean(), edge.mean())
    means = [float(v.mean()) for v in bias.values()]
    accuracy = early_accuracy(results)
    gain = accuracy[EDGE] - accuracy[max(accuracy)]  # paired by seed: the same data order
    gain_low, gain_high = stats.t_interval(gain) if np.ptp(gain) > 0 else (gain.mean(), gain.mean())
    final = final_values(results, TASK, f"mean_field(sigma_b2=0.05, sigma_w2={EDGE})", "train_accuracy")
    return [
        Finding(
            "At the initialization that optimizes trainability (the edge of chaos) an untrained network is biased: "
            "it assigns a large share of its inputs to one class, not an even 1/classes (abstract).",
            f"largest class share of the untrained network at sigma_w^2 = {EDGE} (edge of chaos), over 512 training "
            f"images: {ci(edge)} (an even spread: 0.1)",
            f"the 95% interval of the mean share lies above {BIASED} (twice the even spread)",
            bool(low > BIASED),
        ),
        Finding(
            "The bias is set by the mean-field phase: it falls from the ordered phase, where every input gets one "
            "class, through the edge of chaos to the chaotic phase (the link of the guessing bias to mean-field "
            "theory, abstract).",
            "mean largest class share by sigma_w^2: " + ", ".join(f"{w:g}: {m:.3g}" for w, m in zip(bias, means)),
            "it falls with every step of sigma_w^2",
            bool(all(b < a for a, b in zip(means, means[1:]))),
        ),
        Finding(
            "Biased is not worse: the edge of chaos trains faster than the most neutral initialization (abstract: "
            "the trainability-optimal initialization is biased rather than neutral).",
            f"training accuracy after the first epoch, edge of chaos minus sigma_w^2 = {max(accuracy):g} (largest "
            f"class share {ci(neutral)}), paired by seed: {gain.mean():.4g} [{gain_low:.4g}, {gain_high:.4g}]; the "
            f"edge's final training accuracy {ci(final)}",
            "the 95% interval of the paired difference lies above 0",
            bool(gain_low > 0),
        ),
    ]
