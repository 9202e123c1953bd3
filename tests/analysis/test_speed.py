"""Time to target and the area under the curve (``bench.analysis.speed``): each run's time against a hand count,
the Kaplan-Meier median, its interval and the RMST against independent computations (the empirical quantile,
Greenwood's band by hand, the area under the curve), a diverged run censored at the end of training; and, by
simulation (the slow step), the speed verdicts' family-wise error, coverage and power at 8, 16 and 32 seeds with 0%,
30% and 70% of runs censored."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.analysis import speed, stats
from bench.errors import UserError
from tests.analysis.test_error_rates import equal, error_rates, within_bounds


def _curves(values: dict, epochs: int = 4, diverged: dict | None = None) -> pd.DataFrame:
    """A task's rows from each run's curve: ``values[(arm, seed)]`` = accuracy at epochs 0..epochs."""
    rows = []
    for (arm, seed), curve in values.items():
        for epoch, v in enumerate(curve):
            bad = diverged is not None and (arm, seed) in diverged and epoch >= diverged[(arm, seed)]
            rows.append({"dataset": "t", "model": "m", "arm": arm, "initializer": arm, "seed": seed, "epoch": epoch,
                         "test_accuracy": np.nan if bad else v, "diverged": bad})
    return pd.DataFrame(rows)


def test_times_censoring_and_a_diverged_run_against_a_hand_count():
    """Target 0.8: a reaches it at epochs 1, 2 and 4; b at 3, never, and once before diverging (an event) and once
    diverging before it (censored at the end of training, epoch 4, not at its divergence)."""
    values = {("a", 0): [0.1, 0.85, 0.9, 0.9, 0.9], ("a", 1): [0.1, 0.5, 0.8, 0.9, 0.9],
              ("a", 2): [0.1, 0.2, 0.3, 0.5, 0.81], ("a", 3): [0.1, 0.9, 0.9, 0.9, 0.9],
              ("b", 0): [0.1, 0.5, 0.6, 0.8, 0.8], ("b", 1): [0.1, 0.5, 0.6, 0.7, 0.7],
              ("b", 2): [0.1, 0.82, 0.9, 0.9, 0.9], ("b", 3): [0.1, 0.5, 0.7, 0.9, 0.9]}
    task = _curves(values, diverged={("b", 2): 3, ("b", 3): 2})
    item = speed.task_speed(task, "test_accuracy", 0.8, 0.1, stats.Settings(draws=2000))
    runs = item.runs.set_index(["arm", "seed"])
    assert runs["restricted"].to_dict() == {("a", 0): 1, ("a", 1): 2, ("a", 2): 4, ("a", 3): 1,
                                            ("b", 0): 3, ("b", 1): 4, ("b", 2): 1, ("b", 3): 4}
    assert runs["reached"].tolist() == [True] * 5 + [False, True, False]
    arms = item.arms.set_index("arm")
    assert arms.at["a", "reached"] == 1.0 and arms.at["b", "reached"] == 0.5
    assert arms.at["a", "rmst"] == pytest.approx(2.0) and arms.at["b", "rmst"] == pytest.approx(3.0)
    low, high = sps.t.interval(0.95, 3, loc=3.0, scale=np.std([3, 4, 1, 4], ddof=1) / 2)
    assert (arms.at["b", "rmst_low"], arms.at["b", "rmst_high"]) == (pytest.approx(low), pytest.approx(high))
    area = np.trapezoid([0.1, 0.85, 0.9, 0.9, 0.9], dx=1) / 4  # the mean height of a's seed 0
    assert runs.at[("a", 0), "auc"] == pytest.approx(area)


def test_the_median_its_interval_and_the_rmst_against_independent_computations():
    """With censoring at the end of training only, the Kaplan-Meier median is the empirical quantile (the first
    time at which half the runs got there) and the RMST is the area under the Kaplan-Meier curve up to tau; the
    median's interval is where the log-log Greenwood band crosses one half, by hand."""
    rng = np.random.default_rng(1)
    tau = 7
    for _ in range(20):
        time = np.ceil(rng.lognormal(np.log(4), 0.6, 12))
        reached = time <= tau
        restricted = np.minimum(time, tau)
        median, _, _ = speed.kaplan_meier(restricted, reached)
        hits = np.array([(time <= t).mean() for t in range(tau + 1)])
        expected = next((t for t in range(tau + 1) if hits[t] >= 0.5), np.inf)
        assert median == expected
        survival = 1 - hits  # the share not yet there after each whole epoch
        assert restricted.mean() == pytest.approx(survival[:tau].sum())  # the area under the step curve
    time = np.array([1, 2, 2, 3, 4, 4, 4, 5.0])  # censored at 5: one run short of the target
    at_risk, events = np.array([8, 7, 5, 4]), np.array([1, 2, 1, 3])
    s = np.cumprod(1 - events / at_risk)
    greenwood = np.cumsum(events / (at_risk * (at_risk - events))) / np.log(s) ** 2
    z = sps.norm.ppf(0.975)
    low, high = s ** np.exp(z * np.sqrt(greenwood)), s ** np.exp(-z * np.sqrt(greenwood))
    times = np.array([1, 2, 3, 4.0])
    assert speed.kaplan_meier(time, time <= 4) == (times[s <= 0.5][0], times[low <= 0.5][0], times[high <= 0.5][0])


def _times(n, k, censored, faster=1.0):
    """Tables `(seeds, k)` of restricted epochs to target (better direction: negated), from log-normal times
    shared in part by each seed's runs (paired), rounded up to whole epochs, censored at the epoch tau that
    leaves about ``censored`` of the runs short of the target; column 0's times scaled by ``faster``."""
    mu, seed_sd, run_sd = np.log(4.0), 0.3, 0.4
    spread = np.hypot(seed_sd, run_sd)
    tau = 20 if censored == 0 else int(np.ceil(np.exp(mu + spread * sps.norm.ppf(1 - censored))))

    def draw(rng):
        z = mu + rng.normal(0, seed_sd, (n, 1)) + rng.normal(0, run_sd, (n, k))
        z[:, 0] += np.log(faster)
        return -np.minimum(np.ceil(np.exp(z)), tau)

    return draw, tau


@pytest.mark.slow
@pytest.mark.parametrize("censored", [0.0, 0.3, 0.7])
@pytest.mark.parametrize("n", [8, 16, 32])
def test_speed_verdicts_keep_their_error_rate_and_coverage(n, censored):
    """Four initializers of the same speed: no claim of a slower or a faster one beyond 5% family-wise (the pick
    of the fastest included), and the RMST differences covered together at 95%, whatever the censoring (at 70%
    most runs tie at tau)."""
    draw, tau = _times(n, 4, censored)
    rates = within_bounds(draw, equal(4), margin=speed.SPEED_MARGIN * tau, seed=n + int(10 * censored))
    assert rates.within, rates


@pytest.mark.slow
@pytest.mark.parametrize(("n", "censored", "power"), [(8, 0.3, 0.6), (16, 0.3, 0.9), (16, 0.7, 0.5)])
def test_a_faster_initializer_is_found(n, censored, power):
    """One initializer reaching the target in 60% of the others' time: called the fastest (best) at least this
    often over 400 tables (measured: the simulation's rates, with a margin for its own error)."""
    draw, tau = _times(n, 4, censored, faster=0.6)
    truth = np.zeros((4, 4))
    _, _, _, best = error_rates(draw, truth, reps=400, margin=speed.SPEED_MARGIN * tau, seed=7 * n)
    assert best >= power, best


@pytest.mark.parametrize(("spec", "expected"), [
    (None, speed.Target(0.95, True, None)),
    ("0.9", speed.Target(0.9, False, None)),
    ("90%", speed.Target(0.9, True, None)),
    ("test_loss=0.3", speed.Target(0.3, False, "test_loss")),
    (" test_accuracy = 80% ", speed.Target(0.8, True, "test_accuracy")),
])
def test_a_speed_target_is_a_level_a_share_or_either_for_a_metric(spec, expected):
    assert speed.parse_target(spec) == expected


@pytest.mark.parametrize("spec", ["fast", "120%", "0%", "=0.9", "test_loss=", "nan", "inf"])
def test_a_bad_speed_target_is_one_line_naming_the_option(spec):
    with pytest.raises(UserError, match=r"^--speed-target .* is not a level \(0\.9\).*test_loss=0\.3\)$"):
        speed.parse_target(spec, "--speed-target")


def test_a_given_target_and_another_metric_against_a_hand_count():
    """A level given (0.8) is used as is; a share (50%) of another metric's best mean final, a loss, is the best
    divided by it; a metric the table lacks is refused in one line."""
    values = {("a", 0): [0.1, 0.85, 0.9], ("a", 1): [0.1, 0.5, 0.8], ("b", 0): [0.1, 0.5, 0.6],
              ("b", 1): [0.1, 0.82, 0.9]}
    task = _curves(values, epochs=2)
    task["test_loss"] = 1 - task["test_accuracy"]  # a: finals 0.1, 0.2 (mean 0.15); b: 0.4, 0.1 (0.25)
    given = speed.analyse(task, "test_accuracy", stats.Settings(draws=500), target=speed.parse_target("0.8"))
    (item,) = given.values()
    assert item.target == 0.8 and item.chosen == "given"
    assert item.runs.set_index(["arm", "seed"])["restricted"].to_dict() == {("a", 0): 1, ("a", 1): 2, ("b", 0): 2,
                                                                            ("b", 1): 1}
    assert item.runs["reached"].tolist() == [True, True, False, True]
    (loss,) = speed.analyse(task, "test_accuracy", stats.Settings(draws=500),
                            target=speed.parse_target("test_loss=50%")).values()
    assert loss.metric == "test_loss" and loss.target == pytest.approx(0.15 / 0.5)
    assert loss.chosen == "50% of the best mean final, the best divided by 0.5"
    with pytest.raises(UserError, match="the speed target's metric 'val_loss' is not in the results"):
        speed.analyse(task, "test_accuracy", stats.Settings(), target=speed.parse_target("val_loss=0.2"))
