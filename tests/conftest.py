"""Shared set-up: tests run on the CPU, whatever accelerator the machine has, and keep the suite's cache
(finished chunks and checkpoints, ``bench.training.resume.cache_root``) in each test's own folder, never the user's;
JAX's persistent compilation cache in one folder of the session's, shared by its pytest-xdist workers (a program one
worker compiled, the others load)."""

import dataclasses
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["INITJAX_CACHE"] = tempfile.mkdtemp(prefix="initjax-cache-")  # subprocesses inherit it
# compiled programs are shared by the whole session (tests that count compilations subtract the cache's hits)
_run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")  # the same in every worker of one session
if _run.isalnum():
    _xla = Path(tempfile.gettempdir()) / f"initjax-xla-{_run}"
    _xla.mkdir(exist_ok=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(_xla)
else:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="initjax-xla-")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """``tmp_path / "progress"`` is the test's cache, where the report folder's progress used to be."""
    monkeypatch.setenv("INITJAX_CACHE", str(tmp_path / "progress"))


# The longest tests first, so that the workers end together instead of one finishing the longest test alone
# (measured on 2 cores: a sixth of the run had one core idle at the end). The slow-marked tests take seconds to
# minutes each; among them these few take the longest.
LONGEST = ("test_ctrl_c_at_any_moment", "test_lm_init_smoke", "test_the_plain_programs_give_the_same_bits",
           "test_reproduce_command_writes_the_verdicts", "test_two_processes_give_the_one_process_results",
           "test_the_tutorial_runs_as_written", "test_an_nnx_model_from_an_experiment_file")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        if any(item.name.startswith(name) for name in LONGEST):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)  # stable: each group keeps the files' order


# ---------------------------------------------------------------- small real runs, shared by the session's test files


@dataclasses.dataclass(frozen=True)
class ReportRun:
    """A finished small run of the default preset (2 tasks, 3 initializers x 5 seeds, 3 epochs) with its report, and
    what the run itself returned (``bench.experiments.runner.Outcome``)."""

    folder: Path
    outcome: object


def _shared_run(tmp_path_factory, name: str, experiment_of) -> ReportRun:
    """The run of ``experiment_of()`` trained once per session (``tests.helpers.computed_once``: one worker trains it
    while the others wait, where each trained its own), with its outcome; each worker gets its own copy of the
    folder, since commands lock the folder they read."""
    import shutil

    from tests.helpers import computed_once  # here: it imports JAX, which reads the environment set above

    def train(folder):
        from bench.experiments.runner import run_experiment

        return run_experiment(experiment_of(), folder / "report", progress=False)

    outcome, shared = computed_once(tmp_path_factory, name, train)
    return ReportRun(Path(shutil.copytree(shared / "report", tmp_path_factory.mktemp(name) / "report")), outcome)


@pytest.fixture(scope="session")
def report_run(tmp_path_factory) -> ReportRun:
    def experiment():
        from bench.experiments import presets

        return presets.get("default").override(
            seeds=5, epochs=3, datasets=["synthetic", "digits"],
            initializers=["he_normal", "glorot_uniform", "normal(stddev=0.1)"])

    return _shared_run(tmp_path_factory, "report-run", experiment)


@pytest.fixture(scope="session")
def grid_run(tmp_path_factory) -> ReportRun:
    """A finished smoke run of a learning-rate grid (he_normal and zeros x lr 1e-3, 1e-1 on digits) with its report:
    the tuned comparison, the sensitivity and the ranking at the recipe's lr 1e-3."""
    def experiment():
        from bench.experiments import presets

        smoke = presets.smoke(presets.get("default"))
        return dataclasses.replace(smoke, initializers=("he_normal", "zeros"), tasks=smoke.tasks[1:]).override(
            lr="1e-3,1e-1")

    return _shared_run(tmp_path_factory, "grid-run", experiment)


@pytest.fixture(scope="session")
def run_dir(report_run) -> Path:
    """The folder of :func:`report_run` (tests must not change it: copy it first)."""
    return report_run.folder


@pytest.fixture(scope="session")
def calibrated_report(tmp_path_factory) -> Path:
    """A finished smoke run with its calibration (two initializers x 3 seeds, one task): small files, for tests that
    damage every byte of them. Trained once per session (``tests.helpers.built_once``); each worker gets its own
    copy, since commands lock the folder they read and a test asserts that no lock is left."""
    import shutil

    from bench import cli
    from tests.helpers import built_once  # here: it imports JAX, which reads the environment set above

    def build(folder):
        out = folder / "report"
        smoke = ["run", "default", "--smoke", "--datasets", "synthetic", "--initializers", "he_normal,zeros",
                 "--seeds", "3", "--no-progress"]
        assert cli.main([*smoke, "--out", str(out)]) == 0
        assert cli.main(["calibrate", str(out), "--seeds", "3", "--reps", "10"]) == 0

    shared = built_once(tmp_path_factory, "calibrated", build) / "report"
    return Path(shutil.copytree(shared, tmp_path_factory.mktemp("calibrated") / "report"))
