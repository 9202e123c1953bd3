"""How much memory a dataset may take once read, checked against what its files declare before they are read.

A 2 MB gzip can declare a 1 GB IDX array, a 2 MB ``.npz`` a 6 GB one: read first and checked later, they exhaust
the machine before any budget is looked at. Readers therefore ask :func:`check` with the bytes a header declares
(times what the data becomes: float32 inputs) before reading a byte of data. The limit is the run's memory budget
(``--max-memory``, set with :func:`budget` while a run loads its data), else 80% of the memory the system says is
available now.
"""

from __future__ import annotations

import contextlib
import contextvars
import os

from bench.errors import UserError, option

_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar("data_limit", default=None)
DEFAULT_SHARE = 0.8  # of the memory available, when no budget is given


def available_bytes() -> int:
    """Memory the OS says is available now (``MemAvailable``), or physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def limit() -> int:
    """The bytes a dataset may take now: the budget set by :func:`budget`, else 80% of the available memory."""
    given = _LIMIT.get()
    return given if given is not None else int(DEFAULT_SHARE * available_bytes())


@contextlib.contextmanager
def budget(nbytes: int | None):
    """Datasets loaded inside take at most ``nbytes`` (None: :func:`limit`'s default)."""
    token = _LIMIT.set(None if nbytes is None else min(int(nbytes), int(DEFAULT_SHARE * available_bytes())))
    try:
        yield
    finally:
        _LIMIT.reset(token)


def check(source: str, what: str, nbytes: int) -> None:
    """Raises UserError before anything is read when ``nbytes`` (what ``source`` declares ``what`` to need, as
    used) exceed :func:`limit`."""
    allowed = limit()
    if nbytes > allowed:
        raise UserError(f"{source} declares {what} needing {nbytes / 2**30:.2f} GiB once read, more than the "
                        f"{allowed / 2**30:.2f} GiB allowed ({option('max_memory')}, or 80% of the memory available); "
                        "its "
                        "header is damaged, or give the run more memory")
