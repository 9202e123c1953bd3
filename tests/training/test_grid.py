"""Hyperparameter grids: values parsed as written, one program for every cell, a run in the grid equal to the
run alone, common random numbers across cells, and the factors in the results."""

import dataclasses

import jax
import numpy as np
import pytest

import bench
import initjax
from bench import models
from bench.data import datasets
from bench.errors import UserError
from bench.experiments import experiment_file, presets
from bench.training import recipes
from bench.training.grid import Grid, arm_name, parse_values
from bench.training.initialization import initial_state
from bench.training.seeding import run_keys
from bench.training.train import TrainConfig, train_task
from tests.helpers import count_compiles


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits").subset(400, 200)


def _train(data, grid, names=("he_normal", "glorot_uniform"), seeds=(0, 1, 2), config=None, **kw):
    model = models.mlp_for(data.n_features, data.n_classes, (16,))
    config = config or TrainConfig("adam", 1e-3, 50, 2, schedule="warmup_cosine(warmup=0.2)")
    return train_task(data, model, {n: initjax.get(n) for n in names}, list(seeds), config, progress=False,
                      grid=grid, **kw)


@pytest.mark.parametrize("text, values", [
    ("1e-3,1e-2", (1e-3, 1e-2)),
    ("logspace(1e-4, 1e-1, 4)", (1e-4, 1e-3, 1e-2, 1e-1)),
    ("linspace(0.5, 2, 4)", (0.5, 1.0, 1.5, 2.0)),
    ([0.1, 1], (0.1, 1.0)),
    (0.3, (0.3,)),
])
def test_values_are_parsed_as_written(text, values):
    np.testing.assert_allclose(parse_values(text), values, rtol=1e-12)


@pytest.mark.parametrize("grid, message", [
    (dict(lr="1e-3,abc"), "comma-separated list"),
    (dict(lr="logspace(0, 1, 3)"), "LOW, HIGH > 0"),
    (dict(lr=[1e-3, -1.0]), "> 0"),
    (dict(lr=[1e-3, 1e-3]), "twice"),
    (dict(momentum=[0.9, 1.0]), "< 1"),
    (dict(weight_decay="inf"), ">= 0"),
    (dict(init_scale=[1.0], init_scale_on="re:("), "regular expression"),
    (dict(batch_size=[32]), "unknown grid factor"),
])
def test_bad_grids_are_one_line_errors(grid, message):
    with pytest.raises(UserError, match=message):
        Grid.of(**grid).validate()


def test_cells_are_the_product_and_arms_are_initializer_major():
    grid = Grid.of(lr=[1e-3, 1e-2], init_scale=[0.5, 2])
    assert grid.cells() == [{"lr": 1e-3, "init_scale": 0.5}, {"lr": 1e-3, "init_scale": 2.0},
                            {"lr": 1e-2, "init_scale": 0.5}, {"lr": 1e-2, "init_scale": 2.0}]
    arms = presets.get("default").override(initializers=["he_normal", "zeros"], grid=grid).arms()
    assert list(arms)[:2] == ["he_normal lr=0.001 scale=0.5", "he_normal lr=0.001 scale=2"]
    assert arms["zeros lr=0.01 scale=2"] == {"initializer": "zeros", "lr": 0.01, "init_scale": 2.0}
    assert Grid().cells() == [{}] and arm_name("he_normal", {}) == "he_normal"


def test_a_run_in_the_grid_equals_the_run_alone_with_its_values(digits):
    """Same injected optimizer, same keys: the grid's (he_normal, lr 1e-2, wd 1e-3, seed 2) is the lone run."""
    grid = Grid.of(lr=[1e-3, 1e-2, 1e-1], weight_decay=[0.0, 1e-3])
    batch = _train(digits, grid)
    alone = _train(digits, Grid.of(lr=[1e-2], weight_decay=[1e-3]), names=("he_normal",), seeds=(2,))
    arm = "he_normal lr=0.01 wd=0.001"
    rows = batch.frame[(batch.frame.arm == arm) & (batch.frame.seed == 2)].reset_index(drop=True)
    metrics = ["train_loss", "train_accuracy", "test_loss", "test_accuracy"]
    np.testing.assert_allclose(rows[metrics].to_numpy(), alone.frame[metrics].to_numpy(), rtol=1e-5, atol=1e-6)
    index = list(grid.cells()).index({"lr": 1e-2, "weight_decay": 1e-3})  # he_normal is the first initializer
    for got, want in zip(jax.tree.leaves(batch.params), jax.tree.leaves(alone.params)):
        np.testing.assert_allclose(got[index, 2], want[0, 0], rtol=2e-5, atol=2e-6)
    # the values really differ between cells: the three learning rates end in three different places
    finals = batch.frame[batch.frame.epoch == 2].groupby("arm")["train_loss"].mean()
    assert finals.nunique() == len(finals)


def test_injecting_a_value_changes_no_number(digits):
    """The recipe's lr as a constant of the program and the same lr held in each run's state train alike."""
    config = TrainConfig("momentum", 3e-2, 50, 2)
    plain, injected = _train(digits, Grid(), config=config), _train(digits, Grid.of(lr=[3e-2]), config=config)
    np.testing.assert_allclose(plain.frame["test_loss"], injected.frame["test_loss"], rtol=1e-6)


def test_common_random_numbers_hold_across_the_grid(digits):
    """Seed s starts every cell from the same draw (times its scale); each run's state holds its own values."""
    grid = Grid.of(lr=[1e-3, 1e-2], init_scale=[0.5, 2.0])
    model = models.mlp_for(digits.n_features, digits.n_classes, (16,))
    optimizer = TrainConfig("sgd", 1e-3, 50, 1).optax(400, injected=("lr",))
    inits = [initjax.get("he_normal"), initjax.get("glorot_uniform")]
    keys, _ = run_keys(0, "digits", [0, 1, 2])
    state = initial_state(model, optimizer, inits, keys, digits.input_shape, None, grid)
    kernel, bias = state.params["Dense_0"]["kernel"], state.params["Dense_0"]["bias"]  # (2 x 4 arms, 3 seeds, ...)
    for i in range(2):
        np.testing.assert_array_equal(kernel[4 * i + 2], kernel[4 * i])  # lr 1e-2 and 1e-3 at scale 0.5
        np.testing.assert_allclose(kernel[4 * i + 1], 4.0 * kernel[4 * i], rtol=1e-6)  # scale 2 vs 0.5
    assert np.all(bias == 0)  # the scale multiplies kernels only
    assert not np.allclose(kernel[0], kernel[4])  # two initializers: two draws
    lrs = state.opt_state.hyperparams["lr"]
    np.testing.assert_allclose(lrs, np.repeat(np.tile([1e-3, 1e-3, 1e-2, 1e-2], 2)[:, None], 3, axis=1), rtol=1e-6)


def test_init_scale_multiplies_the_initial_draw(digits):
    model = models.mlp_for(digits.n_features, digits.n_classes, (16,))
    config = TrainConfig("sgd", 1e-9, 400, 1)  # one tiny step: the parameters stay at their start
    grid = Grid.of(init_scale=[1.0, 3.0], init_scale_on="Dense_0/kernel")
    result = train_task(digits, model, {"he_normal": initjax.get("he_normal")}, [0, 1], config, progress=False,
                        grid=grid)
    k0, k1 = result.params["Dense_0"]["kernel"], result.params["Dense_1"]["kernel"]
    np.testing.assert_allclose(k0[1], 3.0 * k0[0], rtol=1e-5)
    np.testing.assert_allclose(k1[1], k1[0], rtol=1e-6)  # not matched: as drawn
    with pytest.raises(UserError, match="matches no parameter"):
        _train(digits, Grid.of(init_scale=[2.0], init_scale_on="head/*"))


def test_the_grid_compiles_as_often_as_one_value(digits):
    """The values are data held by the runs' optimizer states, made on the host (``bench.training.fills``): another
    single value compiles nothing; five compile the task's programs once (start, steps and evaluation, whose arm
    axis is 5 times longer; the epoch orders are shared)."""
    def run(values):
        return lambda: _train(digits, Grid.of(lr=values, momentum=[0.8]), config=TrainConfig("sgd", 1e-3, 64, 1))

    run([0.011])()  # the task's programs and the small eager helpers
    one, many = count_compiles(run([0.012])), count_compiles(run([0.013, 0.014, 0.015, 0.016, 0.017]))
    assert (one, many) == (0, 3)


def test_momentum_is_the_optimizers_own_argument():
    assert recipes.MOMENTUM_ARGUMENT["adam"] == "b1" and recipes.MOMENTUM_ARGUMENT["sgd"] == "momentum"
    with pytest.raises(UserError, match="give it once"):
        recipes.check("adam(b1=0.8)", injected=("momentum",))


def test_adamw_weight_decay_zero_means_none():
    """optax.adamw decays by 1e-4 by default; a recipe's weight_decay 0 must not."""
    import jax.numpy as jnp

    params = {"w": jnp.ones(3)}
    zero = recipes.build("adamw", 0.1)
    updates, _ = zero.update({"w": jnp.zeros(3)}, zero.init(params), params)
    np.testing.assert_array_equal(updates["w"], 0.0)


def test_experiment_files_cli_options_and_python_agree(tmp_path):
    text = (experiment_file.dump(presets.get("default")) + "\n").replace(
        "[train]", '[grid]\nlr = "logspace(1e-3, 1e-1, 3)"\ninit_scale = [1, 2]\n\n[train]')
    path = tmp_path / "study.toml"
    path.write_text(text)
    from_file = experiment_file.load(path)
    assert from_file.grid == Grid(lr=(1e-3, 1e-2, 1e-1), init_scale=(1.0, 2.0))
    assert experiment_file.load(path, ["grid.lr=[0.5]"]).grid.lr == (0.5,)
    overridden = presets.get("default").override(lr="1e-3,1e-2,1e-1", init_scale=[1, 2])
    assert overridden.grid == from_file.grid
    assert presets.get("default").override(lr="0.01").train.lr == 0.01  # one value: the recipe's
    assert experiment_file.load(tmp_path / "again.toml" if False else path).record() == from_file.record()
    written = tmp_path / "dumped.toml"
    written.write_text(experiment_file.dump(from_file))
    assert experiment_file.load(written).grid == from_file.grid


def test_results_have_one_column_per_factor_and_old_files_still_load(tmp_path, grid_run):
    experiment = dataclasses.replace(presets.smoke(presets.get("default")), initializers=("he_normal", "zeros"),
                                     tasks=presets.smoke(presets.get("default")).tasks[1:])
    outcome = grid_run.outcome
    columns = list(outcome.results.columns)
    assert columns[columns.index("arm"):columns.index("arm") + 4] == ["arm", "initializer", "lr", "seed"]
    assert set(outcome.results["lr"]) == {1e-3, 1e-1}
    assert set(outcome.summary["lr"]) == {1e-3, 1e-1}
    assert "val_accuracy" in outcome.results  # held out for tuning: digits has no validation split
    assert outcome.record.tasks["digits"].data.count("validation") == 1
    report = (grid_run.folder / "report.md").read_text()
    for section in ("Tuned comparison", "Sensitivity to lr", "Does the ranking at lr=0.001 hold?",
                    "digits-sensitivity-test_accuracy.png"):
        assert section in report
    # without a grid: no factor columns beyond the initializer, no grid section
    plain = bench.run(experiment, out=tmp_path / "plain", progress=False, formats=("md", "csv"))
    assert "lr" not in plain.results and "Tuned comparison" not in (tmp_path / "plain" / "report.md").read_text()
