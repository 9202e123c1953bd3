"""Glorot & Bengio 2010: with the standard init activations and gradients shrink across layers and the test
error is higher than with the normalized init.

Checked on the runs of ``experiment.toml`` beside this file (``bench.reproductions``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import stats
from bench.reproductions.reproduction import Finding, ci, final_values, ratio
from bench.studies import diagnose

PAPER = (
    "Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural networks, "
    "AISTATS"
)
NEEDS_DIAGNOSIS = True


def evaluate(results: pd.DataFrame, diagnosis: diagnose.Diagnosis) -> list[Finding]:
    standard, normalized, task = "torch_default", "glorot_uniform", "mnist"
    last_hidden = int(diagnosis.layers["depth"].max()) - 1  # layer 5 of 5 hidden; the head is 6
    act = {i: ratio(diagnosis, i, "variance", last_hidden, 1) for i in (standard, normalized)}
    grad = {i: ratio(diagnosis, i, "gradient_variance", 1, last_hidden) for i in (standard, normalized)}
    err = {i: 1 - final_values(results, task, i, "test_accuracy") for i in (standard, normalized)}
    paired = err[standard] - err[normalized]
    return [
        Finding(
            "Fig. 6: with the standard init U[-1/sqrt(n), 1/sqrt(n)] the activations shrink from layer to layer; "
            "with the normalized init their variance is kept across layers.",
            f"pre-activation variance of hidden layer {last_hidden} / layer 1 at init: standard {ci(act[standard])}, "
            f"normalized {ci(act[normalized])}",
            "standard ratio < 0.1 and normalized ratio in [0.25, 4]",
            bool(np.mean(act[standard]) < 0.1 and 0.25 <= np.mean(act[normalized]) <= 4),
        ),
        Finding(
            "Fig. 7: with the standard init the back-propagated gradients shrink towards the input; the normalized "
            "init keeps their variance across layers.",
            f"gradient variance at layer 1 / layer {last_hidden}: standard {ci(grad[standard])}, "
            f"normalized {ci(grad[normalized])}",
            "normalized ratio closer to 1 (in log distance) than standard's, for the seed means",
            bool(abs(np.log(np.mean(grad[normalized]))) < abs(np.log(np.mean(grad[standard])))),
        ),
        Finding(
            "Table 1: the normalized init reaches a lower MNIST test error than the standard one (tanh).",
            f"test error after training: standard {ci(err[standard])}, normalized {ci(err[normalized])}; "
            f"paired difference (standard - normalized) {ci(paired)}",
            "the 95% CI of the paired difference lies above 0",
            bool(len(paired) >= 3 and stats.t_interval(paired)[0] > 0),
        ),
    ]
