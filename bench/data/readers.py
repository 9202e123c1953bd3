"""Readers of the original dataset files: IDX (MNIST, Fashion-MNIST) and CIFAR-10 batches.

Pure numpy, no network. Every malformed file raises ``UserError`` naming the file and
what is wrong with it.

References: LeCun et al., "The MNIST database" (IDX format);
Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images" (CIFAR-10).
"""

from __future__ import annotations

import gzip
import math
import pickle
import zlib
from pathlib import Path

import numpy as np

from bench.data import limits
from bench.errors import UserError

# IDX type codes -> numpy big-endian dtypes
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return _read_capped(handle, path, CIFAR_BINARY_MAX_BYTES)
        return path.read_bytes()
    except READ_ERRORS as error:
        raise _unreadable(path, error) from None


# What reading a damaged (gzipped) file raises.
READ_ERRORS = (OSError, EOFError, gzip.BadGzipFile, zlib.error)


def _unreadable(path: Path, error: Exception) -> UserError:
    return UserError(f"cannot read {path}: {error}; the file is damaged, download it again")


# A CIFAR-10 binary batch is 10,000 records of 3,073 bytes; a gzipped one is read up to twice that.
CIFAR_BINARY_MAX_BYTES = 2 * 10_000 * 3073
# The largest IDX array read (8-bit MNIST-style sets are < 100 MB); a header asking for more is refused.
IDX_MAX_BYTES = 4 * 2**30


def _read_capped(handle, path: Path, limit: int) -> bytes:
    """Reads at most ``limit`` bytes of a stream; raises UserError if there is more (a gzip bomb stops here)."""
    raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise UserError(f"{path} holds more than the {limit:,} bytes its format allows; it is not what it claims")
    return raw


def _open(path: Path):
    """The file's bytes as a stream: decompressed on the fly for ``.gz``, so nothing is inflated whole."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (optionally ``.gz``) into an array of its declared shape and type.

    The header is two zero bytes, a type code, the number of dimensions ``d``, then
    ``d`` big-endian uint32 sizes; the data follows in C order. The header is read
    and checked first, and the data streamed up to the size it declares (at most
    :data:`IDX_MAX_BYTES`), so a gzip bomb or a lying header costs no memory.

    Raises:
      UserError: wrong magic number, unknown type, or a data size that does not match
        the header (truncated file), naming the file.
    """
    path = Path(path)
    try:
        with _open(path) as handle:
            head = handle.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise UserError(f"{path} is not an IDX file (wrong magic number {head.hex()}); "
                                "expected MNIST-style IDX data")
            code, ndim = head[2], head[3]
            if code not in _IDX_TYPES:
                raise UserError(f"{path} has unknown IDX type code 0x{code:02x}")
            sizes = handle.read(4 * ndim)
            if len(sizes) < 4 * ndim:
                raise UserError(f"{path} is truncated: its header needs {4 + 4 * ndim} bytes, "
                                f"the file has {4 + len(sizes)}")
            shape = tuple(int(s) for s in np.frombuffer(sizes, ">u4"))
            dtype = np.dtype(_IDX_TYPES[code])
            expected = math.prod(shape) * dtype.itemsize
            if expected > IDX_MAX_BYTES:
                raise UserError(f"{path} declares an array of shape {shape} ({expected:,} bytes), more than the "
                                f"{IDX_MAX_BYTES:,} an IDX dataset may hold; the header is damaged")
            # before reading: its bytes, and the float32 copy the inputs become
            limits.check(str(path), f"an array of shape {shape}", expected + 4 * math.prod(shape))
            data = handle.read(expected)
            extra = handle.read(1)
    except READ_ERRORS as error:
        raise _unreadable(path, error) from None
    if len(data) != expected or extra:
        raise UserError(
            f"{path} is {'truncated' if len(data) < expected else 'too long'}: header says {shape} "
            f"({4 + 4 * ndim + expected} bytes), the file has {'more' if extra else 4 + 4 * ndim + len(data)}; "
            "download it again"
        )
    return np.frombuffer(data, dtype).reshape(shape).astype(dtype.newbyteorder("="))


class _Refused(pickle.UnpicklingError):
    """A pickle named a global that a data file has no business calling."""


class _BatchUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR-10 python batch is made of: dicts, lists, bytes, str, ints and numpy arrays.

    A plain ``pickle.load`` runs whatever callable a file names (``__reduce__``), so a
    downloaded batch could execute code; here any other global is refused by name.
    """

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.numeric", "_frombuffer"),
               ("numpy._core.numeric", "_frombuffer"),  # arrays under protocol 5
               ("_codecs", "encode")}  # bytes under protocol 2 from Python 3

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise _Refused(f"it asks to call {module}.{name}, which a CIFAR-10 batch never does")
        return super().find_class(module, name)


def read_cifar10_python(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Reads one pickled batch of the CIFAR-10 "python version", admitting only plain data (never code).

    Returns:
      images `(n, 32, 32, 3)` uint8 (HWC), labels `(n,)` int64.

    Raises:
      UserError: not a batch, a batch of another layout, or a pickle that names any
        callable other than numpy's array reconstruction (refused before it runs).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            batch = _BatchUnpickler(handle, encoding="bytes").load()
    except _Refused as error:
        raise UserError(f"{path} is refused: {error}; download the batch again from the official site") from None
    except Exception as error:  # a damaged pickle raises many kinds; each means: not a batch
        raise UserError(f"{path} is not a CIFAR-10 python batch ({type(error).__name__}); download it again") from None
    if not isinstance(batch, dict) or not {b"data", b"labels"} <= batch.keys():
        raise UserError(f"{path} is not a CIFAR-10 python batch (no data and labels entries); download it again")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", type(data).__name__)
        raise UserError(f"{path} has data {shape} of type {getattr(data, 'dtype', '?')}; expected uint8 (n, 3072)")
    if not isinstance(labels, list) or not all(type(v) is int and 0 <= v <= 9 for v in labels) \
            or len(labels) != len(data):
        raise UserError(f"{path} has {len(data)} images but its labels are not {len(data)} integers in 0..9")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(labels, np.int64)


def read_cifar10_binary(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Reads one CIFAR-10 "binary version" batch: records of 1 label byte + 3072 pixel bytes.

    Returns:
      images `(n, 32, 32, 3)` uint8 (HWC), labels `(n,)` int64.
    """
    path = Path(path)
    raw = np.frombuffer(_read_bytes(path), np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise UserError(
            f"{path} has {raw.size} bytes, not a whole number of 3073-byte CIFAR-10 records; download it again"
        )
    records = raw.reshape(-1, 3073)
    if records[:, 0].max() > 9:
        raise UserError(f"{path} has labels above 9; it is not a CIFAR-10 binary batch")
    return records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), records[:, 0].astype(np.int64)


def npz_headers(path: str | Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The shape and dtype of every array of an ``.npz``, read from the headers of its members alone, checked
    before any array is read: each header must declare exactly its member's size (a lying header is refused
    before numpy allocates what it asks), no array may hold Python objects, and the arrays together (as float32
    inputs) must fit :func:`bench.data.limits.limit` (a 2 MB file can declare 6 GB).

    Raises:
      UserError: naming the file and the array.
    """
    import zipfile

    path = Path(path)
    out, needed = {}, 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                name = info.filename[:-4]
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(member)
                    header = member.tell()
                if dtype.hasobject:
                    raise UserError(f"{path}: array {name} holds Python objects (dtype {dtype}); numbers are expected")
                declared = math.prod(shape) * dtype.itemsize
                if header + declared != info.file_size:
                    raise UserError(f"{path}: array {name}'s header declares shape {shape} of {dtype} "
                                    f"({declared:,} bytes) but the member holds {info.file_size - header:,}; the file "
                                    "is damaged")
                out[name] = (tuple(shape), dtype)
                needed += declared + 4 * math.prod(shape)
    except UserError:
        raise
    except Exception as error:  # zipfile and numpy's header parser raise many kinds; each means: damaged
        raise UserError(f"{path} is not a readable .npz file ({type(error).__name__}); save it again with "
                        "numpy.savez") from None
    limits.check(str(path), f"the arrays {', '.join(out)}", needed)
    return out
