"""Character-level language modelling on real text, from local files (never waiting on a network).

* ``text(path="corpus.txt", context=64)``: any UTF-8 ``.txt`` file; a relative path is taken
  from the experiment file's folder (the working directory in Python). Its first 90% of
  characters train, the next 5% validate, the last 5% test.
* ``tiny_shakespeare`` (``tiny_shakespeare(context=128)``): Karpathy's 1.1 MB of Shakespeare
  (char-rnn, 2015), split 90/5/5 the same way, found in the data directory (``--data-dir``,
  ``$INITJAX_DATA_DIR``, else ``data/``) as ``tiny_shakespeare.txt`` or a single ``.txt`` in
  ``tiny_shakespeare/`` (``input.txt`` as char-rnn ships it); else in a tensorflow-datasets
  ``data_dir`` where ``tiny_shakespeare`` was prepared (its own train/validation/test splits);
  else, with ``--download``, prepared there by tfds (needs the ``tf`` extra and a network).

The vocabulary is the file's sorted distinct characters (token ``i`` is the ``i``-th), so the
next-token loss is in nats per character (the report also gives bits). Each split is cut into
non-overlapping windows of ``context + 1`` characters: inputs are a window's first ``context``,
labels its last ``context`` (every position counts). No optimum is known for real text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import UserError, option

SPLITS = (("train", 0.9), ("val", 0.05), ("test", 0.05))
MAX_CHARACTERS = 100_000_000  # read whole; a larger file is refused with a message


def windows(codes: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs `(n, context)` float32 and next-character labels `(n, context)` int32 of the non-overlapping
    ``context + 1`` windows of ``codes`` (the tail shorter than a window is dropped)."""
    n = (len(codes) - 1) // context
    starts = np.arange(n) * context
    index = starts[:, None] + np.arange(context + 1)
    chunks = codes[index]
    return chunks[:, :-1].astype(np.float32), chunks[:, 1:].astype(np.int32)


def characters(parts: dict[str, str], context: int, name: str, source: str):
    """A :class:`bench.data.datasets.Dataset` of next-character prediction from each split's text.

    Raises:
      UserError: a split too short for one window, or a context below 1.
    """
    from bench.data.datasets import Dataset

    if not (isinstance(context, int) and not isinstance(context, bool) and context >= 1):
        raise UserError(f"{name}: context must be an integer >= 1, got {context!r}")
    alphabet = sorted(set("".join(parts.values())))
    lookup = np.full(max(map(ord, alphabet)) + 1, -1, np.int64)
    lookup[[ord(c) for c in alphabet]] = np.arange(len(alphabet))
    splits = {}
    for split, part in parts.items():
        codes = lookup[np.frombuffer(part.encode("utf-32-le"), np.uint32)]
        if len(codes) < context + 1:
            raise UserError(f"{name}: its {split} split has {len(codes):,} characters, fewer than one window of "
                            f"context + 1 = {context + 1}; give a longer text or a shorter context")
        splits[split] = windows(codes, context)
    x_val, y_val = splits.get("val", (None, None))
    return Dataset(name, *splits["train"], *splits["test"], len(alphabet), x_val=x_val, y_val=y_val,
                   source=f"{source}; {len(alphabet)} characters, context {context}")


def by_fraction(text: str) -> dict[str, str]:
    """The text's first 90% / next 5% / last 5% of characters (:data:`SPLITS`)."""
    bounds = np.cumsum([0] + [round(fraction * len(text)) for _, fraction in SPLITS[:-1]] + [len(text)])
    bounds[-1] = len(text)
    return {split: text[bounds[i]:bounds[i + 1]] for i, (split, _) in enumerate(SPLITS)}


def read_text(path: Path) -> str:
    """A UTF-8 text file, whole.

    Raises:
      UserError: missing, unreadable, not UTF-8, empty or too large.
    """
    if not path.is_file():
        raise UserError(f"text file {path} does not exist; give text(path=...) a UTF-8 .txt file")
    try:
        if path.stat().st_size > 4 * MAX_CHARACTERS:
            raise UserError(f"text file {path} is over {4 * MAX_CHARACTERS:,} bytes; cut it to a smaller file")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"text file {path} is not UTF-8 ({error.reason} at byte {error.start}); convert it") from None
    except OSError as error:
        raise UserError(f"cannot read text file {path}: {error.strerror}") from None
    if not text:
        raise UserError(f"text file {path} is empty")
    return text


def text(path: str, context: int = 64, base: Path | None = None):
    """Next-character prediction on a local ``.txt`` file (see the module docstring)."""
    if not isinstance(path, str):
        raise UserError(f"text: path must be a string, got {path!r}")
    file = Path(path).expanduser()
    file = file if file.is_absolute() or base is None else base / file
    return characters(by_fraction(read_text(file)), context, f"text({Path(path).name})", f"text file {file}")


def tiny_shakespeare(context: int = 64, data_dir: str | Path | None = None, download: bool = False):
    """Tiny Shakespeare from the data directory's ``.txt`` or a prepared tfds ``data_dir`` (see the module
    docstring).

    Raises:
      UserError: found nowhere (naming the three ways to provide it).
    """
    from bench.data.datasets import data_directory

    root = data_directory(data_dir)
    found = _local_file(root)
    if found is not None:
        return characters(by_fraction(read_text(found)), context, "tiny_shakespeare", f"text file {found}")
    parts = _from_tfds(root, download)
    if parts is None:
        raise UserError(
            f"no tiny_shakespeare in {root}: put its text (char-rnn's input.txt) at {root}/tiny_shakespeare.txt or "
            f"in {root}/tiny_shakespeare/ (or pass {option('data_dir')} / set INITJAX_DATA_DIR), or prepare it with "
            f"tfds in that data_dir, or add {option('download', True)} (needs pip install -e '.[tf]' and a network)")
    return characters(parts, context, "tiny_shakespeare", f"tensorflow-datasets in {root}")


def _local_file(root: Path) -> Path | None:
    """``root/tiny_shakespeare.txt``, else the one ``.txt`` in ``root/tiny_shakespeare/`` (several: an error)."""
    if (root / "tiny_shakespeare.txt").is_file():
        return root / "tiny_shakespeare.txt"
    folder = root / "tiny_shakespeare"
    candidates = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if len(candidates) > 1:
        raise UserError(f"{folder} holds {len(candidates)} .txt files ({', '.join(c.name for c in candidates)}); "
                        "keep the one to train on")
    return candidates[0] if candidates else None


def _from_tfds(root: Path, download: bool) -> dict[str, str] | None:
    """Each split's text from a prepared tfds ``data_dir`` (prepared now with ``download``); None if absent."""
    from bench.data.datasets import require_tensorflow, tfds_module

    tfds = tfds_module(download)
    if tfds is None:
        return None
    if download:
        require_tensorflow("tiny_shakespeare")
    parts = {}
    for split, tfds_split in (("train", "train"), ("val", "validation"), ("test", "test")):
        try:
            source = tfds.data_source("tiny_shakespeare", split=tfds_split, data_dir=str(root), download=download)
            raw = source[0]["text"]
        except Exception:  # tfds raises many kinds for "not prepared here"; each means: not found
            if download:
                raise
            return None
        parts[split] = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    return parts


TEXTS = {
    "text": (text, "characters of a local UTF-8 .txt: text(path=\"corpus.txt\", context=64), split 90/5/5"),
    "tiny_shakespeare": (tiny_shakespeare, "Tiny Shakespeare characters (1.1 MB; .txt in the data dir or tfds "
                                           "prepared), context 64"),
}


def is_text(spec) -> bool:
    """Whether a data spec names a text source of :data:`TEXTS` (``tiny_shakespeare``, ``text(path=...)``)."""
    return isinstance(spec, str) and spec.partition("(")[0].strip() in TEXTS


def load(name: str, kwargs: tuple, data_dir: str | None, download: bool, base: str | None):
    """The dataset of a parsed text spec, read afresh each time (an edited file is never served from memory).

    Raises:
      UserError: arguments the source does not take, or its own errors.
    """
    loader = TEXTS[name][0]
    where = {"base": None if base is None else Path(base)} if name == "text" else {"data_dir": data_dir,
                                                                                     "download": download}
    try:
        return loader(**dict(kwargs), **where)
    except TypeError as error:
        raise UserError(f"data {name}: {error}") from None
