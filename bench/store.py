"""Writing result files so that a crash never leaves a partial one behind, and reading back only intact ones.

Every file the suite reads back carries a checksum of its own content (``.npz``: an entry; ``.json``: a key),
every folder of results is replaced as a whole (:func:`staged`), every lock lives beside its folder, is opened
without following links and is removed when released (:func:`exclusive`), and every name that comes from input
and becomes a path is checked to stay inside its folder (:func:`safe_name`, :func:`path_name`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bench.errors import UserError, option


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Writes ``data`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    Readers see either the old file or the whole new one. On failure (full disk,
    permissions) the temp file is removed and the old file is untouched.

    Raises:
      UserError: the folder cannot be created or written, naming it.
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise UserError(f"cannot write to {path.parent}: {error.strerror}; {_where(path)}") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise UserError(f"cannot write {path}: {error.strerror}; free space or {_where(path)}") from None
    return path


def link_new(path: str | Path, data: bytes, sync: bool = True) -> bool:
    """Writes ``data`` to ``path`` only if no file is there, atomically: a temp file in the same folder (flushed to
    disk first where ``sync``), then a hard link to the name, which fails where the name exists, on local
    filesystems and NFS alike. True if this call made it, False if one was there (another process's, which won).

    Raises:
      OSError: the folder cannot be written (full, read-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def create_atomic(path: str | Path, data: str | bytes) -> bool:
    """Writes ``data`` to ``path`` only if no file is there, atomically and durably (:func:`link_new`): True if
    this call made it, False if one was there (another process's, which won).

    Raises:
      UserError: the folder cannot be written, naming it.
    """
    try:
        return link_new(path, data.encode() if isinstance(data, str) else data)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror}; {_where(Path(path))}") from None


_WRITER = re.compile(r"\.w(\d+)-([0-9a-f]{8})\.[^.]*\.tmp$")


def _host() -> str:
    import socket

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _temp_prefix(path: Path) -> str:
    """``.<name>.w<pid>-<host>.``: a temp file names its writer, so that only a dead writer's is cleared."""
    return f".{path.name}.w{os.getpid()}-{_host()}."


def _left_by_dead_writer(temp: Path, now: float) -> bool:
    """Whether a temp file's writer is gone: a process of this host that no longer runs, or (another host's, or
    an older name) untouched for :data:`TEMP_AGE_S`."""
    match = _WRITER.search(temp.name)
    if match and match.group(2) == _host():
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return int(match.group(1)) != os.getpid() and now - temp.stat().st_mtime > TEMP_AGE_S
    return now - temp.stat().st_mtime > TEMP_AGE_S


def _where(path: Path) -> str:
    """What to do where a file cannot be written: another output folder, or (inside the cache) another cache."""
    try:
        Path(path).resolve().relative_to(cache_root().resolve())
    except ValueError:
        return f"choose another output folder ({option('out')})"
    return f"point INITJAX_CACHE at a folder with room (the cache is {cache_root()})"


def cache_root() -> Path:
    """Where finished chunks, checkpoints, compiled programs and locks are kept: ``$INITJAX_CACHE``, else the
    user cache directory.

    ``$XDG_CACHE_HOME/initjax`` or ``~/.cache/initjax``: outside any report folder, so a
    report folder holds only the report. A task's folder there is named by its key, so
    runs of one task into different report folders share their finished work.
    """
    if os.environ.get("INITJAX_CACHE"):
        return Path(os.environ["INITJAX_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "initjax"


SAFE_NAME = re.compile(r"[A-Za-z0-9_.=+,@ -]+")  # no separator, glob or quote character


def _safe(name: str) -> bool:
    return bool(name) and len(name) <= 100 and name not in (".", "..") and name[0] not in ".- " \
        and name[-1] != " " and SAFE_NAME.fullmatch(name) is not None


def safe_name(name: str, what: str) -> str:
    """``name`` itself when it can name a file or folder inside another: at most 100 letters, digits, spaces and
    ``_ . = + , @ -``, not ``.`` or ``..``, not starting with ``.``, ``-`` or a space nor ending with one.

    Raises:
      UserError: naming ``what`` and the name, and what a name may hold.
    """
    if not _safe(str(name)):
        raise UserError(f"{what} {str(name)!r} cannot name a file: use at most 100 letters, digits, spaces and "
                        "_ . = + , @ -, not starting with '.' or '-' (no '/' or '..')")
    return str(name)


def path_name(name: str) -> str:
    """``name`` as a file or folder name that stays inside its folder: itself when :func:`safe_name` allows it,
    else its safe characters (others as ``_``) and 8 hex digits of its hash, so two names never meet."""
    name = str(name)
    if _safe(name):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9_.=+,@ -]", "_", name).strip(" ").lstrip(".-")[:80].strip(" ")
    return f"{cleaned}-{hashlib.sha256(name.encode()).hexdigest()[:8]}" if cleaned else \
        hashlib.sha256(name.encode()).hexdigest()[:8]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def ensure_writable(folder: str | Path) -> Path:
    """Checks up front, before any training, that results can be written to ``folder``.

    Raises:
      UserError: the folder cannot be created or is not writable.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(f"output folder {folder} is not writable ({error.strerror}); "
                        f"choose another {option('out')}") from None
    return folder


DIGEST = "sha256"


def array_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over every entry's name, dtype, shape and bytes, in name order (``sha256`` itself left out)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        if name == DIGEST:
            continue
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_npz_verified(path: str | Path, arrays: Mapping[str, np.ndarray], compressed: bool = False) -> Path:
    """Writes ``arrays`` as an ``.npz`` with their :func:`array_digest` inside, atomically."""
    buffer = io.BytesIO()
    save = np.savez_compressed if compressed else np.savez
    save(buffer, **arrays, **{DIGEST: np.array(array_digest(arrays))})
    return write_atomic(path, buffer.getvalue())


def read_npz_verified(path: str | Path, remedy: str) -> dict[str, np.ndarray]:
    """The arrays of a file written by :func:`write_npz_verified`, checked before they are trusted.

    Every zip member's CRC is checked (numpy alone reads only as far as a member's,
    possibly damaged, header asks), then the digest of the arrays as loaded. Nothing
    is unpickled.

    Raises:
      UserError: one line naming the file, what is wrong and ``remedy``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            bad = archive.testzip()
        if bad is not None:
            raise ValueError(f"member {bad} fails its CRC")
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        if DIGEST not in arrays:
            raise ValueError("no checksum: written by an older initjax or another program")
        if str(arrays[DIGEST]) != array_digest(arrays):
            raise ValueError("its checksum does not match its contents")
    except MemoryError:
        raise UserError(f"{path} is damaged (a header asks for more memory than exists); {remedy}") from None
    except Exception as error:  # zipfile, zlib and numpy's header parser raise many kinds; each means: damaged
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path} is damaged ({reason[:120]}); {remedy}") from None
    del arrays[DIGEST]
    return arrays


TEMP_AGE_S = 3600.0  # a temp file untouched this long was left by a writer that was killed
LOCK = ".initjax.lock"  # older versions kept a lock of this name in the folder itself (not carried over)


def lock_path(folder: str | Path, process_index: int = 0) -> Path:
    """Where the lock of ``folder`` lives: ``.<name>.lock`` beside it (``.<name>.<i>.lock`` for process ``i``), outside
    the folder, which a report replaces as a whole and which holds only the report; removed when released."""
    folder = Path(folder).absolute()
    return folder.parent / (f".{folder.name}.lock" if process_index == 0 else f".{folder.name}.{process_index}.lock")


@contextlib.contextmanager
def exclusive(folder: str | Path, process_index: int = 0):
    """Holds the folder's lock while a run or a report writes there; a second writer stops with one line.

    The lock is an advisory ``flock`` on :func:`lock_path` (released by the system when the process ends, even on
    a kill), holding the owner's pid, opened without following a link and refused if it is not a regular file;
    removed when the holder is done (a writer that finds the file it locked removed meanwhile locks the new one).
    Once it is held, what killed writers left beside the folder is cleared (:func:`recover`: temp files, a half
    staged folder; by process 0, the only one writing there). With several JAX processes each takes its own
    (``process_index``), as they write different chunks.

    Not ``filelock.FileLock`` (a dependency, for JAX's cache): it leaves its lock file behind when released (removing
    it safely needs the inode check below), which would leave a ``.<name>.lock`` beside every report, follows a link
    at the lock's path, and records no owner for the message naming who holds the folder.

    Raises:
      UserError: another process holds it, naming its pid; the lock is not a regular file.
    """
    import fcntl

    folder = Path(folder)
    ensure_writable(folder if folder.exists() else folder.parent)
    path = lock_path(folder, process_index)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise UserError(f"cannot open the lock {path} ({error.strerror}): a link or another kind of file "
                            "there? remove it") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UserError(f"the lock {path} is not a regular file; remove it")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise UserError(f"another initjax process (pid {owner}) is writing to {folder}; wait for it to "
                                f"finish or choose another {option('out')}") from None
            try:
                current = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                current = None
            if current is None or current.st_ino != os.fstat(fd).st_ino:  # removed by its last holder meanwhile
                os.close(fd)
                continue
        except BaseException:
            os.close(fd)
            raise
        break
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        if process_index == 0:  # left by a writer killed mid-write; no one else writes here now
            recover(folder)
        yield folder
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # still held: a waiting writer's lock of this file fails over to a new one
        os.close(fd)


def files_digest(files) -> str:
    """SHA-256 (16 hex digits) of the files' names and bytes, in the order given: what a result was computed by."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes())
    return digest.hexdigest()[:16]


def json_digest(payload: Mapping) -> str:
    """SHA-256 of a JSON object's canonical form (sorted keys, no spaces), its ``sha256`` key left out."""
    body = {key: value for key, value in payload.items() if key != DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_json_verified(path: str | Path, payload: Mapping) -> Path:
    """Writes ``payload`` (a JSON object; values JSON cannot hold as strings) with its :func:`json_digest` under
    ``sha256``, atomically."""
    body = json.loads(json.dumps({k: v for k, v in payload.items() if k != DIGEST}, default=str))
    return write_atomic(path, json.dumps({**body, DIGEST: json_digest(body)}, indent=1))


def read_json_checked(path: str | Path, remedy: str) -> tuple[dict, bool]:
    """``(object, whether it carried its checksum)`` of a JSON object file, the checksum verified where present.

    Raises:
      UserError: one line naming the file, what is wrong and ``remedy``.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as error:
        raise UserError(f"{path} is damaged ({type(error).__name__}); {remedy}") from None
    if not isinstance(payload, dict):
        raise UserError(f"{path} is damaged (not a JSON object); {remedy}")
    if DIGEST not in payload:
        return payload, False
    if payload[DIGEST] != json_digest(payload):
        raise UserError(f"{path} was edited or is damaged (its checksum does not match its contents); {remedy}")
    return {key: value for key, value in payload.items() if key != DIGEST}, True


def read_json_verified(path: str | Path, remedy: str) -> dict:
    """The object of a file written by :func:`write_json_verified`, checked before it is trusted.

    Raises:
      UserError: one line naming the file, what is wrong (no checksum: damaged, edited or another program's) and
        ``remedy``.
    """
    payload, verified = read_json_checked(path, remedy)
    if not verified:
        raise UserError(f"{path} has no checksum: damaged, edited, or written by another program; {remedy}")
    return payload


def _sibling(folder: Path, kind: str) -> Path:
    return folder.parent / f".{folder.name}.{kind}"


def recover(folder: str | Path) -> None:
    """Clears what a writer killed mid-write left: temp files in ``folder``, a half-written staged copy beside it,
    and, where it was killed between the two renames of :func:`staged`, puts the previous folder back."""
    folder = Path(folder)
    stage, previous = _sibling(folder, "staging"), _sibling(folder, "previous")
    if previous.is_dir():
        if folder.exists():
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(previous, folder)
    if stage.is_dir():
        shutil.rmtree(stage, ignore_errors=True)
    now = time.time()
    for stale in folder.glob(".*.tmp") if folder.is_dir() else ():
        with contextlib.suppress(OSError):  # not a live writer's: shards of a study write beside this process
            if _left_by_dead_writer(stale, now):
                stale.unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class Stage:
    """A folder being written as a whole (:func:`staged`).

    Attributes:
      path: where to write now (a sibling of ``folder``).
      folder: the folder it replaces.
      dropped: relative paths of ``folder``'s files not to carry over (no longer of these results); one ending
        in ``/`` drops a whole folder.
    """

    path: Path
    folder: Path
    dropped: set = dataclasses.field(default_factory=set)

    def final(self, path: str | Path) -> Path:
        """Where a file written under :attr:`path` will be once published."""
        return self.folder / Path(path).relative_to(self.path)


@contextlib.contextmanager
def staged(folder: str | Path, keep: bool = True):
    """Writes a folder as a whole: yields a :class:`Stage`, an empty sibling to write into; on success it replaces
    ``folder``, on any error (a full disk, Ctrl-C) it is removed and ``folder`` stays as it was.

    The caller holds :func:`exclusive` on ``folder``. With ``keep`` every file of the old folder that the new
    one does not write (a calibration, a reproduction's claims, the figures of a format not asked for this time)
    is carried over (hard-linked where the file system allows), but for the stage's ``dropped``. The swap is two
    renames; a kill between them is repaired by the next writer (:func:`recover`).
    """
    folder = Path(folder)
    stage, previous = _sibling(folder, "staging"), _sibling(folder, "previous")
    recover(folder)
    try:
        stage.mkdir(parents=True)
    except OSError as error:
        raise UserError(f"cannot write beside {folder} ({error.strerror}); choose another output folder "
                        f"({option('out')})") from None
    written = Stage(stage, folder)
    try:
        yield written
        if keep and folder.is_dir():
            _carry(folder, stage, written.dropped)
        if folder.exists():
            os.replace(folder, previous)
        os.replace(stage, folder)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if previous.is_dir() and not folder.exists():
            os.replace(previous, folder)
        raise
    shutil.rmtree(previous, ignore_errors=True)


def _carry(old: Path, new: Path, dropped: set = frozenset()) -> None:
    """Copies (hard-links) every file of ``old`` that ``new`` lacks into ``new``, keeping its relative path, but
    for those in ``dropped``."""
    for source in old.rglob("*"):
        if source.is_symlink() or not source.is_file() or source.name.endswith(".tmp"):
            continue  # a link is not followed out of the folder
        relative = source.relative_to(old)
        target = new / relative
        if target.exists() or source.name == LOCK or str(relative) in dropped or any(
                str(relative).startswith(prefix) for prefix in dropped if prefix.endswith("/")):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
