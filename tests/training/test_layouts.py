"""Training layouts (``bench.training.layouts``): an Equinox model's kernels held in its own layout while it trains,
the same function of the same numbers, and Flax's layout kept where the optimizer reads a kernel's orientation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

eqx = pytest.importorskip("equinox", reason="Equinox models need the equinox extra: pip install -e '.[equinox]'")

from bench import models  # noqa: E402
from bench.training import layouts  # noqa: E402
from tests.models.test_equinox import EquinoxMLP  # noqa: E402
from tests.models.test_nnx import LinenMLP  # noqa: E402

INPUT = (5,)


def _model():
    return models.from_spec(EquinoxMLP, n_outputs=3, input_shape=INPUT)


def _by_columns() -> optax.GradientTransformation:
    """An update that reads a kernel's orientation: each gradient divided by its last axis's length."""
    return optax.stateless(lambda updates, params: jax.tree.map(lambda u: -u / u.shape[-1], updates))


def test_the_model_in_its_own_layout_computes_the_same_function_of_the_same_parameters():
    model = _model()
    x = jax.random.normal(jax.random.key(1), (7, *INPUT))
    params = model.init(jax.random.key(0), x)["params"]
    layout = layouts.of(model, optax.adam(1e-2), INPUT)
    assert layout is not None
    held = layout.inward(params)
    for name in ("hidden_0", "hidden_1", "head"):  # Equinox's (out, in) weights; biases as they were
        np.testing.assert_array_equal(held[name]["kernel"], params[name]["kernel"].T)
        np.testing.assert_array_equal(held[name]["bias"], params[name]["bias"])
    np.testing.assert_allclose(layout.model.apply({"params": held}, x), model.apply({"params": params}, x),
                               rtol=1e-6, atol=1e-6)
    for a, b in zip(jax.tree.leaves(layout.outward(held)), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    runs = jax.tree.map(lambda p: jnp.stack([jnp.stack([p, 2 * p])]), params)  # (1 arm, 2 seeds, ...)
    np.testing.assert_array_equal(layout.runs(layout.inward)(runs)["head"]["kernel"][0, 1], 2 * held["head"]["kernel"])


@pytest.mark.parametrize("optimizer", [optax.sgd(0.1), optax.sgd(0.1, momentum=0.9), optax.adam(1e-2),
                                       optax.adamw(1e-2, weight_decay=0.1),
                                       optax.chain(optax.clip_by_global_norm(1.0), optax.lion(1e-3))])
def test_elementwise_optimizers_train_in_the_models_layout(optimizer):
    assert layouts.of(_model(), optimizer, INPUT) is not None


@pytest.mark.parametrize("optimizer", [_by_columns(), optax.contrib.muon(1e-2)], ids=["by-columns", "muon"])
def test_an_optimizer_that_reads_a_kernels_orientation_keeps_flax_layout(optimizer):
    assert layouts.of(_model(), optimizer, INPUT) is None


def test_a_model_without_a_layout_of_its_own_has_none():
    linen = models.from_spec(LinenMLP, n_outputs=3, input_shape=INPUT)
    assert layouts.of(linen, optax.adam(1e-2), INPUT) is None
