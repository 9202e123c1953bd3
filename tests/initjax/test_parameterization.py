"""Width parameterizations: roles from shapes, the factors against the papers' tables at concrete widths, folded
multipliers against a forward pass that applies them, and the errors of a bad set-up."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import initjax
from bench import models
from bench.errors import UserError
from bench.training import parameterized, recipes, seeding
from bench.training.initialization import init_params
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
    # Adam's epsilon per tensor, kernels and the hidden biases: muP's eps / m where the gradients shrink as 1 / width
    # (every tensor but the readout's, in Table 3's form); NTK's eps over its folded multiplier m^-1/2; SP none
    expected_eps = {"mup": ((1 / m, 1 / m, 1), (1 / m, 1 / m)), "ntk": ((1, m**0.5, m**0.5), (1, 1))}
    for name in ("sp", "ntk", "mup"):
        factors = parameterized.per_tensor(_mlp(width, name), (10,), "adam")
        if name == "sp" or width == BASE:
            assert factors is None, name  # nothing to scale: the recipe's own optimizer
            continue
        # muP's table does not scale decay; NTK's folded tensors decay at wd over their multiplier, as the drawn
        # tensors it shrinks
        assert factors.weight_decay is None if name == "mup" else factors.weight_decay == factors.eps, name
        kernels = tuple(factors.eps[layer]["kernel"] for layer in ("Dense_0", "Dense_1", "Dense_2"))
        biases = tuple(factors.eps[layer]["bias"] for layer in ("Dense_0", "Dense_1"))
        assert kernels + biases == pytest.approx(expected_eps[name][0] + expected_eps[name][1], rel=1e-12), name
        assert factors.eps["Dense_2"]["bias"] == 1.0


def test_mup_draw_has_the_readout_variance_of_the_table():
    model = _mlp(1024, "mup", n_out=64)
    keys, _ = seeding.run_keys(0, "t", [0])
    params = init_params(model, [initjax.get("lecun_normal")], keys, (10,))
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
    """NTK's 1/sqrt(fan_in) multipliers, folded into init, learning rates and Adam's epsilons, take the steps the
    explicit forward multipliers with the paper's learning rates take (Adam with an epsilon of 1e-3, near the
    gradients' size: the folded tensors' epsilons must be the explicit ones' over their multipliers)."""
    width, lr, steps = 64, 0.05 if optimizer == "sgd" else 1e-2, 4
    model = _mlp(width, "ntk")
    keys, _ = seeding.run_keys(0, "t", [0])
    folded = jax.tree.map(lambda leaf: leaf[0, 0], init_params(model, [initjax.get("lecun_normal")], keys,
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
    if optimizer == "sgd":
        base = reference_base = optax.sgd(lr)
    else:
        base = recipes.build("adam(eps=1e-3)", lr, per_tensor=parameterized.per_tensor(model, (10,), "adam"))
        reference_base = optax.adam(lr, eps=1e-3)

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
                    optax.chain(reference_base, _times(paper_lr)))
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


def test_mup_with_the_standard_attention_scale_differs_from_mup_only_in_the_query():
    """``mup(attention=0.5)`` keeps the logits' 1/sqrt(d_head): the query is drawn and stepped as the key is, and
    every other tensor as under muP; ``mup(attention=1)`` is muP itself."""
    def build(name):
        return models.build("transformer", (8,), 6, (32, 32), "gelu", heads=2, parameterization=name, base_width=8)

    assert param.get("mup(attention=1)") is param.MUP
    standard, mup = param.get("mup(attention=0.5)"), param.MUP
    assert standard.attention == 0.5 and dataclasses.replace(standard, name="mup", attention=1.0, title="muP") == mup
    assert param.attention_factor(standard, 4.0) == 1.0 and param.attention_factor(mup, 4.0) == pytest.approx(0.5)
    for factors in (lambda m: parameterized.init_factors(m, (8,)), lambda m: parameterized.lr_factors(m, (8,), "adam")):
        ours, theirs = factors(build("mup(attention=0.5)")), factors(build("mup"))
        query, key = ours["block_0"]["attn"]["query"]["kernel"], ours["block_0"]["attn"]["key"]["kernel"]
        assert query == key == theirs["block_0"]["attn"]["key"]["kernel"]
        assert query == pytest.approx(theirs["block_0"]["attn"]["query"]["kernel"] * 2.0)  # (32/8)^(1/2)
        flat_ours, flat_theirs = jax.tree_util.tree_flatten_with_path(ours)[0], jax.tree.leaves(theirs)
        for (path, a), b in zip(flat_ours, flat_theirs):
            if "query" not in jax.tree_util.keystr(path):
                assert a == b, jax.tree_util.keystr(path)
    assert models.describe(build("mup(attention=0.5)"), (8,)).endswith("muP with 1/sqrt(d) attention (base width 8)")


def test_without_a_parameterization_nothing_changes():
    model = _mlp(64)
    assert parameterized.init_factors(model, (10,)) is None and parameterized.lr_factors(model, (10,), "sgd") is None
    sgd = optax.sgd(0.1)
    assert parameterized.optimizer(sgd, model, (10,), "sgd") is sgd
    # at the base width (and depth) every parameterization is the base model
    for name in param.PARAMETERIZATIONS:
        model = _resmlp(BASE, 2, name) if param.get(name).depth else _mlp(BASE, name)
        for factors in (parameterized.lr_factors(model, (10,), "adam"), parameterized.init_factors(model, (10,))):
            assert set(jax.tree.leaves(factors)) == {1.0}
        assert parameterized.per_tensor(model, (10,), "adamw") is None


@pytest.mark.parametrize("options, message", [
    ({"parameterization": "mup"}, "give parameterization and base_width together"),
    ({"parameterization": "mup", "base_width": 8, "base_depth": 2}, "base_depth goes with depth_mup or completep only"),
    ({"parameterization": "completep", "base_width": 8}, "they need it; got parameterization 'completep' without"),
    ({"parameterization": "depth_mup", "base_width": 8, "base_depth": 2}, "use a resmlp or a transformer"),
    ({"parameterization": "mu", "base_width": 8}, "unknown parameterization 'mu'"),
    ({"parameterization": "mup", "base_width": 0}, "base_width must be an integer >= 1"),
    ({"parameterization": "mup", "base_width": 8.0}, "base_width must be an integer >= 1"),
    ({"parameterization": "completep(alpha=2)", "base_width": 8, "base_depth": 2},
     r"completep's alpha must be between 0.5 and 1 \(the paper's range\), got 2$"),
    ({"parameterization": "completep(beta=1)", "base_width": 8, "base_depth": 2},
     "parameterization 'completep\\(beta=1\\)': .*unexpected keyword argument 'beta'"),
    ({"parameterization": "mup(alpha=1)", "base_width": 8},
     "parameterization 'mup\\(alpha=1\\)': .*unexpected keyword argument 'alpha'"),
    ({"parameterization": "mup(attention=2)", "base_width": 8},
     r"mup's attention exponent must be between 0.5 \(1/sqrt\(d\)\) and 1 \(1/d\), got 2$"),
    ({"parameterization": "mupp", "base_width": 8}, "unknown parameterization 'mupp'"),
])
def test_bad_parameterization_options_are_one_line_errors(options, message):
    with pytest.raises(UserError, match=message):
        models.build("mlp", (10,), 3, (64,), "relu", **options)


def test_parameterization_errors_name_the_model_and_optimizer():
    with pytest.raises(UserError, match="must divide base_width 6"):
        models.build("transformer", (8,), 6, (32,), "gelu", heads=4, parameterization="mup", base_width=6)
    with pytest.raises(UserError, match="has no option 'parameterization'"):
        models.build("lenet", (28, 28, 1), 10, (), "relu", parameterization="mup", base_width=8)
    with pytest.raises(UserError, match="not \"post\""):
        models.build("transformer", (8,), 6, (32,), "gelu", norm="post", parameterization="depth_mup", base_width=8,
                     base_depth=1)
    with pytest.raises(UserError, match="base_depth must be an integer >= 1"):
        _resmlp(32, 2, "depth_mup", base_depth=0)
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
    params = jax.tree.map(lambda leaf: leaf[0, 0], init_params(model, [initjax.get("lecun_normal")],
                                                                     seeding.run_keys(0, "t", [0])[0], (10,)))
    injected = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    scaled = parameterized.optimizer(injected, model, (10,), "sgd")
    state = scaled.init(params)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.1)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = scaled.update(grads, state, params)
    factors = parameterized.lr_factors(model, (10,), "sgd")
    np.testing.assert_allclose(updates["Dense_0"]["kernel"], -0.1 * factors["Dense_0"]["kernel"], rtol=1e-6)
    np.testing.assert_allclose(updates["Dense_2"]["kernel"], -0.1 * factors["Dense_2"]["kernel"], rtol=1e-6)


def _resmlp(width, depth, name=None, base_depth=2, n_in=10, n_out=3):
    options = {} if name is None else {"parameterization": name, "base_width": BASE}
    if name is not None and param.get(name).depth is not None:
        options["base_depth"] = base_depth
    return models.build("resmlp", (n_in,), n_out, (width,) * depth, "relu", **options)


@pytest.mark.parametrize("width", [BASE, 64])
def test_depth_mup_factors_give_the_papers_table(width):
    """Depth-muP (Tensor Programs VI, block depth 1) at 8 blocks against a base of 2 (m_L = 4): branches times
    4^-1/2, folded into each block's last layer; Adam's rate inside a branch times 4^-1/2, SGD's unchanged;
    multiplied by muP's width factors."""
    model, m_depth = _resmlp(width, 8, "depth_mup"), 4.0
    width_init = parameterized.init_factors(_resmlp(width, 8, "mup"), (10,))
    init = parameterized.init_factors(model, (10,))
    for family, inside in (("adam", m_depth**-0.5), ("sgd", 1.0)):
        width_lr = parameterized.lr_factors(_resmlp(width, 8, "mup"), (10,), family)
        lr = parameterized.lr_factors(model, (10,), family)
        folded = m_depth**-0.5 * (m_depth**-0.5 if family == "adam" else m_depth**-0.5)  # c * inside (Adam), c^2 (SGD)
        for block in ("block_0", "block_7"):
            assert lr[block]["branch_out"]["kernel"] == pytest.approx(folded * width_lr[block]["branch_out"]["kernel"])
            assert lr[block]["b3"] == pytest.approx(folded)
            assert lr[block]["branch_in"]["kernel"] == pytest.approx(inside * width_lr[block]["branch_in"]["kernel"])
            assert lr[block]["b0"] == pytest.approx(inside) and lr[block]["scale"] == pytest.approx(inside)
        assert lr["stem"] == width_lr["stem"] and lr["head"] == width_lr["head"]
    assert init["block_5"]["branch_out"]["kernel"] == pytest.approx(
        m_depth**-0.5 * width_init["block_5"]["branch_out"]["kernel"])
    assert init["block_5"]["branch_in"]["kernel"] == width_init["block_5"]["branch_in"]["kernel"]
    assert init["head"] == width_init["head"]
    # the transformer: attention's and the MLP's output projections are the branch outputs, LayerNorms in the branch
    lm = models.build("transformer", (8,), 6, (32,) * 8, "gelu", heads=2, parameterization="depth_mup", base_width=32,
                      base_depth=2)
    lr = parameterized.lr_factors(lm, (8,), "adam")
    assert lr["block_3"]["attn"]["out"]["kernel"] == pytest.approx(1 / 4)
    assert lr["block_3"]["mlp"]["out"]["bias"] == pytest.approx(1 / 4)
    assert lr["block_3"]["attn"]["query"]["kernel"] == pytest.approx(1 / 2)
    assert lr["block_3"]["norm_mlp"]["scale"] == pytest.approx(1 / 2)
    assert lr["embed"]["embedding"] == 1.0 and lr["readout"]["kernel"] == 1.0


@pytest.mark.parametrize("width", [BASE, 64])
def test_completep_factors_give_the_papers_rules(width):
    """CompleteP (Dey et al. 2025, Table 1, alpha = 1) at 8 blocks against a base of 2 (m_L = 4): branches times
    1/4, folded into each block's last layer (its Adam rate times 1/4 with it); Adam's rate inside a branch, its
    LayerNorms' too, times m_L^(alpha - 1) = 1; outside, muP's width factors alone. No rule for SGD."""
    model, m_depth = _resmlp(width, 8, "completep"), 4.0
    width_init = parameterized.init_factors(_resmlp(width, 8, "mup"), (10,))
    width_lr = parameterized.lr_factors(_resmlp(width, 8, "mup"), (10,), "adam")
    init, lr = parameterized.init_factors(model, (10,)), parameterized.lr_factors(model, (10,), "adamw")
    for block in ("block_0", "block_7"):
        assert init[block]["branch_out"]["kernel"] == pytest.approx(width_init[block]["branch_out"]["kernel"] / m_depth)
        assert lr[block]["branch_out"]["kernel"] == pytest.approx(width_lr[block]["branch_out"]["kernel"] / m_depth)
        assert lr[block]["b3"] == pytest.approx(1 / m_depth)
        assert lr[block]["branch_in"]["kernel"] == pytest.approx(width_lr[block]["branch_in"]["kernel"])
        assert lr[block]["b0"] == 1.0 and lr[block]["scale"] == 1.0
    assert lr["stem"] == width_lr["stem"] and lr["head"] == width_lr["head"] and init["head"] == width_init["head"]
    # Adam's epsilon: eps m_N^-1 m_L^-alpha inside blocks (over the folded 1/4 on branch outputs), eps m_N^-1 on
    # the stem, the readout's unscaled; decay: hidden weights times m_N, branch outputs over their folded 1/4
    m_width = width / BASE
    factors = parameterized.per_tensor(model, (10,), "adamw")
    eps, decay = factors.eps, factors.weight_decay
    for block in ("block_0", "block_7"):
        assert eps[block]["branch_in"]["kernel"] == pytest.approx(1 / (m_width * m_depth))
        assert eps[block]["b0"] == 1 / m_depth and eps[block]["scale"] == 1 / m_depth  # Fixup's scalars
        assert eps[block]["branch_out"]["kernel"] == pytest.approx(1 / m_width)
        assert eps[block]["b3"] == 1.0
        assert decay[block]["branch_in"]["kernel"] == pytest.approx(m_width)
        assert decay[block]["branch_out"]["kernel"] == pytest.approx(m_width * m_depth)
        assert decay[block]["b0"] == 1.0 and decay[block]["b3"] == pytest.approx(m_depth)
    assert eps["stem"]["kernel"] == pytest.approx(1 / m_width) and eps["head"]["kernel"] == 1.0
    assert decay["stem"]["kernel"] == 1.0 and decay["head"]["kernel"] == 1.0
    lm = models.build("transformer", (8,), 6, (32,) * 8, "gelu", heads=2, parameterization="completep",
                      base_width=32, base_depth=2)
    lr = parameterized.lr_factors(lm, (8,), "adam")
    assert lr["block_3"]["attn"]["out"]["kernel"] == pytest.approx(1 / 4)
    assert lr["block_3"]["attn"]["query"]["kernel"] == 1.0 and lr["block_3"]["norm_mlp"]["scale"] == 1.0
    assert lr["embed"]["embedding"] == 1.0 and lr["readout"]["kernel"] == 1.0
    eps = parameterized.per_tensor(lm, (8,), "adam").eps
    assert eps["block_3"]["attn"]["query"]["kernel"] == 1 / 4 and eps["block_3"]["norm_mlp"]["scale"] == 1 / 4
    assert eps["block_3"]["attn"]["out"]["kernel"] == 1.0 and eps["embed"]["embedding"] == 1.0
    with pytest.raises(UserError, match="completep has no learning-rate rule for sgd .* train it with adam or adamw"):
        parameterized.lr_factors(model, (10,), "sgd")
    assert models.describe(lm, (8,)).endswith("CompleteP (base width 32, base depth 2)")


def _explicit_resmlp(params, x, a):
    """The ResMLP with every block's branch times ``a`` in the forward pass (the unfolded Depth-muP)."""
    h = x @ params["stem"]["kernel"] + params["stem"]["bias"]
    for i in range(len([k for k in params if k.startswith("block_")])):
        b = params[f"block_{i}"]
        z = (jax.nn.relu(h) + b["b0"]) @ b["branch_in"]["kernel"]
        z = (jax.nn.relu(z + b["b1"]) + b["b2"]) @ b["branch_out"]["kernel"]
        h = h + a * (b["scale"] * z + b["b3"])
    return jax.nn.relu(h) @ params["head"]["kernel"] + params["head"]["bias"]


def _reference_adamw(lr, eps, decay, b1=0.9, b2=0.999) -> optax.GradientTransformation:
    """AdamW with a learning rate, an epsilon and a decoupled weight decay per tensor (pytrees of floats), written
    out (Loshchilov & Hutter 2019, Algorithm 2): the paper's per-tensor rules applied as they are written."""

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return 0, zeros, zeros

    def update(grads, state, params):
        t, m, v = state
        t += 1
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        step = jax.tree.map(
            lambda m, v, p, lr, eps, wd: -lr * ((m / (1 - b1**t)) / (jnp.sqrt(v / (1 - b2**t)) + eps) + wd * p),
            m, v, params, lr, eps, decay)
        return step, (t, m, v)

    return optax.GradientTransformation(init, update)


@pytest.mark.parametrize("name, optimizer", [("depth_mup", "sgd"), ("depth_mup", "adam"), ("completep", "adam"),
                                             ("completep", "adamw"), ("completep(alpha=0.75)", "adamw")])
def test_folded_depth_mup_trains_like_explicit_branch_multipliers(name, optimizer):
    """``(L / L_base) ** -alpha`` on every branch (Depth-muP 1/2, CompleteP 1, or 3/4) with the paper's rates (Adam:
    times ``(L / L_base) ** (alpha - 1)`` inside branches), folded into the branches' last layers, takes the same
    steps as the explicit multiplier. AdamW with an epsilon near the gradients' size (1e-3) and weight decay 0.1:
    the explicit model trained by AdamW written out with CompleteP's per-tensor epsilon ``eps m_L^-alpha`` inside
    branches; the folded tensors' epsilons and decays must be its over their multipliers."""
    alpha = param.get(name).depth.multiplier
    depth, lr, steps = 8, 0.05 if optimizer == "sgd" else 1e-2, 4
    model, a = _resmlp(BASE, depth, name), (depth / 2) ** -alpha
    keys, _ = seeding.run_keys(0, "t", [0])
    folded = jax.tree.map(lambda leaf: leaf[0, 0], init_params(model, [initjax.get("lecun_normal")], keys,
                                                                     (10,)))
    folded["block_1"]["b3"] = jnp.float32(0.3)  # a stream bias away from 0, so its folding is exercised too
    drawn = jax.tree.map(lambda v: v, folded)
    for i in range(depth):
        drawn[f"block_{i}"]["branch_out"]["kernel"] = folded[f"block_{i}"]["branch_out"]["kernel"] / a
        drawn[f"block_{i}"]["b3"] = folded[f"block_{i}"]["b3"] / a
    inside = 1.0 if optimizer == "sgd" else (depth / 2) ** (alpha - 1)

    def in_blocks(value):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: value if str(getattr(path[0], "key", "")).startswith("block_") else 1.0, drawn)

    paper_lr = in_blocks(inside)
    x = jax.random.normal(jax.random.key(1), (32, 10))
    y = jax.random.randint(jax.random.key(2), (32,), 0, 3)
    base = optax.sgd(lr) if optimizer == "sgd" else optax.adam(lr, eps=1e-12)
    reference_base = optax.chain(base, _times(paper_lr))
    if optimizer == "adamw":  # at the base width: no width factor; the epsilon times m_L^-alpha inside branches
        base = recipes.build("adamw(eps=1e-3)", lr, weight_decay=0.1,
                             per_tensor=parameterized.per_tensor(model, (10,), optimizer))
        reference_base = _reference_adamw(jax.tree.map(lambda f: lr * f, paper_lr),
                                          jax.tree.map(lambda f: 1e-3 * f, in_blocks((depth / 2) ** -alpha)),
                                          jax.tree.map(lambda _: 0.1, drawn))

    def run(params, forward, transform):
        state = transform.init(params)
        for _ in range(steps):
            grads = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(forward(p), y).mean())(params)
            updates, state = transform.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        return forward(params)

    np.testing.assert_allclose(model.apply({"params": folded}, x), _explicit_resmlp(drawn, x, a), rtol=1e-5,
                               atol=1e-6)  # the forward passes agree at init
    ours = run(folded, lambda p: model.apply({"params": p}, x), parameterized.optimizer(base, model, (10,), optimizer))
    reference = run(drawn, lambda p: _explicit_resmlp(p, x, a), reference_base)
    np.testing.assert_allclose(ours, reference, rtol=2e-4, atol=2e-5)
    assert not np.allclose(ours, model.apply({"params": folded}, x), atol=1e-2)  # training moved the outputs


def test_depth_mup_and_completep_keep_the_residual_stream_at_its_scale_as_blocks_are_added():
    """At init each block adds a branch of variance ~Var(h)/4 (two LeCun-drawn ReLU layers): unscaled, the stream's
    variance grows as 1.25^L (RMS x4.8 from 2 to 16 blocks); times 1/sqrt(L/2), as (1 + 1/(2L))^L (RMS x1.02);
    CompleteP's 2/L keeps it too."""
    x = jax.random.normal(jax.random.key(3), (256, 64))
    keys, _ = seeding.run_keys(0, "t", [0])

    def stream_rms(name, depth):
        model = _resmlp(256, depth, name, n_in=64)
        params = jax.tree.map(lambda leaf: leaf[0, 0], init_params(model, [initjax.get("lecun_normal")], keys,
                                                                         (64,)))
        _, state = model.apply({"params": params}, x, capture_intermediates=True)
        h = state["intermediates"][f"block_{depth - 1}"]["__call__"][0]
        return float(jnp.sqrt(jnp.mean(h**2)))

    scaled = [stream_rms("depth_mup", d) for d in (2, 16)]
    complete = [stream_rms("completep", d) for d in (2, 16)]
    plain = [stream_rms("mup", d) for d in (2, 16)]
    assert scaled[0] == pytest.approx(plain[0]) == complete[0]  # the base depth: the same model
    assert max(scaled) / min(scaled) < 1.15
    # CompleteP's 2/L: variance (1 + 1/(4 (L/2)^2))^L, 1.06 at 16 blocks against 1.25^2 at the base: RMS x0.83
    assert 0.75 < complete[1] / complete[0] < 1.0
    assert plain[1] / plain[0] > 3
