"""Flax NNX models (``bench.models.nnx_model``): the same computation as linen's, rules by NNX path, BatchNorm and
Dropout under the vmap over arms and seeds, and bad input refused in one line."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

import bench
import initjax
from bench import data, models
from bench.errors import UserError
from bench.training.train import TrainConfig, train_task
from initjax import rules

WIDTH = 16


class LinenMLP(nn.Module):
    n_outputs: int = 3

    @nn.compact
    def __call__(self, x):
        x = jax.nn.relu(nn.Dense(WIDTH, name="hidden_0")(x))
        x = jax.nn.relu(nn.Dense(WIDTH, name="hidden_1")(x))
        return nn.Dense(self.n_outputs, name="head")(x)


class NNXMLP(nnx.Module):
    """The linen MLP above in NNX, its layers named alike (a parameter's path names its draw)."""

    def __init__(self, din, dout, rngs: nnx.Rngs):
        self.hidden_0 = nnx.Linear(din, WIDTH, rngs=rngs)
        self.hidden_1 = nnx.Linear(WIDTH, WIDTH, rngs=rngs)
        self.head = nnx.Linear(WIDTH, dout, rngs=rngs)

    def __call__(self, x):
        return self.head(jax.nn.relu(self.hidden_1(jax.nn.relu(self.hidden_0(x)))))


class NNXNormDropMLP(nnx.Module):
    """Layers in a list (paths ``layers/0/kernel``), BatchNorm and Dropout switched by ``train()``/``eval()``."""

    def __init__(self, din, dout, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(din, WIDTH, rngs=rngs), nnx.Linear(WIDTH, WIDTH, rngs=rngs)])
        self.norm = nnx.BatchNorm(WIDTH, rngs=rngs)
        self.drop = nnx.Dropout(0.3, rngs=rngs)
        self.head = nnx.Linear(WIDTH, dout, rngs=rngs)

    def __call__(self, x):
        for layer in self.layers:
            x = jax.nn.relu(layer(x))
        return self.head(self.drop(self.norm(x)))


def _data():
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=144, n_features=6, n_informative=4, n_classes=3, random_state=0)
    x = x.astype("float32")
    return data.arrays(x[:96], y[:96], x[96:], y[96:], name="toy")


ARMS = {"he": rules.compile_rules({"*/kernel": "he_normal", "*/bias": "normal(stddev=0.1)"}),
        "zero-head": rules.compile_rules({"head/kernel": "zeros", "*/kernel": "glorot_uniform",
                                          "*/bias": "normal(stddev=0.1)"})}
CONFIG = TrainConfig(optimizer="adam", lr=1e-2, batch_size=32, epochs=2)
LOSS = "softmax_cross_entropy"
METRICS = ["train_loss", "train_accuracy", "test_loss", "test_accuracy"]


def test_an_nnx_model_trains_exactly_as_the_same_linen_model():
    """Same layers, same rules (biases too), same seeds: the same initial parameters, the same training."""
    d = _data()
    linen = train_task(d, models.from_spec(LinenMLP, n_outputs=3, input_shape=d.input_shape), ARMS, [0, 1], CONFIG,
                       progress=False, loss=LOSS)
    nnx_run = train_task(d, models.from_spec(NNXMLP, n_outputs=3, input_shape=d.input_shape), ARMS, [0, 1], CONFIG,
                         progress=False, loss=LOSS)
    assert jax.tree.structure(linen.params) == jax.tree.structure(nnx_run.params)
    for (path, a), b in zip(jax.tree.leaves_with_path(linen.params), jax.tree.leaves(nnx_run.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=rules.path_name(path))
    np.testing.assert_allclose(linen.frame[METRICS].to_numpy(), nnx_run.frame[METRICS].to_numpy(), rtol=1e-5,
                               atol=1e-6)
    assert (nnx_run.params["head"]["kernel"][1] != 0).any()  # trained away from the zero head


def test_an_nnx_model_with_batchnorm_and_dropout_runs_in_the_batch_as_alone():
    """8 arms x 4 seeds in one vmapped program; one (arm, seed) trained alone gives its numbers."""
    d = _data()
    model = models.from_spec(NNXNormDropMLP, n_outputs=3, input_shape=d.input_shape)
    arms = {name: initjax.get(name) for name in ("he_normal", "glorot_uniform", "lecun_normal", "orthogonal",
                                                 "he_uniform", "glorot_normal", "normal(stddev=0.1)")}
    arms["zero-head"] = rules.compile_rules({"head/kernel": "zeros", "*/kernel": "he_normal"})
    batch = train_task(d, model, arms, [0, 1, 2, 3], CONFIG, progress=False, loss=LOSS)
    alone = train_task(d, model, {"zero-head": arms["zero-head"]}, [2], CONFIG, progress=False, loss=LOSS)
    rows = batch.frame[(batch.frame.arm == "zero-head") & (batch.frame.seed == 2)].reset_index(drop=True)
    np.testing.assert_allclose(rows[METRICS].to_numpy(), alone.frame[METRICS].to_numpy(), rtol=1e-5, atol=1e-6)
    # (the test metrics are evaluation-mode calls: they use each run's own running statistics)
    assert sorted(rules.path_name(p) for p, _ in jax.tree.leaves_with_path(batch.params))[:4] == [
        "head/bias", "head/kernel", "layers/0/bias", "layers/0/kernel"]


def _hidden(variables, x):
    """The NormDrop MLP's activations before its BatchNorm, by hand from its parameters."""
    p = variables["params"]["layers"]
    for i in ("0", "1"):
        x = jax.nn.relu(x @ p[i]["kernel"] + p[i]["bias"])
    return x


def test_dropout_is_on_in_training_off_in_evaluation_and_differs_per_step_key():
    d = _data()
    model = models.from_spec(NNXNormDropMLP, n_outputs=3, input_shape=d.input_shape)
    x = jnp.asarray(d.x_test[:8])
    variables = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)
    evaluation = [model.apply(variables, x) for _ in range(2)]
    np.testing.assert_array_equal(*evaluation)  # deterministic, running statistics
    calls = [model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(k)}, mutable=["batch_stats"])
             for k in (1, 1, 2)]
    train = [outputs for outputs, _ in calls]
    before, after = variables["batch_stats"]["norm"]["mean"], calls[0][1]["batch_stats"]["norm"]["mean"]
    assert not np.allclose(before, after)  # a training call moves the running mean (momentum 0.99)
    np.testing.assert_allclose(after, 0.99 * before + 0.01 * jnp.mean(_hidden(variables, x), axis=0), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(train[0], train[1])  # the step's key decides the mask
    assert not np.array_equal(train[0], train[2]) and not np.array_equal(train[0], evaluation[0])
    with pytest.raises(Exception, match="dropout"):
        model.apply(variables, x, train=True, mutable=["batch_stats"])  # training needs the run's dropout key


def test_bad_nnx_models_are_refused_in_one_line():
    with pytest.raises(UserError, match="nnx.Module instance, which holds one draw"):
        models.from_spec(NNXMLP(4, 3, nnx.Rngs(0)))

    class Counter(nnx.Variable):
        pass

    class Counting(nnx.Module):
        def __init__(self, din, dout, rngs):
            self.linear = nnx.Linear(din, dout, rngs=rngs)
            self.calls = Counter(jnp.zeros(()))

        def __call__(self, x):
            return self.linear(x)

    model = models.from_spec(Counting, n_outputs=3, input_shape=(4,))
    with pytest.raises(UserError, match="nnx variables of type Counter"):
        model.init(jax.random.key(0), jnp.zeros((1, 4)))
    with pytest.raises(UserError, match=r"NNXMLP\(width=3, din=4, dout=3, rngs=...\) failed: TypeError"):
        models.from_spec(NNXMLP, {"width": 3}, n_outputs=3, input_shape=(4,))


class Opaque(nn.Module):
    """A linen model of no Dense or Conv layer: nothing a probe can see."""

    @nn.compact
    def __call__(self, x):
        return x @ self.param("w", nn.initializers.lecun_normal(), (x.shape[-1], 3))


def test_the_schemes_act_on_nnx_layers_as_on_linen_ones_and_refuse_a_model_they_cannot_see():
    """LSUV, data-dependent init, MetaInit and mean-field init probe the layers' outputs: on the NNX MLP they give
    the linen MLP's parameters (the same layers, names and draws), and change the base draw; a model with no layer a
    probe sees is refused (the scheme would leave its base draw as it is, silently)."""
    from bench.training.initialization import init_params
    from bench.training.seeding import run_keys

    d = _data()
    keys, _ = run_keys(0, "toy", [0, 1])
    x = jnp.asarray(d.x_train)
    for name in ("lsuv", "data_dependent", "metainit(steps=3)", "mean_field(sigma_w2=1.5, sigma_b2=0.05)"):
        scheme = initjax.get(name)
        drawn = [init_params(models.from_spec(spec, n_outputs=3, input_shape=d.input_shape), [scheme], keys,
                             d.input_shape, x) for spec in (LinenMLP, NNXMLP)]
        for (path, a), b in zip(jax.tree.leaves_with_path(drawn[0]), jax.tree.leaves(drawn[1])):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"{name} {rules.path_name(path)}")
        base = init_params(models.from_spec(NNXMLP, n_outputs=3, input_shape=d.input_shape), [scheme.base], keys,
                           d.input_shape, x)
        assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(drawn[1]), jax.tree.leaves(base))), name
    with pytest.raises(UserError, match="init scheme 'lsuv' failed on this model: .* found no Dense, Linear or Conv"):
        train_task(d, Opaque(), {"lsuv": initjax.get("lsuv")}, [0], CONFIG, progress=False, loss=LOSS)


def test_rules_by_nnx_path_and_a_rule_that_draws_nothing(tmp_path):
    d = _data()
    task = bench.Task(d, model=NNXNormDropMLP)
    experiment = bench.Experiment("nnx", "", (task,), (bench.Arm.of("typo", {"layer/0/kernel": "zeros"}),), seeds=2,
                                  train=CONFIG)
    with pytest.raises(UserError, match=r"layers/0/kernel"):  # the refusal lists the model's parameters
        bench.run(experiment, progress=False)
    assert models.describe(models.from_spec(NNXMLP, n_outputs=3, input_shape=(6,)), (6,)) == \
        "NNXMLP(din=6, dout=3) [nnx]"


NNX_FILE = '''
import jax
from flax import nnx


class NormMLP(nnx.Module):
    def __init__(self, din, dout, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(din, 16, rngs=rngs), nnx.Linear(16, 16, rngs=rngs)])
        self.norm = nnx.BatchNorm(16, rngs=rngs)
        self.head = nnx.Linear(16, dout, rngs=rngs)

    def __call__(self, x):
        for layer in self.layers:
            x = jax.nn.relu(layer(x))
        return self.head(self.norm(x))
'''

STUDY = '''
name = "nnx-study"
seeds = 3
initializers = ["he_normal", { name = "zero-head", rules = { "head/kernel" = "zeros", "*/kernel" = "he_normal" } }]
[train]
optimizer = "adam"
lr = 1e-2
batch_size = 32
epochs = 1
[[tasks]]
data = "npz:toy.npz"
model = "nnx_study_models:NormMLP"
'''


def test_an_nnx_model_from_an_experiment_file_reports_and_retrains_when_its_code_changes(tmp_path, monkeypatch, capsys):
    """Written outside the package, named in a TOML file with an .npz: the full report with intervals; the same
    command again loads the runs; an edit to the model's code trains them again."""
    import sys

    from bench import cli

    d = _data()
    np.savez(tmp_path / "toy.npz", x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    (tmp_path / "nnx_study_models.py").write_text(NNX_FILE)
    (tmp_path / "study.toml").write_text(STUDY)
    command = ["run", str(tmp_path / "study.toml"), "--no-progress", "--out", str(tmp_path / "report"),
               "--format", "md"]  # no figures (not what is tested); the runs are kept all the same
    assert cli.main(command) == 0
    assert (tmp_path / "report" / "results.csv").exists() and (tmp_path / "report" / "run.json").exists()
    assert not (tmp_path / "report" / "figures").exists() and not (tmp_path / "report" / "report.tex").exists()
    report = (tmp_path / "report" / "report.md").read_text()
    assert "NormMLP(din=6, dout=3) [nnx]" in report and "| zero-head" in report and "[95% CI]" in report
    assert "loaded from an earlier run" not in report
    assert cli.main(command) == 0  # the same study again: its runs come from the cache
    assert "loaded from an earlier run" in (tmp_path / "report" / "report.md").read_text()
    (tmp_path / "nnx_study_models.py").write_text(NNX_FILE.replace("16", "24"))  # another size: no stale .pyc
    monkeypatch.delitem(sys.modules, "nnx_study_models", raising=False)
    assert cli.main(command) == 0  # the model's code changed: trained again
    assert "loaded from an earlier run" not in (tmp_path / "report" / "report.md").read_text()
    capsys.readouterr()


def test_the_training_step_of_an_nnx_model_is_the_linen_models_program():
    """No split or merge survives tracing: the gradient of a training-mode call has the same operations, in order,
    for the NNX model as for the linen one (the timing against linen: tests/benchmarks, workload synthetic-nnx)."""
    from bench.training.step import forward_of

    def operations(spec):
        forward = forward_of(models.from_spec(spec, n_outputs=3, input_shape=(6,)), (6,))
        params, state = forward.init(jax.random.key(0), jnp.zeros((1, 6)))
        program = jax.make_jaxpr(jax.grad(lambda p, x: forward.train(p, state, x)[0].sum()))(params, jnp.ones((32, 6)))
        return [equation.primitive.name for equation in program.jaxpr.eqns]

    linen = operations(LinenMLP)
    assert operations(NNXMLP) == linen and linen.count("dot_general") == 8  # 3 forward, 5 backward


def test_diagnose_measures_an_nnx_model_from_an_experiment_file_and_refuses_one_it_cannot_see(tmp_path, capsys):
    """The per-layer diagnostics see NNX's Linear layers as linen's Dense (the table names them by their paths); a
    model with no layer a probe sees gets one line (the tables were empty and the command ended in a traceback).
    The experiment file is read as `run` reads it."""
    from bench import cli

    d = _data()
    np.savez(tmp_path / "toy.npz", x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    (tmp_path / "nnx_diag_models.py").write_text(NNX_FILE + OPAQUE_FILE)
    (tmp_path / "study.toml").write_text(STUDY.replace("nnx_study_models", "nnx_diag_models"))
    assert cli.main(["diagnose", str(tmp_path / "study.toml"), "--out", str(tmp_path / "diag")]) == 0
    table = capsys.readouterr().out
    assert [line.split("|")[4].strip() for line in table.splitlines()[2:5]] == ["layers/0", "layers/1", "head"]
    opaque = STUDY.replace("nnx_study_models:NormMLP", "nnx_diag_models:Opaque")
    (tmp_path / "opaque.toml").write_text(re.sub(r"initializers = .*", 'initializers = ["he_normal"]', opaque))
    assert cli.main(["diagnose", str(tmp_path / "opaque.toml"), "--out", str(tmp_path / "diag2")]) == 2
    err = capsys.readouterr().err
    assert "diagnose found no Dense, Linear or Conv layer (flax.linen or flax.nnx) in Opaque(" in err
    assert err.count("\n") == 1


OPAQUE_FILE = '''
import flax.linen as nn


class Opaque(nn.Module):
    n_outputs: int = 3

    @nn.compact
    def __call__(self, x):
        return x @ self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.n_outputs))
'''


def test_a_grid_crosses_an_nnx_models_initializers_with_learning_rates():
    """The grid is the trainer's: arms of (initializer, learning rate) over an NNX model, ranked per initializer."""
    d = _data()
    experiment = bench.Experiment("nnx-grid", "", (bench.Task(d, model=NNXMLP),), ("he_normal", "orthogonal"),
                                  seeds=2, train=CONFIG)
    summary = bench.run(experiment, lr=[1e-3, 1e-1], progress=False).summary
    assert sorted(zip(summary["initializer"], summary["lr"])) == [
        ("he_normal", 1e-3), ("he_normal", 1e-1), ("orthogonal", 1e-3), ("orthogonal", 1e-1)]
    assert summary["verdict"].notna().all() and (summary["model"] == "NNXMLP(din=6, dout=3) [nnx]").all()
