"""Your model, your data, your recipe: rules by parameter path, experiment files, the Python API."""

import re
import textwrap
import tomllib
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

import bench
from bench import cli, data
from bench.errors import UserError
from bench.experiments import experiment_file, presets
from bench.models import losses
from bench.training import recipes, resume
from bench.training.initialization import check_on_model, init_params
from bench.training.train import TrainConfig, train_task
from initjax import rules

REPO = Path(__file__).resolve().parents[2]


class TwoLayer(nn.Module):
    """A module with no kernel_init field: what a user writes."""

    width: int = 8
    n_outputs: int = 3

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.LayerNorm(name="norm")(nn.Dense(self.width, name="body")(x.reshape(x.shape[0], -1))))
        return nn.Dense(self.n_outputs, name="head")(x)


def _params(model=TwoLayer(), shape=(5,)):
    return model.init(jax.random.key(0), jnp.zeros((1, *shape)))["params"]


# ------------------------------------------------------------------ rules


def test_first_matching_rule_draws_each_parameter_and_the_rest_keep_the_models_values():
    params = _params()
    by = rules.compile_rules({"head/kernel": "zeros", "re:.*/kernel": "ones", "*/bias": "ones"})
    got = rules.apply(jax.random.key(1), params, by)
    assert (got["head"]["kernel"] == 0).all()  # first match wins over the later kernel rule
    assert all((got[layer]["bias"] == 1).all() for layer in ("body", "norm", "head"))  # */bias: LayerNorm's too
    assert (got["body"]["kernel"] == 1).all()
    np.testing.assert_array_equal(got["norm"]["scale"], params["norm"]["scale"])  # no rule: the model's own init


def test_an_initializer_alone_draws_every_kernel_and_nothing_else():
    by = rules.compile_rules("he_normal")
    names = [rules.path_name(p) for p, _ in jax.tree.leaves_with_path(_params())]
    assert sorted(rules.assign(names, by)) == ["body/kernel", "head/kernel"]
    assert rules.matches(rules.EVERY_KERNEL, "kernel") and not rules.matches(rules.EVERY_KERNEL, "my_kernel")


def test_each_parameter_is_drawn_from_its_own_key_so_arms_share_what_they_do_not_change():
    """Common random numbers: two rule sets that differ on the head draw the body identically."""
    params, key = _params(), jax.random.key(7)
    a = rules.apply(key, params, rules.compile_rules({"head/kernel": "zeros", "*/kernel": "he_normal"}))
    b = rules.apply(key, params, rules.compile_rules({"*/kernel": "he_normal"}))
    np.testing.assert_array_equal(a["body"]["kernel"], b["body"]["kernel"])
    assert not np.array_equal(a["head"]["kernel"], b["head"]["kernel"])
    want = jax.nn.initializers.he_normal()(rules.leaf_key(key, "body/kernel"), (5, 8))
    np.testing.assert_array_equal(b["body"]["kernel"], want)  # the documented key


@pytest.mark.parametrize("bad, message", [
    ({"re:(": "zeros"}, "not a valid regular expression"),
    ({"": "zeros"}, "non-empty"),
    ({"*/kernel": "he_normall"}, "unknown initializer 'he_normall'; did you mean he_normal"),
    ({"*/kernel": "lsuv"}, "whole-network scheme is an arm of its own"),
    ({}, "at least one rule"),
])
def test_bad_rules_are_one_line_errors(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        rules.compile_rules(bad)


def test_a_rule_that_draws_nothing_is_refused_naming_the_parameters():
    arm = rules.compile_rules({"Dense_0/kernel": "zeros"})  # a Flax default name this model does not use
    with pytest.raises(UserError, match=r"'mine': the rule 'Dense_0/kernel' draws no parameter .*body/kernel"):
        check_on_model(TwoLayer(), {"mine": arm}, (5,))


def _tiny():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)
    return data.arrays(x[:64], y[:64], x[64:], y[64:], name="tiny")


def test_a_rule_set_arm_inside_the_batch_equals_the_same_run_alone():
    arms = {"he": rules.compile_rules("he_normal"),
            "zero-head": rules.compile_rules({"head/kernel": "zeros", "*/kernel": "he_normal"})}
    config = TrainConfig("adamw", 1e-2, 16, 2)
    both = train_task(_tiny(), TwoLayer(), arms, [0, 1, 2], config, progress=False, loss="softmax_cross_entropy")
    alone = train_task(_tiny(), TwoLayer(), {"zero-head": arms["zero-head"]}, [2], config, progress=False,
                       loss="softmax_cross_entropy")
    for got, want in zip(jax.tree.leaves(both.params), jax.tree.leaves(alone.params)):
        np.testing.assert_allclose(got[1, 2], want[0, 0], rtol=1e-5, atol=1e-6)
    # and the suite's init is exactly init_params of that arm with the run's key
    first = init_params(TwoLayer(), [arms["he"]], jax.random.split(jax.random.key(3), 2), (5,))
    again = init_params(TwoLayer(), [arms["he"]], jax.random.split(jax.random.key(3), 2)[1:], (5,))
    for got, want in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
        np.testing.assert_array_equal(got[0, 1], want[0, 0])


# ------------------------------------------------------------------ losses and recipes


def test_a_callable_loss_gives_the_numbers_of_the_named_loss_it_computes():
    def my_cross_entropy(outputs, labels):
        return -jnp.take_along_axis(jax.nn.log_softmax(outputs), labels[:, None], axis=-1)[:, 0]

    config = TrainConfig("sgd", 0.1, 16, 2)
    inits = {"he_normal": rules.compile_rules("he_normal")}
    named = train_task(_tiny(), TwoLayer(), inits, [0, 1], config, progress=False, loss="softmax_cross_entropy")
    mine = train_task(_tiny(), TwoLayer(), inits, [0, 1], config, progress=False, loss=my_cross_entropy)
    np.testing.assert_allclose(mine.frame["test_loss"], named.frame["test_loss"], rtol=1e-5)
    np.testing.assert_array_equal(mine.frame["test_accuracy"], named.frame["test_accuracy"])


def test_outputs_that_do_not_fit_the_loss_are_one_line():
    with pytest.raises(UserError, match=r"outputs of shape \[2, 3\].*needs \(batch, 1\)"):
        train_task(_tiny(), TwoLayer(), {"he": rules.compile_rules("he_normal")}, [0], TrainConfig(epochs=1),
                   progress=False, loss="sigmoid_cross_entropy")
    with pytest.raises(UserError, match="unknown loss 'softmax'"):
        losses.get("softmax")


def _updates(transform, steps=5):
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    state, out = transform.init(params), []
    for i in range(steps):
        grads = {"w": jnp.array([0.5, 1.0, -1.5]) * (i + 1)}
        updates, state = transform.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        out.append(params["w"])
    return np.stack(out)


def test_recipes_are_the_optax_transformations_they_name():
    np.testing.assert_allclose(_updates(recipes.build("adamw(b2=0.95)", 1e-2, weight_decay=0.1)),
                               _updates(optax.adamw(1e-2, b2=0.95, weight_decay=0.1)), rtol=1e-6)
    np.testing.assert_allclose(_updates(recipes.build("nesterov", 0.1)),
                               _updates(optax.sgd(0.1, momentum=0.9, nesterov=True)), rtol=1e-6)
    sgd_l2 = optax.chain(optax.clip_by_global_norm(1.0), optax.add_decayed_weights(0.01), optax.sgd(0.1))
    np.testing.assert_allclose(_updates(recipes.build("sgd", 0.1, weight_decay=0.01, clip=1.0)), _updates(sgd_l2),
                               rtol=1e-6)


def test_schedules_multiply_the_peak_rate_by_their_unit_curve():
    warm = recipes._unit_schedule("warmup_cosine(warmup=0.1)", 100)
    assert float(warm(0)) == 0 and float(warm(10)) == pytest.approx(1) and float(warm(100)) == pytest.approx(0)
    assert float(warm(55)) == pytest.approx(0.5, abs=1e-6)  # halfway through the cosine
    step = recipes._unit_schedule("step(every=0.5, factor=0.1)", 100)
    assert [float(step(i)) for i in (0, 49, 50, 99)] == pytest.approx([1, 1, 0.1, 0.1])
    sgd = recipes.build("sgd", 0.5, "cosine", total_steps=10)
    state = sgd.init({"w": jnp.zeros(1)})
    first, _ = sgd.update({"w": jnp.ones(1)}, state)
    assert float(first["w"][0]) == pytest.approx(-0.5)  # the peak rate at step 0


@pytest.mark.parametrize("optimizer, schedule, message", [
    ("adamm", "constant", "unknown optimizer 'adamm'; did you mean adam"),
    ("adam(b3=1)", "constant", "optimizer 'adam(b3=1)'"),
    ("adam", "cosine(warm=1)", "schedule 'cosine(warm=1)' has arguments it does not take"),
    ("adam", "linear", "unknown schedule 'linear'"),
])
def test_bad_recipes_are_one_line_errors(optimizer, schedule, message):
    with pytest.raises(UserError, match=re.escape(message)):
        TrainConfig(optimizer, schedule=schedule).validate(None)


# ------------------------------------------------------------------ data


def test_npz_and_function_data_load_with_their_checks(tmp_path):
    d = _tiny()
    np.savez(tmp_path / "d.npz", x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    loaded = data.load(f"npz:{tmp_path / 'd.npz'}")
    np.testing.assert_array_equal(loaded.x_train, d.x_train) and np.testing.assert_array_equal(loaded.y_test, d.y_test)
    np.savez(tmp_path / "bad.npz", x_train=d.x_train, y_train=d.y_train)
    with pytest.raises(UserError, match="bad.npz lacks the arrays x_test, y_test"):
        data.load(f"npz:{tmp_path / 'bad.npz'}")
    with pytest.raises(UserError, match="does not exist"):
        data.load(f"npz:{tmp_path / 'none.npz'}")
    held = data.arrays(d.x_train, d.y_train, d.x_test, d.y_test, validation=0.25)
    assert len(held.x_val) == 16 and len(held.x_train) == 48
    (tmp_path / "mydata.py").write_text("import numpy as np\ndef make():\n"
                                        "    return np.ones((4, 2)), np.array([0, 1, 0, 1]), np.ones((2, 2)), [0, 7]\n")
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        assert data.load("mydata:make").n_classes == 8
    finally:
        sys.path.remove(str(tmp_path))


# ------------------------------------------------------------------ experiment files


STUDY = """\
name = "ln-mlp"
seeds = 3
initializers = ["he_normal", "glorot_uniform", "mypkg.inits:scaled_orthogonal(scale=1.5)",
                {{ name = "zero-head", rules = {{ "head/kernel" = "zeros", "*/kernel" = "he_normal" }} }}]
[train]
optimizer = "adamw"
lr = 1e-3
batch_size = 32
epochs = 2
[[tasks]]
data = "npz:data/my_data.npz"         # keys x_train, y_train, x_test, y_test
model = "mypkg.models:LayerNormMLP"   # any flax.linen.Module
model_args = {{ widths = [32, 32] }}
loss = "softmax_cross_entropy"
{extra}"""

LAYER_NORM_MLP = """\
import flax.linen as nn


class LayerNormMLP(nn.Module):
    widths: tuple
    n_outputs: int = 2

    @nn.compact
    def __call__(self, x):
        for i, width in enumerate(self.widths):
            x = nn.relu(nn.LayerNorm(name=f"norm_{i}")(nn.Dense(width, name=f"dense_{i}")(x)))
        return nn.Dense(self.n_outputs, name="head")(x)
"""


@pytest.fixture
def study(tmp_path, monkeypatch):
    """The issue's study: a LayerNorm MLP and an initializer written outside the package, arrays in an .npz."""
    root = tmp_path / f"study{len(list(tmp_path.iterdir()))}"
    (root / "mypkg").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "mypkg" / "__init__.py").write_text("")
    (root / "mypkg" / "models.py").write_text(LAYER_NORM_MLP)
    (root / "mypkg" / "inits.py").write_text(
        "import jax\n\ndef scaled_orthogonal(scale=1.0):\n    return jax.nn.initializers.orthogonal(scale)\n")
    d = _tiny()
    np.savez(root / "data" / "my_data.npz", x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    (root / "study.toml").write_text(STUDY.format(extra=""))
    monkeypatch.chdir(tmp_path)  # not the study's folder: its paths are its own
    yield root
    import sys

    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        del sys.modules[name]
    while str(root) in sys.path:
        sys.path.remove(str(root))


def test_the_issues_study_runs_from_the_cli_and_from_python_with_the_same_numbers(study, capsys):
    assert cli.main(["run", str(study / "study.toml"), "--out", str(study / "cli"), "--no-progress", "--format",
                     "md,csv"]) == 0
    text = (study / "cli" / "report.md").read_text()
    assert "## my_data: LayerNormMLP(widths=[32, 32], n_outputs=3)" in text  # the width came from the data
    assert "`zero-head` (by parameter path, first match wins: `head/kernel`: `zeros`; `*/kernel`: `he_normal`" in text
    assert "adamw, lr 0.001" in text and re.search(r"\| 0\.\d+ \[0\.\d+, [01]\.\d+\]", text)  # intervals
    assert not (study / "cli" / "progress").exists()  # the report folder holds the report only
    outcome = bench.run(study / "study.toml", progress=False)
    cli_rows = bench.run(study / "study.toml", out=study / "cli", progress=False,
                         formats=("md", "csv")).results  # loaded, not retrained
    assert "loaded 1 of 1 finished chunk(s)" in capsys.readouterr().err
    np.testing.assert_allclose(outcome.results["test_loss"], cli_rows["test_loss"], rtol=1e-6)
    summary = outcome.summary
    assert list(summary["arm"]) == ["he_normal", "glorot_uniform",
                                            "mypkg.inits:scaled_orthogonal(scale=1.5)", "zero-head"]
    assert (summary["mean_low"] <= summary["mean"]).all() and summary["verdict"].notna().all()


def test_editing_the_studys_initializer_retrains(study, capsys):
    path = study / "study.toml"
    bench.run(path, progress=False)  # no report: its chunks are cached all the same
    (study / "mypkg" / "inits.py").write_text(
        "import jax\n\ndef scaled_orthogonal(scale=1.0):\n    return jax.nn.initializers.orthogonal(scale / 2)\n")
    import importlib
    import sys

    importlib.reload(sys.modules["mypkg.inits"])  # what a new process would import
    again = bench.run(path, progress=False)
    assert again.record.tasks["my_data"].chunks_loaded == 0


@pytest.mark.parametrize("extra, message", [
    ("foo = 1\n", r"study.toml: unknown key 'foo'; known: name, description"),
    ("[[tasks]]\ndata = 'digits'\nhiden = [4]\n", r"unknown key 'tasks\[1\].hiden'"),
    ("[[tasks]]\ndata = 'digits'\nhidden = 4\n", r"tasks\[1\].hidden must be a list of integers, got 4"),
    ("[[tasks]]\ndata = 'npz:none.npz'\n", r"tasks\[1\].data names .*none.npz, which does not exist"),
    ("seed = 'x'\n", r"seed must be an integer, got 'x'"),
])
def test_bad_experiment_files_are_one_line_naming_the_key_and_the_file(study, extra, message, capsys):
    text = STUDY.format(extra="")
    head, _, tasks = text.partition("[train]")
    (study / "study.toml").write_text(f"{extra}{text}" if not extra.startswith("[[") else text + extra)
    assert cli.main(["run", str(study / "study.toml"), "--out", str(study / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err


def test_set_overrides_any_field_and_short_flags_still_apply(study):
    experiment = experiment_file.load(study / "study.toml", ["train.lr=0.01", "tasks.0.model_args.widths=[4]",
                                                             "train.schedule=warmup_cosine(warmup=0.1)"])
    assert experiment.train.lr == 0.01 and experiment.train.schedule == "warmup_cosine(warmup=0.1)"
    assert experiment.tasks[0].model_args == {"widths": [4]}
    preset = presets.resolve("default", ["seeds=3", "tasks.1.hidden=[16]"])
    assert preset.seeds == 3 and preset.tasks[1].hidden == (16,) and preset.tasks[0] == presets.get("default").tasks[0]
    with pytest.raises(UserError, match=r"assignments needs key=value"):
        presets.resolve("default", ["seeds"])
    with pytest.raises(UserError, match=r"train.lr must be a number, got 'fast'"):
        presets.resolve("default", ["train.lr=fast"])


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_is_a_shipped_file_that_show_prints_and_that_reads_back(name, capsys, tmp_path):
    assert cli.main(["show", name]) == 0
    shown = capsys.readouterr().out
    assert shown == presets.preset_file(name).read_text()  # the file itself, comments and all
    (tmp_path / "copy.toml").write_text(shown)
    assert experiment_file.load(tmp_path / "copy.toml") == presets.get(name)
    assert experiment_file.from_dict(tomllib.loads(experiment_file.dump(presets.get(name)))) == presets.get(name)


def test_schoenholz_arms_use_the_sigma_b2_its_claims_assume():
    from bench import reproductions

    arms = presets.get("schoenholz2017").initializers
    sigma_b2 = reproductions.claims("schoenholz2017").SIGMA_B2
    assert arms and all(f"sigma_b2={sigma_b2})" in arm for arm in arms)


REGRESSION_STUDY = """
name = "regression"
seeds = 4
initializers = ["he_normal", "zeros"]
[train]
optimizer = "adam"
lr = 1e-2
epochs = 3
[[tasks]]
data = "npz:reg.npz"
model = "mlp"
hidden = [16]
model_args = {{ norm = "{norm}", dropout = 0.1 }}
loss = "mean_squared_error"
"""


def test_a_regression_study_with_a_normalized_mlp_ranks_by_r2(tmp_path):
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=240, n_features=5, noise=3.0, random_state=1)
    y = (y - y.mean()) / y.std()
    np.savez(tmp_path / "reg.npz", x_train=x[:160], y_train=y[:160], x_test=x[160:], y_test=y[160:])
    (tmp_path / "study.toml").write_text(REGRESSION_STUDY.format(norm="batch"))
    outcome = bench.run(tmp_path / "study.toml", progress=False)
    assert outcome.analysis.metric == "test_r2" and "test_accuracy" not in outcome.results
    assert "MLP 5-16-1 relu batchnorm dropout 0.1" in set(outcome.results["model"])
    final = outcome.results[outcome.results.epoch == 3]
    assert final.groupby("arm").test_r2.mean()["he_normal"] > 0.5  # zeros cannot break symmetry: worse
    (tmp_path / "study.toml").write_text(REGRESSION_STUDY.format(norm="group"))
    with pytest.raises(UserError, match="unknown norm 'group'"):
        bench.run(tmp_path / "study.toml", progress=False)


# ------------------------------------------------------------------ Python, reports, the cache


def test_python_errors_name_python_arguments():
    with pytest.raises(UserError, match=r"^seeds must be an integer") as error:
        bench.run("default", seeds=0)
    assert "--" not in str(error.value)
    with pytest.raises(TypeError, match="unexpected options"):
        bench.run("default", sedes=3)


def test_the_python_api_caches_finished_chunks_as_the_command_line_does(capsys):
    """Without ``out`` too: a second call of the same experiment loads its chunks instead of training them."""
    def once(**options):
        return bench.run("default", seeds=2, epochs=1, initializers=["lecun_normal"], datasets=["synthetic"],
                         progress=False, **options)

    first, second = once(), once()
    assert "synthetic: loaded 1 of 1 finished chunk(s)" in capsys.readouterr().err
    assert second.record.tasks["synthetic"].chunks_loaded == 1 and first.record.tasks["synthetic"].chunks_loaded == 0
    pd.testing.assert_frame_equal(second.results, first.results)
    assert once(fresh=True).record.tasks["synthetic"].chunks_loaded == 0  # fresh=True retrains


def test_report_out_never_overwrites_unless_forced_and_labels_differ_between_runs(tmp_path, capsys):
    run = ["run", "default", "--smoke", "--datasets", "digits", "--no-progress", "--format", "md,tex,csv"]
    assert cli.main([*run, "--out", str(tmp_path / "a")]) == 0
    assert cli.main([*run, "--seeds", "3", "--out", str(tmp_path / "b")]) == 0
    assert cli.main(["report", str(tmp_path / "a"), "--out", str(tmp_path / "b")]) == 2
    assert "already holds a report" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "a"), "--out", str(tmp_path / "c"), "--format", "md"]) == 0
    assert (tmp_path / "c" / "report.md").read_text().count("0/2") > 0 and (tmp_path / "c" / "outcomes.npz").exists()
    labels = [re.findall(r"\\label\{([^}]*)\}", (tmp_path / d / "report.tex").read_text()) for d in "ab"]
    assert labels[0] and not set(labels[0]) & set(labels[1])
    assert cli.main(["report", str(tmp_path / "a"), "--out", str(tmp_path / "b"), "--force", "--format", "md"]) == 0


def test_the_cache_lives_where_initjax_cache_says(tmp_path, monkeypatch):
    monkeypatch.setenv("INITJAX_CACHE", str(tmp_path / "elsewhere"))
    assert resume.cache_root() == tmp_path / "elsewhere"
    bench.run("default", seeds=2, epochs=1, datasets=["digits"], out=tmp_path / "report", progress=False,
              formats=("md", "csv"))
    assert list((tmp_path / "elsewhere").glob("digits-*/chunk-0000.npz"))
    assert sorted(p.name for p in (tmp_path / "report").iterdir() if not p.name.startswith(".")) == [
        "outcomes.npz", "report.md", "results.csv", "results.parquet", "run.json"]  # the report's files only


def test_the_readme_own_model_example_runs(tmp_path, monkeypatch):
    text = (REPO / "README.md").read_text()
    marker = "<!-- run by tests/experiments/test_experiments.py -->"
    code = re.search(re.escape(marker) + r"\s*```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 20
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(textwrap.dedent(code), "README.md", "exec"), namespace)  # noqa: S102 (the README's own code)
    outcome = namespace["outcome"]
    assert len(outcome.summary) == 2 and (tmp_path / "reports" / "mine" / "report.md").exists()
