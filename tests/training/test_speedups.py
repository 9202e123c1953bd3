"""The speed-ups (jaxpr rewrites and XLA options, ``bench.training.speedups``) change no number: every built-in
model kind trained with them on and with ``INITJAX_PLAIN=1`` gives the same results and parameters, bit for bit."""

import jax
import numpy as np
import pandas as pd
import pytest

import bench
import initjax
from bench import models
from bench.data import datasets
from bench.training import speedups
from bench.training.train import TrainConfig, train_task

ARMS = ("truncated_normal(stddev=0.05)", "orthogonal", "lsuv")  # draws deduplicated, a QR, a scheme on data


def _digits():
    return datasets.load("digits").subset(96, 32)


def _images():
    """Random 16x16 images of 3 classes (the conv nets' layout; what they learn does not matter here)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(96, 16, 16, 1)).astype(np.float32), rng.integers(0, 3, 96).astype(np.int32)
    return bench.data.arrays(x[:64], y[:64], x[64:], y[64:], name="images")


CASES = {
    "mlp with dropout": lambda: (_digits(), models.build("mlp", (64,), 10, (32, 32), "tanh", dropout=0.1)),
    "resmlp": lambda: (_digits(), models.build("resmlp", (64,), 10, (16, 16), "relu")),
    "convnet with batchnorm": lambda: (_images(), models.ConvNet((((8, 3, "SAME"), (8, 3, "SAME")), ((16, 3, "SAME"),)),
                                                               (32,), 3, norm="batch")),
    "transformer": lambda: (bench.data.load("markov(vocab=6, order=1, context=8, n_train=64, n_val=0, n_test=16)"),
                            models.build("transformer", (8,), 6, (16,), "gelu", heads=2)),
}


def _train(data, model):
    inits = {name: initjax.get(name) for name in ARMS}  # both seeds in one chunk: batched together
    return train_task(data, model, inits, [0, 1], TrainConfig("adam", 3e-3, 16, 1), progress=False, chunk=2)


@pytest.mark.parametrize("case", list(CASES))
def test_the_plain_programs_give_the_same_bits(case, monkeypatch):
    data, model = CASES[case]()
    fast = _train(data, model)
    monkeypatch.setenv(speedups.SWITCH, "1")
    assert not speedups.enabled()
    plain = _train(data, model)
    pd.testing.assert_frame_equal(fast.frame, plain.frame, check_exact=True)
    for a, b in zip(np.asarray(fast.outcomes["loss"]).ravel(), np.asarray(plain.outcomes["loss"]).ravel()):
        assert a == b or (np.isnan(a) and np.isnan(b))


    for a, b in zip(jax.tree.leaves(fast.params), jax.tree.leaves(plain.params)):
        np.testing.assert_array_equal(a, b)


def test_runs_trained_plain_are_cached_apart(monkeypatch):
    """A cached chunk is reused only by runs compiled the same way (a scheme's last bits may differ)."""
    from bench.training import resume

    fast = resume.code_key([])
    monkeypatch.setenv(speedups.SWITCH, "1")
    assert resume.code_key([]) != fast and resume.code_key([])["suite"] == fast["suite"]
