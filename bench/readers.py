"""Readers of the original dataset files: IDX (MNIST, Fashion-MNIST) and CIFAR-10 batches.

Pure numpy, no network. Every malformed file raises ``UserError`` naming the file and
what is wrong with it.

References: LeCun et al., "The MNIST database" (IDX format);
Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images" (CIFAR-10).
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from bench.errors import UserError

# IDX type codes -> numpy big-endian dtypes
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise UserError(f"cannot read {path}: {error}; the file is damaged, download it again") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (optionally ``.gz``) into an array of its declared shape and type.

    The header is two zero bytes, a type code, the number of dimensions ``d``, then
    ``d`` big-endian uint32 sizes; the data follows in C order.

    Raises:
      UserError: wrong magic number, unknown type, or a data size that does not match
        the header (truncated file), naming the file.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UserError(f"{path} is not an IDX file (wrong magic number {raw[:4].hex()}); expected MNIST-style IDX data")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise UserError(f"{path} has unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated: its header needs {header} bytes, the file has {len(raw)}")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[code])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise UserError(
            f"{path} is {'truncated' if len(raw) < expected else 'too long'}: header says {shape} "
            f"({expected} bytes), the file has {len(raw)}; download it again"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_cifar10_python(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Reads one pickled batch of the CIFAR-10 "python version".

    Returns:
      images `(n, 32, 32, 3)` uint8 (HWC), labels `(n,)` int64.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data, labels = batch[b"data"], batch[b"labels"]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise UserError(f"{path} is not a CIFAR-10 python batch ({type(error).__name__}); download it again") from None
    data = np.asarray(data, np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != data.shape[0]:
        raise UserError(f"{path} has data of shape {data.shape} for {len(labels)} labels; expected (n, 3072)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(labels, np.int64)


def read_cifar10_binary(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Reads one CIFAR-10 "binary version" batch: records of 1 label byte + 3072 pixel bytes.

    Returns:
      images `(n, 32, 32, 3)` uint8 (HWC), labels `(n,)` int64.
    """
    path = Path(path)
    raw = np.frombuffer(_read_bytes(path), np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise UserError(f"{path} has {raw.size} bytes, not a whole number of 3073-byte CIFAR-10 records; download it again")
    records = raw.reshape(-1, 3073)
    if records[:, 0].max() > 9:
        raise UserError(f"{path} has labels above 9; it is not a CIFAR-10 binary batch")
    return records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), records[:, 0].astype(np.int64)
