"""The built-in models are found through one registry (``bench.models.MODELS`` of ``ModelKind`` s): a toy kind
added there is built, checked, named in the results table and trained like the shipped ones, and the shipped
kinds' checks and names are those documented."""

import flax.linen as nn
import numpy as np
import pytest

import bench
from bench import models
from bench.errors import UserError
from bench.models.kind import ModelKind


class Linear(nn.Module):
    """Logits straight from the inputs: the smallest model a task can train."""

    n_outputs: int
    output_activation: str = "softmax"

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.n_outputs)(x.reshape(x.shape[0], -1))


def _check(options):
    if set(options) - {"note"}:
        raise UserError(f"model 'linear' has no option {sorted(set(options) - {'note'})[0]!r} (its options: note)")


def _build(input_shape, n_classes, hidden, activation, n_targets, options):
    return Linear(1 if n_classes == 2 else n_classes, "sigmoid" if n_classes == 2 else "softmax")


TOY = ModelKind("linear", "logits from the inputs", {"note": "ignored"}, _check, _build, (Linear,),
                lambda model, shape: f"Linear {int(np.prod(shape))}-{model.n_outputs}")


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(models.MODELS, TOY.name, TOY)


def test_a_kind_added_to_the_registry_is_built_named_and_checked(toy):
    model = models.build("linear", (4, 4, 1), 10)
    assert isinstance(model, Linear) and models.describe(model, (4, 4, 1)) == "Linear 16-10"
    with pytest.raises(UserError, match="model 'linear' has no option 'depth' \\(its options: note\\)"):
        models.build("linear", (16,), 10, depth=3)
    from bench.commands.listing import listing

    assert "linear" in bench.models.MODELS and "  linear" in listing()


def test_a_kind_added_to_the_registry_trains_in_an_experiment(toy):
    outcome = bench.run("default", seeds=2, epochs=1, initializers=["zeros", "lecun_normal"], datasets=["digits"],
                        model="linear", hidden=[], progress=False)
    rows = outcome.results.set_index(["arm", "seed", "epoch"]).test_accuracy
    assert set(outcome.results.model) == {"Linear 64-10"}
    assert rows["zeros", 0, 0] == rows["zeros", 1, 0]  # the toy's kernel is the arm's: all zeros, whatever the seed
    assert rows["lecun_normal", 0, 0] != rows["lecun_normal", 1, 0]
    for seed in (0, 1):
        assert rows["lecun_normal", seed, 1] > rows["lecun_normal", seed, 0] + 0.05  # it trains


@pytest.mark.parametrize("kind, shape, hidden, name", [
    ("mlp", (8,), (16, 8), "MLP 8-16-8-5 relu"),
    ("resmlp", (8,), (16, 16), "ResMLP 8-16x2 blocks-5 relu"),
    ("lenet", (28, 28, 1), (), "ConvNet 28x28x1 conv 6-16 dense 120-84-5 relu"),
    ("convnet", (32, 32, 3), (), "ConvNet 32x32x3 conv 32-32-64-64 dense 256-5 relu"),
])
def test_the_shipped_kinds_names(kind, shape, hidden, name):
    assert models.describe(models.build(kind, shape, 5, hidden), shape) == name


@pytest.mark.parametrize("kind, options, message", [
    ("resmlp", {"dropout": 0.1}, "model 'resmlp' has no dropout option; use mlp, lenet or convnet"),
    ("resmlp", {"norm": "layer"}, "model 'resmlp' has no option 'norm' (its options: parameterization, base_width, "
                                  "base_depth)"),
    ("lenet", {"parameterization": "mup"}, "model 'lenet' has no option 'parameterization' (its options: norm, "
                                           "dropout)"),
    ("transformer", {"heads": 3}, "transformer heads must be a whole divisor of the width 16, got 3"),
])
def test_each_kind_checks_its_own_options_in_one_line(kind, options, message):
    shape = (8,) if kind != "lenet" else (28, 28, 1)
    with pytest.raises(UserError) as raised:
        models.build(kind, shape, 5, (16, 16), **options)
    assert str(raised.value) == message
