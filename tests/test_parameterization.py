"""Width parameterizations: roles from shapes, the factors against the papers' tables at concrete widths, folded
multipliers against a forward pass that applies them, and the errors of a bad set-up."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import initjax
from bench import models
from bench.errors import UserError
from bench.training import parameterized, train
from initjax import parameterization as param

BASE = 16


def _mlp(width, name=None, n_in=10, n_out=3):
    options = {} if name is None else {"parameterization": name, "base_width": BASE}
    return models.build("mlp", (n_in,), n_out, (width, width), "relu", **options)


def test_roles_follow_which_dimensions_grow():
    assert param.role_of((10, 64), (10, 16)) == ("input", 4.0)
    assert param.role_of((64, 64), (16, 16)) == ("hidden", 4.0)
    assert param.role_of((64, 3), (16, 3)) == ("output", 4.0)
    assert param.role_of((3,), (3,)) == ("scalar", 1.0)
    assert param.role_of((64,), (16,)) == ("input", 4.0)  # a hidden bias or a LayerNorm gain
    assert param.role_of((3, 3, 64, 128), (3, 3, 16, 32)) == ("hidden", 4.0)  # a conv kernel: its fan-in ratio
    with pytest.raises(ValueError, match="differ in rank"):
        param.role_of((4, 4), (4,))
    with pytest.raises(ValueError, match="outside their last two axes"):
        param.role_of((5, 3, 4), (3, 3, 4))
    tree = parameterized.roles(_mlp(64, "mup"), (10,))
    assert tree["Dense_0"]["kernel"] == ("input", 4.0) and tree["Dense_1"]["kernel"] == ("hidden", 4.0)
    assert tree["Dense_2"]["kernel"] == ("output", 4.0) and tree["Dense_2"]["bias"] == ("scalar", 1.0)
    assert tree["Dense_0"]["bias"] == ("input", 4.0)


@pytest.mark.parametrize("width", [16, 64, 256])
def test_factors_give_the_papers_tables(width):
    """Effective init variances (LeCun's 1/fan_in draw times the init factor squared) and learning rates against
    Tensor Programs V, Table 3 (muP, SP) and the NTK parameterization, anchored at the base width."""
    m = width / BASE
    fan_in = {"Dense_0": 10, "Dense_1": width, "Dense_2": width}
    expected_var = {
        "sp": {"Dense_0": 1 / 10, "Dense_1": 1 / width, "Dense_2": 1 / width},
        "ntk": {"Dense_0": 1 / 10, "Dense_1": 1 / width, "Dense_2": 1 / width},  # SP's initial function
        "mup": {"Dense_0": 1 / 10, "Dense_1": 1 / width, "Dense_2": BASE / width**2},  # output: 1/fan_in^2
    }
    # the learning rate of each kernel, over the recipe's (the effective tensors' under NTK's folded multipliers)
    expected_lr = {
        ("sp", "sgd"): (1, 1, 1), ("sp", "adam"): (1, 1, 1),
        ("mup", "sgd"): (m, 1, 1 / m),  # eta fan_out, eta, eta / fan_in
        ("mup", "adam"): (1, 1 / m, 1 / m),  # eta, eta / fan_in, eta / fan_in
        ("ntk", "sgd"): (1, 1 / m, 1 / m),  # (1/sqrt m)^2 on the folded hidden and output tensors
        ("ntk", "adam"): (m**-0.5, m**-1.5, 1 / m),
    }
    for name in ("sp", "ntk", "mup"):
        model = _mlp(width, name)
        init = parameterized.init_factors(model, (10,))
        for layer, var in expected_var[name].items():
            assert init[layer]["kernel"] ** 2 / fan_in[layer] == pytest.approx(var, rel=1e-12), (name, layer)
        for optimizer in ("sgd", "adam"):
            lr = parameterized.lr_factors(model, (10,), optimizer)
            got = tuple(lr[layer]["kernel"] for layer in ("Dense_0", "Dense_1", "Dense_2"))
            assert got == pytest.approx(expected_lr[name, optimizer], rel=1e-12), (name, optimizer)
            assert lr["Dense_2"]["bias"] == 1.0  # a scalar-like tensor never scales
    sgd = parameterized.lr_factors(_mlp(width, "mup"), (10,), "momentum")
    assert sgd["Dense_1"]["bias"] == pytest.approx(m)  # hidden biases are input-like: eta fan_out under SGD


def test_mup_draw_has_the_readout_variance_of_the_table():
    model = _mlp(1024, "mup", n_out=64)
    keys, _ = train.run_keys(0, "t", [0])
    params = train.init_params(model, [initjax.get("lecun_normal")], keys, (10,))
    readout = np.asarray(params["Dense_2"]["kernel"][0, 0], np.float64)
    hidden = np.asarray(params["Dense_1"]["kernel"][0, 0], np.float64)
    # 65,536 entries: the variance estimate is within 2% with overwhelming probability
    assert readout.var() == pytest.approx(BASE / 1024**2, rel=0.02)
    assert hidden.var() == pytest.approx(1 / 1024, rel=0.02)


def _explicit_forward(params, x, multipliers):
    """The MLP with each kernel times its multiplier in the forward pass (the unfolded parameterization)."""
    h = x
    for i, layer in enumerate(("Dense_0", "Dense_1", "Dense_2")):
        h = h @ (multipliers[layer] * params[layer]["kernel"]) + params[layer]["bias"]
        if i < 2:
            h = jax.nn.relu(h)
    return h


def _times(factors) -> optax.GradientTransformation:
    """The reference's per-tensor learning rates: each update times its factor."""
    return optax.GradientTransformation(
        lambda params: optax.EmptyState(),
        lambda updates, state, params=None: (jax.tree.map(lambda u, f: u * f, updates, factors), state))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_folded_ntk_trains_like_the_explicit_multipliers(optimizer):
    """NTK's 1/sqrt(fan_in) multipliers, folded into init and learning rates, take the steps the explicit
    forward multipliers with the paper's learning rates take (Adam: up to its epsilon)."""
    width, lr, steps = 64, 0.05 if optimizer == "sgd" else 1e-2, 4
    model = _mlp(width, "ntk")
    keys, _ = train.run_keys(0, "t", [0])
    folded = jax.tree.map(lambda leaf: leaf[0, 0], train.init_params(model, [initjax.get("lecun_normal")], keys,
                                                                     (10,)))
    roles = parameterized.roles(model, (10,))
    mult = {layer: roles[layer]["kernel"][1] ** -param.NTK.scaling(roles[layer]["kernel"][0]).multiplier
            for layer in folded}
    drawn = {layer: {"kernel": folded[layer]["kernel"] / mult[layer], "bias": folded[layer]["bias"]}
             for layer in folded}
    paper_lr = jax.tree.map(lambda rm: rm[1] ** -param.NTK.scaling(rm[0]).lr(optimizer), roles,
                            is_leaf=lambda x: isinstance(x, tuple))
    x = jax.random.normal(jax.random.key(1), (32, 10))
    y = jax.random.randint(jax.random.key(2), (32,), 0, 3)
    base = optax.sgd(lr) if optimizer == "sgd" else optax.adam(lr, eps=1e-12)

    def loss(forward, params):
        return optax.softmax_cross_entropy_with_integer_labels(forward(params), y).mean()

    def run(params, forward, transform):
        state = transform.init(params)
        for _ in range(steps):
            grads = jax.grad(lambda p: loss(forward, p))(params)
            updates, state = transform.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        return forward(params)

    ours = run(folded, lambda p: model.apply({"params": p}, x),
               parameterized.optimizer(base, model, (10,), optimizer))
    reference = run(drawn, lambda p: _explicit_forward(p, x, mult),
                    optax.chain(base, _times(paper_lr)))
    np.testing.assert_allclose(ours, reference, rtol=2e-4, atol=2e-5)
    assert not np.allclose(ours, model.apply({"params": folded}, x), atol=1e-2)  # training moved the outputs


def test_mup_folds_attention_one_over_d_into_the_query():
    model = models.build("transformer", (8,), 6, (32, 32), "gelu", heads=2, parameterization="mup", base_width=8)
    init = parameterized.init_factors(model, (8,))
    lr = parameterized.lr_factors(model, (8,), "adam")
    m = 32 / 8
    # a fan-in draw's query kernel at 1/sqrt(fan_in) is muP's; the logits' 1/d_head (d_head 16 against the base's 4)
    # instead of 1/sqrt(d_head) multiplies the query by (16/4)^-1/2
    assert init["block_0"]["attn"]["query"]["kernel"] == pytest.approx(m**-0.5)
    assert init["block_0"]["attn"]["key"]["kernel"] == 1.0
    assert lr["block_0"]["attn"]["query"]["kernel"] == pytest.approx(1 / m * m**-0.5)
    assert lr["block_0"]["attn"]["key"]["kernel"] == pytest.approx(1 / m)
    assert lr["readout"]["kernel"] == pytest.approx(1 / m) and init["readout"]["kernel"] == pytest.approx(m**-0.5)
    assert lr["embed"]["embedding"] == 1.0 and init["embed"]["embedding"] == 1.0


def test_without_a_parameterization_nothing_changes():
    model = _mlp(64)
    assert parameterized.init_factors(model, (10,)) is None and parameterized.lr_factors(model, (10,), "sgd") is None
    sgd = optax.sgd(0.1)
    assert parameterized.optimizer(sgd, model, (10,), "sgd") is sgd
    # at the base width every parameterization is the base model
    for name in param.PARAMETERIZATIONS:
        factors = parameterized.lr_factors(_mlp(BASE, name), (10,), "adam")
        assert set(jax.tree.leaves(factors)) == {1.0}


@pytest.mark.parametrize("options, message", [
    ({"parameterization": "mup"}, "give parameterization and base_width together"),
    ({"parameterization": "mu", "base_width": 8}, "unknown parameterization 'mu'"),
    ({"parameterization": "mup", "base_width": 0}, "base_width must be an integer >= 1"),
    ({"parameterization": "mup", "base_width": 8.0}, "base_width must be an integer >= 1"),
])
def test_bad_parameterization_options_are_one_line_errors(options, message):
    with pytest.raises(UserError, match=message):
        models.build("mlp", (10,), 3, (64,), "relu", **options)


def test_parameterization_errors_name_the_model_and_optimizer():
    with pytest.raises(UserError, match="must divide base_width 6"):
        models.build("transformer", (8,), 6, (32,), "gelu", heads=4, parameterization="mup", base_width=6)
    with pytest.raises(UserError, match="has no option 'parameterization'"):
        models.build("lenet", (28, 28, 1), 10, (), "relu", parameterization="mup", base_width=8)
    with pytest.raises(UserError, match="its embedding is also its readout"):
        models.build("transformer", (8,), 6, (32,), "gelu", tied=True, parameterization="mup", base_width=8)
    with pytest.raises(UserError, match="unknown optimizer"):
        parameterized.family("my_optimizer")
    from bench.training import recipes

    assert set(parameterized.FAMILIES) == set(recipes.OPTIMIZERS)  # every optimizer has a family
    assert parameterized.family("adamw(b2=0.95)") == "adam" and parameterized.family("nesterov") == "sgd"
    resmlp = models.build("resmlp", (10,), 3, (32, 32), "relu", parameterization="mup", base_width=8)
    assert parameterized.roles(resmlp, (10,))["block_0"]["branch_in"]["kernel"] == ("hidden", 4.0)
    assert jnp.isscalar(parameterized.lr_factors(resmlp, (10,), "adam")["block_0"]["scale"])


def test_the_model_name_says_its_parameterization():
    assert models.describe(_mlp(64, "mup"), (10,)) == "MLP 10-64-64-3 relu muP (base width 16)"
    assert models.describe(_mlp(64), (10,)) == "MLP 10-64-64-3 relu"
    assert set(models.PARAMETERIZATION_NAMES) == set(param.PARAMETERIZATIONS)


def test_scaled_optimizer_keeps_a_grids_injected_state():
    """A grid's learning rates live in the optimizer's state; the learning-rate factors must not hide them."""
    model = _mlp(64, "mup")
    params = jax.tree.map(lambda leaf: leaf[0, 0], train.init_params(model, [initjax.get("lecun_normal")],
                                                                     train.run_keys(0, "t", [0])[0], (10,)))
    injected = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    scaled = parameterized.optimizer(injected, model, (10,), "sgd")
    state = scaled.init(params)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.1)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = scaled.update(grads, state, params)
    factors = parameterized.lr_factors(model, (10,), "sgd")
    np.testing.assert_allclose(updates["Dense_0"]["kernel"], -0.1 * factors["Dense_0"]["kernel"], rtol=1e-6)
    np.testing.assert_allclose(updates["Dense_2"]["kernel"], -0.1 * factors["Dense_2"]["kernel"], rtol=1e-6)
