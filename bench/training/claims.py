"""Claims on units of work in a shared cache folder, safe where ``flock`` is not (NFS): who trains a chunk now.

Shards of one study (``python -m bench run STUDY --shard I/N``, ``bench.training.shards``) run as independent
processes on any number of machines over one cache folder. Before a process trains a chunk it claims it: the
file ``chunk-0003.claim`` beside the chunk's files, created atomically (written under a temporary name, then
hard-linked to its own: a link fails where the name exists, atomically on local filesystems and NFS alike), holding
the claimant's host, pid and a token. While it trains it touches the file every quarter of the lease (a thread);
a claim not touched for a whole lease, or whose pid is gone from this same host, is stale and is taken over: it is
renamed away first (of two processes taking it over, one rename succeeds) and claimed anew. Released (removed) when
the chunk is finished or the process stops.

A chunk file itself is written atomically with its checksum (``bench.store.write_npz_verified``) and is the same
whoever writes it, so even two processes that both trained a chunk (one took over a claim whose owner was only
slow) leave a sound file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from bench.errors import UserError

LEASE_S = 600.0  # a claim not touched for this long is stale (its holder stopped, or lost the filesystem)
SUFFIX = ".claim"


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a claim: ``host``, ``pid``, when it was made (``since``, epoch seconds) and last touched
    (``touched``), and the claim's ``token``."""

    host: str
    pid: int
    since: float
    touched: float
    token: str

    def age(self, now: float | None = None) -> float:
        """Seconds since the claim was made."""
        return (time.time() if now is None else now) - self.since

    def stale(self, lease: float = LEASE_S, now: float | None = None) -> bool:
        """Not touched for a whole lease, or made by a process of this host that is gone."""
        now = time.time() if now is None else now
        if now - self.touched > lease:
            return True
        return self.host == socket.gethostname() and not _alive(self.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def claim_path(folder: Path, unit: str) -> Path:
    return Path(folder) / f"{unit}{SUFFIX}"


def holder(path: Path) -> Holder | None:
    """The holder of the claim at ``path``; None where there is none (or it vanished meanwhile). A claim that
    cannot be read (cut short by a crash between its write and its link cannot happen: it is linked whole) is
    treated as made at its file's time by no one."""
    try:
        touched = path.stat().st_mtime
        body = json.loads(path.read_text())
        return Holder(str(body["host"]), int(body["pid"]), float(body["since"]), touched, str(body["token"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        try:
            touched = path.stat().st_mtime
        except FileNotFoundError:
            return None
        return Holder("?", -1, touched, touched, "")


def try_claim(folder: Path, unit: str, lease: float = LEASE_S) -> str | Holder:
    """Claims ``unit`` in ``folder``: its token where this process now holds it, else the live :class:`Holder`
    that does. A stale claim is taken over (module docstring).

    Raises:
      UserError: the folder cannot be written.
    """
    folder = Path(folder)
    path = claim_path(folder, unit)
    token = uuid.uuid4().hex
    body = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(), "token": token})
    for _ in range(5):
        tmp = folder / f".{unit}.{token}.claiming"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp.write_text(body)
            try:
                os.link(tmp, path)
                return token
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as error:
            raise UserError(f"cannot claim {unit} in {folder}: {error.strerror}") from None
        current = holder(path)
        if current is None:  # released meanwhile: try again
            continue
        if not current.stale(lease):
            return current
        with contextlib.suppress(FileNotFoundError):  # of two taking it over, one renames it away
            os.rename(path, folder / f".{unit}.{token}.stale")
            (folder / f".{unit}.{token}.stale").unlink(missing_ok=True)
    current = holder(path)
    return current if current is not None else Holder("?", -1, time.time(), time.time(), "")


def clear_stale(folder: Path, unit: str, lease: float = LEASE_S) -> None:
    """Removes a stale claim on ``unit`` (of a process that stopped after finishing it, before releasing it)."""
    path = claim_path(folder, unit)
    current = holder(path)
    if current is not None and current.stale(lease):
        with contextlib.suppress(FileNotFoundError):
            stale = Path(folder) / f".{unit}.{uuid.uuid4().hex}.stale"
            os.rename(path, stale)
            stale.unlink(missing_ok=True)


def release(folder: Path, unit: str, token: str) -> None:
    """Removes the claim if this process still holds it (a claim taken over is the taker's)."""
    path = claim_path(folder, unit)
    current = holder(path)
    if current is not None and current.token == token:
        path.unlink(missing_ok=True)


class Held:
    """Claims held by this process, touched every quarter lease by a thread until :meth:`close`."""

    def __init__(self, folder: Path, lease: float = LEASE_S):
        self.folder, self.lease = Path(folder), lease
        self.tokens: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def take(self, unit: str) -> Holder | None:
        """Claims ``unit``: None where this process now holds it, else its live holder."""
        got = try_claim(self.folder, unit, self.lease)
        if isinstance(got, Holder):
            return got
        with self._lock:
            self.tokens[unit] = got
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="initjax-claims", daemon=True)
            self._thread.start()
        return None

    def drop(self, unit: str) -> None:
        with self._lock:
            token = self.tokens.pop(unit, None)
        if token is not None:
            release(self.folder, unit, token)

    def _beat(self) -> None:
        while not self._stop.wait(self.lease / 4):
            with self._lock:
                units = list(self.tokens)
            for unit in units:
                with contextlib.suppress(OSError):
                    os.utime(claim_path(self.folder, unit))

    def close(self) -> None:
        self._stop.set()
        for unit in list(self.tokens):
            self.drop(unit)


def claims_in(folder: Path) -> dict[str, Holder]:
    """Unit name -> holder of every claim in ``folder`` (stale ones included: :meth:`Holder.stale` says)."""
    out = {}
    for path in sorted(Path(folder).glob(f"*{SUFFIX}")) if Path(folder).is_dir() else ():
        current = holder(path)
        if current is not None:
            out[path.name.removesuffix(SUFFIX)] = current
    return out
