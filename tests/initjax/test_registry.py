"""Every registered initializer: contract, determinism, jit, and its variance formula.

The expected moments below are written from the papers' and libraries' definitions,
independently of initjax, with scipy for the truncated normal's variance. A new
built-in without an entry here fails `test_every_builtin_has_a_formula`.
"""

import math
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import initjax

SHAPE = (600, 1600)  # fan_in 600 != fan_out 1600, so a wrong fan mode shows
CONV = (3, 3, 32, 64)  # HWIO: fan_in = 3*3*32 = 288, fan_out = 3*3*64 = 576
TRUNC2 = stats.truncnorm(-2, 2).var()  # 0.7737...: variance of N(0,1) cut to [-2, 2]


def fans(shape):
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def moments(name, shape):
    """(mean, variance) of one weight, from the definition of `name`."""
    fan_in, fan_out = fans(shape)
    avg = (fan_in + fan_out) / 2
    return {
        "zeros": (0.0, 0.0),
        "ones": (1.0, 0.0),
        "constant": (0.0, 0.0),
        "random_normal": (0.0, 0.05**2),
        "random_uniform": (0.0, 0.1**2 / 12),
        "normal": (0.0, 0.01**2),
        "uniform": (0.005, 0.01**2 / 12),
        "truncated_normal": (0.0, 0.01**2 * TRUNC2),
        "glorot_normal": (0.0, 1 / avg),
        "glorot_uniform": (0.0, 1 / avg),
        "he_normal": (0.0, 2 / fan_in),
        "he_uniform": (0.0, 2 / fan_in),
        "lecun_normal": (0.0, 1 / fan_in),
        "lecun_uniform": (0.0, 1 / fan_in),
        # columns of a (fan_in, fan_out) matrix are orthonormal where fan_in >= fan_out,
        # rows where fan_in < fan_out: the sum of squares is min(fan_in, fan_out).
        "orthogonal": (0.0, min(fan_in, fan_out) / (fan_in * fan_out)),
        "variance_scaling": (0.0, 1 / fan_in),
        "torch_kaiming_normal": (0.0, 2 / fan_in),
        "torch_xavier_normal": (0.0, 1 / avg),
        "torch_default": (0.0, (2 / math.sqrt(fan_in)) ** 2 / 12),
        "delta_orthogonal": (0.0, min(fan_in, fan_out) / (fan_in * fan_out)),  # 2-D: orthogonal
    }[name]


TENSOR = [n for n in initjax.names(include_schemes=False) if n in initjax.BUILTIN_NAMES]
STRUCTURED = ["identity", "zero_hadamard", "sparse"]  # deterministic or not i.i.d.: tests of their own
BUILTINS = [n for n in TENSOR if n not in STRUCTURED]
FAN_BASED = ["glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform",
             "variance_scaling", "torch_kaiming_normal", "torch_xavier_normal", "torch_default"]


def sample(name, shape=SHAPE, seed=0, dtype=jnp.float32):
    return initjax.get(name)(jax.random.key(seed), shape, dtype)


def test_every_builtin_has_a_formula():
    for name in BUILTINS:
        moments(name, SHAPE)


@pytest.mark.parametrize("name", initjax.names(include_aliases=True, include_schemes=False))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_shape_and_dtype(name, dtype):
    w = sample(name, (7, 5), dtype=dtype)
    assert w.shape == (7, 5) and w.dtype == dtype


@pytest.mark.parametrize("name", BUILTINS)
def test_same_key_same_array_other_key_other_array(name):
    a, b, c = sample(name, (64, 32)), sample(name, (64, 32)), sample(name, (64, 32), seed=1)
    np.testing.assert_array_equal(a, b)
    if moments(name, (64, 32))[1] > 0:
        assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", BUILTINS)
def test_jit_equals_no_jit(name):
    init = initjax.get(name)
    key = jax.random.key(3)
    eager = init(key, (48, 24), jnp.float32)
    jitted = jax.jit(init, static_argnums=(1, 2))(key, (48, 24), jnp.float32)
    np.testing.assert_allclose(eager, jitted, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", BUILTINS)
def test_empirical_moments_match_formula(name):
    w = np.asarray(sample(name), np.float64)
    mean, var = moments(name, SHAPE)
    n = w.size
    if var == 0:
        np.testing.assert_array_equal(w, mean)
        return
    # 6 standard errors: sd(mean) = sqrt(var/n); sd(var)/var <= sqrt(2/n) (= for a normal,
    # less for the lighter-tailed uniform and truncated normal). 6 SE ~ 0.9% of var here.
    assert abs(w.mean() - mean) < 6 * math.sqrt(var / n)
    assert w.var() == pytest.approx(var, rel=6 * math.sqrt(2 / n))


@pytest.mark.parametrize("name", FAN_BASED)
def test_conv_kernel_fans_are_receptive_field_times_channels(name):
    w = np.asarray(sample(name, CONV), np.float64)
    _, var = moments(name, CONV)
    assert w.var() == pytest.approx(var, rel=6 * math.sqrt(2 / w.size))


@pytest.mark.parametrize("name", [n for n in BUILTINS if initjax.REGISTRY[n].truncated is not None])
def test_truncation_flag_matches_the_samples(name):
    w = np.asarray(sample(name), np.float64)
    mean, var = moments(name, SHAPE)
    entry = initjax.REGISTRY[name]
    if name == "truncated_normal":
        bound = 2 * 0.01  # stddev * upper, not a multiple of the (smaller) true sd
    elif "uniform" in name or name == "torch_default":
        bound = math.sqrt(3 * var)  # U[-a, a] has variance a^2/3 ...
    else:
        bound = 2 * math.sqrt(var) / math.sqrt(TRUNC2)  # 2 sd of the normal before truncation
    if entry.truncated:
        assert np.abs(w - mean).max() <= bound * (1 + 1e-5)
    elif "uniform" not in name and name != "torch_default":
        # an untruncated normal exceeds 2.27 sd (the truncated one's cut) in 2.3% of draws
        assert np.mean(np.abs(w - mean) > bound) > 0.02
    else:
        assert np.abs(w - mean).max() <= bound * (1 + 1e-5)  # ... and never exceeds a


def test_orthogonal_columns_are_orthonormal():
    w = np.asarray(sample("orthogonal", (256, 64)), np.float64)
    np.testing.assert_allclose(w.T @ w, np.eye(64), atol=1e-5)
    wide = np.asarray(sample("orthogonal", (64, 256)), np.float64)  # rows orthonormal instead
    np.testing.assert_allclose(wide @ wide.T, np.eye(64), atol=1e-5)
    scaled = np.asarray(sample("orthogonal(scale=2.0)", (128, 128)), np.float64)
    np.testing.assert_allclose(scaled.T @ scaled, 4 * np.eye(128), atol=1e-4)


def test_zeros_is_exactly_zero():
    assert not np.any(np.asarray(sample("zeros", (300, 300))))


def test_aliases_are_the_same_initializer():
    for alias, canonical in [("xavier_normal", "glorot_normal"), ("kaiming_uniform", "he_uniform")]:
        np.testing.assert_array_equal(sample(alias, (32, 16)), sample(canonical, (32, 16)))
        assert initjax.canonical(alias) == canonical


def test_spec_arguments_reach_the_builder():
    w = np.asarray(sample("normal(stddev=0.1)"), np.float64)
    assert w.std() == pytest.approx(0.1, rel=0.01)
    w = np.asarray(sample("variance_scaling(scale=2.0, mode='fan_avg', distribution='uniform')"), np.float64)
    assert w.var() == pytest.approx(2.0 / 1100, rel=0.01)
    assert np.abs(w).max() <= math.sqrt(3 * 2.0 / 1100)
    assert float(sample("constant(0.25)", (2, 2))[0, 0]) == 0.25


@pytest.mark.parametrize(
    "spec, message",
    [
        ("glorot_norml", "did you mean glorot_normal"),
        ("normal(std=0.1)", "bad arguments"),
        ("variance_scaling(mode='fan_middle')", "mode must be one of"),
        ("variance_scaling(scale=-1.0)", "scale must be > 0"),
        ("random_uniform(minval=1.0, maxval=0.0)", "maxval > minval"),
        ("no_such_module_xyz:init", "cannot import"),
        ("math:no_such_function", "has no attribute"),
        ("math:pi", "not callable"),
    ],
)
def test_bad_specs_raise_value_error(spec, message):
    with pytest.raises(ValueError, match=message):
        initjax.get(spec)


def test_register_user_initializer_and_builder(monkeypatch):
    monkeypatch.setattr(initjax.registry, "REGISTRY", dict(initjax.REGISTRY))
    initjax.register("halves", lambda key, shape, dtype=jnp.float32: jnp.full(shape, 0.5, dtype))
    initjax.register(
        "scaled", lambda s=1.0: lambda key, shape, dtype=jnp.float32: s * jnp.ones(shape, dtype), builder=True
    )
    assert float(sample("halves", (2, 2))[1, 1]) == 0.5
    assert float(sample("scaled(s=3.0)", (2, 2))[0, 0]) == 3.0
    with pytest.raises(ValueError, match="built-in"):
        initjax.register("he_normal", lambda *a: None)


def test_module_function_path(monkeypatch):
    module = types.ModuleType("user_inits")
    module.sevens = lambda key, shape, dtype=jnp.float32: jnp.full(shape, 7.0, dtype)
    module.filled = lambda value: (lambda key, shape, dtype=jnp.float32: jnp.full(shape, value, dtype))
    monkeypatch.setitem(sys.modules, "user_inits", module)
    assert float(sample("user_inits:sevens", (2, 3))[0, 0]) == 7.0
    assert float(sample("user_inits:filled(value=-2.0)", (2, 3))[0, 0]) == -2.0


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda key, shape, dtype=jnp.float32: jnp.zeros((2,), dtype), "returned float32\\[2\\]"),
        (lambda key, shape, dtype=jnp.float32: jnp.zeros(shape, jnp.int32), "returned int32"),
        (lambda key, shape, dtype=jnp.float32: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_check_names_a_broken_user_initializer(fn, message):
    with pytest.raises(ValueError, match=message):
        initjax.check(fn)


def test_identity_is_the_rectangular_identity_and_a_centre_tap_for_convs():
    np.testing.assert_array_equal(sample("identity", (3, 5)), np.eye(3, 5))
    np.testing.assert_array_equal(sample("identity(gain=2.0)", (4, 2)), 2 * np.eye(4, 2))
    conv = np.asarray(sample("identity", (3, 3, 4, 4)))
    np.testing.assert_array_equal(conv[1, 1], np.eye(4))
    assert np.abs(conv).sum() == 4  # every other tap is 0


def test_zero_hadamard_follows_zero_algorithm_1():
    """Same size: identity; shrinking: partial identity; growing to 2^m: W W^T = c^2 2^m I = 2 I."""
    np.testing.assert_array_equal(sample("zero_hadamard", (6, 6)), np.eye(6))
    np.testing.assert_array_equal(sample("zero_hadamard", (8, 3)), np.eye(8, 3))
    w = np.asarray(sample("zero_hadamard", (64, 128)), np.float64)  # m = 7, c = 2^-3
    np.testing.assert_allclose(w @ w.T, 2 * np.eye(64), atol=1e-12)
    assert set(np.unique(np.abs(w))) == {2.0**-3}
    np.testing.assert_array_equal(w, sample("zero_hadamard", (64, 128), seed=5))  # deterministic


def test_sparse_has_k_gaussian_weights_per_unit():
    w = np.asarray(sample("sparse", (600, 1600)), np.float64)
    assert ((w != 0).sum(axis=0) == 15).all()
    nonzero = w[w != 0]
    assert nonzero.var() == pytest.approx(1.0, rel=6 * math.sqrt(2 / nonzero.size))
    assert ((np.asarray(sample("sparse(k=3, stddev=0.5)", (10, 7))) != 0).sum(axis=0) == 3).all()
    conv = np.asarray(sample("sparse(k=5)", (3, 3, 8, 16))).reshape(72, 16)
    assert ((conv != 0).sum(axis=0) == 5).all()
    assert not np.array_equal(w, sample("sparse", (600, 1600), seed=1))


def test_delta_orthogonal_conv_kernel_is_orthogonal_at_the_centre_only():
    w = np.asarray(sample("delta_orthogonal", (3, 3, 16, 32)), np.float64)
    np.testing.assert_allclose(w[1, 1] @ w[1, 1].T, np.eye(16), atol=1e-5)
    w[1, 1] = 0
    assert not w.any()


def _flax_layer_defaults():
    """Flax's layer defaults, read from the layers' signatures: (which default, the initializer, a shape)."""
    import inspect

    import flax.linen as nn
    from flax import nnx

    def default(layer, argument):
        return inspect.signature(layer.__init__).parameters[argument].default

    return [
        ("linen Dense kernel", default(nn.Dense, "kernel_init"), (5, 7)),
        ("linen Conv kernel", default(nn.Conv, "kernel_init"), (3, 3, 4, 6)),
        ("NNX Linear kernel", default(nnx.Linear, "kernel_init"), (5, 7)),
        ("NNX Conv kernel", default(nnx.Conv, "kernel_init"), (3, 3, 4, 6)),
        ("linen Dense bias", default(nn.Dense, "bias_init"), (7,)),
        ("NNX Linear bias", default(nnx.Linear, "bias_init"), (7,)),
        ("linen LayerNorm scale", default(nn.LayerNorm, "scale_init"), (7,)),
        ("NNX BatchNorm scale", default(nnx.BatchNorm, "scale_init"), (7,)),
        ("linen LSTMCell recurrent kernel", default(nn.LSTMCell, "recurrent_kernel_init"), (7, 7)),
        ("linen GRUCell recurrent kernel", default(nn.GRUCell, "recurrent_kernel_init"), (7, 7)),
    ]


def _same_draws(init, other, shape):
    try:
        return all(np.array_equal(init(jax.random.key(seed), shape, jnp.float32),
                                  other(jax.random.key(seed), shape, jnp.float32)) for seed in (0, 1))
    except ValueError:  # a variance-scaling draw of a bias: no fans
        return False


def test_the_flax_defaults_the_catalogue_names_are_the_same_draws_key_for_key():
    """The registry's `defaults` column, where it names Flax, against Flax's own layer defaults: each is the same
    draw under the same key as exactly one entry the catalogue says it is, and every Flax claim is checked here."""
    claimed = {name: entry for name, entry in initjax.REGISTRY.items() if any("Flax" in d for d in entry.defaults)}
    checked = set()
    for what, flax_init, shape in _flax_layer_defaults():
        matches = [name for name in claimed if _same_draws(flax_init, initjax.get(name), shape)]
        assert len(matches) == 1, (what, matches)
        framework, layer, *_, part = what.split()
        assert any(framework in d and layer in d and part in d for d in claimed[matches[0]].defaults), (what, matches)
        checked.add(matches[0])
    assert checked == set(claimed)
