"""Any command line either works or ends with one line and status 2, never a traceback (hypothesis)."""

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench import cli
from bench.studies import perf
from bench.training import train


class Accepted(Exception):
    """Raised where compilation would start: the command line passed every check the real run makes first
    (the experiment, the baseline, the output folder and its lock, the data, the model, every initializer on
    the model's kernels, the memory plan and the stored chunk plan)."""


def _accept(*args, **kwargs):
    raise Accepted


OPTIONS = ["--seeds", "--initializers", "--datasets", "--epochs", "--lr", "--optimizer", "--batch-size",
           "--experiment-seed", "--out", "--data-dir", "--baseline", "--chunk", "--max-memory", "--checkpoint-every",
           "--format", "--metric", "--models", "--workloads"]
FLAGS = ["--smoke", "--no-progress", "--fresh", "--download", "--unpaired"]
WORDS = ["run", "report", "list", "perf", "default", "mnist-mlp", "he_normal", "normal(stddev=0.1)", "normal(",
         "synthetic,digits", "mnst", "adam", "rmsprop", "0", "-1", "3", "1e-3", "nan", "inf", "4G", "1M", "x",
         "he_normal,he_normal", "a:b", "md,tex", "test_loss", "8,16", "mnist", "", " ", "--", "-", "=", "'", "()"]
token = st.one_of(st.sampled_from(OPTIONS + FLAGS + WORDS), st.text(max_size=8))


USER_INITS = """
import jax

def returns_none(key, shape, dtype=None):
    return None

def narrow_only(key, shape, dtype=None):  # passes initjax.check's (3, 4) kernel, fails on the model's
    if shape[0] > 30:
        raise ValueError("too wide")
    return jax.random.normal(key, shape, dtype)

def scaled(scale=2.0):
    def init(key, shape, dtype=None):
        return scale * jax.random.normal(key, shape, dtype)
    return init
"""


@pytest.fixture(autouse=True)
def no_training(monkeypatch, tmp_path):
    (tmp_path / "fuzz_user_inits.py").write_text(USER_INITS)
    (tmp_path / "fuzz_broken_inits.py").write_text("raise RuntimeError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(train, "compile_programs", _accept)  # the first step that costs time
    monkeypatch.setattr(perf, "measure", _accept)
    monkeypatch.setattr(perf, "measure_grid", _accept)
    monkeypatch.setattr(perf, "matmul_peak", lambda: 1.0)
    monkeypatch.chdir(tmp_path)  # a run that is accepted would write under ./reports here


# derandomize: CI sees the same examples every time (a random failure here once found newlines that users typed
# being echoed into the error, making it two lines; now escaped, and kept as an explicit case below)
@settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(token, max_size=7))
@example(["--format", "run", "\n"])
@example(["run", "--initializers", "he_normal\u2028x"])
def test_any_command_line_works_or_is_one_line_status_2(capsys, argv):
    if any(a in ("-h", "--help") or a.startswith("--h") for a in argv):
        return  # argparse prints the help and exits 0, by design
    capsys.readouterr()  # nothing of an earlier example
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


HUGE = ["1000000000", "1e30", str(2**64), "9" * 400, "-1"]
NESTED = ["normal(stddev=" * 300 + "1" + ")" * 300, "normal(stddev=" + "[" * 3000 + "]" * 3000 + ")",
          "normal(stddev=" + "1," * 20000 + ")"]
VALUES = {
    "--seeds": st.one_of(st.integers(-3, 5).map(str), st.text(max_size=4), st.sampled_from(HUGE)),
    "--data-seeds": st.one_of(st.integers(-1, 3).map(str), st.sampled_from(HUGE)),
    "--epochs": st.one_of(st.integers(-2, 3).map(str), st.sampled_from(["1.5", "x", "1e12", *HUGE])),
    "--lr": st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str), st.text(max_size=4)),
    "--batch-size": st.one_of(st.integers(-1, 10**6).map(str), st.text(max_size=3), st.sampled_from(HUGE)),
    "--initializers": st.one_of(st.sampled_from(["he_normal", "zeros,orthogonal", "normal(stddev=0.1)", "normal(",
                                                 "he_normal,kaiming_normal", "nope", "os:system", "constant(1, 2, 3)",
                                                 "uniform(scale=-1)", "truncated_normal(stddev=1e30)",
                                                 "he_normal()", *NESTED]),
                                st.text(max_size=12)),
    "--datasets": st.sampled_from(["synthetic", "digits", "synthetic,digits", "mnst", "", ",", "mnist"]),
    "--optimizer": st.sampled_from(["sgd", "adam", "momentum", "rmsprop", ""]),
    "--chunk": st.one_of(st.integers(-2, 40).map(str), st.sampled_from(HUGE)),
    "--max-memory": st.sampled_from(["4G", "1", "0", "-1G", "1.5GB", "lots", "1T", "1" + "0" * 400, "1e400", "9E"]),
    "--checkpoint-every": st.sampled_from(["0", "-1", "60", "nan", "x"]),
    "--experiment-seed": st.one_of(st.integers(-(2**40), 2**40).map(str), st.just("x"), st.sampled_from(HUGE)),
    "--baseline": st.sampled_from(["he_normal", "zeros", "nope", "normal("]),
    "--data-dir": st.sampled_from(["/nonexistent", ".", ""]),
}


@st.composite
def run_command(draw):
    argv = ["run", draw(st.sampled_from(["default", "mnist-mlp", "nope", "--smoke"]))]
    for option in draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=5, unique=True)):
        argv += [option, draw(VALUES[option])]
    return argv + draw(st.lists(st.sampled_from(["--smoke", "--no-progress", "--fresh"]), max_size=2))


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(run_command())
def test_any_run_options_work_or_are_one_line_status_2(capsys, argv):
    test_any_command_line_works_or_is_one_line_status_2.hypothesis.inner_test(capsys, argv)


@pytest.mark.parametrize("argv, message", [
    (["run", "--baseline", "nope"], "--baseline 'nope' is not among the initializers"),
    (["run", "--seeds", "1000000000"], "--seeds must be an integer from 1 to 100,000"),
    (["run", "--epochs", str(10**12)], "--epochs must be an integer from 1 to 1,000,000"),
    (["run", "--experiment-seed", str(2**64)], "--experiment-seed must be an integer from 0 to"),
    (["run", "--max-memory", "1" + "0" * 400], "cannot read memory size"),
    (["run", "--initializers", NESTED[0]], "malformed initializer spec"),
    (["run", "--initializers", "fuzz_user_inits:returns_none"], "returned NoneType"),
    (["run", "--initializers", "fuzz_broken_inits:anything"], "failed: RuntimeError: broken on purpose"),
    (["run", "--initializers", "fuzz_user_inits:narrow_only"], "failed on the parameter"),
])
def test_the_real_run_path_refuses_in_one_line(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_a_user_builder_called_with_empty_parentheses_builds(capsys):
    """``module:f()`` calls the builder with its defaults; ``module:f`` is the initializer itself."""
    with pytest.raises(Accepted):
        cli.main(["run", "--smoke", "--initializers", "fuzz_user_inits:scaled()"])
    assert cli.main(["run", "--smoke", "--initializers", "fuzz_user_inits:scaled"]) == 2  # a builder, not an init
    assert "failed" in capsys.readouterr().err
