"""Datasets, by name: in-memory train/test arrays ready for the trainer.

The embedded ones need no network and no files:

* ``synthetic``: ``sklearn.datasets.make_classification(n_samples=1000,
  n_features=20, n_classes=2, random_state=42)``, split 80/20 with
  ``train_test_split(test_size=0.2, random_state=42)``: the Keras initializer
  notebook's data. Features are used as generated (already of unit scale).
* ``digits``: ``sklearn.datasets.load_digits`` (1,797 8x8 images, 10 classes),
  stratified 80/20 split, each pixel standardized with the training set's mean and
  standard deviation.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np

from bench.errors import unknown


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A classification dataset held in memory.

    Attributes:
      name: registry name.
      x_train: `(n_train, n_features)` float32.
      y_train: `(n_train,)` int32 class labels in `[0, n_classes)`.
      x_test: `(n_test, n_features)` float32.
      y_test: `(n_test,)` int32.
      n_classes: number of classes.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    def splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The splits evaluated after every epoch, by name."""
        return {"train": (self.x_train, self.y_train), "test": (self.x_test, self.y_test)}


def _finish(name, x_train, x_test, y_train, y_test) -> Dataset:
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_train, np.float32),
        y_train=np.asarray(y_train, np.int32),
        x_test=np.ascontiguousarray(x_test, np.float32),
        y_test=np.asarray(y_test, np.int32),
        n_classes=int(max(y_train.max(), y_test.max()) + 1),
    )


def load_synthetic() -> Dataset:
    """The notebook's binary task: 800 train / 200 test examples, 20 features."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(n_samples=1000, n_features=20, n_classes=2, random_state=42)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
    return _finish("synthetic", x_train, x_test, y_train, y_test)


def load_digits() -> Dataset:
    """sklearn's 8x8 digits: 1,437 train / 360 test examples, 64 standardized pixels."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = sklearn_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=42, stratify=y
    )
    scaler = StandardScaler().fit(x_train)  # constant pixels keep scale 1
    return _finish("digits", scaler.transform(x_train), scaler.transform(x_test), y_train, y_test)


LOADERS: dict[str, tuple[Callable[[], Dataset], str]] = {
    "synthetic": (load_synthetic, "make_classification(1000 x 20, 2 classes, random_state=42), 80/20"),
    "digits": (load_digits, "sklearn load_digits (8x8, 10 classes), standardized, stratified 80/20"),
}


@functools.cache
def load(name: str) -> Dataset:
    """Loads a dataset by name, once per process.

    Raises:
      UserError: unknown name, listing the known ones.
    """
    if name not in LOADERS:
        raise unknown("dataset", name, LOADERS)
    return LOADERS[name][0]()
