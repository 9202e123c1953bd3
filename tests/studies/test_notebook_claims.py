"""What the Keras initializer notebook observed holds here, on its own data and model."""

import math

import numpy as np
import pandas as pd
import pytest

import initjax
from bench import models
from bench.data import datasets
from bench.experiments import presets
from bench.experiments.runner import run_experiment
from bench.training.train import train_task

DEFAULT = presets.get("default")


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    experiment = DEFAULT.override(
        seeds=6, datasets=["synthetic"], initializers=["zeros", "he_normal", "glorot_normal", "glorot_uniform"]
    )
    return run_experiment(experiment, tmp_path_factory.mktemp("report"), progress=False, formats=("md", "csv"))


def test_zero_init_predicts_one_class_with_chance_loss(outcome):
    last = outcome.results[(outcome.results.epoch == DEFAULT.train.epochs) & (outcome.results.arm == "zeros")]
    assert len(last) == 6
    assert set(np.round(last.test_accuracy, 6)) <= {0.465, 0.535}
    assert np.all(np.abs(last.test_loss - math.log(2)) < 0.01)


def test_he_and_glorot_learn_the_task(outcome):
    summary = outcome.analysis.summary.query("metric == 'test_accuracy'").set_index("arm")
    for name in ["he_normal", "glorot_normal", "glorot_uniform"]:
        assert summary.loc[name, "mean_low"] > 0.75, name  # the whole 95% CI (test-set sampling included) above 75%
        assert summary.loc[name, "diverged"] == 0


def test_zero_init_never_moves_a_kernel():
    """With every kernel 0 and ReLU, no kernel gets a gradient: only the output bias learns."""
    data = datasets.load("synthetic")
    model = models.mlp_for(data.n_features, data.n_classes, (64, 64))
    result = train_task(data, model, {"zeros": initjax.get("zeros")}, [0, 1], DEFAULT.train, progress=False)
    params = result.params
    for layer in ["Dense_0", "Dense_1", "Dense_2"]:
        assert not np.any(np.asarray(params[layer]["kernel"])), layer
    assert not np.any(np.asarray(params["Dense_0"]["bias"])) and not np.any(np.asarray(params["Dense_1"]["bias"]))
    output_bias = np.asarray(params["Dense_2"]["bias"])
    assert np.all(output_bias < 0)  # it learns the training prior, 393/800 positives: logit(0.491) < 0


def test_report_and_tidy_results_are_written(outcome):
    folder = outcome.files[0].parent
    written = pd.read_csv(folder / "results.csv")
    for column in ["dataset", "model", "arm", "seed", "epoch", "train_loss", "train_accuracy",
                   "test_loss", "test_accuracy", "diverged"]:
        assert column in written.columns
    assert len(written) == 4 * 6 * (DEFAULT.train.epochs + 1)
    assert not written.duplicated(["dataset", "model", "arm", "seed", "epoch"]).any()
    np.testing.assert_allclose(written.test_loss, outcome.results.test_loss, rtol=1e-8)
    report = (folder / "report.md").read_text()
    assert "## synthetic: MLP 20-64-64-1 relu" in report
    row = outcome.analysis.summary.query("metric == 'test_accuracy'").set_index("arm").loc["he_normal"]
    assert f"{row['mean']:.3f} [{row.mean_low:.3f}, {row.mean_high:.3f}]" in report
    assert not list(folder.glob(".*.tmp"))  # no temp file left behind
