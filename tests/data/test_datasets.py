"""The embedded datasets are the notebook's data, split and scaled as documented."""

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification

from bench.data import datasets
from bench.errors import UserError


def test_synthetic_is_the_notebooks_split():
    data = datasets.load("synthetic")
    assert data.x_train.shape == (800, 20) and data.x_test.shape == (200, 20)
    assert data.n_classes == 2 and data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    x, y = make_classification(n_samples=1000, n_features=20, n_classes=2, random_state=42)
    together = np.concatenate([data.x_train, data.x_test])
    # every example appears once, rows intact
    assert np.allclose(np.sort(together[:, 0]), np.sort(x[:, 0].astype(np.float32)))
    assert data.y_test.sum() == 107  # 53.5% positives in the test split: a constant predictor scores 0.465 or 0.535
    assert data.y_train.sum() == 393  # 49.1% positives: the majority class of training is 0


def test_digits_is_stratified_and_standardized_with_training_statistics():
    data = datasets.load("digits")
    _, y = load_digits(return_X_y=True)
    assert data.x_train.shape == (1437, 64) and data.x_test.shape == (360, 64) and data.n_classes == 10
    overall = np.bincount(y) / y.size
    np.testing.assert_allclose(np.bincount(data.y_test) / data.y_test.size, overall, atol=0.01)
    varying = data.x_train.std(axis=0) > 0
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=0)[varying], 1, rtol=1e-4)
    assert abs(data.x_test.mean()) < 0.1  # test uses the training statistics: close to, not exactly, 0


def test_unknown_dataset_names_the_close_one():
    with pytest.raises(UserError, match="did you mean digits"):
        datasets.load("digts")
