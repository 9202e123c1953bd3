"""Interrupted runs lose nothing: kills at several points, a full disk, Ctrl-C; reruns equal uninterrupted runs."""

import errno
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import store
from bench.errors import UserError
from bench.experiments.presets import get, smoke
from bench.experiments.runner import run_experiment
from bench.training import memory, resume
from tests.helpers import built_once

REPO = Path(__file__).resolve().parents[2]
# 2 tasks x 2 chunks of 1 seed x 3 initializers (one draws a QR, one is a scheme), 3 epochs, a checkpoint after
# every epoch; no figures (half of a small run's CPU) except where they are what is tested
ARGS = ["run", "default", "--smoke", "--initializers", "he_normal,orthogonal,lsuv", "--epochs", "3", "--chunk", "1",
        "--checkpoint-every", "0", "--no-progress", "--format", "md,csv"]
FIGURES = ["--format", "md,csv,png"]
TEXT = ("md", "csv")  # the report's formats in the tests run here

# Runs the CLI in a process that SIGKILLs itself at the `count`-th call of `target` ("before" or "after" it),
# or raises KeyboardInterrupt there ("interrupt", as Ctrl-C does), with `lanes` chunks trained at once (1: in
# order, so the count names a point; 2: as on any CPU, the lanes' calls interleaved).
KILLER = textwrap.dedent("""
    import importlib, itertools, os, signal, sys
    module, name, when, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    import bench.training.memory, bench.training.programs
    bench.training.memory.CPU_LANES = int(sys.argv[5])
    if os.environ.get("SEGMENTS"):  # this many calls an epoch, each checkpointable
        bench.training.programs.SEGMENT_FLOPS, bench.training.programs.MAX_SEGMENTS = 1.0, int(os.environ["SEGMENTS"])
    owner = importlib.import_module(module)
    if "." in name:
        cls, name = name.split(".")
        owner = getattr(owner, cls)
    real, calls = getattr(owner, name), itertools.count(1)  # next() is atomic: two lanes may call at once

    def patched(*args, **kwargs):
        call = next(calls)
        if call == count and when == "interrupt":
            raise KeyboardInterrupt
        if call == count and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        out = real(*args, **kwargs)
        if call == count and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(owner, name, patched)
    from bench.cli import main
    sys.exit(main(sys.argv[6:]))
""")


def _env(**changes):
    return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO), **changes}


def _bench(out, *extra, **env):
    proc = subprocess.run([sys.executable, "-m", "bench", *ARGS, "--out", str(out), *extra], cwd=REPO,
                          env=_env(**env), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _killed(out, module, name, when, count, lanes=1, extra=(), **env):
    proc = subprocess.run([sys.executable, "-c", KILLER, module, name, when, str(count), str(lanes), *ARGS, "--out",
                           str(out), *extra], cwd=REPO, env=_env(**env), capture_output=True, text=True, timeout=600)
    expected = 0 if count > 10**6 else 130 if when == "interrupt" else -signal.SIGKILL
    assert proc.returncode == expected, (proc.returncode, proc.stderr[-2000:])
    return proc


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory) -> Path:
    """The run uninterrupted: its report in ``report/``, its cache in ``progress/``; its chunks trained two at a
    time (a CPU's default); the interrupted runs train one at a time and their reruns two: the numbers do not
    depend on it."""
    def build(whole):
        out = whole / "report"
        assert "2 chunks at a time" in _bench(out, INITJAX_CACHE=str(whole / "progress")).stdout \
            + (out / "report.md").read_text()
        assert not (out / "figures").exists() and "figures/" not in (out / "report.md").read_text()  # --format md,csv

    return built_once(tmp_path_factory, "resume-whole-run", build)


@pytest.fixture(scope="module")
def uninterrupted(whole_run) -> bytes:
    """The uninterrupted run's ``results.csv``."""
    return (whole_run / "report" / "results.csv").read_bytes()


def _copy_of(whole_run: Path, tmp_path: Path) -> Path:
    """The uninterrupted run's report folder copied into ``tmp_path``, its cache into the test's own."""
    shutil.copytree(whole_run / "progress", resume.cache_root(), dirs_exist_ok=True)
    return Path(shutil.copytree(whole_run / "report", tmp_path / "run"))


@pytest.mark.slow  # a subprocess run or several: the second CI step
@pytest.mark.parametrize(("where", "module", "name", "when", "count"), [
    # (killed while compiling, or after the first chunk finished: the Ctrl-C test of tests/commands/test_integrity.py
    # interrupts those moments, and "in the second task" comes after a finished chunk too; killed inside a chunk,
    # after a checkpoint: test_a_kill_inside_an_epoch_loses_only_the_steps_after_its_last_checkpoint)
    ("while writing: temp file complete, not yet renamed", "os", "replace", "before", 4),
    ("in the second task", "bench.training.resume", "TaskStore.save_finished", "after", 3),
])
def test_rerun_after_sigkill_equals_the_uninterrupted_run(tmp_path, uninterrupted, where, module, name, when, count):
    _killed(tmp_path, module, name, when, count)
    assert not (tmp_path / "results.csv").exists()
    rerun = _bench(tmp_path)
    assert (tmp_path / "results.csv").read_bytes() == uninterrupted, where
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.checkpoint.npz"))
    assert "runs in" in rerun.stdout


@pytest.mark.slow  # a subprocess run or several: the second CI step
def test_a_kill_inside_an_epoch_loses_only_the_steps_after_its_last_checkpoint(tmp_path, uninterrupted):
    """Four calls an epoch of 16 steps, a checkpoint after each (--checkpoint-every 0): killed after the 5th
    checkpoint, 4 steps into the first chunk's second epoch; the rerun continues from there and gives the
    uninterrupted numbers."""
    _killed(tmp_path, "bench.training.resume", "TaskStore.save_checkpoint", "after", 5, SEGMENTS="4")
    (checkpoint,) = (tmp_path / "progress").rglob("chunk-0000.checkpoint.npz")
    with np.load(checkpoint) as saved:
        assert (int(saved["epoch"]), int(saved["step"])) == (1, 4)
    _killed(tmp_path, "bench.training.resume", "TaskStore.save_checkpoint", "after", 10**9, SEGMENTS="4")
    assert (tmp_path / "results.csv").read_bytes() == uninterrupted


@pytest.mark.slow  # a subprocess run or several: the second CI step
def test_rerun_of_a_finished_run_trains_nothing_and_fresh_starts_over(tmp_path, whole_run, uninterrupted):
    tmp_path = _copy_of(whole_run, tmp_path)  # the finished run and its cache
    first = json.loads((tmp_path / "run.json").read_text())["tasks"]["synthetic"]
    again = _bench(tmp_path)
    assert "compile 0.0 s" in again.stdout
    assert (tmp_path / "results.csv").read_bytes() == uninterrupted
    second = json.loads((tmp_path / "run.json").read_text())["tasks"]["synthetic"]
    # the rerun trained nothing, and reports the training the first run recorded
    assert second["train_s"] < 0.5 and second["earlier_train_s"] == pytest.approx(first["train_s"], rel=0.05)
    fresh = _bench(tmp_path, "--fresh")
    assert "compile 0.0 s" not in fresh.stdout
    assert (tmp_path / "results.csv").read_bytes() == uninterrupted


@pytest.mark.slow  # a subprocess run or several: the second CI step
def test_a_changed_config_is_a_new_run_and_never_mixes(tmp_path, whole_run):
    out = _copy_of(whole_run, tmp_path)  # the finished run and its cache
    _bench(out, "--lr", "0.002")
    folders = sorted(p.name for p in (tmp_path / "progress").iterdir() if p.name != "xla")  # xla: compiled programs
    assert len(folders) == 4  # 2 tasks x 2 configs, each with its own key
    assert len({f.split("-")[-1] for f in folders}) == 4


def test_full_disk_leaves_no_partial_file_and_a_resumable_state(tmp_path, monkeypatch, uninterrupted):
    """The third write raises ENOSPC: one-line UserError, no temp file, earlier chunks kept; the rerun finishes."""
    experiment = smoke(get("default")).override(epochs=3, initializers=["he_normal", "orthogonal", "lsuv"])  # ARGS
    real_fsync, calls = os.fsync, [0]

    def full_disk(fd):
        calls[0] += 1
        if calls[0] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", full_disk)
    with pytest.raises(UserError, match="No space left on device; free space or point INITJAX_CACHE at a folder "
                       "with room") as error:
        run_experiment(experiment, tmp_path, progress=False, chunk=1, checkpoint_every=0, formats=TEXT)
    assert "\n" not in str(error.value)
    assert not list(tmp_path.rglob("*.tmp"))
    saved = list(tmp_path.rglob("chunk-*.npz"))
    assert saved and all(np.load(p)["format"] == resume.FORMAT_VERSION for p in saved)
    monkeypatch.setattr(store.os, "fsync", real_fsync)
    run_experiment(experiment, tmp_path, progress=False, chunk=1, checkpoint_every=0, formats=TEXT,
                   command=" ".join(["python", "-m", "bench", *ARGS, "--out", str(tmp_path)]))
    # same runs, same numbers: compare the tables rather than bytes (the command differs in run.json only)
    assert (tmp_path / "results.csv").read_bytes() == uninterrupted


@pytest.mark.slow  # a subprocess run or several: the second CI step
def test_a_stop_in_one_of_two_lanes_stops_both_and_the_rerun_equals_the_whole_run(tmp_path, uninterrupted):
    """Two chunks training at once, Ctrl-C in the third epoch call: the other lane stops too (status 130 within a
    segment, one line saying what is saved and how to resume), and the rerun gives the uninterrupted numbers. (A
    SIGKILL stops both lanes at once, the process being one: test_rerun_after_sigkill_equals_the_uninterrupted_run.)"""
    proc = _killed(tmp_path, "bench.training.programs", "Programs.run_epoch", "interrupt", 3, lanes=2)
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert re.search(r"\d+ finished chunk\(s\) and \d+ checkpoint\(s\) of the current task are saved", proc.stderr), \
        proc.stderr
    assert "rerun the same command to resume" in proc.stderr
    _bench(tmp_path)
    assert (tmp_path / "results.csv").read_bytes() == uninterrupted


def _small_store(tmp_path):
    """A store with one finished chunk (2 inits x 1 seed, 1 epoch, 3 test examples) and its records."""
    task = resume.TaskStore(tmp_path, "digits", {"x": 1})
    task.plan(memory.ChunkPlan(seeds_per_chunk=1, n_chunks=2, n_inits=2, estimate=0, budget=0, reason="t"),
              n_seeds=2)
    rng = np.random.default_rng(0)
    records = dict(sums=rng.normal(size=(2, 1, 2, 2, 1)).astype(np.float32), finite=np.ones((2, 2, 1), np.float32),
                   outcomes=(rng.normal(size=(2, 1, 3)).astype(np.float32), rng.random((2, 1, 3)) > 0.5))
    task.save_finished(0, records["sums"], records["finite"], 1.5, 4, records["outcomes"])
    return task, records


def _same(done, records) -> bool:
    return (np.array_equal(done.sums, records["sums"]) and np.array_equal(done.finite, records["finite"])
            and all(np.array_equal(a, b) for a, b in zip(done.outcomes, records["outcomes"]))
            and (done.seconds, done.seed_epochs) == (1.5, 4))


def test_damaged_foreign_or_newer_progress_files_are_refused_by_name(tmp_path):
    task, records = _small_store(tmp_path)
    assert _same(task.finished(0), records)
    good = (task.folder / "chunk-0000.npz").read_bytes()
    (task.folder / "chunk-0001.npz").write_bytes(good)  # a finished chunk copied over another's name
    with pytest.raises(UserError, match=r"chunk-0001.npz was written as .*/chunk-0000, not as this task's chunk-0001"):
        task.finished(1)
    other = resume.TaskStore(tmp_path, "digits", {"x": 2})
    other.folder.mkdir(parents=True)
    (other.folder / "chunk-0000.npz").write_bytes(good)  # another task's chunk
    with pytest.raises(UserError, match="was written as"):
        other.finished(0)
    with pytest.raises(UserError, match=r"holds sums of shape \(2, 1, 2, 2, 1\), this task needs \(2, 1, 2, 2, 2\)"):
        task.finished(0, {"sums": (2, 1, 2, 2, 2)})
    (task.folder / "chunk-0000.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match=r"chunk-0000.npz is damaged \(File is not a zip file\); delete it"):
        task.finished(0)
    store.write_npz_verified(task.folder / "chunk-0000.npz", {"format": np.int64(resume.FORMAT_VERSION + 1)})
    with pytest.raises(UserError, match=rf"has progress format {resume.FORMAT_VERSION + 1}; .* fresh=True"):
        task.finished(0)


def test_an_edited_or_damaged_manifest_is_refused(tmp_path):
    task, _ = _small_store(tmp_path)
    manifest = task.folder / "manifest.json"
    plan = memory.ChunkPlan(seeds_per_chunk=2, n_chunks=1, n_inits=2, estimate=0, budget=0, reason="new")
    assert task.plan(plan, n_seeds=2).n_chunks == 2  # the stored plan wins
    body = json.loads(manifest.read_text())
    body["plan"]["n_chunks"] = 7
    manifest.write_text(json.dumps(body))
    with pytest.raises(UserError, match="manifest.json is damaged or edited; delete"):
        task.plan(plan, n_seeds=2)
    manifest.write_text("{")
    with pytest.raises(UserError, match="manifest.json is damaged"):
        task.plan(plan, n_seeds=2)


def test_every_single_bit_flip_of_a_progress_file_is_refused_or_harmless(tmp_path):
    """Fuzz: each of the file's bits flipped in turn. Reading it must either refuse it in one line or give back
    exactly the records written (a flip in a zip timestamp changes nothing); never other numbers, never a traceback."""
    task, records = _small_store(tmp_path)
    path = task.folder / "chunk-0000.npz"
    good = path.read_bytes()
    refused = harmless = 0
    for bit in range(8 * len(good)):
        damaged = bytearray(good)
        damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(damaged)
        try:
            done = task.finished(0)
        except UserError as error:
            assert "\n" not in str(error) and "chunk-0000.npz" in str(error)
            refused += 1
            continue
        assert _same(done, records), f"bit {bit} changed the records"
        harmless += 1
    assert refused > 0.5 * 8 * len(good) and harmless > 0  # zip times, versions, padding: harmless


def test_a_second_run_into_a_held_folder_stops_with_one_line(tmp_path):
    with store.exclusive(tmp_path):
        proc = subprocess.run([sys.executable, "-m", "bench", *ARGS, "--out", str(tmp_path)], cwd=REPO, env=_env(),
                              capture_output=True, text=True, timeout=600)
        report = subprocess.run([sys.executable, "-m", "bench", "report", str(tmp_path)], cwd=REPO, env=_env(),
                                capture_output=True, text=True, timeout=600)
    for done in (proc, report):
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert f"another initjax process (pid {os.getpid()}) is writing to {tmp_path}; wait for it to finish or " \
            "choose another --out" in done.stderr
    assert not (tmp_path / "progress").exists()


def test_two_runs_started_at_once_never_corrupt_each_other(tmp_path, uninterrupted):
    """Two copies of one command (with different --chunk) into one folder: one trains, the other stops in one
    line or, if it comes later, resumes; the results equal an uninterrupted run's."""
    procs = [subprocess.Popen([sys.executable, "-m", "bench", *ARGS, "--out", str(tmp_path), "--chunk", chunk],
                              cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for chunk in ("1", "2")]
    done = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in done)[0] == 0, done
    for rc, err in done:
        assert rc == 0 or (rc == 2 and "another initjax process" in err and err.count("\n") == 1), err
    got, want = (pd.read_csv(io.BytesIO(b)) for b in ((tmp_path / "results.csv").read_bytes(), uninterrupted))
    pd.testing.assert_frame_equal(got, want, rtol=1e-5)  # the winner's chunking may change the last bits only
    assert not list(tmp_path.rglob("*.tmp"))
    manifests = [json.loads(p.read_text())["plan"]["seeds_per_chunk"] for p in tmp_path.rglob("manifest.json")]
    assert len(set(manifests)) == 1  # both tasks stored under one plan


def test_ctrl_c_while_the_report_is_written_says_so_and_the_rerun_retrains_nothing(tmp_path, whole_run,
                                                                                      uninterrupted):
    shutil.copytree(whole_run / "progress", resume.cache_root(), dirs_exist_ok=True)  # every chunk trained: loaded
    proc = _killed(tmp_path, "bench.reporting.drawing", "Drawing.paths", "interrupt", 1,  # waiting for figures
                   extra=FIGURES)
    *loaded, last = proc.stderr.splitlines()  # the loaded chunks are said first, each task in one line
    assert all(line.endswith("--fresh to retrain") for line in loaded) and "Traceback" not in proc.stderr
    assert "interrupted while writing the report (the previous one in" in last
    rerun = _bench(tmp_path, *FIGURES)
    assert "compile 0.0 s" in rerun.stdout
    assert (tmp_path / "results.csv").read_bytes() == uninterrupted
    assert {p.suffix for p in (tmp_path / "figures").iterdir()} == {".png"}  # the first task's, drawn early, too


def test_a_figure_that_cannot_be_written_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from bench.reporting import figures

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store.os, "fsync", full_disk)
    fig = plt.figure()
    with pytest.raises(UserError, match="No space left on device") as error:
        figures.save(fig, tmp_path / "figures" / "x", ("png",))
    assert "\n" not in str(error.value) and not list(tmp_path.rglob("*.png"))
    assert not list(tmp_path.rglob("*.tmp")) and not plt.fignum_exists(fig.number)  # closed all the same


def test_editing_a_user_initializer_retrains_and_a_rerun_says_what_it_loaded(tmp_path, capsys, monkeypatch):
    """The key covers the code of the module a spec names: the same command after an edit trains anew."""
    (tmp_path / "edited_inits.py").write_text(
        "import jax\n\ndef init(key, shape, dtype=None):\n    return 0.1 * jax.random.normal(key, shape, dtype)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    experiment = smoke(get("default")).override(initializers=["edited_inits:init"])
    out = tmp_path / "out"
    first = run_experiment(experiment, out, progress=False, formats=TEXT)
    again = run_experiment(experiment, out, progress=True, formats=TEXT)  # unchanged code: every chunk loaded, and said
    assert "synthetic: loaded 1 of 1 finished chunk(s)" in capsys.readouterr().err
    assert again.record.tasks["synthetic"].chunks_loaded == 1
    (tmp_path / "edited_inits.py").write_text(
        "import jax\n\ndef init(key, shape, dtype=None):\n    return 0.5 * jax.random.normal(key, shape, dtype)\n")
    import importlib
    import sys

    importlib.reload(sys.modules["edited_inits"])  # what a new process would import
    edited = run_experiment(experiment, out, progress=False, formats=TEXT)
    assert edited.record.tasks["synthetic"].chunks_loaded == 0  # retrained
    final = lambda o: o.results[o.results.epoch == 0]["test_loss"].to_numpy()  # noqa: E731
    assert not np.allclose(final(edited), final(first))
    tasks = [p for p in (tmp_path / "progress").iterdir() if p.name != "xla"]  # xla: compiled programs
    assert len(tasks) == 4  # 2 tasks x 2 versions of the code, in the cache


def _bench_imports(path: Path, root: Path) -> set[Path]:
    """The suite's files that the module at ``path`` imports (``from bench[.pkg] import ...``)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bench":
            for alias in node.names:
                for dotted in (f"{node.module}.{alias.name}", node.module):
                    base = root.joinpath(*dotted.split("."))
                    hits = [f for f in (base.with_suffix(".py"), base / "__init__.py") if f.is_file()]
                    if hits:
                        found.add(hits[0])
                        break
    return found


def test_the_cache_key_covers_every_module_the_training_code_imports(monkeypatch):
    """An edit to any file the trainer runs (step, losses, models, data, ...) must start a new run."""
    root = Path(resume.__file__).resolve().parents[2]
    reachable, todo = set(), [root / "bench" / "training" / "train.py"]
    while todo:
        path = todo.pop()
        if path not in reachable:
            reachable.add(path)
            todo += _bench_imports(path, root)
    not_numeric = {root / "bench" / "errors.py", root / "bench" / "store.py", root / "bench" / "__init__.py"}
    seen = []
    monkeypatch.setattr(resume, "files_digest", lambda files: seen.extend(files) or "digest")
    resume.code_key([])
    covered = {Path(f).resolve() for f in seen}
    assert {root / "bench" / "training" / "step.py", root / "bench" / "models" / "losses.py"} <= reachable
    assert reachable - not_numeric <= covered, sorted(map(str, reachable - not_numeric - covered))
    assert root / "bench" / "experiments" / "tasks.py" in covered  # task_model and task_data build the task


def test_code_defined_outside_any_file_is_keyed_by_its_source_or_never_reused(monkeypatch):
    """A notebook's cell: ``__main__`` has no file. A function whose source linecache holds is keyed by that source
    (an edit is a new run); code with no readable source gets a key never seen again (no stale reuse)."""
    import linecache
    import types

    notebook = types.ModuleType("notebook_cells")  # no __file__, as __main__ in a Jupyter kernel
    monkeypatch.setitem(sys.modules, "notebook_cells", notebook)

    def define(body: str, cell: str):
        source = f"def my_init(key, shape, dtype):\n    return {body}\n"
        linecache.cache[cell] = (len(source), None, source.splitlines(True), cell)  # what IPython keeps per cell
        exec(compile(source, cell, "exec"), notebook.__dict__)
        return notebook.my_init

    first = resume.code_key([define("0.0", "<cell-1>")])
    assert resume.code_key([define("0.0", "<cell-2>")]) == first  # the same code again: the same key
    assert resume.code_key([define("1.0", "<cell-3>")]) != first  # an edit: another
    exec("def unreadable(key, shape, dtype):\n    return 0.0\n", notebook.__dict__)  # no source anywhere
    assert resume.code_key([notebook.unreadable]) != resume.code_key([notebook.unreadable])
    monkeypatch.delitem(sys.modules, "notebook_cells")  # code exec'd under a name no module has (the docs' tests)
    assert resume.code_key([define("0.0", "<cell-4>")]) == first
