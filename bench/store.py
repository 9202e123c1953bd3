"""Writing result files so that a crash never leaves a partial one behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

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
