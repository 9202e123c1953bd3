"""Comparisons on the results table: seeds matched, one family per task, and seeds advice that matches a
simulation of the procedure the report uses."""

import itertools

import numpy as np
import pandas as pd
import pytest

from bench.analysis import compare, verdicts
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


def test_final_matrix_matches_seeds_and_blanks_diverged_runs():
    table = tidy({"b": np.array([0.1, 0.2, 0.3]), "a": np.array([0.4, 0.5, 0.6])}, diverged={("a", 1)})
    names, values = compare.final_matrix(table.sample(frac=1, random_state=0), "test_accuracy")
    assert set(names) == {"a", "b"}
    by_name = dict(zip(names, values.T))
    np.testing.assert_array_equal(by_name["b"], [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(by_name["a"], [0.4, np.nan, 0.6])


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


def test_spread_leaves_out_constant_initializers():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (200, 3))
    with_zeros = np.column_stack([x, np.full(200, 0.465)])
    assert compare.paired_spread(with_zeros) == pytest.approx(np.sqrt(2), rel=0.1)
    assert compare.paired_spread(with_zeros) == compare.paired_spread(x)
    assert np.isnan(compare.paired_spread(np.column_stack([x[:, 0], np.full(200, 0.5)])))


def test_seeds_advice_matches_a_simulation_of_the_procedure_used():
    k, delta = 4, 1.0  # paired sd 1
    n, power = compare.seeds_for_power(k, delta, rng=0)
    assert n is not None and 0.8 <= power < 0.9
    smaller = compare.SEED_GRID[compare.SEED_GRID.index(n) - 1]

    def simulated(seeds: int, reps: int = 250) -> float:
        rng = np.random.default_rng(seeds)
        hits = 0
        for _ in range(reps):
            x = rng.standard_normal((seeds, k)) / np.sqrt(2) + rng.normal(0, 1, (seeds, 1))
            x[:, 0] -= delta
            table = verdicts.verdicts(x, "abcd", draws=1000, rng=rng).set_index("arm")
            hits += table.loc["a", "verdict"] == "worse"
        return hits / reps

    assert simulated(n) >= 0.8 - 3 * np.sqrt(0.16 / 250)
    assert simulated(smaller) < 0.8
    assert compare.seeds_for_power(8, 0.05, rng=0)[0] is None  # beyond 256 seeds: no number


@pytest.mark.parametrize("delta_over_sd", [1e3, 1e9, 1e15])
def test_a_shift_many_spreads_wide_is_always_detected(delta_over_sd):
    """Nearly equal initializers (spread 1e-12, delta 0.01) make huge standardized shifts; power stays 1, whatever
    rounding the shift could bring into the simulated variances."""
    for n, k in [(2, 2), (8, 8), (32, 3)]:
        assert compare.detection_power(n, k, delta_over_sd, 0.95, np.random.default_rng(n)) == 1.0


def test_seeds_advice_says_when_it_cannot_tell():
    table = tidy({"a": np.full(8, 0.9), "zeros": np.full(8, 0.465)})
    advice = compare.seeds_advice(table, "test_accuracy", (0.005,), settings=FAST)
    assert advice["seeds"].iloc[0] is None and np.isnan(advice["sd"].iloc[0])


def test_win_matrix_is_the_share_of_seeds_and_is_complementary():
    rng = np.random.default_rng(9)
    matrix = compare.win_matrix(tidy({k: rng.normal(size=10) for k in "abc"}), "test_accuracy", "d")
    for r, c in itertools.permutations(matrix.index, 2):
        assert matrix.loc[r, c] + matrix.loc[c, r] == pytest.approx(1.0)
    table = tidy({"a": np.array([0.9, 0.5, 0.7]), "b": np.array([0.7, 0.6, 0.7])})
    assert compare.win_matrix(table, "test_accuracy", "d").loc["a", "b"] == pytest.approx(1.5 / 3)  # win, loss, tie
    assert compare.win_matrix(table, "test_loss", "d").loc["a", "b"] == pytest.approx(1.5 / 3)
    assert compare.win_matrix(table, "test_accuracy", "d", paired=False).loc["a", "b"] == pytest.approx(5 / 9)


def test_the_test_sets_error_puts_a_floor_under_what_seeds_can_detect():
    """With a test-set standard error of a difference of 0.5 sd, a 1 sd difference is beyond any number of seeds
    (c ~ 3 x 0.5 > 1), and a smaller floor costs seeds."""
    assert compare.seeds_for_power(4, 1.0, rng=0, test_var=0.25)[0] is None
    without, _ = compare.seeds_for_power(4, 1.0, rng=0)
    with_floor, _ = compare.seeds_for_power(4, 1.0, rng=0, test_var=0.05)
    assert with_floor > without
