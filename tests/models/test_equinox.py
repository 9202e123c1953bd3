"""Equinox models (``bench.models.equinox_model``): the same computation as the same linen model, Equinox's
``(out, in)`` weights drawn with the right fans, dropout by the run's key, and bad input refused in one line."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

eqx = pytest.importorskip("equinox", reason="Equinox models need the equinox extra: pip install -e '.[equinox]'")

import flax.linen as nn  # noqa: E402
from flax import nnx  # noqa: E402

import initjax  # noqa: E402
from bench import data, models  # noqa: E402
from bench.errors import UserError  # noqa: E402
from bench.models.equinox_model import from_flax  # noqa: E402
from bench.training.initialization import init_params  # noqa: E402
from bench.training.seeding import run_keys  # noqa: E402
from bench.training.train import train_task  # noqa: E402
from initjax import rules  # noqa: E402
from tests.models.test_nnx import ARMS, CONFIG, LOSS, METRICS, NNXMLP, WIDTH, LinenMLP, _data  # noqa: E402


class EquinoxMLP(eqx.Module):
    """The linen MLP of test_nnx in Equinox, its layers named alike."""

    hidden_0: eqx.nn.Linear
    hidden_1: eqx.nn.Linear
    head: eqx.nn.Linear

    def __init__(self, in_features, out_features, key):
        k0, k1, k2 = jax.random.split(key, 3)
        self.hidden_0 = eqx.nn.Linear(in_features, WIDTH, key=k0)
        self.hidden_1 = eqx.nn.Linear(WIDTH, WIDTH, key=k1)
        self.head = eqx.nn.Linear(WIDTH, out_features, key=k2)

    def __call__(self, x):
        return self.head(jax.nn.relu(self.hidden_1(jax.nn.relu(self.hidden_0(x)))))


class DropoutMLP(eqx.Module):
    linear: eqx.nn.Linear
    drop: eqx.nn.Dropout

    def __init__(self, in_features, out_features, key):
        self.linear = eqx.nn.Linear(in_features, out_features, key=key)
        self.drop = eqx.nn.Dropout(0.5)

    def __call__(self, x, key=None):
        return self.drop(self.linear(x), key=key)


def test_three_frameworks_train_the_same_mlp_alike():
    """Linen, NNX and Equinox, the same layers under the same rules and seeds: the same initial and final parameters
    (Equinox's weights in Flax's layout) and the same curves."""
    d = _data()
    runs = [train_task(d, models.from_spec(spec, n_outputs=3, input_shape=d.input_shape), ARMS, [0, 1], CONFIG,
                       progress=False, loss=LOSS) for spec in (LinenMLP, NNXMLP, EquinoxMLP)]
    for other in runs[1:]:
        for (path, a), b in zip(jax.tree.leaves_with_path(runs[0].params), jax.tree.leaves(other.params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=rules.path_name(path))
        np.testing.assert_allclose(runs[0].frame[METRICS].to_numpy(), other.frame[METRICS].to_numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_equinox_weights_get_the_fans_of_their_input_and_output_axes():
    """He normal on an Equinox Linear(256 -> 64): Var = 2/256 by the weight's (out, in) layout, not 2/64."""
    model = models.from_spec(eqx.nn.Linear, n_outputs=64, input_shape=(256,))
    keys, _ = run_keys(0, "fans", [0])
    params = init_params(model, [initjax.get("he_normal")], keys, (256,))
    kernel = np.asarray(params["kernel"][0, 0], np.float64)
    assert kernel.shape == (256, 64) and from_flax(kernel).shape == (64, 256)  # Equinox's own layout
    assert kernel.var() == pytest.approx(2 / 256, rel=0.05)

    class Embedded(eqx.Module):  # an Embedding's weight is no kernel: kept as Equinox holds it, by its own name
        embed: eqx.nn.Embedding
        head: eqx.nn.Linear

        def __init__(self, in_features, out_features, key):
            k0, k1 = jax.random.split(key)
            self.embed = eqx.nn.Embedding(10, 5, key=k0)
            self.head = eqx.nn.Linear(5, out_features, key=k1)

        def __call__(self, x):
            return self.head(self.embed(x[0].astype(jnp.int32)))

    variables = models.from_spec(Embedded, n_outputs=3, input_shape=(1,)).init(jax.random.key(0), jnp.zeros((2, 1)))
    assert jax.tree.map(jnp.shape, variables["params"]) == {"embed": {"weight": (10, 5)},
                                                            "head": {"kernel": (5, 3), "bias": (3,)}}


def test_dropout_follows_the_runs_key_and_is_off_in_evaluation():
    model = models.from_spec(DropoutMLP, n_outputs=8, input_shape=(6,))
    x = jnp.ones((4, 6))
    variables = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)
    np.testing.assert_array_equal(model.apply(variables, x), model.apply(variables, x))
    train = [model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(k)}) for k in (1, 1, 2)]
    np.testing.assert_array_equal(train[0], train[1])
    assert not np.array_equal(train[0], train[2]) and (np.asarray(train[0]) == 0).any()
    with pytest.raises(Exception, match="dropout"):
        model.apply(variables, x, train=True)


def test_bad_equinox_models_are_refused_in_one_line():
    with pytest.raises(UserError, match="eqx.Module instance, which holds one draw"):
        models.from_spec(EquinoxMLP(4, 3, jax.random.key(0)))

    class Normed(eqx.Module):
        norm: eqx.nn.BatchNorm

        def __init__(self, in_features, out_features, key):
            self.norm = eqx.nn.BatchNorm(in_features, axis_name="batch", mode="batch")

        def __call__(self, x, state):
            return self.norm(x, state)

    with pytest.raises(UserError, match="holds state"):
        models.from_spec(Normed, n_outputs=3, input_shape=(4,))
    assert models.describe(models.from_spec(EquinoxMLP, n_outputs=3, input_shape=(6,)), (6,)) == \
        "EquinoxMLP(in_features=6, out_features=3) [equinox]"


def _plain_init(key, x, n_outputs=3):
    """The linen MLP of test_nnx as plain functions: its parameters with its names and its own initializers."""
    widths = (x.shape[-1], WIDTH, WIDTH, n_outputs)
    names = ("hidden_0", "hidden_1", "head")
    keys = jax.random.split(key, 3)
    return {name: {"kernel": jax.nn.initializers.lecun_normal()(k, (a, b)), "bias": jnp.zeros(b)}
            for name, k, a, b in zip(names, keys, widths, widths[1:])}


def _plain_apply(params, x):
    for name in ("hidden_0", "hidden_1"):
        x = jax.nn.relu(x @ params[name]["kernel"] + params[name]["bias"])
    return x @ params["head"]["kernel"] + params["head"]["bias"]


def test_plain_functions_train_as_the_same_linen_model():
    """The fourth way: init(key, x) and apply(params, x), under the same rules and seeds, the linen run."""
    d = _data()
    runs = [train_task(d, model, ARMS, [0, 1], CONFIG, progress=False, loss=LOSS) for model in (
        models.from_spec(LinenMLP, n_outputs=3, input_shape=d.input_shape),
        models.from_spec(models.Functions(_plain_init, _plain_apply, "plain MLP")))]
    for (path, a), b in zip(jax.tree.leaves_with_path(runs[0].params), jax.tree.leaves(runs[1].params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=rules.path_name(path))
    np.testing.assert_allclose(runs[0].frame[METRICS].to_numpy(), runs[1].frame[METRICS].to_numpy(), rtol=1e-5,
                               atol=1e-6)
    assert models.describe(models.from_spec(models.Functions(_plain_init, _plain_apply, "plain MLP")), (6,)) == \
        "plain MLP [functions]"
    with pytest.raises(UserError, match="model_args have nothing to call"):
        models.from_spec(models.Functions(_plain_init, _plain_apply), {"width": 3})


CHANNELS = 4


class LinenConv(nn.Module):
    n_outputs: int = 3

    @nn.compact
    def __call__(self, x):
        x = jax.nn.relu(nn.Conv(CHANNELS, (3, 3), padding="SAME", name="conv")(x))
        return nn.Dense(self.n_outputs, name="head")(x.reshape(x.shape[0], -1))


class NNXConv(nnx.Module):
    def __init__(self, pixels, out_features, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, CHANNELS, (3, 3), padding="SAME", rngs=rngs)
        self.head = nnx.Linear(pixels * CHANNELS, out_features, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.conv(x))
        return self.head(x.reshape(x.shape[0], -1))


class EquinoxConv(eqx.Module):
    conv: eqx.nn.Conv2d
    head: eqx.nn.Linear

    def __init__(self, pixels, out_features, key):
        k0, k1 = jax.random.split(key)
        self.conv = eqx.nn.Conv2d(1, CHANNELS, 3, padding="SAME", key=k0)
        self.head = eqx.nn.Linear(pixels * CHANNELS, out_features, key=k1)

    def __call__(self, x):  # one example (H, W, C); Equinox convolves (C, H, W)
        x = jax.nn.relu(self.conv(jnp.transpose(x, (2, 0, 1))))
        return self.head(jnp.transpose(x, (1, 2, 0)).reshape(-1))


def _conv_init(key, x):
    k0, k1 = jax.random.split(key)
    flat = x.shape[1] * x.shape[2] * CHANNELS
    lecun = jax.nn.initializers.lecun_normal()
    return {"conv": {"kernel": lecun(k0, (3, 3, 1, CHANNELS)), "bias": jnp.zeros(CHANNELS)},
            "head": {"kernel": lecun(k1, (flat, 3)), "bias": jnp.zeros(3)}}


def _conv_apply(params, x):
    x = jax.lax.conv_general_dilated(x, params["conv"]["kernel"], (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + params["conv"]["bias"]
    x = jax.nn.relu(x).reshape(x.shape[0], -1)
    return x @ params["head"]["kernel"] + params["head"]["bias"]


def test_four_frameworks_train_the_same_conv_net_alike():
    """A conv net in linen, NNX, Equinox (its (out, in, kh, kw) weights and (out, 1, 1) biases) and plain JAX, under
    the same rules and seeds: the same parameters (up to Equinox's bias shape) and the same curves, whichever way
    the suite batches the convolutions."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[:192, :, :, None] / 16).astype("float32")
    y = digits.target[:192] % 3
    d = data.arrays(x[:128], y[:128], x[128:], y[128:], name="digits-conv")
    specs = (LinenConv, NNXConv, EquinoxConv, models.Functions(_conv_init, _conv_apply, "plain conv"))
    runs = [train_task(d, models.from_spec(spec, {"pixels": 64} if spec in (NNXConv, EquinoxConv) else None,
                                           n_outputs=3, input_shape=d.input_shape), ARMS, [0, 1], CONFIG,
                       progress=False, loss=LOSS) for spec in specs]
    for other in runs[1:]:
        for (path, a), b in zip(jax.tree.leaves_with_path(runs[0].params), jax.tree.leaves(other.params)):
            np.testing.assert_allclose(a, np.reshape(b, a.shape), rtol=1e-4, atol=1e-5, err_msg=rules.path_name(path))
        np.testing.assert_allclose(runs[0].frame[METRICS].to_numpy(), other.frame[METRICS].to_numpy(), rtol=1e-4,
                                   atol=1e-5)


def test_plain_functions_are_keyed_by_their_own_code():
    """The cache key of a Functions pair covers init and apply (the pair's class is the suite's): an edit retrains."""
    import bench
    from bench.experiments import tasks
    from bench.training import resume

    def keyed(apply):
        task = bench.Task("digits", model=models.Functions(_plain_init, apply, "plain MLP"))
        return resume.code_key(tasks.user_code(bench.Experiment("k", "", (task,), ("he_normal",)), task))

    def edited_apply(params, x):
        return _plain_apply(params, x) * 2.0

    assert keyed(_plain_apply) != keyed(edited_apply)
