"""The store of JAX's persistent compilation cache the suite uses: checksummed entries, each written whole, and a
size bound kept by a sweep now and then instead of at every write.

JAX's own store (``jax._src.lru_cache.LRUCache``) keeps its size bound by listing the folder and reading every
entry's access-time file at *every* write, holding a lock that every process using the folder waits on: 130 ms a
write in a folder of 2,900 entries (a test session's: the suite caches every program, however small), so the
writes of a long session grew quadratic and one process's compiling stalled the other's. Here:

- an entry is ``<key>-cache``: ``MAGIC``, the SHA-256 of the executable's bytes, the bytes; a read checks the sum
  and removes an entry that fails it (a bit flipped on disk, a truncated copy made JAX's deserializer crash the
  process: SIGSEGV or SIGILL, no message), so the program is compiled again;
- an entry is written to a temp file and linked to its name, so a reader sees it whole or not at all, and a
  process killed mid-write leaves only a temp file (removed by the next sweep, once its writer is gone);
- a read marks the entry used (its modification time); the sweep (:func:`sweep`: when a process opens the store,
  and after each :data:`SWEEP_SHARE` of the bound it writes) removes the least recently used entries down to
  :data:`KEEP_SHARE` of the bound, stat calls only and no lock: a reader that loses an entry to another process's
  sweep reads a miss and compiles.

No lock is needed: entries are immutable once linked, and a name is linked at most once (a second writer of the
same program finds it there).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from pathlib import Path

from bench import store

MAGIC = b"initjax-sha256:"
SUFFIX = "-cache"  # JAX's own store's name for an executable (folders written by older versions read as before)
LEGACY = "-atime"  # the access times JAX's own store kept beside each entry (older versions used it)
SWEEP_SHARE = 1 / 16  # a process sweeps again after writing this share of the bound
KEEP_SHARE = 0.8  # a sweep over the bound evicts down to this share of it
_said_full: list[str] = []  # the store could not be written (said once per process)


def sweep(folder: str | Path, max_bytes: int) -> list[Path]:
    """Removes from a cache ``folder`` what no read needs: the temp files of writers that are gone, the access-time
    files of JAX's own store, and, where the entries add up to more than ``max_bytes``, the least recently used
    (oldest modification time) down to :data:`KEEP_SHARE` of it.

    Returns:
      The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    store.recover(folder)  # temp files of dead writers
    removed, entries = [], []
    with os.scandir(folder) as listing:
        for item in listing:
            with contextlib.suppress(OSError):  # gone meanwhile: another process's sweep
                if item.name.endswith(LEGACY):
                    os.unlink(item.path)
                    removed.append(Path(item.path))
                elif item.name.endswith(SUFFIX):
                    status = item.stat()
                    entries.append((status.st_mtime_ns, status.st_size, item.path))
    total = sum(size for _, size, _ in entries)
    if total > max_bytes:
        for _, size, path in sorted(entries):
            if total <= KEEP_SHARE * max_bytes:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(Path(path))
            total -= size
    return removed


class ProgramStore:
    """JAX's persistent-cache store (``get(key) -> bytes | None``, ``put(key, bytes)``, ``_path``) over a folder,
    as the module docstring describes; ``max_bytes`` bounds its entries."""

    def __init__(self, folder: str | Path, max_bytes: int):
        self._path = Path(folder)  # the name JAX's wrappers and log lines read
        self.max_bytes = max_bytes
        self._written = 0
        self._path.mkdir(parents=True, exist_ok=True)
        sweep(self._path, max_bytes)

    def _entry(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad cache key {key!r}")
        return self._path / f"{key}{SUFFIX}"

    def get(self, key: str) -> bytes | None:
        path = self._entry(key)
        try:
            raw = path.read_bytes()
        except OSError:  # a miss, or removed meanwhile by another process's sweep
            return None
        start = len(MAGIC) + 32
        if raw[:len(MAGIC)] != MAGIC or hashlib.sha256(raw[start:]).digest() != raw[len(MAGIC):start]:
            self.remove(key)
            return None
        with contextlib.suppress(OSError):  # a read-only cache keeps its order
            os.utime(path)  # used now: the sweep evicts it last
        return raw[start:]

    def put(self, key: str, value: bytes) -> None:
        path = self._entry(key)
        if path.exists():
            return
        payload = MAGIC + hashlib.sha256(value).digest() + value
        try:
            store.link_new(path, payload, sync=False)  # a damaged entry is caught on reading: no fsync needed
        except OSError as error:  # a full or read-only cache: said once, in one line (JAX warned 8 lines a program)
            if not _said_full:
                _said_full.append(key)
                print(f"bench: the compilation cache {self._path} cannot be written ({error.strerror}): programs are "
                      "compiled again in each run; free space there or point INITJAX_CACHE elsewhere",
                      file=sys.stderr)
            return
        self._written += len(payload)
        if self._written > SWEEP_SHARE * self.max_bytes:
            self._written = 0
            sweep(self._path, self.max_bytes)

    def remove(self, key: str) -> None:
        self._entry(key).unlink(missing_ok=True)
