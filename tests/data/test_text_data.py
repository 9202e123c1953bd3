"""Character-level text (``bench.data.text``): windows and splits by hand, local files and tfds found without a
network, relative paths from the experiment file, one-line errors."""

import socket
import time

import numpy as np
import pytest

from bench import data
from bench.data import text
from bench.errors import UserError

SAMPLE = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 40


def test_windows_are_non_overlapping_and_labels_are_the_next_character():
    x, y = text.windows(np.arange(11), 3)  # 11 codes: 3 windows of 4, the tail of 2 dropped
    np.testing.assert_array_equal(x, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    np.testing.assert_array_equal(y, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert x.dtype == np.float32 and y.dtype == np.int32


def test_a_text_file_is_split_90_5_5_and_decodes_back(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(SAMPLE, encoding="utf-8")
    d = data.load(f'text(path="{path}", context=16)')
    alphabet = sorted(set(SAMPLE))
    assert d.n_classes == len(alphabet) and d.input_shape == (16,)
    parts = text.by_fraction(SAMPLE)
    assert "".join(parts.values()) == SAMPLE and len(parts["train"]) == round(0.9 * len(SAMPLE))
    decoded = "".join(alphabet[int(c)] for c in d.x_train[0]) + alphabet[d.y_train[0, -1]]
    assert decoded == SAMPLE[:17]
    np.testing.assert_array_equal(d.y_train[:, :-1], d.x_train[:, 1:])
    assert len(d.x_train) == (len(parts["train"]) - 1) // 16 and len(d.x_val) == (len(parts["val"]) - 1) // 16
    assert d.optimal is None


def test_tiny_shakespeare_is_read_from_the_data_directory_without_a_network(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    (tmp_path / "tiny_shakespeare").mkdir()
    (tmp_path / "tiny_shakespeare" / "input.txt").write_text(SAMPLE)
    d = data.load("tiny_shakespeare(context=32)", data_dir=tmp_path)
    assert d.input_shape == (32,) and "input.txt" in d.source
    (tmp_path / "tiny_shakespeare" / "other.txt").write_text(SAMPLE)
    with pytest.raises(UserError, match="holds 2 .txt files"):
        data.load("tiny_shakespeare(context=33)", data_dir=tmp_path)
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"no tiny_shakespeare in .*download=True"):
        data.load("tiny_shakespeare", data_dir=tmp_path / "empty")
    assert time.perf_counter() - start < 30  # fails, never waits on a download


def test_an_experiment_file_takes_a_relative_text_path_from_its_folder(tmp_path):
    from bench.experiments import experiment_file

    (tmp_path / "corpus.txt").write_text(SAMPLE)
    (tmp_path / "study.toml").write_text(
        'name = "s"\ninitializers = ["gpt2"]\nseeds = 2\n[[tasks]]\ndata = \'text(path="corpus.txt", context=8)\'\n'
        'model = "transformer"\nhidden = [16]\n')
    experiment = experiment_file.load(tmp_path / "study.toml")
    spec = experiment.tasks[0].dataset
    assert str(tmp_path / "corpus.txt") in spec and data.load(spec).input_shape == (8,)


@pytest.mark.parametrize("content, spec, message", [
    (b"\xff\xfe bad", 'text(path="{p}")', "is not UTF-8"),
    (b"short", 'text(path="{p}", context=64)', "fewer than one window"),
    (SAMPLE.encode(), 'text(path="{p}", context=0)', "context must be an integer >= 1"),
    (SAMPLE.encode(), 'text(path="{p}", width=3)', "unexpected keyword"),
    (SAMPLE.encode(), 'text(path="{p}missing")', "does not exist"),
])
def test_bad_text_input_is_a_one_line_error(tmp_path, content, spec, message):
    path = tmp_path / "f.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as error:
        data.load(spec.format(p=path))
    assert "\n" not in str(error.value)
