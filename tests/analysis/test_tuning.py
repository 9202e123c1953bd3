"""Tuned comparisons and sensitivity curves: hand-computed cases, and error rates, coverage and power measured on
simulated grids (null and shifted, 8 and 16 seeds)."""

import numpy as np
import pytest

from bench.analysis import grid_cube, sensitivity, stats, tuning


def _cube(test, val):
    k, m = test.shape[1:]
    names = np.array([[f"i{i} lr={c}" for c in range(m)] for i in range(k)], dtype=object)
    return grid_cube.Cube([f"i{i}" for i in range(k)], ["lr"], [(10.0 ** -(m - c),) for c in range(m)], names,
                          test, val, ~np.isfinite(test))


def _simulate(mu, n, rng, shared=0.01, run=0.01, split=0.005):
    """Runs of a grid: a seed effect shared by every arm (common random numbers), a run effect shared by the run's
    validation and test metrics, and split noise: `(n, k, m)` test and validation."""
    k, m = mu.shape
    seed = rng.normal(0, shared, (n, 1, 1))
    quality = rng.normal(0, run, (n, k, m))
    return (mu + seed + quality + rng.normal(0, split, (n, k, m)),
            mu + seed + quality + rng.normal(0, split, (n, k, m)))


def test_the_choice_prefers_fewer_diverged_runs_then_the_better_validation_mean():
    means = np.array([[0.9, 0.95, 0.8], [0.7, np.nan, 0.6]])
    diverged = np.array([[0, 1, 0], [0, 8, 0]])
    np.testing.assert_array_equal(grid_cube.choose(means, diverged), [0, 0])
    np.testing.assert_array_equal(grid_cube.choose(means, np.zeros((2, 3))), [1, 0])


def test_curve_summaries_against_hand_computed_values():
    x = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(sensitivity.interpolated_argmax(x, np.array([-(0 - 0.7) ** 2, -(1 - 0.7) ** 2,
                                                                         -(2 - 0.7) ** 2])), 0.7)
    assert sensitivity.interpolated_argmax(x, np.array([3.0, 2.0, 1.0])) == 0.0  # the best at the grid's end
    np.testing.assert_allclose(sensitivity.width_within(x, np.array([0.0, 1.0, 0.0]), 0.5), 1.0, atol=1e-3)
    np.testing.assert_allclose(sensitivity.width_within(x, np.array([1.0, 1.0, 0.0]), 0.5), 1.5, atol=1e-3)
    np.testing.assert_allclose(sensitivity.normalized_area(x, np.array([0.0, 1.0, 0.0])), 0.5)
    np.testing.assert_allclose(sensitivity.normalized_area(np.log10([1e-3, 1e-2]), np.array([0.8, 0.9])), 0.85)


@pytest.mark.parametrize("n", [8, 16])
@pytest.mark.parametrize("scenario", ["flat", "clear optimum"])
def test_tuned_intervals_keep_their_coverage_and_error_rate(n, scenario):
    """Every initializer alike: the pairwise intervals hold together (family-wise error <= 5%) and the tuned mean's
    interval covers the best cell's true mean, though the same runs chose the cell. Flat: every learning rate
    alike, the hardest case for the choice; clear: one learning rate best."""
    rng = np.random.default_rng(n + len(scenario))
    k, m, reps = 4, 4, 120
    mu = np.zeros((k, m)) if scenario == "flat" else np.tile([0.80, 0.90, 0.86, 0.70], (k, 1))
    errors, covered = 0, 0.0
    for _ in range(reps):
        result = tuning.tuned(_cube(*_simulate(mu, n, rng)), 0.005, rng=rng, resamples=600, draws=1000)
        truth = mu.max(axis=1)
        covered += np.mean((result.low <= truth) & (truth <= result.high))
        errors += np.any((result.diff_low > 0) | (result.diff_high < 0))
    assert errors / reps <= 0.09, errors / reps  # 5% + Monte Carlo slack (sd 2 pp at 120 replications)
    assert covered / reps >= 0.93, covered / reps


def test_a_naive_interval_that_ignores_the_choice_under_covers():
    """The reason for choosing inside the bootstrap: the t interval at the cell chosen on correlated validation
    runs is biased by the choice (flat grid, 8 cells): it covers less often than the tuned interval."""
    rng = np.random.default_rng(3)
    n, k, m, reps = 16, 1, 8, 150
    mu = np.zeros((k, m))
    naive = ours = 0
    for _ in range(reps):
        test, val = _simulate(mu, n, rng, shared=0.0, run=0.01, split=0.002)
        cube = _cube(test, val)
        pick = int(np.argmax(val.mean(axis=0)[0]))
        runs = test[:, 0, pick]
        half = 2.131 * runs.std(ddof=1) / np.sqrt(n)
        naive += abs(runs.mean()) <= half
        result = tuning.tuned(cube, 0.005, rng=rng, resamples=600)
        ours += result.low[0] <= 0 <= result.high[0]
    assert naive / reps < 0.87 and ours / reps >= 0.93, (naive / reps, ours / reps)


def test_a_better_initializer_is_found_when_tuned():
    """Power: one initializer 2 pp better at its own best learning rate, which is not the others' best."""
    rng = np.random.default_rng(5)
    n, reps = 16, 60
    mu = np.tile([0.80, 0.90, 0.86, 0.70], (4, 1))
    mu[0] = [0.80, 0.86, 0.92, 0.70]
    found = 0
    for _ in range(reps):
        result = tuning.tuned(_cube(*_simulate(mu, n, rng)), 0.005, rng=rng, resamples=600, draws=1000)
        found += result.verdicts[0] == "best" and all(v == "worse" for v in result.verdicts[1:])
        assert result.chosen[0] == 2 or result.stability[0] < 1
    assert found / reps >= 0.8, found / reps


def test_the_best_values_interval_covers_the_true_peak():
    """A concave curve in log lr peaking at 10^-2.3 between grid points: the bootstrap interval of the
    interpolated argmax covers it."""
    rng = np.random.default_rng(7)
    grid = np.array([-4.0, -3.5, -3.0, -2.5, -2.0, -1.5, -1.0])
    peak = -2.3
    mu = (0.95 - 0.04 * (grid - peak) ** 2)[None, :]
    covered, reps = 0, 100
    for _ in range(reps):
        test, val = _simulate(mu, 16, rng, shared=0.005, run=0.005, split=0.003)
        cube = grid_cube.Cube(["a"], ["lr"], [(10.0**g,) for g in grid], np.array([["a"] * 7], dtype=object), test, val,
                           ~np.isfinite(test))
        s = sensitivity.sensitivity(cube, 0.01, rng=rng, draws=500)
        covered += s.best_low[0] <= 10**peak <= s.best_high[0]
    assert covered / reps >= 0.88, covered / reps


def test_a_ranking_that_flips_when_tuned_says_so():
    """At lr index 1 (the reference) `i0` beats `i1` by 3 pp; tuned, `i1` at its own best beats `i0` by 3 pp."""
    rng = np.random.default_rng(11)
    mu = np.array([[0.80, 0.90, 0.88], [0.70, 0.87, 0.93]])
    cube = _cube(*_simulate(mu, 16, rng))
    reference = cube.cells[1][0]
    result = tuning.tuned(cube, 0.005, rng=rng)
    flipped = tuning.ranking(cube, result, reference, rng=rng)
    assert flipped.verdict == "changes" and flipped.reversed == [(0, 1)]
    same = np.array([[0.80, 0.90, 0.88], [0.70, 0.85, 0.86]])
    cube = _cube(*_simulate(same, 16, rng))
    held = tuning.ranking(cube, tuning.tuned(cube, 0.005, rng=rng), reference, rng=rng)
    assert held.verdict == "holds" and not held.reversed


def test_a_cell_whose_runs_diverge_counts_them_and_is_not_chosen_over_one_that_trains():
    """Initializer a's best validation cell loses 2 of 4 runs to divergence: those score as untrained networks in
    its means, and the choice takes a's other cell, whose runs all train."""
    import pandas as pd

    rows = []
    for arm, init, lr, acc in [("a lr=0.1", "a", 0.1, 0.95), ("a lr=0.01", "a", 0.01, 0.90),
                               ("b lr=0.1", "b", 0.1, 0.91), ("b lr=0.01", "b", 0.01, 0.89)]:
        for seed in range(4):
            failed = arm == "a lr=0.1" and seed < 2
            for epoch, value in ((0, 0.1), (1, np.nan if failed else acc + 0.001 * seed)):
                rows.append(dict(dataset="d", model="m", arm=arm, initializer=init, lr=lr, seed=seed, epoch=epoch,
                                 test_accuracy=value, val_accuracy=value, diverged=failed and epoch == 1))
    results = pd.DataFrame(rows)
    found = tuning.analyse(results, "test_accuracy", stats.Settings(draws=500), 0.005)[("d", "m")]
    cube = found.cube
    a, fast = cube.initializers.index("a"), [c for c, (lr,) in enumerate(cube.cells) if lr == 0.1][0]
    assert cube.failed[:, a, fast].sum() == 2 and np.nanmin(cube.test[:, a, fast]) == pytest.approx(0.1)
    assert cube.cells[found.tuned.chosen[a]] == (0.01,)
