"""Init schemes and signal-propagation diagnostics against their definitions and analytic results."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import initjax
from bench import models
from bench.training.initialization import init_params
from bench.training.seeding import run_keys
from initjax import diagnostics, schemes


def _init(model, spec, key, batch):
    """One run's params: the per-tensor init, or a scheme's pre-init then transform."""
    init = initjax.get(spec)
    if schemes.is_scheme(init):
        module = model.clone(kernel_init=init.base)
        return init(key, module.init(key, batch[:1])["params"], schemes.probe(module), batch)
    return model.clone(kernel_init=init).init(key, batch[:1])["params"]


def _outputs(model, params, batch):
    return schemes.probe(model)(params, batch)[1]


@pytest.fixture(scope="module")
def images():
    return jax.random.uniform(jax.random.key(0), (128, 28, 28, 1))


@pytest.mark.parametrize("kind", ["mlp", "lenet", "resmlp"])
def test_lsuv_leaves_every_layer_output_variance_within_tolerance(kind, images):
    hidden = {"mlp": (256, 128, 64), "lenet": (), "resmlp": (64,) * 4}[kind]
    model = models.build(kind, (28, 28, 1), 10, hidden, "relu")
    params = _init(model, "lsuv(tol=0.05)", jax.random.key(1), images)
    layers = _outputs(model, params, images)
    assert len(layers) >= 4
    for path, out in layers:
        assert abs(float(out.var()) - 1) < 0.05, (path, float(out.var()))
    before = _outputs(model, model.clone(kernel_init=initjax.get("orthogonal")).init(
        jax.random.key(1), images[:1])["params"], images)
    assert any(abs(float(out.var()) - 1) > 0.2 for _, out in before)  # LSUV had work to do


def test_data_dependent_init_gives_each_unit_zero_mean_unit_variance(images):
    model = models.build("lenet", (28, 28, 1), 10, (), "tanh")
    params = _init(model, "data_dependent", jax.random.key(2), images)
    for path, out in _outputs(model, params, images):
        axes = tuple(range(out.ndim - 1))
        np.testing.assert_allclose(out.mean(axis=axes), 0, atol=1e-4, err_msg=str(path))
        np.testing.assert_allclose(out.std(axis=axes), 1, atol=1e-3, err_msg=str(path))


def _last_block_variance(depth, spec, x):
    model = models.build("resmlp", (x.shape[1],), 10, (64,) * depth, "relu")
    params = _init(model, spec, jax.random.key(3), x)
    _, state = model.apply({"params": params}, x, capture_intermediates=True, mutable=["intermediates"])
    return float(state["intermediates"][f"block_{depth - 1}"]["__call__"][0].var())


def test_fixup_keeps_the_residual_stream_o1_while_he_branches_blow_up():
    x = jax.random.normal(jax.random.key(4), (256, 32))
    he = [_last_block_variance(d, "he_normal", x) for d in (4, 16, 64)]
    fixup = [_last_block_variance(d, "fixup", x) for d in (4, 16, 64)]
    assert he[2] / he[0] > 1e6 and he[1] / he[0] > 1e2  # He branches: the variance grows ~2x per block
    assert 0.5 < fixup[2] / fixup[0] < 2 and 0.5 < fixup[1] / fixup[0] < 2


def test_fixup_zeroes_branch_ends_and_head_and_rescales_branch_starts():
    x = jax.random.normal(jax.random.key(5), (16, 8))
    model = models.build("resmlp", (8,), 10, (16,) * 9, "relu")
    he = model.clone(kernel_init=initjax.get("he_normal")).init(jax.random.key(6), x[:1])["params"]
    fixed = _init(model, "fixup", jax.random.key(6), x)
    plain = _init(model, "fixup(rescale=False)", jax.random.key(6), x)
    assert not np.any(fixed["head"]["kernel"]) and not np.any(fixed["block_3"]["branch_out"]["kernel"])
    np.testing.assert_allclose(fixed["block_3"]["branch_in"]["kernel"], he["block_3"]["branch_in"]["kernel"] / 3)
    np.testing.assert_array_equal(plain["block_3"]["branch_in"]["kernel"], he["block_3"]["branch_in"]["kernel"])
    np.testing.assert_array_equal(fixed["stem"]["kernel"], he["stem"]["kernel"])  # L = 9, m = 2: 9^(-1/2)


def test_fixup_on_a_model_without_residual_branches_is_refused():
    x = jnp.ones((4, 8))
    with pytest.raises(ValueError, match="fixup needs a residual model"):
        _init(models.mlp_for(8, 10, (16,)), "fixup", jax.random.key(0), x)


SCHEMES = ["lsuv", "data_dependent", "fixup", "fixup(rescale=False)", "mean_field(sigma_w2=1.5, sigma_b2=0.05)",
           "metainit(steps=5)"]


@pytest.mark.parametrize("spec", SCHEMES)
def test_schemes_under_jit_and_vmap_over_seeds_equal_one_seed_at_a_time(spec):
    x = jax.random.normal(jax.random.key(7), (300, 12))
    model = models.build("resmlp", (12,), 3, (16,) * 2, "tanh")
    keys, _ = run_keys(0, "test", [0, 1, 2])
    batched = jax.jit(lambda k: init_params(model, [initjax.get(spec)], k, (12,), x))(keys)
    vmapped = jax.jit(jax.vmap(lambda k, b: _init(model, spec, k, b)))(keys, jnp.stack([x[:64]] * 3))
    one_seed = jax.jit(lambda k, b: _init(model, spec, k, b))  # compiled once, called seed by seed
    for i in range(3):
        alone = one_seed(keys[i], x[:64])
        for a, b in zip(jax.tree.leaves(vmapped), jax.tree.leaves(alone)):
            np.testing.assert_allclose(a[i], b, rtol=2e-5, atol=1e-6)
    leaves = jax.tree.leaves(batched)
    assert all(leaf.shape[:2] == (1, 3) for leaf in leaves)
    stem = batched["stem"]["kernel"]  # random under every scheme (fixup zeroes the head and branch ends, not this)
    assert not np.allclose(stem[0, 0], stem[0, 1]) and not np.allclose(stem[0, 1], stem[0, 2])  # seeds differ


# ---------------------------------------------------------------- diagnostics


def _deep_linear(sigma2, depth=6, width=256, n_out=10):
    model = models.build("mlp", (width,), n_out, (width,) * (depth - 1), "linear")
    init = initjax.get(f"variance_scaling(scale={sigma2}, mode='fan_in', distribution='normal')")
    return model.clone(kernel_init=init)


@pytest.mark.parametrize("sigma2", [0.7, 1.0, 1.5])
def test_deep_linear_diagnostics_match_the_analytic_variance_products(sigma2):
    """h_l = W_l h_{l-1}, Var(W) = s2/fan_in: Var(h_l) = s2^l Var(x).

    Backward: Var(d_{l-1}) = s2 fan_out/fan_in Var(d_l)."""
    model = _deep_linear(sigma2)
    x = jax.random.normal(jax.random.key(8), (1024, 256))
    labels = jax.random.randint(jax.random.key(9), (1024,), 0, 10)
    apply_fn = schemes.probe(model)

    def stats(key):
        return diagnostics.layer_statistics(model.init(key, x[:1])["params"], apply_fn, x, labels)

    s = jax.jit(jax.vmap(stats))(jax.random.split(jax.random.key(10), 8))
    variance, gradient = np.asarray(s["variance"]).mean(0), np.asarray(s["gradient_variance"]).mean(0)
    depth = len(variance)
    np.testing.assert_allclose(variance, sigma2 ** np.arange(1, depth + 1), rtol=0.15)
    fan_out = np.asarray(s["width"][0][1:], float)
    ratios = gradient[:-1] / gradient[1:]
    np.testing.assert_allclose(ratios, sigma2 * fan_out / 256, rtol=0.15)


def test_jacobian_of_an_orthogonal_deep_linear_net_is_an_isometry():
    model = models.build("mlp", (64,), 64, (64,) * 5, "linear")
    x = jax.random.normal(jax.random.key(11), (3, 64))
    apply_fn = schemes.probe(model)
    ortho = model.clone(kernel_init=initjax.get("orthogonal")).init(jax.random.key(12), x[:1])["params"]
    np.testing.assert_allclose(diagnostics.jacobian_singular_values(ortho, apply_fn, x), 1.0, atol=1e-4)
    gauss = model.clone(kernel_init=initjax.get("lecun_normal")).init(jax.random.key(12), x[:1])["params"]
    sv = np.asarray(diagnostics.jacobian_singular_values(gauss, apply_fn, x))
    assert (sv[:, 0] / sv[:, -1] > 20).all()  # a product of 6 Gaussian matrices is far from isometric
    np.testing.assert_allclose(sv[0], sv[1], atol=1e-5)  # linear: the same Jacobian for every example


def test_guessing_bias_counts_each_inputs_predicted_class():
    logits = jnp.array([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [5.0, 1.0, 0.0], [1.0, 0.0, 0.5]])  # classes 0, 1, 0, 0
    bias = diagnostics.guessing_bias(logits)
    np.testing.assert_allclose(bias["shares"], [0.75, 0.25, 0.0])
    assert float(bias["max_share"]) == 0.75
    assert float(bias["entropy"]) == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)) / np.log(3))
    even = diagnostics.guessing_bias(jnp.eye(4)[jnp.arange(8) % 4])  # (8, 4): each class twice
    assert float(even["max_share"]) == 0.25 and float(even["entropy"]) == pytest.approx(1.0)
    one_logit = diagnostics.guessing_bias(jnp.array([[0.3], [-1.0], [2.0], [0.1]]))  # signs: 1, 0, 1, 1
    np.testing.assert_allclose(one_logit["shares"], [0.25, 0.75])
    sequences = diagnostics.guessing_bias(jnp.zeros((2, 5, 7)))  # every position an input; ties: the first class
    assert float(sequences["max_share"]) == 1.0 and float(sequences["entropy"]) == 0.0


def test_diagnose_command_writes_tables_and_figures(tmp_path, capsys):
    from bench import cli

    out = tmp_path / "diag"
    assert cli.main(["diagnose", "schemes", "--initializers", "lsuv,fixup", "--hidden", "32,32", "--seeds", "2",
                     "--out", str(out)]) == 0
    import pandas as pd

    layers = pd.read_csv(out / "diagnostics.csv")
    assert len(layers) == 2 * 2 * 6  # 2 initializers x 2 seeds x (stem, 2 blocks x 2, head)
    fixup, lsuv = layers[layers.arm == "fixup"], layers[layers.arm == "lsuv"]
    assert (fixup[fixup.layer == "head"].variance == 0).all()  # Fixup's head starts at 0
    assert lsuv.variance.between(0.7, 1.3).all()  # unit variance on LSUV's own batch, ~1 on the first 512 examples
    text = (out / "diagnostics.md").read_text()
    assert "figures/digits-variance.png" in text and (out / "figures" / "digits-jacobian.png").is_file()
    assert len(pd.read_csv(out / "jacobian.csv")) == 2 * 2 * 4 * 10  # seeds x inits x examples x min(64, 10)
    guessing = pd.read_csv(out / "guessing.csv").set_index(["arm", "seed"])
    # Fixup's zero head gives every example the same outputs, so every example the first class
    assert (guessing.loc["fixup", "max_share"] == 1).all() and (guessing.loc["fixup", "entropy"] == 0).all()
    assert (guessing.loc["lsuv", "max_share"] < 1).all() and "### Initial guessing bias" in text
    assert "| fixup         | 1 [1, 1]" in text


def test_mean_field_scheme_draws_kernels_and_biases_with_the_stated_variances():
    x = jax.random.normal(jax.random.key(13), (32, 400))
    model = models.build("mlp", (400,), 10, (500, 500), "tanh")
    params = _init(model, "mean_field(sigma_w2=2.5, sigma_b2=0.3)", jax.random.key(14), x)
    assert float(params["Dense_1"]["kernel"].var()) == pytest.approx(2.5 / 500, rel=0.02)
    biases = np.concatenate([params[f"Dense_{i}"]["bias"] for i in range(2)])
    assert biases.var() == pytest.approx(0.3, rel=0.2)
    assert not np.allclose(params["Dense_0"]["bias"], params["Dense_1"]["bias"])  # one key per layer


def test_mean_field_theory_matches_closed_forms_and_numerical_integration():
    from scipy import integrate

    from initjax import mean_field as mf

    # sigma_b = 0, sigma_w2 < 1: q* = 0, chi_1 = sigma_w2 (tanh'(0) = 1), xi_c = -1/log(sigma_w2)
    assert mf.q_star(0.5, 0.0) < 1e-12 and mf.xi_c(0.5, 0.0) == pytest.approx(1 / np.log(2), rel=1e-6)
    # chi_1 at (2.0, 0.05) against scipy's adaptive quadrature of the same integral
    q = mf.q_star(2.0, 0.05)
    q_again = 2.0 * integrate.quad(lambda z: np.tanh(np.sqrt(q) * z) ** 2 * np.exp(-z * z / 2) / np.sqrt(2 * np.pi),
                                   -12, 12)[0] + 0.05
    assert q_again == pytest.approx(q, rel=1e-6)
    chi = 2.0 * integrate.quad(lambda z: np.cosh(np.sqrt(q) * z) ** -4 * np.exp(-z * z / 2) / np.sqrt(2 * np.pi),
                               -12, 12)[0]
    assert mf.chi_1(2.0, 0.05) == pytest.approx(chi, rel=1e-6)
    # order-to-chaos: chi_1 crosses 1 between sigma_w2 = 1.7 and 1.8 at sigma_b2 = 0.05 (Schoenholz et al.: ~1.76)
    assert mf.chi_1(1.7, 0.05) < 1 < mf.chi_1(1.8, 0.05)
    assert mf.c_star(1.0, 0.05) == 1.0 and mf.c_star(3.0, 0.05) < 1.0
    assert mf.xi_c(1.75, 0.05) > mf.xi_c(1.4, 0.05) > mf.xi_c(1.0, 0.05)  # the depth scale peaks at criticality


def test_metainit_lowers_the_gradient_quotient_of_a_too_small_init():
    """Kernels with variance 0.001/fan_in: MetaInit grows their norms, keeps their directions, and cuts the GQ."""
    x = jax.random.normal(jax.random.key(15), (128, 16))
    key = jax.random.key(18)
    labels = jax.random.randint(key, (128,), 0, 4)  # the random labels MetaInit draws from its key
    model = models.build("mlp", (16,), 4, (32, 32, 32), "tanh")
    apply_fn = schemes.probe(model)
    small = model.clone(kernel_init=initjax.get("variance_scaling(scale=0.001, distribution='normal')")).init(
        jax.random.key(17), x[:1])["params"]
    tuned = jax.jit(lambda p: initjax.get("metainit(steps=60, lr=0.05)")(key, p, apply_fn, x))(small)

    def loss(p):
        logits, _ = apply_fn(p, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1))

    before, after = float(schemes.gradient_quotient(small, loss)), float(schemes.gradient_quotient(tuned, loss))
    assert after < before / 3, (before, after)
    for layer in ("Dense_0", "Dense_1", "Dense_3"):
        a, b = np.asarray(small[layer]["kernel"]).ravel(), np.asarray(tuned[layer]["kernel"]).ravel()
        assert np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) == pytest.approx(1, abs=1e-5)
        assert np.linalg.norm(b) > 2 * np.linalg.norm(a)
