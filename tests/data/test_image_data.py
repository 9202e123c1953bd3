"""Image datasets: file readers on files written here, tfds under mock data, real MNIST when present."""

import gzip
import os
import pickle
import struct
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from bench import cli, models
from bench.data import datasets, readers
from bench.errors import UserError

MNIST_DIR = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
                                 reason=f"real MNIST IDX files not found in {MNIST_DIR}")


def write_idx(path: Path, array: np.ndarray, code: int = 0x08, gz: bool = False) -> Path:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_mnist_folder(folder: Path, n_train=12, n_test=5, gz=True, seed=0) -> tuple:
    rng = np.random.default_rng(seed)
    arrays = (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8))
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(datasets.IDX_FILES, arrays):
        write_idx(folder / name, array, gz=gz)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(readers.read_idx(write_idx(tmp_path / "a-idx3-ubyte", array, gz=gz)), array)
    floats = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    got = readers.read_idx(write_idx(tmp_path / "f-idx", floats, code=0x0D))
    assert got.dtype == np.float32 and np.array_equal(got, floats)


def test_idx_errors_name_the_file(tmp_path):
    good = write_idx(tmp_path / "good-idx", np.zeros((4, 5), np.uint8))
    truncated = tmp_path / "truncated-idx"
    truncated.write_bytes(good.read_bytes()[:-3])
    with pytest.raises(UserError, match="truncated-idx is truncated"):
        readers.read_idx(truncated)
    wrong = tmp_path / "wrong-magic"
    wrong.write_bytes(b"\x1f\x00\x08\x02" + good.read_bytes()[4:])
    with pytest.raises(UserError, match="wrong-magic is not an IDX file"):
        readers.read_idx(wrong)
    broken_gz = tmp_path / "broken.gz"
    broken_gz.write_bytes(gzip.compress(good.read_bytes())[:-10])
    with pytest.raises(UserError, match="broken.gz"):
        readers.read_idx(broken_gz)


def test_cifar_python_and_binary_batches(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    labels = [4, 0, 9]
    chw = images.transpose(0, 3, 1, 2).reshape(3, 3072)  # CIFAR stores planes: R, then G, then B
    with open(tmp_path / "batch", "wb") as handle:
        pickle.dump({b"data": chw, b"labels": labels}, handle)
    got, got_labels = readers.read_cifar10_python(tmp_path / "batch")
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(got_labels, labels)
    (tmp_path / "batch.bin").write_bytes(np.concatenate([np.c_[np.array(labels, np.uint8)], chw], axis=1).tobytes())
    got, got_labels = readers.read_cifar10_binary(tmp_path / "batch.bin")
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(got_labels, labels)
    (tmp_path / "short.bin").write_bytes(b"\x01" * 3000)
    with pytest.raises(UserError, match="short.bin has 3000 bytes"):
        readers.read_cifar10_binary(tmp_path / "short.bin")
    (tmp_path / "junk").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="junk is not a CIFAR-10 python batch"):
        readers.read_cifar10_python(tmp_path / "junk")


class _Payload:
    """Unpickling this calls ``os.mkdir(target)``: what a hostile download would do."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (str(self.target),)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("where", ["data", "labels", "top"])
def test_cifar_batch_with_a_code_payload_is_refused_before_it_runs(tmp_path, where, protocol):
    target = tmp_path / "pwned"
    chw = np.zeros((2, 3072), np.uint8)
    batch = {b"data": chw, b"labels": [1, 2]}
    batch = _Payload(target) if where == "top" else {**batch, where.encode(): _Payload(target)}
    with open(tmp_path / "data_batch_1", "wb") as handle:
        pickle.dump(batch, handle, protocol=protocol)
    with pytest.raises(UserError, match=r"data_batch_1 is refused: it asks to call (posix|os|nt)\.mkdir"):
        readers.read_cifar10_python(tmp_path / "data_batch_1")
    assert not target.exists()


@pytest.mark.parametrize("batch, message", [
    ({b"data": np.zeros((2, 3072), np.float64), b"labels": [1, 2]}, "expected uint8"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 12]}, "labels are not 2 integers in 0..9"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, "labels are not 2 integers"),
    ([1, 2, 3], "no data and labels"),
])
def test_cifar_batch_of_another_structure_gets_one_line(tmp_path, batch, message):
    with open(tmp_path / "b", "wb") as handle:
        pickle.dump(batch, handle)
    with pytest.raises(UserError, match=message):
        readers.read_cifar10_python(tmp_path / "b")


def test_gzip_bomb_and_lying_headers_are_refused_without_inflating(tmp_path):
    import resource

    header = b"\x00\x00\x08\x03" + np.array([60_000, 28, 28], ">u4").tobytes()
    bomb = tmp_path / "bomb.gz"  # a true header, then 256 MiB of zeros instead of 47 MB
    with gzip.open(bomb, "wb", compresslevel=9) as handle:
        handle.write(header)
        for _ in range(256):
            handle.write(bytes(2**20))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UserError, match="bomb.gz is too long"):
        readers.read_idx(bomb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 120 * 2**10  # KiB: < 120 MiB grown
    huge = tmp_path / "huge"
    huge.write_bytes(b"\x00\x00\x08\x03" + np.array([2**31, 2**20, 2**20], ">u4").tobytes() + b"\x00" * 16)
    with pytest.raises(UserError, match="huge declares an array of shape"):
        readers.read_idx(huge)


def test_local_idx_folder_gives_scaled_images_and_a_validation_split(tmp_path):
    x_train, y_train, x_test, y_test = write_mnist_folder(tmp_path / "mnist", gz=False)
    data = datasets.load_images("mnist", tmp_path, validation=4)
    assert data.input_shape == (28, 28, 1) and data.x_train.dtype == np.float32
    np.testing.assert_allclose(data.x_val[..., 0], x_train[:4] / 255, rtol=1e-6)  # the first 4 are validation
    np.testing.assert_allclose(data.x_train[..., 0], x_train[4:] / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.y_test, y_test)
    assert list(data.splits()) == ["train", "val", "test"] and "original files" in data.source


def test_missing_data_fails_fast_naming_the_three_ways(tmp_path):
    start = time.perf_counter()
    with pytest.raises(UserError) as error:
        datasets.load_images("fashion_mnist", tmp_path / "empty")
    message = str(error.value)
    assert time.perf_counter() - start < 30
    assert "data_dir" in message and "tfds" in message and "download=True" in message and "\n" not in message


def test_without_the_tfds_extra_reading_finds_nothing_and_a_download_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # as if not installed: its import fails
    assert datasets.tfds_module() is None
    with pytest.raises(UserError, match=r"tensorflow-datasets, which is not installed: pip install -e '\.\[tf\]'"):
        datasets.tfds_module(download=True)
    with pytest.raises(UserError, match=r"read with pip install -e '\.\[tfds\]'") as error:
        datasets.load_images("mnist", tmp_path / "empty")
    assert "\n" not in str(error.value)


def test_tfds_data_source_under_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=9):
        data = datasets.load_images("mnist", tmp_path / "no_local_files", validation=3)
    assert (
        data.x_train.shape == (6, 28, 28, 1)
        and data.x_val.shape == (3, 28, 28, 1)
        and data.x_test.shape[1:] == (28, 28, 1)
    )
    assert 0 <= data.x_train.min() and data.x_train.max() <= 1 and "tensorflow-datasets" in data.source


def test_lenet_shapes_and_parameter_count():
    model = models.build("lenet", (28, 28, 1), 10)
    params = jax.eval_shape(model.init, jax.random.key(0), np.zeros((1, 28, 28, 1), np.float32))["params"]
    count = sum(np.prod(p.shape) for p in jax.tree.leaves(params))
    # conv 5*5*1*6+6, conv 5*5*6*16+16, dense 5*5*16*120+120 (28->14 same, ->10 valid, ->5), 120*84+84, 84*10+10
    assert count == (150 + 6) + (2400 + 16) + (48000 + 120) + (10080 + 84) + (840 + 10)
    assert params["Conv_0"]["kernel"].shape == (5, 5, 1, 6)  # HWIO
    with pytest.raises(UserError, match="needs image inputs"):
        models.build("lenet", (64,), 10)


@needs_mnist
def test_real_mnist_is_the_published_dataset():
    data = datasets.load("mnist", str(MNIST_DIR))
    train_labels = np.concatenate([data.y_val, data.y_train])
    assert len(train_labels) == 60_000 and len(data.y_test) == 10_000 and data.input_shape == (28, 28, 1)
    assert np.bincount(train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(data.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert len(data.y_val) == 5_000 and data.x_train.max() == 1.0 and data.x_train.min() == 0.0


@needs_mnist
def test_mnist_mlp_smoke_end_to_end(tmp_path, capsys):
    out = tmp_path / "smoke"
    assert (
        cli.main(["run", "mnist-mlp", "--smoke", "--data-dir", str(MNIST_DIR), "--out", str(out), "--no-progress",
                  "--format", "md,csv"]) == 0
    )
    import pandas as pd

    results = pd.read_csv(out / "results.csv")
    assert {"val_loss", "val_accuracy", "test_accuracy"} <= set(results.columns)
    assert results.seed.nunique() == 2 and results.epoch.max() == 1 and results.arm.nunique() == 8
    assert "MLP 784-300-100-10 relu" in (out / "report.md").read_text()


@pytest.mark.parametrize("damage, message", [
    ("label", r"mnist: test label 12 at index 3 is outside \[0, 10\)"),
    ("nan", "mnist: training input 2 has NaN or inf values"),
])
def test_out_of_range_labels_and_non_finite_pixels_are_refused_at_load(tmp_path, damage, message):
    x_train, y_train, x_test, y_test = write_mnist_folder(tmp_path / "mnist", gz=False)
    if damage == "label":
        y_test = y_test.copy()
        y_test[3] = 12
        write_idx(tmp_path / "mnist" / datasets.IDX_FILES[3], y_test)
    else:
        floats = x_train.astype(np.float32)
        floats[2, 5, 5] = np.nan
        write_idx(tmp_path / "mnist" / datasets.IDX_FILES[0], floats, code=0x0D)
    with pytest.raises(UserError, match=message):
        datasets.load_images("mnist", tmp_path, validation=0)


def test_a_task_where_every_run_diverges_is_reported_as_such(tmp_path, capsys):
    args = ["run", "default", "--smoke", "--optimizer", "sgd", "--lr", "1e6", "--initializers",
            "he_normal,glorot_normal", "--out", str(tmp_path), "--no-progress", "--format", "md,csv"]
    assert cli.main(args) == 0
    text = (tmp_path / "report.md").read_text()
    assert text.count("**Every run of this task diverged**") == 2
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if "_normal" in line]
    assert len(rows) == 4 and all("no runs" in r and "2/2" in r for r in rows)  # no verdict where nothing trained
    assert cli.main(["report", str(tmp_path)]) == 0  # and a re-render works too, its figures drawn


def test_idx_files_of_another_layout_get_one_line(tmp_path):
    write_mnist_folder(tmp_path / "mnist", gz=False)
    write_idx(tmp_path / "mnist" / datasets.IDX_FILES[1], np.zeros((12, 2), np.uint8))  # 2-D labels
    with pytest.raises(UserError, match=r"labels \(12, 2\) are not .* not MNIST-layout IDX files"):
        datasets.load_images("mnist", tmp_path, validation=0)
