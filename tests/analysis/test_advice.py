"""The seeds advice: the procedure's own power, simulated, reaches what it says at the count it gives and not one
count lower; degenerate initializers stay out of the spread; the test set's floor counts."""

import numpy as np
import pandas as pd
import pytest

from bench.analysis import advice, verdicts
from bench.analysis.stats import Settings

FAST = Settings(draws=2000)


def tidy(values: dict[str, np.ndarray], dataset="d") -> pd.DataFrame:
    """A results table of one epoch: values[name][seed]."""
    return pd.DataFrame([dict(dataset=dataset, model="m", arm=name, seed=seed, epoch=1, test_accuracy=x,
                              test_loss=1 - x, diverged=False)
                         for name, v in values.items() for seed, x in enumerate(v)])


def test_spread_leaves_out_constant_initializers():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (200, 3))
    with_zeros = np.column_stack([x, np.full(200, 0.465)])
    assert advice.paired_spread(with_zeros) == pytest.approx(np.sqrt(2), rel=0.1)
    assert advice.paired_spread(with_zeros) == advice.paired_spread(x)
    assert np.isnan(advice.paired_spread(np.column_stack([x[:, 0], np.full(200, 0.5)])))


def test_seeds_advice_matches_a_simulation_of_the_procedure_used():
    k, delta = 4, 1.0  # paired sd 1
    n, power = advice.seeds_for_power(k, delta, rng=0)
    assert n is not None and 0.8 <= power < 0.9
    smaller = advice.SEED_GRID[advice.SEED_GRID.index(n) - 1]

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
    assert simulated(smaller) < 0.8 + 3 * np.sqrt(0.16 / 250)
    assert advice.seeds_for_power(8, 0.05, rng=0)[0] is None  # beyond 256 seeds: no number


@pytest.mark.parametrize("delta_over_sd", [1e3, 1e9, 1e15])
def test_a_shift_many_spreads_wide_is_always_detected(delta_over_sd):
    """Nearly equal initializers (spread 1e-12, delta 0.01) make huge standardized shifts; power stays 1, whatever
    rounding the shift could bring into the simulated variances."""
    for n, k in [(2, 2), (8, 8), (32, 3)]:
        assert advice.detection_power(n, k, delta_over_sd, 0.95, np.random.default_rng(n)) == 1.0


def test_seeds_advice_says_when_it_cannot_tell():
    table = tidy({"a": np.full(8, 0.9), "zeros": np.full(8, 0.465)})
    said = advice.seeds_advice(table, "test_accuracy", (0.005,), settings=FAST)
    assert said["seeds"].iloc[0] is None and np.isnan(said["sd"].iloc[0])


def test_the_test_sets_error_puts_a_floor_under_what_seeds_can_detect():
    """With a test-set standard error of a difference of 0.5 sd, a 1 sd difference is beyond any number of seeds
    (c ~ 3 x 0.5 > 1), and a smaller floor costs seeds."""
    assert advice.seeds_for_power(4, 1.0, rng=0, test_var=0.25)[0] is None
    without, _ = advice.seeds_for_power(4, 1.0, rng=0)
    with_floor, _ = advice.seeds_for_power(4, 1.0, rng=0, test_var=0.05)
    assert with_floor > without
