"""Comparisons on the results table: seeds matched, diverged runs scored, one family per task."""

import itertools

import numpy as np
import pandas as pd
import pytest

from bench.analysis import compare, scoring, verdicts
from bench.analysis.stats import Settings

FAST = Settings(draws=2000)


def tidy(values: dict[str, np.ndarray], dataset="d", diverged=None) -> pd.DataFrame:
    """A results table of one epoch: values[name][seed]."""
    rows = []
    for name, v in values.items():
        for seed, x in enumerate(v):
            rows.append(dict(dataset=dataset, model="m", arm=name, seed=seed, epoch=1, test_accuracy=x,
                             test_loss=1 - x, diverged=bool(diverged and (name, seed) in diverged)))
    return pd.DataFrame(rows)


def test_final_matrix_matches_seeds_and_scores_diverged_runs():
    table = tidy({"b": np.array([0.1, 0.2, 0.3]), "a": np.array([0.4, 0.5, 0.6])}, diverged={("a", 1)})
    names, values = compare.final_matrix(table.sample(frac=1, random_state=0), "test_accuracy")
    assert set(names) == {"a", "b"}
    by_name = dict(zip(names, values.T))
    np.testing.assert_array_equal(by_name["b"], [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(by_name["a"], [0.4, np.nan, 0.6])  # no score given: missing
    names, values = compare.final_matrix(table, "test_accuracy", score=0.05)
    np.testing.assert_array_equal(dict(zip(names, values.T))["a"], [0.4, 0.05, 0.6])


def test_a_diverged_run_scores_as_an_untrained_network_never_above_a_trained_one():
    rows = [dict(dataset="d", model="m", arm=arm, seed=seed, epoch=epoch, test_accuracy=acc, test_loss=loss,
                 diverged=diverged)
            for arm, seed, epoch, acc, loss, diverged in [
                ("a", 0, 0, 0.10, 2.3, False), ("a", 0, 1, 0.90, 0.3, False),
                ("a", 1, 0, 0.12, 2.2, False), ("a", 1, 1, np.nan, np.nan, True),
                ("b", 0, 0, 0.08, 2.4, False), ("b", 0, 1, 0.05, 2.9, False),  # trained below chance
                ("b", 1, 0, np.nan, np.nan, True), ("b", 1, 1, np.nan, np.nan, True)]]
    table = pd.DataFrame(rows)
    # the median epoch-0 accuracy is 0.10 (of 0.10, 0.12, 0.08), but a run trained to 0.05: the worse counts
    assert scoring.diverged_score(table, "test_accuracy") == pytest.approx(0.05)
    assert scoring.diverged_score(table, "test_loss") == pytest.approx(2.9)  # lower is better: the larger
    assert scoring.diverged_score(table[table.epoch == 0].assign(epoch=0).iloc[:0], "test_loss") != 0  # NaN
    names, values = next(compare.scored_matrices(table, "test_accuracy"))[2:]
    assert values[1, names.index("a")] == pytest.approx(0.05)


def test_compare_is_the_procedure_per_task_with_its_own_seeded_simulation():
    rng = np.random.default_rng(0)
    base = rng.normal(0.8, 0.02, 16)
    values = {"best": base + 0.02, "b": base + rng.normal(0, 0.01, 16), "c": base - 0.005 + rng.normal(0, 0.01, 16)}
    table = pd.concat([tidy(values, "d1"), tidy({k: v[::-1] for k, v in values.items()}, "d2")])
    result = compare.compare(table, "test_accuracy", settings=FAST)
    assert len(result) == 6 and set(result["margin"]) == {0.005}
    for _, family in result.groupby("dataset"):
        names, matrix = compare.final_matrix(table[table.dataset == family.dataset.iloc[0]], "test_accuracy")
        assert family.set_index("arm").loc["best", "verdict"] == "best"
        direct = verdicts.verdicts(matrix, names, draws=2000, rng=np.random.default_rng(1))
        np.testing.assert_allclose(np.sort(family["diff"]), np.sort(direct["diff"]))  # same differences
    again = compare.compare(table, "test_accuracy", settings=FAST)
    pd.testing.assert_frame_equal(result, again)  # seeded: reproducible
    loss = compare.compare(table, "test_loss", settings=Settings(draws=2000, margin=0.02))
    assert set(loss["margin"]) == {0.02} and loss.set_index("arm").loc["best", "verdict"].iloc[0] == "best"
    with pytest.raises(ValueError, match="baseline 'nope'"):
        compare.compare(table, baseline="nope", settings=FAST)


def test_win_matrix_is_the_share_of_seeds_and_is_complementary():
    rng = np.random.default_rng(9)
    matrix = compare.win_matrix(tidy({k: rng.normal(size=10) for k in "abc"}), "test_accuracy", "d")
    for r, c in itertools.permutations(matrix.index, 2):
        assert matrix.loc[r, c] + matrix.loc[c, r] == pytest.approx(1.0)
    table = tidy({"a": np.array([0.9, 0.5, 0.7]), "b": np.array([0.7, 0.6, 0.7])})
    assert compare.win_matrix(table, "test_accuracy", "d").loc["a", "b"] == pytest.approx(1.5 / 3)  # win, loss, tie
    assert compare.win_matrix(table, "test_loss", "d").loc["a", "b"] == pytest.approx(1.5 / 3)
    assert compare.win_matrix(table, "test_accuracy", "d", paired=False).loc["a", "b"] == pytest.approx(5 / 9)
