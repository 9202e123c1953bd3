"""Any command line either works or ends with one line and status 2, never a traceback (hypothesis)."""

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench import cli, datasets, perf, presets, runner


class Accepted(Exception):
    """Raised by the stand-in for training: the command line passed every check."""


def _validate_only(experiment, out=None, **kwargs):
    presets.validate(experiment)
    for task in experiment.tasks:
        data = datasets.load(task.dataset, kwargs.get("data_dir"), False)
        experiment.train.validate(len(data.subset(*task.subset).x_train) if task.subset else len(data.x_train))
    raise Accepted


OPTIONS = ["--seeds", "--initializers", "--datasets", "--epochs", "--lr", "--optimizer", "--batch-size",
           "--experiment-seed", "--out", "--data-dir", "--baseline", "--chunk", "--max-memory", "--checkpoint-every",
           "--format", "--metric", "--models", "--workloads"]
FLAGS = ["--smoke", "--no-progress", "--fresh", "--download", "--unpaired"]
WORDS = ["run", "report", "list", "perf", "default", "mnist-mlp", "he_normal", "normal(stddev=0.1)", "normal(",
         "synthetic,digits", "mnst", "adam", "rmsprop", "0", "-1", "3", "1e-3", "nan", "inf", "4G", "1M", "x",
         "he_normal,he_normal", "a:b", "md,tex", "test_loss", "8,16", "mnist", "", " ", "--", "-", "=", "'", "()"]
token = st.one_of(st.sampled_from(OPTIONS + FLAGS + WORDS), st.text(max_size=8))


@pytest.fixture(autouse=True)
def no_training(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "run_experiment", _validate_only)
    monkeypatch.setattr(perf, "measure", lambda *a, **k: (_ for _ in ()).throw(Accepted()))
    monkeypatch.setattr(perf, "matmul_peak", lambda: 1.0)
    monkeypatch.setattr(presets, "smoke", presets.smoke)
    monkeypatch.chdir(tmp_path)  # a run that is accepted would write under ./reports here


# derandomize: CI sees the same examples every time (a random failure here once found newlines that users typed
# being echoed into the error, making it two lines; now escaped, and kept as an explicit case below)
@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(token, max_size=7))
@example(["--format", "run", "\n"])
@example(["run", "--initializers", "he_normal\u2028x"])
def test_any_command_line_works_or_is_one_line_status_2(capsys, argv):
    if any(a in ("-h", "--help") or a.startswith("--h") for a in argv):
        return  # argparse prints the help and exits 0, by design
    try:
        code = cli.main(argv)
    except Accepted:
        return
    captured = capsys.readouterr()
    if code == 0:
        return
    assert code == 2, (argv, code, captured.err)
    assert captured.err.startswith("bench: error: ") and captured.err.count("\n") == 1, (argv, captured.err)
    assert "Traceback" not in captured.err


VALUES = {
    "--seeds": st.one_of(st.integers(-3, 5).map(str), st.text(max_size=4)),
    "--epochs": st.one_of(st.integers(-2, 3).map(str), st.sampled_from(["1.5", "x"])),
    "--lr": st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str), st.text(max_size=4)),
    "--batch-size": st.one_of(st.integers(-1, 10**6).map(str), st.text(max_size=3)),
    "--initializers": st.one_of(st.sampled_from(["he_normal", "zeros,orthogonal", "normal(stddev=0.1)", "normal(",
                                                 "he_normal,kaiming_normal", "nope", "os:system", "constant(1, 2, 3)",
                                                 "uniform(scale=-1)", "truncated_normal(stddev=1e30)"]),
                                st.text(max_size=12)),
    "--datasets": st.sampled_from(["synthetic", "digits", "synthetic,digits", "mnst", "", ",", "mnist"]),
    "--optimizer": st.sampled_from(["sgd", "adam", "momentum", "rmsprop", ""]),
    "--chunk": st.integers(-2, 40).map(str),
    "--max-memory": st.sampled_from(["4G", "1", "0", "-1G", "1.5GB", "lots", "1T"]),
    "--checkpoint-every": st.sampled_from(["0", "-1", "60", "nan", "x"]),
    "--experiment-seed": st.one_of(st.integers(-(2**40), 2**40).map(str), st.just("x")),
    "--baseline": st.sampled_from(["he_normal", "zeros", "nope", "normal("]),
    "--data-dir": st.sampled_from(["/nonexistent", ".", ""]),
}


@st.composite
def run_command(draw):
    argv = ["run", draw(st.sampled_from(["default", "mnist-mlp", "nope", "--smoke"]))]
    for option in draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=5, unique=True)):
        argv += [option, draw(VALUES[option])]
    return argv + draw(st.lists(st.sampled_from(["--smoke", "--no-progress", "--fresh"]), max_size=2))


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run_command())
def test_any_run_options_work_or_are_one_line_status_2(capsys, argv):
    test_any_command_line_works_or_is_one_line_status_2.hypothesis.inner_test(capsys, argv)
