"""What a hostile file, a full disk, a planted link or a Ctrl-C can do to the suite's files: nothing silent.

Every file read back is checked before it is trusted (every single-bit flip of a report's run record and of its
calibration is refused or changes nothing), a report folder changes as a whole or not at all, locks are not written
through links, names from input stay inside their folders, declared sizes are checked before data is read, a
damaged compiled program is compiled again, and counts are checked before anything is built.
"""

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import cli, data, store
from bench.analysis import calibrate
from bench.data import limits, readers
from bench.errors import UserError
from bench.reporting.analysed import analyse, settings_of
from bench.reporting.files import load, read_record
from initjax import spec

REPO = Path(__file__).parents[2]
SMOKE = ["run", "default", "--smoke", "--datasets", "synthetic", "--initializers", "he_normal,zeros", "--seeds", "3",
         "--no-progress"]
NO_FIGURES = ["--format", "md,csv"]  # half of a small run's CPU, where figures are not what is tested


def _flips(raw: bytes):
    for i in range(len(raw)):
        for bit in range(8):
            flipped = bytearray(raw)
            flipped[i] ^= 1 << bit
            yield bytes(flipped)


def test_every_bit_flip_of_the_run_record_is_refused_or_changes_nothing(calibrated_report, tmp_path):
    raw = (calibrated_report / "run.json").read_bytes()
    original = read_record(calibrated_report / "run.json")
    path = tmp_path / "run.json"
    accepted_changed = refused = 0
    for flipped in _flips(raw):
        path.write_bytes(flipped)
        try:
            record = read_record(path)
        except UserError:
            refused += 1
            continue
        accepted_changed += record != original
    assert accepted_changed == 0 and refused > 0.9 * 8 * len(raw), (accepted_changed, refused)


def test_every_bit_flip_of_the_calibration_is_refused_or_changes_nothing(calibrated_report, tmp_path):
    raw = (calibrated_report / calibrate.FILE).read_bytes()
    original = store.read_json_verified(calibrated_report / calibrate.FILE, "")
    path = tmp_path / calibrate.FILE
    accepted_changed = 0
    for flipped in _flips(raw):
        path.write_bytes(flipped)
        try:
            accepted_changed += store.read_json_verified(path, "") != original
        except UserError:
            continue
    assert accepted_changed == 0
    results, record = load(calibrated_report)  # and the report says so in one line, never a traceback
    path = calibrated_report.parent / "damaged"
    shutil.copytree(calibrated_report, path)
    (path / calibrate.FILE).write_bytes(raw.replace(b'"reps": 10', b'"reps": 11'))
    analysis = analyse(results, settings=settings_of(record))
    assert calibrate.summary_lines(path, results, analysis) == [
        f"`{calibrate.FILE}` is damaged, edited or of another version (its checksum or contents); rerun "
        "`python -m bench calibrate` to measure these runs."]


def test_a_calibration_describes_the_same_runs_trained_on_another_processor(calibrated_report, tmp_path):
    """Losses differ in their last bits between processor kinds (up to 1e-4 relative); the runs a calibration
    measured are the same runs: its line stays. Runs that differ in what it measured make it stale."""
    copy = tmp_path / "other-cpu"
    shutil.copytree(calibrated_report, copy)
    results = pd.read_csv(copy / "results.csv")
    results["test_loss"] *= 1 + 1e-7 * np.random.default_rng(0).standard_normal(len(results))
    text = results.to_csv(index=False)
    (copy / "results.csv").write_text(text)
    record = read_record(copy / "run.json")
    digest = hashlib.sha256(text.encode()).hexdigest()
    store.write_json_verified(copy / "run.json", {**record.to_json(), "results_sha256": digest})
    assert cli.main(["report", str(copy), "--format", "md"]) == 0
    assert "| calibration | synthetic (10 resamples a cell)" in (copy / "report.md").read_text()


def _lattice_runs(rng, flips=0, steps=1):
    """8 arms x 32 seeds with accuracies on a k/200 lattice, ``flips`` runs moved by ``steps`` test examples."""
    rows = [dict(dataset="d", model="m", arm=f"a{i}", seed=s, epoch=e, diverged=False,
                 test_accuracy=0.1 if e == 0 else int(rng.integers(160, 190)) / 200)
            for i in range(8) for s in range(32) for e in (0, 1)]
    table = pd.DataFrame(rows)
    last = table.index[table.epoch == 1]
    table.loc[last[:flips], "test_accuracy"] += steps / 200
    return table


@pytest.mark.parametrize(("flips", "steps", "same"), [(0, 0, True), (1, 1, True), (2, 1, True), (13, 1, False),
                                                      (1, 2, False)])
def test_a_borderline_example_flipped_in_a_few_runs_is_still_the_same_runs(flips, steps, same):
    """Retrained on another processor, one of the default preset's 512 runs classified one of 200 test examples
    the other way (losses 9e-4 apart): the calibration describes those runs. Over 1% of runs moved, or a run moved by
    two examples, are other runs."""
    from bench.analysis import calibrate

    stored = calibrate.measured_runs(_lattice_runs(np.random.default_rng(0)), "test_accuracy")
    moved = _lattice_runs(np.random.default_rng(0), flips, steps)
    assert calibrate.same_runs(stored, moved, "test_accuracy") is same


def test_a_report_that_fails_midway_leaves_the_previous_one_whole(calibrated_report, tmp_path, monkeypatch):
    """A rerun with other settings that fails on a figure (a full disk): the folder is the old report, file for file
    and byte for byte, with no staged copy left beside it."""
    copy = tmp_path / "report"
    shutil.copytree(calibrated_report, copy)
    before = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    from bench.reporting import figures

    def full_disk(*args, **kwargs):
        raise UserError("cannot write figures: No space left on device")

    from bench.reporting import drawing

    monkeypatch.setattr(figures, "save", full_disk)
    monkeypatch.setattr(drawing, "default_workers", lambda: 0)  # drawn in this process, where the patch holds
    assert cli.main([*SMOKE, "--epochs", "1", "--out", str(copy)]) == 2
    after = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert after == before and not list(tmp_path.glob(".*"))


def test_a_lock_planted_as_a_link_is_refused_and_its_target_untouched(tmp_path, capsys):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    out = tmp_path / "out"
    store.lock_path(out).symlink_to(target)
    assert cli.main([*SMOKE, "--out", str(out)]) == 2
    assert "cannot open the lock" in capsys.readouterr().err and target.read_text() == "keep me"


def test_a_lock_is_gone_when_the_command_ends(calibrated_report):
    assert not store.lock_path(calibrated_report).exists() and not (calibrated_report / store.LOCK).exists()
    with store.exclusive(calibrated_report):
        assert store.lock_path(calibrated_report).is_file()
    assert not store.lock_path(calibrated_report).exists()


@pytest.mark.parametrize("label", ["../../../ESCAPED", "/tmp/ABSOLUTE", "..", ".hidden", "a/b"])
def test_a_task_label_cannot_name_a_path_outside_its_folder(label, tmp_path, capsys):
    assert cli.main([*SMOKE, "--set", f'tasks.0.label="{label}"', "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot name a file" in err
    assert not list(tmp_path.rglob("*ESCAPED*")) and not Path("/tmp/ABSOLUTE").exists()


def test_names_from_elsewhere_become_paths_inside_their_folder(tmp_path):
    for name in ["../../etc/passwd", "/abs/path", "a/../../b", "..", "名前 with [glob]*"]:
        path = tmp_path / store.path_name(name)
        assert path.parent == tmp_path and path.resolve().is_relative_to(tmp_path.resolve())
    assert store.path_name("digits-depth22") == "digits-depth22"  # safe names are kept as they are
    assert store.path_name("a/b") != store.path_name("a_b")  # and cleaned ones never meet


def _rss_after(code: str) -> tuple[int, str]:
    """Peak resident memory (bytes, the process's own high-water mark: ``ru_maxrss`` of a child counts its
    parent's size at the fork) of a Python subprocess running ``code``, and what it printed."""
    code += "\nprint('VmHWM', open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    said = done.stderr + done.stdout
    return int(said.rsplit("VmHWM ", 1)[1].split()[0]) * 1024, said


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_a_gzip_bomb_of_idx_is_refused_before_it_is_read(tmp_path):
    """2 MB of gzip declaring (16384, 256, 256) bytes: refused from its header, the process stays small (it
    reached 13.9 GB before the budget was looked at)."""
    path = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as handle:
        handle.write(bytes([0, 0, 8, 3]) + np.array([16384, 256, 256], ">u4").tobytes())
        for _ in range(64):
            handle.write(bytes(2**24))
    code = (f"from bench.data import limits, readers\nwith limits.budget(2**30):\n    try:\n"
            f"        readers.read_idx({str(path)!r})\n    except Exception as e:\n        print(e)")
    peak, said = _rss_after(code)
    assert "declares an array of shape (16384, 256, 256)" in said and peak < 600 * 2**20, (peak, said)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_an_npz_bomb_is_refused_before_it_is_read(tmp_path):
    """An .npz whose arrays compress 1000-fold: refused from the headers inside it, under --max-memory 1G."""
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x_train=np.zeros((4096, 64, 256), np.float32), y_train=np.zeros(4096, np.int64),
                        x_test=np.zeros((2, 64, 256), np.float32), y_test=np.zeros(2, np.int64))
    assert path.stat().st_size < 5 * 2**20
    code = (f"from bench import data\nfrom bench.data import limits\nwith limits.budget(2**28):\n    try:\n"
            f"        data.npz({str(path)!r})\n    except Exception as e:\n        print(e)")
    peak, said = _rss_after(code)
    assert "declares the arrays" in said and peak < 600 * 2**20, (peak, said)


def test_a_lying_npy_header_is_refused_by_name(tmp_path):
    import io
    import zipfile

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10)})
    path = tmp_path / "lying.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", buffer.getvalue() + bytes(100))
    with pytest.raises(UserError, match=r"lying.npz: array x_train's header declares shape \(1000000, 10\)"):
        readers.npz_headers(path)


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.zeros(8)}, r"training inputs \(x_train\) have shape \[8\]"),
    ({"x_train": np.array([["a", "b"]] * 8)}, r"training inputs \(x_train\) are of type <U1"),
    ({"x_test": np.zeros((4, 5))}, r"test inputs are \[5\] per example, the training inputs \[3\]"),
    ({"y_train": np.zeros((8, 2), int)}, r"training labels \(y_train\) have shape \[8, 2\]"),
    ({"x_train": np.zeros((8, 3), complex)}, r"training inputs \(x_train\) are complex"),
    ({"y_test": np.array([0.5, 1, 0, 1])}, r"test labels are not integers"),
])
def test_bad_arrays_in_a_data_file_get_one_line_naming_the_file_and_the_array(arrays, message, tmp_path):
    base = {"x_train": np.zeros((8, 3)), "y_train": np.zeros(8, int), "x_test": np.zeros((4, 3)),
            "y_test": np.zeros(4, int)}
    path = tmp_path / "bad.npz"
    np.savez(path, **{**base, **arrays})
    with pytest.raises(UserError, match=message) as error:
        data.npz(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_toml_nested_thousands_deep_gets_one_line(tmp_path, capsys):
    path = tmp_path / "deep.toml"
    path.write_text("name = 'x'\nseeds = " + "[" * 3000 + "]" * 3000 + "\n")
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "nests tables or arrays deeper than can be read" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--lr", "logspace(1e-4, 1e-1, 100000000)"], "100,000,000 values; at most 1000"),
    (["--lr", "logspace(1e-4, 1e-1, 100000000000)"], "100,000,000,000 values; at most 1000"),
    (["--set", 'grid.lr="logspace(1e-4, 1e-1, 999)"', "--set", 'grid.weight_decay="linspace(0, 1, 999)"'],
     "the grid has 998,001 cells"),
    (["--set", "train.lr=1e308"], "learning rate must be a number > 0 and at most"),
    (["--initializers", "normal(stddev=1e309)"], "1e309 is not a finite number"),
])
def test_counts_and_magnitudes_are_checked_before_anything_is_built(args, message, tmp_path, capsys):
    assert cli.main([*SMOKE, *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_calibrate_counts_are_bounded(calibrated_report, capsys):
    assert cli.main(["calibrate", str(calibrated_report), "--seeds", "1000000000"]) == 2
    assert "--seeds must be at most 32 counts from 3 to 4,096" in capsys.readouterr().err


def test_a_spec_with_an_infinite_number_is_refused():
    with pytest.raises(ValueError, match="is not a finite number"):
        spec.parse_spec("normal(stddev=1e309)")
    with pytest.raises(ValueError, match="is not a finite number"):
        spec.parse_spec("uniform(scale=(1.0, -1e400))")


def test_a_report_format_that_does_not_exist_writes_nothing(calibrated_report, tmp_path, capsys):
    out = tmp_path / "never"
    assert cli.main(["report", str(calibrated_report), "--format", "bogus", "--out", str(out)]) == 2
    assert "unknown report format 'bogus'" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_a_report_killed_while_written_elsewhere_is_written_on_rerun(calibrated_report, tmp_path):
    """A `report DIR --out O` killed midway leaves a staged copy beside O and no O: a rerun writes O (it was
    refused until --force)."""
    out = tmp_path / "other"
    stage = out.parent / f".{out.name}.staging"
    stage.mkdir()
    (stage / "report.md").write_text("half")
    assert cli.main(["report", str(calibrated_report), "--out", str(out), "--format", "md,csv"]) == 0
    assert (out / "report.md").read_text().startswith("# initjax report") and not stage.exists()


def test_a_second_task_too_large_for_the_budget_is_refused_before_the_first_trains(tmp_path, capsys):
    cache = tmp_path / "cache"
    os.environ["INITJAX_CACHE"] = str(cache)
    try:
        args = ["run", "default", "--smoke", "--seeds", "2", "--initializers", "he_normal", "--no-progress",
                "--set", "tasks.1.hidden=[4096, 4096, 4096]", "--max-memory", "300M", "--out", str(tmp_path / "o")]
        assert cli.main(args) == 2
    finally:
        del os.environ["INITJAX_CACHE"]
    assert "memory budget" in capsys.readouterr().err
    assert not list(cache.glob("synthetic-*/chunk-*"))  # the first task trained nothing


def test_a_damaged_compiled_program_is_compiled_again(tmp_path):
    """A bit flipped in an entry of the persistent compilation cache made every later run die by SIGSEGV or
    SIGILL; the entry's checksum fails, it is removed and compiled again."""
    env = {**os.environ, "INITJAX_CACHE": str(tmp_path / "cache"), "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla")}
    command = [sys.executable, "-m", "bench", *SMOKE, "--out", str(tmp_path / "o"), *NO_FIGURES]
    assert subprocess.run(command, env=env, cwd=REPO, capture_output=True, timeout=600).returncode == 0
    first = pd.read_csv(tmp_path / "o" / "results.csv")
    entries = sorted((tmp_path / "xla" / "initjax").glob("*-cache"))
    assert entries
    damaged = {}
    for entry in entries:
        raw = bytearray(entry.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        entry.write_bytes(bytes(raw))
        damaged[entry] = bytes(raw)
    again = subprocess.run([*command, "--fresh"], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert pd.read_csv(tmp_path / "o" / "results.csv").equals(first)
    rewritten = [entry for entry in entries if entry.exists() and entry.read_bytes() != damaged[entry]]
    assert rewritten, "no damaged entry was compiled again"


def test_a_compilation_cache_shared_with_plain_jax_is_left_to_each(tmp_path):
    """The suite's checked entries and a plain JAX process's entries in one folder (a user's
    ``JAX_COMPILATION_CACHE_DIR``): each reads its own; JAX warned on reading the suite's ("Error reading persistent
    compilation cache entry") and the suite removed JAX's as damaged."""
    plain = ("import jax, jax.numpy as jnp\n"
             "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)\n"
             "jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)\n"
             "print(float(jax.jit(lambda x: jnp.sin(x).sum() * 3)(jnp.arange(5.0))))\n")
    ours = "from bench.training import compilation\ncompilation.use_persistent_cache('unused')\n" + plain
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla"), "JAX_PLATFORMS": "cpu"}

    def run(code):
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        return done

    first = run(plain)
    theirs = {p: p.read_bytes() for p in (tmp_path / "xla").glob("*-cache")}
    assert theirs and run(ours).stdout == first.stdout
    assert {p: p.read_bytes() for p in (tmp_path / "xla").glob("*-cache")} == theirs  # JAX's entries untouched
    assert list((tmp_path / "xla" / "initjax").glob("*-cache"))  # the suite's in a folder of its own
    again = run(plain)
    assert again.stdout == first.stdout and "Error reading persistent compilation cache" not in again.stderr
    assert "cannot be written" not in run(ours).stderr


def test_the_data_limit_follows_the_budget():
    with limits.budget(2**20):
        assert limits.limit() == 2**20
        with pytest.raises(UserError, match="more than the 0.00 GiB allowed"):
            limits.check("f", "an array", 2**21)
    assert limits.limit() > 2**20


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_the_peak_memory_of_the_run_record_counts_the_report(tmp_path):
    """run.json's peak was taken before the statistics and figures: 642 MiB recorded, 902 MiB measured. The
    process's own high-water mark at its exit is the reference (``ru_maxrss`` of a child counts its parent's size)."""
    env = {**os.environ, "INITJAX_CACHE": str(tmp_path / "cache")}
    args = [*SMOKE, "--out", str(tmp_path / "o")]
    code = ("import sys\n"
            "from bench import cli\n"
            f"assert cli.main({args!r}) == 0\n"
            "status = open('/proc/self/status').read()\n"
            "sys.stderr.write('VmHWM ' + status.split('VmHWM:')[1].split()[0] + '\\n')\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    measured = int(done.stderr.rsplit("VmHWM ", 1)[1].split()[0]) * 1024
    recorded = json.loads((tmp_path / "o" / "run.json").read_text())["peak_rss_bytes"]
    assert 0.95 * measured <= recorded <= measured, (recorded, measured)


@pytest.mark.slow
def test_ctrl_c_at_any_moment_says_one_line_and_a_rerun_finishes_the_same_results(tmp_path):
    """SIGINT to the whole process group (what a terminal's Ctrl-C sends) from the imports to the figures: exit 130
    with one line (tracebacks came from imports, garbage-collection callbacks and the figure workers), or 0 when it
    came after the work; the rerun finishes with the results of a run never interrupted."""
    import signal
    import time

    command = [sys.executable, "-m", "bench", *SMOKE]
    reference_env = {**os.environ, "INITJAX_CACHE": str(tmp_path / "reference-cache")}
    done = subprocess.run([*command, "--out", str(tmp_path / "reference"), *NO_FIGURES], env=reference_env, cwd=REPO,
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr
    reference = pd.read_csv(tmp_path / "reference" / "results.csv")
    interrupted = 0
    for moment in (0.05, 1.5, 3.5):  # the imports, compiling, training (the report: tests/training/test_resume.py)
        env = {**os.environ, "INITJAX_CACHE": str(tmp_path / f"cache-{moment}")}
        out = tmp_path / f"out-{moment}"
        process = subprocess.Popen([*command, "--out", str(out)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        time.sleep(moment)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=300)
        said = [line for line in err.splitlines() if line.strip()]
        assert process.returncode in (0, 130), (moment, err)
        if process.returncode == 130:
            interrupted += 1
            assert len(said) == 1 and said[0].startswith("bench: interrupted"), (moment, err)
            rerun = subprocess.run([*command, "--out", str(out), *NO_FIGURES], env=env, cwd=REPO,
                                   capture_output=True, text=True, timeout=600)
            assert rerun.returncode == 0, (moment, rerun.stderr)
        pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), reference)  # a run it let finish: as is
    assert interrupted >= 2  # the moments reach from the imports into the work
