"""Any data a task trains on: a built-in name, numpy arrays, an ``.npz`` file, or a function.

A task's ``data`` is one of

* a built-in name (``bench list`` shows them: ``digits``, ``synthetic``, ``mnist``, ...);
* a sequence generator with its arguments (``markov(vocab=32, order=2)``, ``modular_addition``:
  ``bench.data.sequences``), token sequences whose optimal loss is known;
* real text, character by character (``tiny_shakespeare``, ``text(path="corpus.txt")``:
  ``bench.data.text``), from local files or a prepared tfds directory;
* ``npz:PATH``: a numpy ``.npz`` file with the arrays ``x_train``, ``y_train``, ``x_test``,
  ``y_test`` (and optionally ``x_val``, ``y_val``); a relative path is taken from the
  experiment file's folder (from the working directory in Python);
* ``module:function``: ``function()`` returns those arrays as a dict or a
  ``(x_train, y_train, x_test, y_test)`` tuple (importing the module runs it);
* from Python, a :class:`bench.data.datasets.Dataset`, e.g. ``bench.data.arrays(...)``.

Inputs become float32 `(n, *input_shape)`; labels must be integer classes `(n,)` in
``[0, n_classes)``, or, for a regression loss, finite targets `(n,)` or `(n, d)`
(float32). Files are read with ``allow_pickle=False``: data never runs code.
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path

import numpy as np

from bench.data import datasets, readers, sequences, text
from bench.data.datasets import Dataset
from bench.errors import UserError
from bench.user_code import user_callable
from initjax.registry import first_line
from initjax.spec import parse_spec

KEYS = ("x_train", "y_train", "x_test", "y_test")


def arrays(x_train, y_train, x_test, y_test, validation: int | float | tuple | None = None,
           name: str = "arrays", n_classes: int | None = None, regression: bool = False) -> Dataset:
    """A dataset from in-memory arrays.

    Args:
      x_train, y_train, x_test, y_test: `(n, *input_shape)` inputs and `(n,)` integer labels.
      validation: a held-out split evaluated every epoch (and used by tuned comparisons):
        an int (the first that many training examples), a fraction in (0, 1) of the
        training set, or an ``(x_val, y_val)`` pair; None for none.
      name: the task's name in results.
      n_classes: number of classes (default: largest label + 1).
      regression: the labels are real-valued targets `(n,)` or `(n, d)` (for a
        regression loss such as ``mean_squared_error``), not classes.

    Raises:
      UserError: mismatched lengths, labels that are not classes, non-finite inputs.
    """
    x_train, x_test = np.asarray(x_train), np.asarray(x_test)
    held = None
    if isinstance(validation, tuple):
        held, validation = validation, 0
    elif isinstance(validation, float):
        if not 0 < validation < 1:
            raise UserError(f"validation as a fraction must be in (0, 1), got {validation}")
        fraction, validation = validation, int(round(validation * len(x_train)))
        if validation == 0:
            raise UserError(f"a validation fraction of {fraction} of {len(x_train)} training examples is none; "
                            "give a larger fraction or a count")
    data = datasets.finish(name, x_train, x_test, y_train, y_test, validation or 0, "arrays", n_classes, regression)
    if held is not None:
        x_val, y_val = held
        datasets.check_split(name, "validation", x_val, y_val, data.n_classes, regression)
        datasets.check_widths(name, "validation", x_train, x_val)
        data = Dataset(**{**data.__dict__, "x_val": np.ascontiguousarray(x_val, np.float32),
                          "y_val": np.asarray(y_val, data.y_train.dtype)})
    return data


def npz(path: str | Path, name: str | None = None, validation: int | float | None = None,
        regression: bool = False) -> Dataset:
    """A dataset from an ``.npz`` file holding :data:`KEYS` (and optionally ``x_val``, ``y_val``).

    Raises:
      UserError: missing or unreadable file, missing keys, or bad arrays; naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file {path} does not exist; give npz:PATH to a file with the arrays {', '.join(KEYS)}")
    readers.npz_headers(path)  # shapes, types and sizes checked before an array is read
    try:
        with np.load(path, allow_pickle=False) as stored:
            found = {k: stored[k] for k in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise UserError(f"data file {path} is not a readable .npz file: {type(error).__name__}: {error}") from None
    return _from_mapping(found, name or path.stem, f"{path}", validation, regression)


def from_function(spec: str, name: str | None = None, validation: int | float | None = None,
                  regression: bool = False) -> Dataset:
    """A dataset from ``module:function``, called with no arguments (see the module docstring).

    Raises:
      UserError: the function does not import, raises, or returns something else than the arrays.
    """
    fn = user_callable(spec, "data", f"a function returning the arrays {KEYS}")
    try:
        got = fn()
    except Exception as error:  # user code may raise anything; name it
        raise UserError(f"data function {spec!r} failed: {first_line(error)}") from None
    if isinstance(got, (tuple, list)) and len(got) == 4:
        got = dict(zip(KEYS, got))
    if not isinstance(got, dict):
        raise UserError(f"data function {spec!r} returned {type(got).__name__}; it must return a dict with "
                        f"{', '.join(KEYS)} or a 4-tuple of them")
    return _from_mapping(got, name or spec.partition(":")[2], spec, validation, regression)


def _from_mapping(found: dict, name: str, origin: str, validation, regression: bool = False) -> Dataset:
    missing = [k for k in KEYS if k not in found]
    if missing:
        raise UserError(f"{origin} lacks the arrays {', '.join(missing)} (it has {', '.join(sorted(found)) or 'none'})")
    held = (found["x_val"], found["y_val"]) if "x_val" in found and "y_val" in found else validation
    try:
        data = arrays(*(found[k] for k in KEYS), validation=held, name=name, regression=regression)
    except UserError as error:
        raise UserError(f"{origin}: {error}") from None
    return Dataset(**{**data.__dict__, "source": origin})


def generated(spec) -> bool:
    """Whether ``spec`` names a sequence generator (``markov``, ``markov(order=2)``: ``bench.data.sequences``)."""
    return isinstance(spec, str) and ":" not in spec and spec.partition("(")[0].strip() in sequences.GENERATORS


def generate(spec: str) -> Dataset:
    """The dataset a generator spec gives (same spec, same arrays), once per process.

    Raises:
      UserError: a malformed spec or arguments the generator does not take.
    """
    return _generated(*_named_arguments(spec, "markov(vocab=32, order=2)"))


def _named_arguments(spec: str, example: str) -> tuple[str, tuple]:
    """``(name, sorted keyword items)`` of a ``name(key=value, ...)`` data spec (a hashable cache key).

    Raises:
      UserError: a malformed spec, or arguments given by position (``example`` shows the way).
    """
    try:
        parsed = parse_spec(spec)
    except ValueError as error:
        raise UserError(f"data {spec!r}: {error}") from None
    if parsed.args:
        raise UserError(f"data {spec!r}: give the arguments by name, e.g. {example}")
    return parsed.name, tuple(sorted(dict(parsed.kwargs).items()))


@functools.cache
def _generated(name: str, kwargs: tuple) -> Dataset:
    try:
        return sequences.GENERATORS[name][0](**dict(kwargs))
    except TypeError as error:
        raise UserError(f"data {name}: {error}") from None


def _text(spec: str, data_dir, download: bool, base: Path | None) -> Dataset:
    """The dataset of a ``bench.data.text`` spec."""
    name, kwargs = _named_arguments(spec, 'text(path="corpus.txt", context=64)')
    return text.load(name, kwargs, None if data_dir is None else str(data_dir), download,
                     None if base is None else str(base))


def known(spec: str) -> bool:
    """Whether a data spec string is a built-in name, a generator spec, ``npz:PATH`` or ``module:function``."""
    return ":" in spec or spec in datasets.LOADERS or generated(spec) or text.is_text(spec)


def describe_spec(spec) -> str:
    """What a task's data is, for records and keys: the spec string, or a Dataset's name."""
    return f"arrays:{spec.name}" if isinstance(spec, Dataset) else str(spec)


def default_name(spec) -> str:
    """A task's name when it has no label: the built-in name, the ``.npz`` file's stem, the function's name."""
    if isinstance(spec, Dataset):
        return spec.name
    if isinstance(spec, str) and spec.startswith("npz:"):
        return Path(spec[4:]).stem
    if isinstance(spec, str) and ":" in spec:
        return spec.rpartition(":")[2]
    return str(spec)


def load(spec, data_dir=None, download: bool = False, base: Path | None = None, regression: bool = False) -> Dataset:
    """The dataset a task's ``data`` names (see the module docstring).

    Args:
      data_dir, download: where built-in image datasets are found (``bench.data.datasets``).
      base: folder relative ``npz:`` paths are taken from (the experiment file's).
      regression: the task's loss wants real-valued targets (``bench.models.losses.is_regression``).

    Raises:
      UserError: unknown name, missing file, bad arrays.
    """
    if isinstance(spec, Dataset):
        return spec
    if not isinstance(spec, str):
        raise UserError(f"data must be a name, npz:PATH, module:function or a Dataset, got {type(spec).__name__}")
    if spec.startswith("npz:"):
        path = Path(spec[4:]).expanduser()
        return npz(path if path.is_absolute() or base is None else base / path, regression=regression)
    if generated(spec):
        return generate(spec)
    if text.is_text(spec):
        return _text(spec, data_dir, download, base)
    if spec in datasets.LOADERS or ":" not in spec:
        return datasets.load(spec, None if data_dir is None else str(data_dir), download)
    return from_function(spec, regression=regression)
