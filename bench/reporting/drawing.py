"""Where a report's figures are drawn: in worker processes, beside the statistics and the text.

Matplotlib draws one figure at a time, in Python: the default preset's ten figures (PNG
and PDF each) took 3.0 s of its 12 s, after 1.7 s of statistics that need no figure. Two
worker processes, started before the statistics (their imports overlap them), draw the
figures side by side; the figures are the same bytes as drawn here (a test compares them).
Where the platform has a fork server (Linux, macOS) the workers are forked from it, and it
imports matplotlib once for both (an import of 1.2-2.4 s on 2 cores that each spawned worker
repeated, competing with this process's own imports); elsewhere they are spawned.

Workers are spawned only when the parent's ``__main__`` is not run again in them
(``multiprocessing``'s rule: ``python -m bench``, an interactive session or a notebook); a
script that calls ``bench.run(...)`` without an ``if __name__ == "__main__"`` guard would
be run again in every worker, so there the figures are drawn in this process. A pool that
cannot start or breaks is replaced by drawing here.
"""

from __future__ import annotations

import atexit
import concurrent.futures as futures
import contextlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Sequence
from multiprocessing import connection
from pathlib import Path
from typing import NamedTuple

WORKERS = 2  # processes that draw figures, where spawning them is safe (see the module docstring)
NICENESS = 10
"""Added to the workers' niceness: on a busy machine the statistics this process computes meanwhile, which the
report waits for, and a next task's training, come first (the default preset's statistics took 6 s of wall time
beside two workers drawing on 2 cores, with the cores shared three ways)."""

PRELOAD = ["bench.reporting.forkserver", "bench.reporting.figures", "matplotlib.backends.backend_pdf"]
"""What the fork server imports for every worker: the figures, and the PDF backend, which matplotlib imports at a
figure's first PDF (with fontTools' subsetter: 0.1 CPU-s a worker on an idle machine, 0.6 s of wall time while the
next task trains)."""

_pool: futures.ProcessPoolExecutor | None = None
_pool_size = 0
# (read end, write end): only this process has the write end, and its closing (this process ending) ends the workers
_lifeline: tuple[connection.Connection, connection.Connection] | None = None


def with_format(stem: Path, fmt: str) -> Path:
    """``stem.png``: the stem's whole name and the format's suffix (``with_suffix`` would cut a name at its first
    dot: ``a.b-curves`` into ``a.png``)."""
    return stem.parent / f"{stem.name}.{fmt.lstrip('.')}"


class Job(NamedTuple):
    """One figure: a function of ``bench.reporting.figures`` by name (or of any module, as ``module:function``: a
    section's own figure), its arguments (picklable: frames, arrays, plain objects) and the file path without its
    suffix. The function returns a matplotlib figure."""

    function: str
    args: tuple
    stem: Path


def spawn_is_safe() -> bool:
    """Whether a spawned worker leaves this process's ``__main__`` alone (a package's ``__main__``, no main
    file: ``python -m``, ``python -c``, a REPL or a notebook), so no user code runs twice."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    return (name is not None and name.split(".")[-1] == "__main__") or getattr(main, "__file__", None) is None


def default_workers() -> int:
    """:data:`WORKERS` where spawning is safe and there are cores to spare, else 0 (draw here)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(WORKERS, cores) if cores > 1 and spawn_is_safe() else 0


def warm(workers: int | None = None) -> None:
    """Starts the workers now (they import matplotlib while this process computes), if any are to be used."""
    workers = default_workers() if workers is None else workers
    if workers > 0:
        _workers(workers)


class Drawing:
    """Figures being drawn (:func:`draw`); :meth:`paths` waits for them."""

    def __init__(self, jobs: Sequence[Job], formats: tuple[str, ...], submitted: list[futures.Future] | None):
        self.jobs, self.formats, self.submitted = list(jobs), formats, submitted

    def paths(self) -> list[Path]:
        """The files written, in job order, once every figure is saved. Figures a broken pool (a worker
        killed) did not save are drawn here.

        Raises:
          UserError: a figure cannot be written, as ``figures.save`` says.
        """
        done = []
        for i, job in enumerate(self.jobs):
            if self.submitted is None:
                done += _draw_and_save(job, self.formats)
                continue
            try:  # (a worker writes to the absolute path: the files as this process names them)
                done += [with_format(job.stem, path.suffix) for path in self.submitted[i].result()]
            except futures.BrokenExecutor:
                stop()
                done += _draw_and_save(job, self.formats)
            except futures.CancelledError:  # an earlier drawing's job, its pool stopped since
                done += _draw_and_save(job, self.formats)
        return done


def draw(jobs: Sequence[Job], formats: tuple[str, ...], workers: int | None = None,
         started: Sequence[Drawing] = ()) -> Drawing:
    """Starts drawing and saving every job's figure as each of ``formats``.

    ``workers``: processes to draw in (None: :func:`default_workers`; 0: here, when the paths
    are asked for). ``started``: drawings begun earlier (a finished task's figures, while the next
    trained): a job among them with the same function, arguments, file and formats is not drawn again;
    the others are waited for before anything is drawn, and their files removed unless drawn again
    now (they showed runs or settings this report does not have).
    """
    workers = default_workers() if workers is None else workers
    reused = _reusable(jobs, formats, started)
    todo = [job for job in jobs if id(job) not in reused]
    # one figure alone goes only to workers already there
    if workers > 0 and (len(todo) > 1 or ((todo or reused) and _pool is not None)):
        try:
            pool = _workers(workers)
            # a worker's working directory is the one it started in, not this process's now: absolute paths
            submitted = {id(job): pool.submit(_draw_and_save, job._replace(stem=job.stem.absolute()), formats)
                         for job in todo}
            return Drawing(jobs, formats, [reused.get(id(job)) or submitted[id(job)] for job in jobs])
        except (OSError, futures.BrokenExecutor):  # no processes to be had here: draw in this one
            stop()
    return Drawing(jobs, formats, None)


def _reusable(jobs: Sequence[Job], formats: tuple[str, ...], started: Sequence[Drawing]) -> dict[int, futures.Future]:
    """The futures of ``started`` that draw one of ``jobs`` (by ``id`` of the job); waits for the rest and removes
    the files they wrote that none of ``jobs`` writes."""
    reused, stale = {}, []
    for drawing in started:
        for i, earlier in enumerate(drawing.jobs):
            match = next((job for job in jobs if id(job) not in reused and drawing.formats == formats
                          and _same_job(earlier, job)), None) if drawing.submitted is not None else None
            if match is None:
                stale.append((earlier, drawing.formats, None if drawing.submitted is None else drawing.submitted[i]))
            else:
                reused[id(match)] = drawing.submitted[i]
    kept = {job.stem for job in jobs}
    for earlier, earlier_formats, future in stale:
        if future is not None:
            futures.wait([future])
        if earlier.stem not in kept:
            for fmt in earlier_formats:
                with_format(earlier.stem, fmt).unlink(missing_ok=True)
    return reused


def _same_job(a: Job, b: Job) -> bool:
    """Whether two jobs draw the same figure into the same file: function, stem and arguments equal."""
    return a.function == b.function and a.stem == b.stem and len(a.args) == len(b.args) and all(
        map(_same_value, a.args, b.args))


def _same_value(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if hasattr(a, "equals"):  # a frame: the same labels, dtypes and values, NaN where NaN
        return a.equals(b)
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays and other values without one truth: not reused
        return False


def _draw_and_save(job: Job, formats: tuple[str, ...]) -> list[Path]:
    import importlib

    from bench.reporting import figures

    module, _, name = job.function.rpartition(":")
    function = getattr(importlib.import_module(module) if module else figures, name)
    return figures.save(function(*job.args), job.stem, formats)


def _start_worker(lifeline: connection.Connection) -> None:
    """A worker's first moments: import the figures (its first job then only draws; forked from the fork server,
    they are imported already), collect garbage rarely (``bench.collector``) and watch ``lifeline``, the read end
    of a pipe only this process writes to."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle: it stops the workers
    import bench.reporting.figures  # noqa: F401
    from bench import collector

    collector.collect_rarely()
    if hasattr(os, "nice"):
        os.nice(NICENESS)
    threading.Thread(target=_exit_with, args=(lifeline,), daemon=True).start()
    atexit.register(_skip_teardown)


def _skip_teardown() -> None:
    """A stopped worker's last step: its figures are saved and closed, so it ends without the interpreter's
    teardown of matplotlib and numpy (0.4 s that the parent's :func:`stop` would wait for)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def _exit_with(lifeline: connection.Connection) -> None:
    """Ends this worker once the parent is gone (killed, SIGKILL included: an idle worker would wait for jobs
    forever, holding its memory and the parent's output pipes). The pipe's end of file says so, whoever this
    worker's parent process is: the fork server outlives the parent until its last worker ends."""
    try:
        lifeline.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(0)


def _context() -> multiprocessing.context.BaseContext:
    """The fork server, preloading the figures, where the platform has one; else spawn (see the module docstring).
    Either way a worker is a process that imported no more than the figures, never a fork of this one (its JAX
    threads)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)  # instead of ['__main__']: no user code runs there
    return context


def _workers(n: int) -> futures.ProcessPoolExecutor:
    """The process pool, started on first use and kept for the process's later reports."""
    global _pool, _pool_size, _lifeline
    if _pool is None or _pool_size != n:
        stop()
        context = _context()
        _lifeline = multiprocessing.Pipe(duplex=False)  # each worker started gets the read end's descriptor
        _pool, _pool_size = futures.ProcessPoolExecutor(
            n, mp_context=context, initializer=_start_worker, initargs=(_lifeline[0],)), n
        with _interrupts_held():  # the server and workers are born deaf to Ctrl-C, which this process handles
            if context.get_start_method() == "forkserver":
                # the server imports now; the workers fork from it at the first figure (starting them here would
                # wait for that import: a worker's start waits for the server's answer)
                from multiprocessing import forkserver

                forkserver.ensure_running()
            else:
                for _ in range(n):  # a spawn pool starts a process per submission while none is idle
                    _pool.submit(int)
    return _pool


@contextlib.contextmanager
def _interrupts_held():
    """Blocks SIGINT in this thread while child processes start: they inherit the blocked signal (a Ctrl-C in the
    first milliseconds of the fork server, before ``bench.reporting.forkserver`` runs, printed a traceback); here a
    Ctrl-C meanwhile is held, not lost, and delivered when it ends."""
    import signal

    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def stop() -> None:
    """Stops the workers and waits for them to end (a later :func:`draw` starts new ones)."""
    global _pool, _lifeline
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
    for end in _lifeline or ():
        end.close()
    _pool, _lifeline = None, None


atexit.register(stop)  # the workers stop before the interpreter tears down what the pool's threads use
