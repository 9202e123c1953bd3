"""Chunks trained side by side: a few threads, each driving its own compiled calls.

A vmapped step of small models leaves a CPU's cores idle between its small operations
(the default preset's digits MLP kept 1.4 of 2 cores busy); two chunks dispatched from two
threads fill them, because XLA runs the calls of independent executions at once and JAX
releases the GIL while they run. The numbers do not change: each chunk is the same program
on its own arrays. How many lanes a task gets is the chunk plan's choice
(``bench.training.memory.plan``: the memory budget counts every lane).

A failure in one lane (an error, or Ctrl-C in the main thread) stops the others at their next
:func:`side_by_side` check (each segment of an epoch), so nothing runs on unseen after an
error and an interrupted run stops within a segment.
"""

from __future__ import annotations

import concurrent.futures as futures
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Stopped(Exception):
    """Raised by a lane's check once another lane failed or the run was interrupted."""


def side_by_side(work: Callable[[Item, Callable[[], None]], Result], items: Sequence[Item],
                 lanes: int) -> list[Result]:
    """``work(item, check)`` for every item, ``lanes`` at a time; the results in item order.

    ``check()`` raises :class:`Stopped` once another item has failed: ``work`` calls it often
    (between its compiled calls). With one lane (or one item) everything runs here, in order.

    Raises:
      The first failure's exception (in completion order), KeyboardInterrupt included, once
      every lane has stopped.
    """
    stop = threading.Event()

    def check() -> None:
        if stop.is_set():
            raise Stopped

    if lanes <= 1 or len(items) <= 1:
        return [work(item, check) for item in items]
    pool = futures.ThreadPoolExecutor(min(lanes, len(items)), thread_name_prefix="chunk-lane")
    submitted = [pool.submit(work, item, check) for item in items]
    try:
        pending = set(submitted)
        while pending:
            done, pending = futures.wait(pending, return_when=futures.FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                raise failed[0].exception()
        return [f.result() for f in submitted]
    except BaseException:
        for future in submitted:  # first, so a lane freed by the stop takes no new item
            future.cancel()
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class WallShares:
    """Each running item's share of the wall time: every interval is split evenly among the items running in it.

    Chunks side by side each run slower than alone, and a chunk alone at the end runs at full speed, so neither
    an item's own seconds nor its seconds over the lane count add up to the wall time; these shares do (over the
    time any item ran), and a chunk's recorded seconds stay meaningful when a later run resumes from it.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock, self._lock = clock, threading.Lock()
        self._last, self._running, self._shares = clock(), set(), {}

    def _advance(self) -> None:
        now = self._clock()
        for key in self._running:
            self._shares[key] += (now - self._last) / len(self._running)
        self._last = now

    def start(self, key) -> None:
        with self._lock:
            self._advance()
            self._running.add(key)
            self._shares[key] = 0.0

    def seconds(self, key) -> float:
        """``key``'s share so far."""
        with self._lock:
            self._advance()
            return self._shares[key]

    def stop(self, key) -> float:
        """``key``'s whole share; it no longer runs."""
        with self._lock:
            self._advance()
            self._running.discard(key)
            return self._shares[key]
