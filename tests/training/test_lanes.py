"""Chunks side by side (bench.training.lanes) and figures drawn in worker processes (bench.reporting.drawing)."""

import gc
import importlib.machinery
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import collector
from bench.analysis import compare
from bench.errors import UserError
from bench.reporting import drawing
from bench.training.lanes import Stopped, WallShares, side_by_side

REPO = Path(__file__).resolve().parents[2]


def test_two_lanes_run_at_once_and_give_the_results_in_item_order():
    meet = threading.Barrier(2, timeout=10)  # passes only if both items run at the same time

    def work(item, check):
        meet.wait()
        check()
        return item * 10, threading.current_thread().name

    results = side_by_side(work, [1, 2], lanes=2)
    assert [r[0] for r in results] == [10, 20]
    assert len({r[1] for r in results}) == 2 and threading.current_thread().name not in {r[1] for r in results}


def test_one_lane_runs_in_order_here():
    seen = []
    results = side_by_side(lambda item, check: seen.append((item, threading.current_thread().name)) or item,
                           [3, 1, 2], lanes=1)
    assert results == [3, 1, 2]
    assert seen == [(i, threading.current_thread().name) for i in (3, 1, 2)]


@pytest.mark.parametrize("failure", [ValueError("bad chunk"), KeyboardInterrupt()])
def test_a_failure_in_one_lane_stops_the_others_and_is_raised(failure):
    """Item 0 fails once item 1 is running; the items that would run for 60 s stop at their next check (item 2
    may have been taken by the freed lane before the stop), none finishes, and the caller gets the failure
    itself once every lane has stopped."""
    running, started, stopped, finished = threading.Event(), [], [], []

    def work(item, check):
        started.append(item)
        if item == 0:
            running.wait(10)
            raise failure
        running.set()
        try:
            for _ in range(6000):
                check()
                time.sleep(0.01)
        except Stopped:
            stopped.append(item)
            raise
        finished.append(item)

    begun = time.perf_counter()
    with pytest.raises(type(failure)):
        side_by_side(work, [0, 1, 2, 3], lanes=2)
    assert time.perf_counter() - begun < 30 and not finished
    assert sorted(stopped) == sorted(set(started) - {0})  # every other item that started was stopped
    assert set(started) in ({0, 1}, {0, 1, 2})  # item 3 was cancelled before a lane was free to take it


def test_wall_shares_split_each_interval_among_the_items_running_and_add_up_to_the_wall_time():
    """a runs 0-4 s, b 1-3 s, c 3-7 s (alone from 4 s): a = 1 + 2/2 + 1/2 = 2.5, b = 2/2 = 1, c = 1/2 + 3 = 3.5,
    together 7 s, the wall time (own seconds would say 4 + 2 + 4 = 10; own seconds over 2 lanes, 5)."""
    now = [0.0]
    shares = WallShares(clock=lambda: now[0])
    events = [(0, "start", "a"), (1, "start", "b"), (3, "stop", "b"), (3, "start", "c"), (4, "stop", "a"),
              (7, "stop", "c")]
    got = {}
    for t, what, key in events:
        now[0] = t
        if what == "start":
            shares.start(key)
        else:
            got[key] = shares.stop(key)
    assert got == pytest.approx({"a": 2.5, "b": 1.0, "c": 3.5})
    assert sum(got.values()) == pytest.approx(7.0)
    now[0] = 8.0
    shares.start("d")
    now[0] = 9.5
    assert shares.seconds("d") == pytest.approx(1.5)  # alone: every second is its own


# ---------------------------------------------------------------- figures in workers


def _jobs(tmp_path, folder):
    rng = np.random.default_rng(0)
    rows = [{"dataset": "d", "model": "m", "arm": arm, "seed": seed, "epoch": epoch, "diverged": False,
             "test_accuracy": 0.5 + 0.1 * epoch + (0.05 if arm == "b" else 0) + 0.02 * rng.normal()}
            for arm in ("a", "b") for seed in range(4) for epoch in range(3)]
    results = pd.DataFrame(rows)
    out = tmp_path / folder
    out.mkdir()
    return [drawing.Job("learning_curves", (results, "d", "test_accuracy", 0.95), out / "curves"),
            drawing.Job("final_distribution", (results, "d", "test_accuracy"), out / "final"),
            drawing.Job("win_matrix", (compare.win_matrix(results, "test_accuracy", "d"), "d", "test_accuracy", True),
                        out / "wins")]


def test_figures_drawn_in_workers_are_the_bytes_drawn_here(tmp_path):
    here = drawing.draw(_jobs(tmp_path, "here"), ("png", "pdf"), workers=0).paths()
    there = drawing.draw(_jobs(tmp_path, "there"), ("png", "pdf"), workers=2)
    assert there.submitted is not None  # drawn by the pool, not here
    there = there.paths()
    assert [p.name for p in there] == [p.name for p in here] == [
        "curves.png", "curves.pdf", "final.png", "final.pdf", "wins.png", "wins.pdf"]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(here, there))


def test_figures_begun_earlier_are_reused_only_when_they_are_the_same_figure(tmp_path):
    """A finished task's figures, begun while the next trains: the report's jobs that equal them (function, file,
    arguments) take their drawing; one of other data is drawn again over it, and a file no longer drawn is
    removed."""
    curves, final, wins = _jobs(tmp_path, "early")
    earlier = drawing.draw([curves, final, wins], ("png",), workers=2)
    changed = final.args[0].assign(test_accuracy=final.args[0]["test_accuracy"] + 0.1)
    now = [drawing.Job(curves.function, (curves.args[0].copy(), *curves.args[1:]), curves.stem),  # equal, not same
           drawing.Job(final.function, (changed, *final.args[1:]), final.stem)]
    again = drawing.draw(now, ("png",), workers=2, started=[earlier])
    assert again.submitted[0] is earlier.submitted[0] and again.submitted[1] is not earlier.submitted[1]
    assert [p.name for p in again.paths()] == ["curves.png", "final.png"]
    assert not wins.stem.with_suffix(".png").exists()  # drawn early, not by this report: gone
    alone = drawing.draw([now[1]], ("png",), workers=0).jobs[0]
    (tmp_path / "alone").mkdir()
    expected = drawing.draw([drawing.Job(alone.function, alone.args, tmp_path / "alone" / "final")], ("png",),
                            workers=0).paths()[0]
    assert final.stem.with_suffix(".png").read_bytes() == expected.read_bytes()  # the changed data's figure
    assert drawing._same_job(curves, now[0]) and not drawing._same_job(final, now[1])  # noqa: SLF001
    assert not drawing._same_job(curves, drawing.Job(curves.function, curves.args, tmp_path / "other"))  # noqa: SLF001


def test_a_relative_path_is_this_process_s_after_a_change_of_directory(tmp_path, monkeypatch):
    """The workers keep the working directory they started in: a figure named relative to this process's new one
    (a notebook's os.chdir, then bench.run(out="reports/mine")) is written there, not under the old one."""
    jobs = _jobs(tmp_path, "absolute")
    drawing.draw(jobs, ("png",), workers=2).paths()  # a first report: the workers start, here
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    relative = [drawing.Job(j.function, j.args, Path("reports") / j.stem.name) for j in jobs]
    (tmp_path / "elsewhere" / "reports").mkdir()
    drawn = drawing.draw(relative, ("png",), workers=2)
    assert drawn.submitted is not None
    assert drawn.paths() == [Path("reports/curves.png"), Path("reports/final.png"), Path("reports/wins.png")]
    assert sorted(p.name for p in (tmp_path / "elsewhere" / "reports").iterdir()) == [
        "curves.png", "final.png", "wins.png"]


def test_one_figure_goes_to_workers_only_when_they_are_already_running(tmp_path):
    first, second = _jobs(tmp_path, "one")[:2]
    drawing.stop()
    alone = drawing.draw([first], ("png",), workers=2)
    assert alone.submitted is None and drawing._pool is None  # noqa: SLF001  (no pool started for one figure)
    assert [p.name for p in alone.paths()] == ["curves.png"]
    drawing.warm(2)
    there = drawing.draw([second], ("png",), workers=2)
    assert there.submitted is not None
    assert [p.name for p in there.paths()] == ["final.png"]


def test_a_worker_that_cannot_write_is_a_user_error_here(tmp_path):
    jobs = _jobs(tmp_path, "gone")
    (tmp_path / "a-file").write_text("not a folder")
    jobs = [drawing.Job(j.function, j.args, tmp_path / "a-file" / j.stem.name) for j in jobs]
    with pytest.raises(UserError, match="cannot write to .*a-file"):
        drawing.draw(jobs, ("png",), workers=2).paths()


def test_a_broken_pool_draws_here(tmp_path, monkeypatch):
    jobs = _jobs(tmp_path, "broken")
    drawn = drawing.draw(jobs, ("png",), workers=2)
    for process in list(drawing._pool._processes.values()):  # noqa: SLF001  (kill the workers mid-job)
        process.kill()
    assert [p.name for p in drawn.paths()] == ["curves.png", "final.png", "wins.png"]
    assert all(p.stat().st_size > 1000 for p in (tmp_path / "broken").iterdir())


def test_spawn_is_safe_only_where_main_is_not_run_again(tmp_path, monkeypatch):
    """``python -m pkg`` (its ``__main__``), ``python -c`` and notebooks are safe; a script by path is not (an
    unguarded ``bench.run`` in it would run again in every worker)."""
    package_main = types.ModuleType("__main__")
    package_main.__spec__ = importlib.machinery.ModuleSpec("bench.__main__", None)
    package_main.__file__ = str(REPO / "bench" / "__main__.py")
    script = types.ModuleType("__main__")
    script.__spec__, script.__file__ = None, str(tmp_path / "study.py")
    interactive = types.ModuleType("__main__")
    interactive.__spec__ = None
    for main, safe in ((package_main, True), (script, False), (interactive, True)):
        monkeypatch.setitem(sys.modules, "__main__", main)
        assert drawing.spawn_is_safe() is safe
        assert (drawing.default_workers() > 0) is (safe and len(os.sched_getaffinity(0)) > 1)
    monkeypatch.undo()
    study = tmp_path / "study.py"
    study.write_text("from bench.reporting import drawing\nprint(drawing.spawn_is_safe())\n")
    for args, expected in (([str(study)], "False"), (["-c", study.read_text().replace("\n", ";")], "True")):
        done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.stdout.strip() == expected, done.stderr[-1000:]


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads process states from /proc (Linux)")
def test_workers_end_with_a_killed_parent():
    """SIGKILL a process whose figure workers are idle: they exit (else they would hold its output pipes open, and
    this communicate would wait forever, and their memory)."""
    code = ("import os, signal, time; from bench.reporting import drawing; drawing.warm(2); "
            "[f.result() for f in [drawing._pool.submit(time.sleep, 1) for _ in range(2)]]; "  # both workers started
            "pids = list(drawing._pool._processes); "
            "parents = [open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[1] for p in pids]; "
            "print(*pids, flush=True); print(*(p for p in parents if int(p) != os.getpid()), flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -9
    workers, servers = ([int(pid) for pid in line.split()] for line in proc.stdout.splitlines())
    assert len(workers) == 2
    time.sleep(1.5)
    assert not any(_running(pid) for pid in workers + servers)  # the fork server too, where they forked from one


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (an exited one not yet reaped is a zombie, state Z)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_command_line_and_the_figure_workers_collect_garbage_rarely_a_library_keeps_its_users_settings():
    code = ("import gc, runpy\nimport bench.cli, bench.reporting.drawing, bench.reporting.report\n"
            "print(gc.get_threshold())\n"  # imported as a library: untouched
            "bench.cli.main = lambda: print(gc.get_threshold()) or 0\n"  # `python -m bench`, its command stubbed
            "runpy.run_module('bench', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-1000:]
    assert done.stdout.split("\n")[:2] == [str(gc.get_threshold()), str(collector.THRESHOLDS)]
    assert gc.get_threshold() != collector.THRESHOLDS
    drawing.warm(1)
    assert drawing._pool.submit(gc.get_threshold).result(timeout=60) == collector.THRESHOLDS  # noqa: SLF001
    drawing.stop()


def test_a_figure_worker_draws_without_the_statistics_imports(tmp_path):
    """The figures read the results table with pandas alone: a worker that drew curves, final values and a win
    matrix has not imported SciPy's statistics, statsmodels or the suite's statistics (the fork server's imports
    they would add: 0.4-0.5 CPU-s)."""
    drawing.stop()
    drawing.warm(1)
    try:
        drawing.draw(_jobs(tmp_path, "light"), ("png",), workers=1).paths()
        heavy = ("scipy.stats", "statsmodels", "bench.analysis.stats", "bench.analysis.compare")
        imported = f"[name for name in {heavy!r} if name in __import__('sys').modules]"
        assert drawing._pool.submit(eval, imported).result(timeout=60) == []  # noqa: SLF001
    finally:
        drawing.stop()


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server here")
def test_a_figure_worker_has_the_pdf_backend_before_its_first_figure():
    """Forked from the fork server, a worker finds the figures and matplotlib's PDF backend imported (once, in the
    server), not imported again at its first PDF."""
    drawing.stop()
    drawing.warm(1)
    try:
        modules = ("bench.reporting.figures", "matplotlib.backends.backend_pdf")
        imported = f"[name in __import__('sys').modules for name in {modules!r}]"
        assert drawing._pool.submit(eval, imported).result(timeout=60) == [True, True]  # noqa: SLF001
    finally:
        drawing.stop()
