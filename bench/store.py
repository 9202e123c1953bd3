"""Writing result files so that a crash never leaves a partial one behind, and reading back only intact ones."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bench.errors import UserError


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
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise UserError(f"cannot write to {path.parent}: {error.strerror}; choose another --out") from None
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
        raise UserError(f"cannot write {path}: {error.strerror}; free space or choose another --out") from None
    return path


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
        raise UserError(f"output folder {folder} is not writable ({error.strerror}); choose another --out") from None
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


LOCK = ".initjax.lock"


@contextlib.contextmanager
def exclusive(folder: str | Path, process_index: int = 0):
    """Holds the folder's lock while a run or a report writes there; a second writer stops with one line.

    The lock is an advisory ``flock`` on ``<folder>/.initjax.lock`` (released by the
    system when the process ends, even on a kill), holding the owner's pid. Once it
    is held, temp files that killed writers left in the folder are removed (by
    process 0, the only one writing there). With several JAX processes each takes its
    own (``process_index``), as they write different chunks.

    Raises:
      UserError: another process holds it, naming its pid.
    """
    import fcntl

    folder = ensure_writable(folder)
    path = folder / (LOCK if process_index == 0 else f"{LOCK}.{process_index}")
    handle = open(path, "a+")  # noqa: SIM115 (held until the context ends)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise UserError(f"another initjax process (pid {owner}) is writing to {folder}; wait for it to finish "
                            "or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        if process_index == 0:  # left by a writer killed mid-write; no one else writes here now
            for stale in folder.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        yield folder
    finally:
        handle.close()


def files_digest(files) -> str:
    """SHA-256 (16 hex digits) of the files' names and bytes, in the order given: what a result was computed by."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes())
    return digest.hexdigest()[:16]
