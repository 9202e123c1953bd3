"""Per-example test outcomes: they add up to the recorded accuracies, survive the store and the report folder,
and intervals that count the test set's sampling error cover the population accuracy where seed-only ones fail."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from bench import models
from bench.analysis import outcomes, stats
from bench.data import datasets
from bench.errors import UserError
from bench.training import resume
from bench.training.train import TrainConfig, train_task
from initjax import get


@pytest.fixture(scope="module")
def trained():
    data = datasets.load("digits").subset(300, 120)
    model = models.build("mlp", data.input_shape, data.n_classes, (16,), "relu")
    inits = {"he_normal": get("he_normal"), "zeros": get("zeros")}
    return train_task(data, model, inits, [0, 1, 2], TrainConfig(epochs=2), progress=False, chunk=2), data, model, inits


def test_outcomes_add_up_to_the_recorded_test_accuracy_and_loss(trained):
    result, data, _, _ = trained
    final = result.frame[result.frame.epoch == 2].set_index(["arm", "seed"])
    assert result.outcomes["correct"].shape == (2, 3, 120)
    for i, name in enumerate(["he_normal", "zeros"]):
        for j in range(3):
            assert set(np.unique(result.outcomes["correct"][i, j])) <= {0.0, 1.0}  # a classifier: right or wrong
            assert result.outcomes["correct"][i, j].astype(np.float64).mean() == final.loc[(name, j), "test_accuracy"]
            assert result.outcomes["loss"][i, j].mean() == pytest.approx(final.loc[(name, j), "test_loss"], rel=1e-5)


def test_a_language_models_fractional_accuracies_round_trip_and_are_checked(tmp_path):
    """Per-example token accuracy is a share of positions: the file keeps it (bits would make 0.3 right), the check
    against results.csv still refuses other results, and the run's own analysis sees the stored fractions."""
    import pandas as pd

    rng = np.random.default_rng(0)
    correct = rng.integers(0, 32, (2, 3, 50)) / 31  # (initializers, seeds, sequences): k of 31 counted positions
    loss = rng.uniform(1, 3, correct.shape)
    frame = pd.DataFrame([{"dataset": "lm", "model": "m", "arm": name, "seed": j, "epoch": 1,
                           "test_accuracy": float(np.float32(correct[i, j].astype(np.float32).mean())),
                           "test_loss": loss[i, j].mean(), "diverged": False}
                          for i, name in enumerate(["a", "b"]) for j in range(3)])
    item = {"names": ["a", "b"], "seeds": [0, 1, 2], "correct": correct, "loss": loss}
    outcomes.save(tmp_path, {"lm": item})
    loaded = outcomes.load(tmp_path, frame)["lm"]
    np.testing.assert_allclose(loaded["correct"], correct, rtol=1e-7)
    np.testing.assert_allclose(outcomes.as_stored(item)["correct"], correct, rtol=1e-7)
    frame.loc[0, "test_accuracy"] += 1 / 31 / 50  # one position of one sequence
    with pytest.raises(UserError, match="does not match results.csv"):
        outcomes.load(tmp_path, frame)


def test_a_store_round_trip_keeps_the_outcomes(trained, tmp_path):
    result, data, model, inits = trained
    store = resume.TaskStore(tmp_path, "digits", {"x": 1})
    first = train_task(data, model, inits, [0, 1, 2], TrainConfig(epochs=2), progress=False, chunk=2, store=store)
    again = train_task(data, model, inits, [0, 1, 2], TrainConfig(epochs=2), progress=False, chunk=2,
                       store=resume.TaskStore(tmp_path, "digits", {"x": 1}))
    for key in ("correct", "loss"):
        np.testing.assert_array_equal(first.outcomes[key], result.outcomes[key])
        np.testing.assert_array_equal(again.outcomes[key], first.outcomes[key])  # loaded, not retrained


def test_the_report_file_round_trips_and_refuses_other_results(trained, tmp_path):
    result, _, _, _ = trained
    frame = result.frame.assign(dataset="digits", model="m")
    outcomes.save(tmp_path, {"digits": {"names": ["he_normal", "zeros"], "seeds": [0, 1, 2], **result.outcomes}})
    loaded = outcomes.load(tmp_path, frame)["digits"]
    np.testing.assert_array_equal(loaded["correct"], result.outcomes["correct"])
    np.testing.assert_allclose(loaded["loss"], result.outcomes["loss"], rtol=1e-3)  # kept as float16
    edited = frame.copy()
    edited.loc[edited.epoch == 2, "test_accuracy"] += 0.01
    with pytest.raises(UserError, match="does not match results.csv"):
        outcomes.load(tmp_path, edited)
    (tmp_path / outcomes.FILE).write_bytes(b"PK\x03\x04 damaged")
    with pytest.raises(UserError, match="is damaged"):
        outcomes.load(tmp_path, frame)


def test_a_finite_loss_beyond_float16_is_stored_finite_and_keeps_its_seed_in_the_test_set_term(tmp_path):
    """A run far from converging (a loss of 1e6 on some example) that did not diverge: float16 made it an infinity,
    which left its seed out of the initializer's test-set term; stored as float32, it counts."""
    loss = np.full((1, 2, 4), 0.5)
    loss[0, 1, 2] = 1e6
    correct = np.ones((1, 2, 4), bool)
    assert outcomes.stored_losses(np.full(3, 0.5)).dtype == np.float16  # in range: half the bytes, as before
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflow it checks for is not a warning on the user's screen
        stored = outcomes.stored_losses(loss)
    assert stored.dtype == np.float32 and np.isfinite(stored).all() and stored[0, 1, 2] == 1e6
    assert np.isinf(outcomes.stored_losses(np.array([np.inf, 1.0]))[0])  # a diverged run's stays what it was
    outcomes.save(tmp_path, {"t": {"names": ["a"], "seeds": [0, 1], "correct": correct, "loss": loss}})
    frame = pd.DataFrame({"dataset": "t", "model": "m", "arm": "a", "seed": [0, 1], "epoch": 1, "test_accuracy": 1.0,
                          "test_loss": loss.mean(-1)[0], "diverged": False})
    loaded = outcomes.load(tmp_path, frame)["t"]["loss"]
    np.testing.assert_array_equal(loaded, outcomes.as_stored({"correct": correct, "loss": loss})["loss"])
    assert np.isfinite(loaded).all()  # float16's inf here left seed 1 out of example_component's finished runs


def _anova(x: np.ndarray) -> tuple[float, float]:
    """MS of examples and of the residual of a seeds x examples table, by statsmodels' OLS (an independent code)."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    n, m = x.shape
    frame = pd.DataFrame({"y": x.ravel(), "seed": np.repeat(np.arange(n), m), "example": np.tile(np.arange(m), n)})
    table = sm.stats.anova_lm(smf.ols("y ~ C(seed) + C(example)", frame).fit())
    return float(table.loc["C(example)", "mean_sq"]), float(table.loc["Residual", "mean_sq"])


def test_the_examples_component_is_the_two_way_anovas():
    """s2_b / m = (MS_examples - MS_residual) / (n m): the interaction is left to the seeds' term, where it shrinks."""
    rng = np.random.default_rng(3)
    scores = (rng.random((5, 3, 40)) < 0.8).astype(float)  # (5 seeds, 3 initializers, 40 examples)
    component = outcomes.example_component(scores)
    for i in range(3):
        ms_e, ms_r = _anova(scores[:, i])
        assert component.of_means[i] == pytest.approx(max(ms_e - ms_r, 0) / (5 * 40))
        if ms_e > ms_r:
            assert component.df_means[i] == pytest.approx((ms_e - ms_r) ** 2 / (ms_e**2 / 39 + ms_r**2 / (4 * 39)))
    ms_e, ms_r = _anova(scores[:, 0] - scores[:, 2])
    assert component.of_differences[0, 2] == pytest.approx(max(ms_e - ms_r, 0) / (5 * 40))
    scores[1, 1] = np.nan  # seed 1 of the second initializer diverged: its pairs use the other seeds
    ms_e, ms_r = _anova(np.delete(scores[:, 1] - scores[:, 0], 1, axis=0))
    assert outcomes.example_component(scores).of_differences[1, 0] == pytest.approx(max(ms_e - ms_r, 0) / (4 * 40))


def test_intervals_with_the_test_set_cover_the_population_accuracy():
    """Examples of random difficulty, seeds of random ability: 200 test examples and 8 seeds per replicate.

    Difficulties are bimodal (Beta(0.9, 0.3)): most examples are right, or wrong, for every seed, as on real
    test sets, so the test set's draw is most of the error."""
    rng = np.random.default_rng(0)
    difficulty = lambda size: logit(np.clip(rng.beta(0.9, 0.3, size), 1e-6, 1 - 1e-6))  # noqa: E731
    truth = expit(difficulty(400_000) + rng.normal(0, 0.05, 400_000)).mean()
    reps, both, seeds_only = 400, 0, 0
    for _ in range(reps):
        correct = rng.random((8, 200)) < expit(difficulty(200)[None, :] + rng.normal(0, 0.05, (8, 1)))
        accuracy = correct.mean(1)
        component = outcomes.example_component(correct[:, None, :].astype(float), paired=False)
        low, high = stats.mean_interval(accuracy, "test_accuracy", 0.95,
                                        (component.of_means[0], component.df_means[0]), examples=200)
        both += low <= truth <= high
        low, high = stats.t_interval(accuracy, 0.95)
        seeds_only += low <= truth <= high
    assert both / reps >= 0.93 - 3 * np.sqrt(0.05 * 0.95 / reps)
    assert seeds_only / reps < 0.7  # seeds alone treat the test set as the population


def test_the_report_counts_the_test_set_where_it_has_outcomes(trained):
    from bench.reporting.analysed import analyse

    result, _, _, _ = trained
    frame = result.frame.assign(dataset="digits", model="m", experiment="x")
    item = {"digits": {"names": ["he_normal", "zeros"], "seeds": [0, 1, 2], **result.outcomes}}
    fast = stats.Settings(draws=500, n_resamples=200)
    with_set = analyse(frame, settings=fast, test_outcomes=item)
    without = analyse(frame, settings=fast)
    pick = lambda a: a.summary.set_index(["arm", "metric"]).loc[("he_normal", "test_accuracy")]  # noqa: E731
    assert pick(with_set).mean_high - pick(with_set).mean_low > pick(without).mean_high - pick(without).mean_low
    assert with_set.test_examples == {"digits": 120} and without.test_examples == {}
    assert set(with_set.comparisons["test_set"]) == {120} and set(without.comparisons["test_set"]) == {0}


def test_a_new_run_into_the_same_folder_replaces_the_outcomes(tmp_path):
    from bench import cli
    from bench.reporting.files import load

    out = tmp_path / "run"
    base = ["run", "default", "--smoke", "--datasets", "digits", "--out", str(out), "--no-progress",
            "--format", "md,csv"]
    assert cli.main(base + ["--seeds", "2"]) == 0
    assert cli.main(base + ["--seeds", "3"]) == 0
    results, _ = load(out)
    assert outcomes.load(out, results)["digits"]["correct"].shape[:2] == (8, 3)  # the second run's, checked
