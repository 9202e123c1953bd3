"""Datasets, by name: in-memory train/validation/test arrays ready for the trainer.

Embedded (no network, no files):

* ``synthetic``: ``sklearn.datasets.make_classification(n_samples=1000,
  n_features=20, n_classes=2, random_state=42)``, split 80/20 with
  ``train_test_split(test_size=0.2, random_state=42)``: the Keras initializer
  notebook's data. Features are used as generated (already of unit scale).
* ``digits``: ``sklearn.datasets.load_digits`` (1,797 8x8 images, 10 classes),
  stratified 80/20 split, each pixel standardized with the training set's statistics.

Images (``mnist``, ``fashion_mnist``, ``cifar10``), pixels scaled to ``[0, 1]``, the
first ``validation`` (default 5,000) training examples held out as the validation
split, as in the Keras MNIST notebook. They are found, in this order:

1. a local folder of the original files (IDX, gzipped or not; the CIFAR-10 python or
   binary batches) in the data directory or its ``<name>/`` subfolder;
2. a tensorflow-datasets ``data_dir`` where the dataset was prepared (array_record),
   read with ``tfds.data_source(..., download=False)``, no TensorFlow needed;
3. with ``download=True``: tfds downloads and prepares it (needs the ``tf`` extra).

The data directory is ``data_dir``, else ``$INITJAX_DATA_DIR``, else ``data/``.
Without data, loading fails at once with one message naming the three ways.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.data import readers
from bench.errors import UserError, option, unknown

DEFAULT_VALIDATION = 5_000


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A classification or regression dataset held in memory.

    Attributes:
      name: registry name.
      x_train: `(n_train, *input_shape)` float32.
      y_train: `(n_train,)` int32 class labels in `[0, n_classes)`; with ``regression``
        float32 targets `(n_train,)` or `(n_train, d)`.
      x_test, y_test: the test split, same layout.
      n_classes: number of classes (0 for regression).
      x_val, y_val: the validation split, or None.
      source: where the data came from, for the report.
      regression: targets are real values (a regression loss), not classes.
      optimal: per split (``train``, ``val``, ``test``), each example's Bayes-optimal loss
        `(n,)` under the process that generated it (``bench.data.sequences``), or None when unknown.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    source: str = "embedded"
    regression: bool = False
    optimal: dict[str, np.ndarray] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_targets(self) -> int:
        """Real-valued targets per example of a regression dataset (1 for classes)."""
        return int(np.prod(self.y_train.shape[1:], dtype=int))

    def target_variance(self, y: np.ndarray) -> float:
        """Variance (``ddof=0``) of a split's targets, averaged over the outputs: R²'s denominator."""
        return float(np.mean(np.var(np.asarray(y, np.float64).reshape(len(y), -1), axis=0)))

    @property
    def n_features(self) -> int:
        return int(np.prod(self.input_shape))

    def splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The splits evaluated after every epoch, by name: train, val (if any), test."""
        out = {"train": (self.x_train, self.y_train)}
        if self.x_val is not None:
            out["val"] = (self.x_val, self.y_val)
        out["test"] = (self.x_test, self.y_test)
        return out

    def fingerprint(self) -> str:
        """BLAKE2b of every split's shape, dtype and bytes: equal data, equal fingerprint."""
        digest = hashlib.blake2b(digest_size=16)
        for split, (x, y) in self.splits().items():
            for array in (x, y):
                digest.update(f"{split}:{array.shape}:{array.dtype}".encode())
                digest.update(np.ascontiguousarray(array).data)
        return digest.hexdigest()

    def hold_out(self, n_val: int) -> Dataset:
        """The first ``n_val`` training examples as the validation split (a dataset that has none).

        Raises:
          UserError: it has a validation split already, or ``n_val`` leaves no training example.
        """
        if self.x_val is not None:
            raise UserError(f"{self.name} has a validation split already")
        if not 1 <= n_val < len(self.x_train):
            raise UserError(f"a validation split of {n_val} needs 1 to {len(self.x_train) - 1} of the "
                            f"{len(self.x_train)} training examples of {self.name}")
        optimal = None if self.optimal is None else {
            **self.optimal, "train": self.optimal["train"][n_val:], "val": self.optimal["train"][:n_val]}
        return dataclasses.replace(self, x_train=self.x_train[n_val:], y_train=self.y_train[n_val:],
                                   x_val=self.x_train[:n_val], y_val=self.y_train[:n_val], optimal=optimal)

    def subset(self, n_train: int, n_test: int) -> Dataset:
        """The first examples of each split (validation gets ``n_test``), for smoke runs."""
        val = {} if self.x_val is None else {"x_val": self.x_val[:n_test], "y_val": self.y_val[:n_test]}
        optimal = None if self.optimal is None else {
            split: per_example[:n_train if split == "train" else n_test] for split, per_example in self.optimal.items()}
        return dataclasses.replace(
            self, x_train=self.x_train[:n_train], y_train=self.y_train[:n_train],
            x_test=self.x_test[:n_test], y_test=self.y_test[:n_test], optimal=optimal, **val,
        )

    def optimal_loss(self) -> dict[str, float] | None:
        """Per split, the mean Bayes-optimal loss of its examples (nats per token), or None when unknown."""
        if self.optimal is None:
            return None
        return {split: float(np.mean(per_example)) for split, per_example in self.optimal.items()}


def finish(name, x_train, x_test, y_train, y_test, validation=0, source="embedded", n_classes=None,
           regression: bool = False) -> Dataset:
    """Checks, casts to float32/int32 (float32 targets with ``regression``) and holds out the first
    ``validation`` training examples.

    Raises:
      UserError: labels that are not integers in ``[0, n_classes)`` (targets that are not
        finite numbers) or inputs that are not finite, naming the split: training on them
        would only give NaNs or garbage.
    """
    for split, x, y in (("training", x_train, y_train), ("test", x_test, y_test)):
        check_split(name, split, x, y, n_classes, regression)
    check_widths(name, "test", x_train, x_test)
    label_type = np.float32 if regression else np.int32
    x_train, y_train = np.ascontiguousarray(x_train, np.float32), np.asarray(y_train, label_type)
    if validation and validation >= len(x_train):
        raise UserError(
            f"validation split of {validation} needs more than the {len(x_train)} training examples of {name}"
        )
    val = {}
    if validation:
        val = {"x_val": x_train[:validation], "y_val": y_train[:validation]}
        x_train, y_train = x_train[validation:], y_train[validation:]
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=np.ascontiguousarray(x_test, np.float32),
        y_test=np.asarray(y_test, label_type),
        n_classes=0 if regression else n_classes or int(max(y_train.max(), np.max(y_test)) + 1),
        source=source,
        regression=regression,
        **val,
    )


def check_widths(name: str, split: str, x_train, x_other) -> None:
    """Raises UserError where a split's inputs have another shape per example than the training inputs."""
    train, other = np.shape(x_train)[1:], np.shape(x_other)[1:]
    if train != other:
        raise UserError(f"{name}: the {split} inputs are {list(other)} per example, the training inputs "
                        f"{list(train)}; every split needs the same shape")


def check_split(name: str, split: str, x: np.ndarray, y: np.ndarray, n_classes: int | None,
                regression: bool = False) -> None:
    """Raises UserError, naming the split, where its inputs or labels cannot be trained on as given."""
    x, y = np.asarray(x), np.asarray(y)
    keys = {"training": "train", "test": "test", "validation": "val"}.get(split, split)
    for what, array in ((f"inputs (x_{keys})", x), (f"{'targets' if regression else 'labels'} (y_{keys})", y)):
        if np.iscomplexobj(array):
            raise UserError(f"{name}: the {split} {what} are complex ({array.dtype}); give real numbers (e.g. the "
                            "real and imaginary parts as two features)")
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise UserError(f"{name}: the {split} {what} are of type {array.dtype}; numbers are expected")
    if x.ndim < 2:
        raise UserError(f"{name}: the {split} inputs (x_{keys}) have shape {list(x.shape)}; give one row per example, "
                        "(n, features) or (n, height, width, channels): (n, 1) for a single feature")
    if not regression and y.ndim != 1:
        raise UserError(f"{name}: the {split} labels (y_{keys}) have shape {list(y.shape)}; class labels are one "
                        "integer per example, shape (n,) (for one-hot labels give their argmax)")
    if len(x) != len(y) or len(y) == 0:
        raise UserError(
            f"{name}: the {split} split has {len(x)} inputs and {len(y)} labels; they must match and be > 0"
        )
    if regression:
        if y.ndim > 2 or not np.issubdtype(y.dtype, np.number) or not np.isfinite(y).all():
            raise UserError(f"{name}: the {split} targets must be finite numbers of shape (n,) or (n, d), got "
                            f"{y.dtype}{list(y.shape)}")
        if not np.var(np.asarray(y, np.float64).reshape(len(y), -1), axis=0).mean() > 0:
            raise UserError(f"{name}: the {split} targets are constant, so R² (1 - MSE / their variance) is "
                            "undefined; give that split varied targets")
    elif not np.issubdtype(y.dtype, np.integer) and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise UserError(f"{name}: the {split} labels are not integers (dtype {y.dtype}); class labels are expected")
    high = n_classes if n_classes is not None else np.iinfo(np.int32).max
    bad = np.zeros(len(y), bool) if regression else (y < 0) | (y >= high)
    if bad.any():
        where = int(np.argmax(bad))
        raise UserError(f"{name}: {split} label {y[where].item()!r} at index {where} is outside [0, {high}); "
                        "check the label file")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        where = int(np.argmax(~np.isfinite(x).reshape(len(x), -1).all(axis=1)))
        raise UserError(f"{name}: {split} input {where} has NaN or inf values; clean the data before training")


def load_synthetic() -> Dataset:
    """The notebook's binary task: 800 train / 200 test examples, 20 features."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(n_samples=1000, n_features=20, n_classes=2, random_state=42)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
    return finish("synthetic", x_train, x_test, y_train, y_test)


def load_digits() -> Dataset:
    """sklearn's 8x8 digits: 1,437 train / 360 test examples, 64 standardized pixels."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = sklearn_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42, stratify=y)
    scaler = StandardScaler().fit(x_train)  # constant pixels keep scale 1
    return finish("digits", scaler.transform(x_train), scaler.transform(x_test), y_train, y_test)


# ------------------------------------------------------------------ image datasets


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """Where an image dataset's files are and what they hold.

    Attributes:
      tfds_name: the tensorflow-datasets name.
      folders: subfolders of the data directory to look in (the directory itself too).
      n_classes: number of classes.
      read_local: ``read_local(folder) -> (x_train, y_train, x_test, y_test) | None``,
        uint8 images `(n, H, W, C)`; None when the folder lacks the files.
      files: the file names, for messages.
    """

    tfds_name: str
    folders: tuple[str, ...]
    n_classes: int
    read_local: Callable[[Path], tuple | None]
    files: str


IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx_folder(folder: Path) -> tuple | None:
    """The four MNIST-layout IDX files of ``folder`` (gzipped or not), or None if any is missing."""
    paths = [_find(folder, name) for name in IDX_FILES]
    if any(p is None for p in paths):
        return None
    x_train, y_train, x_test, y_test = (readers.read_idx(p) for p in paths)
    for images, labels, split in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(f"{folder}: {split} images {images.shape} and labels {labels.shape} are not "
                            "(n, rows, cols) and (n,); these are not MNIST-layout IDX files")
    return x_train[..., None], y_train, x_test[..., None], y_test


def read_cifar10_folder(folder: Path) -> tuple | None:
    """CIFAR-10's five training batches and test batch (python or binary version), or None."""
    layouts = [
        ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", readers.read_cifar10_python),
        (
            "cifar-10-batches-bin",
            [f"data_batch_{i}.bin" for i in range(1, 6)],
            "test_batch.bin",
            readers.read_cifar10_binary,
        ),
    ]
    for sub, train_names, test_name, read in layouts:
        for base in (folder / sub, folder):
            if all((base / n).is_file() for n in [*train_names, test_name]):
                train = [read(base / n) for n in train_names]
                x_test, y_test = read(base / test_name)
                return np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), x_test, y_test
    return None


IMAGE_SOURCES: dict[str, ImageSource] = {
    "mnist": ImageSource(
        "mnist", ("mnist", "MNIST"), 10, read_idx_folder, "the 4 MNIST IDX files (train-images-idx3-ubyte[.gz], ...)"
    ),
    "fashion_mnist": ImageSource(
        "fashion_mnist", ("fashion_mnist", "fashion-mnist"), 10, read_idx_folder, "the 4 Fashion-MNIST IDX files"
    ),
    "cifar10": ImageSource(
        "cifar10", ("cifar10", "cifar-10"), 10, read_cifar10_folder, "cifar-10-batches-py/ or cifar-10-batches-bin/"
    ),
}


def data_directory(data_dir: str | Path | None = None) -> Path:
    """``data_dir``, else ``$INITJAX_DATA_DIR``, else ``data/``."""
    return Path(data_dir or os.environ.get("INITJAX_DATA_DIR") or "data")


def require_tensorflow(tfds_name: str) -> None:
    """Raises a one-line UserError when ``--download`` would need TensorFlow (tfds prepares with it) and it is
    not installed."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        raise UserError(f"{option('download', True)} prepares {tfds_name} with TensorFlow, which is not installed: "
                        "pip install -e '.[tf]'") from None


def tfds_module(download: bool = False):
    """``tensorflow_datasets`` where installed (the ``tfds`` extra); None without it when only reading (nothing
    prepared can be read then); a one-line error naming the extra when ``download`` asks for it."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        if download:
            raise UserError(f"{option('download', True)} prepares data with tensorflow-datasets, which is not "
                            "installed: pip install -e '.[tf]'") from None
        return None
    return tfds


def _from_tfds(source: ImageSource, data_dir: Path, download: bool) -> tuple | None:
    """Arrays from a prepared tfds ``data_dir`` (or prepared now with ``download``); None if absent."""
    tfds = tfds_module(download)
    if tfds is None:
        return None
    if download:
        require_tensorflow(source.tfds_name)
    arrays = []
    for split in ("train", "test"):
        try:
            data = tfds.data_source(source.tfds_name, split=split, data_dir=str(data_dir), download=download)
            examples = [data[i] for i in range(len(data))]
        except Exception:  # tfds raises many kinds for "not prepared here"; each means: not found
            if download:
                raise
            return None
        arrays += [np.stack([e["image"] for e in examples]), np.asarray([e["label"] for e in examples])]
    return tuple(arrays)


def load_images(name: str, data_dir: str | Path | None = None, download: bool = False,
                validation: int = DEFAULT_VALIDATION) -> Dataset:
    """An image dataset from local files, a prepared tfds directory, or a download.

    Raises:
      UserError: no data found (naming the three ways to provide it), or damaged files.
    """
    source = IMAGE_SOURCES[name]
    root = data_directory(data_dir)
    arrays, origin = None, ""
    for folder in [root, *(root / f for f in source.folders)]:
        arrays = source.read_local(folder) if folder.is_dir() else None
        if arrays is not None:
            origin = f"original files in {folder}"
            break
    if arrays is None:
        arrays = _from_tfds(source, root, download)
        origin = f"tensorflow-datasets in {root}"
    if arrays is None:
        raise UserError(
            f"no {name} data in {root}: put {source.files} in {root}/{source.folders[0]}/ "
            f"(or pass {option('data_dir')} / set INITJAX_DATA_DIR), or prepare it with tfds in that data_dir "
            f"(read with pip install -e '.[tfds]'), "
            f"or add {option('download', True)} (needs pip install -e '.[tf]' and a network)"
        )
    x_train, y_train, x_test, y_test = arrays
    scale = np.float32(1 / 255)
    return finish(name, x_train * scale, x_test * scale, y_train, y_test, validation, origin, source.n_classes)


LOADERS: dict[str, tuple[Callable[..., Dataset], str]] = {
    "synthetic": (load_synthetic, "make_classification(1000 x 20, 2 classes, random_state=42), 80/20"),
    "digits": (load_digits, "sklearn load_digits (8x8, 10 classes), standardized, stratified 80/20"),
    "mnist": (functools.partial(load_images, "mnist"), "MNIST 28x28, 55,000 train / 5,000 val / 10,000 test, [0, 1]"),
    "fashion_mnist": (
        functools.partial(load_images, "fashion_mnist"), "Fashion-MNIST 28x28, 55,000 / 5,000 / 10,000, [0, 1]"
    ),
    "cifar10": (functools.partial(load_images, "cifar10"), "CIFAR-10 32x32x3, 45,000 / 5,000 / 10,000, [0, 1]"),
}


@functools.cache
def load(name: str, data_dir: str | None = None, download: bool = False) -> Dataset:
    """Loads a dataset by name, once per process (per data directory).

    Raises:
      UserError: unknown name, listing the known ones; missing or damaged data.
    """
    if name not in LOADERS:
        raise unknown("dataset", name, LOADERS)
    loader = LOADERS[name][0]
    return loader(data_dir=data_dir, download=download) if name in IMAGE_SOURCES else loader()
