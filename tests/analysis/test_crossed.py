"""Crossed init and data-order seeds: the keys cross as documented, a run in the crossed batch equals the run alone,
the variance components are recovered, and intervals that count the data orders cover where naive ones fail."""

import jax
import numpy as np
import pandas as pd
import pytest

from bench import cli, models
from bench.analysis import crossed, stats
from bench.data import datasets
from bench.training.seeding import run_keys
from bench.training.train import TrainConfig, train_task
from initjax import get


def _data(keys):
    return np.asarray(jax.random.key_data(keys))


def test_keys_cross_init_and_data_order_seeds():
    init1, data1 = run_keys(0, "digits", [0, 1, 2])
    init3, data3 = run_keys(0, "digits", list(range(9)), data_seeds=3)  # run r: init seed r // 3, order r % 3
    np.testing.assert_array_equal(_data(init3)[::3], _data(init1))  # init seed s keeps its K = 1 key
    np.testing.assert_array_equal(_data(init3)[0], _data(init3)[2])
    orders = _data(data3).reshape(3, 3, -1)
    np.testing.assert_array_equal(orders[0], orders[1])  # every init seed sees the same 3 data orders
    assert not np.array_equal(orders[0, 0], orders[0, 1]) and not np.array_equal(_data(data3)[0], _data(data1)[0])


def test_a_run_in_the_crossed_batch_equals_the_run_alone():
    data = datasets.load("digits").subset(200, 100)
    model = models.build("mlp", data.input_shape, data.n_classes, (16,), "relu")
    inits = {"he_normal": get("he_normal"), "orthogonal": get("orthogonal")}
    config = TrainConfig("sgd", 0.05, 32, 2)
    batch = train_task(data, model, inits, list(range(6)), config, progress=False, data_seeds=3).frame
    alone = train_task(data, model, inits, [5], config, progress=False, data_seeds=3).frame
    columns = ["test_loss", "test_accuracy", "train_loss"]
    np.testing.assert_allclose(batch[batch.seed == 5][columns].to_numpy(), alone[columns].to_numpy(), rtol=2e-5)
    other_order = batch[batch.seed == 4][columns].to_numpy()  # same init seed 1, another data order
    assert not np.allclose(other_order, alone[columns].to_numpy())


def _table(n, k, sds, rng):
    return (rng.normal(0, sds[0], (n, 1)) + rng.normal(0, sds[1], (1, k)) + rng.normal(0, sds[2], (n, k)))


def test_components_recover_known_variances():
    x = _table(400, 60, (1.0, 0.5, 0.8), np.random.default_rng(0))
    np.testing.assert_allclose(crossed.components(x), [1.0, 0.25, 0.64], rtol=0.25)
    assert np.isnan(crossed.components(x[:1])).all()  # one init seed: nothing to estimate


@pytest.mark.parametrize("n, k", [(8, 4), (16, 4)])
def test_component_intervals_cover(n, k):
    rng = np.random.default_rng(n)
    true = np.array([1.0, 0.25, 0.64])
    reps, hits = 300, np.zeros(3)
    for _ in range(reps):
        bounds = crossed.component_intervals(_table(n, k, np.sqrt(true), rng))
        hits += (bounds[:, 0] <= true) & ((true <= bounds[:, 1]) | np.isnan(bounds[:, 1]))
    se = np.sqrt(0.05 * 0.95 / reps)
    assert hits[0] / reps >= 0.93 - 3 * se and hits[2] / reps >= 0.93 - 3 * se, hits / reps
    assert hits[1] / reps >= 0.85, hits / reps  # 4 data orders: 3 degrees of freedom


def _tidy(x):
    n, k = x.shape
    return pd.DataFrame({"dataset": "d", "model": "m", "arm": "a", "seed": np.repeat(np.arange(n), k),
                         "data_seed": np.tile(np.arange(k), n), "epoch": 1, "test_accuracy": x.ravel(),
                         "diverged": False})


def test_mean_intervals_count_the_data_orders_where_naive_ones_fail():
    rng = np.random.default_rng(1)
    reps, crossed_hits, naive_hits = 300, 0, 0
    for _ in range(reps):
        table = _tidy(0.8 + _table(16, 4, (0.01, 0.01, 0.005), rng))
        extra = {key: [part] for key, part in crossed.arm_variances(table, ["test_accuracy"]).items()}
        row = stats.summarize(table, ["test_accuracy"], stats.Settings(n_resamples=100), extra).iloc[0]
        crossed_hits += row.mean_low <= 0.8 <= row.mean_high
        low, high = stats.t_interval(table["test_accuracy"].to_numpy())  # 64 runs taken as independent
        naive_hits += low <= 0.8 <= high
    assert crossed_hits / reps >= 0.93 - 3 * np.sqrt(0.05 * 0.95 / reps)
    assert naive_hits / reps < 0.8


def test_cli_crosses_seeds_and_reports_where_the_spread_comes_from(tmp_path, capsys):
    out = tmp_path / "crossed"
    assert cli.main(["run", "default", "--smoke", "--datasets", "digits", "--seeds", "3", "--data-seeds", "2",
                     "--out", str(out), "--no-progress"]) == 0
    results = pd.read_csv(out / "results.csv")
    final = results[results.epoch == 1]
    assert len(final) == 8 * 3 * 2 and set(final.data_seed) == {0, 1} and set(final.seed) == {0, 1, 2}
    text = (out / "report.md").read_text()
    assert "### Where the spread comes from: 3 init seeds x 2 data orders" in text
    assert "3 init seeds x 2 data orders per initializer, crossed" in text
    assert cli.main(["run", "default", "--smoke", "--data-seeds", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--data-seeds must be an integer from 1 to 1,000" in capsys.readouterr().err
