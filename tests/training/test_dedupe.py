"""bench.training.dedupe: each repeated operation computed once, the values bit for bit unchanged."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np

import initjax
from bench import models
from bench.training import dedupe, hashes, initialization, seeding
from initjax import registry
from tests.helpers import count_primitive


def _draw_all(key, shape=(12, 16)):
    """Every registered initializer on one shared key (the arms of a seed), as the suite draws them."""
    return {name: initjax.get(name)(key, shape, jnp.float32) for name in registry.names(include_schemes=False)}


def test_every_registered_initializer_draws_the_same_bits_deduplicated():
    key = jax.random.key(3)
    for shape in [(16, 12), (3, 3, 4, 8)]:  # a wide kernel (orthogonal transposes it) and a conv kernel
        plain = jax.jit(lambda k, s=shape: _draw_all(k, s))(key)
        once = jax.jit(dedupe.deduplicated(lambda k, s=shape: _draw_all(k, s)))(key)
        for name in plain:
            np.testing.assert_array_equal(np.asarray(once[name]), np.asarray(plain[name]), err_msg=name)


def test_shared_draws_are_bound_once_and_distinct_draws_stay():
    def arms(key):
        other = jax.random.fold_in(key, 1)
        return (initjax.get("glorot_normal")(key, (20, 64), jnp.float32),
                initjax.get("he_normal")(key, (20, 64), jnp.float32),
                initjax.get("he_uniform")(key, (20, 64), jnp.float32),
                initjax.get("he_normal")(other, (20, 64), jnp.float32))  # another key: a draw of its own

    key = jax.random.key(0)
    assert count_primitive(jax.make_jaxpr(arms)(key).jaxpr, "random_bits") == 4
    assert count_primitive(jax.make_jaxpr(dedupe.deduplicated(arms))(key).jaxpr, "random_bits") == 2
    a, b, c, d = jax.jit(dedupe.deduplicated(arms))(key)
    he_over_glorot = np.sqrt((2 / 20) / (2 / 84))  # one draw, scaled by the ratio of the two standard deviations
    np.testing.assert_allclose(np.asarray(b) / np.asarray(a), he_over_glorot, rtol=1e-5)
    assert not np.allclose(np.asarray(b), np.asarray(d))


def test_effects_and_stateful_generators_are_never_merged():
    seen = []

    def twice(x):
        jax.debug.callback(lambda v: seen.append(float(v)), x)
        jax.debug.callback(lambda v: seen.append(float(v)), x)
        return x + 1

    jax.block_until_ready(jax.jit(dedupe.deduplicated(twice))(jnp.float32(2.0)))
    assert seen == [2.0, 2.0]
    assert "rng_uniform" in dedupe.NOT_PURE


SCHEMES = ["lsuv", "data_dependent", "fixup", "metainit(steps=3)", "mean_field(sigma_w2=1.5, sigma_b2=0.05)"]


def test_init_params_are_those_of_the_plain_program(monkeypatch):
    """The suite's init program (every arm of a seed in one body, deduplicated, its hashes batched:
    ``bench.training.hashes``) against the same body traced as is:
    the initializers' draws bit for bit; a scheme that computes on them (forward passes, gradient steps) to
    float32 rounding, since XLA may fuse a shared value otherwise than each arm's own copy."""
    x = jax.random.normal(jax.random.key(7), (300, 12))
    model = models.build("resmlp", (12,), 3, (16,) * 2, "tanh")
    names = ["zeros", "random_normal", "glorot_normal", "glorot_uniform", "he_normal", "lecun_normal", "orthogonal",
             "torch_default"]
    arms = [initjax.get(name) for name in names + SCHEMES]
    keys, _ = seeding.run_keys(0, "dedupe", [0, 1, 2])
    once = jax.jit(lambda k: initialization.init_params(model, arms, k, (12,), x))(keys)
    monkeypatch.setattr(dedupe, "deduplicated", lambda fn: fn)
    monkeypatch.setattr(hashes, "batched_hashes", lambda fn: fn)
    plain = jax.jit(lambda k: initialization.init_params(model, arms, k, (12,), x))(keys)
    for (path, a), b in zip(jax.tree.leaves_with_path(once), jax.tree.leaves(plain)):
        a, b, where = np.asarray(a), np.asarray(b), jax.tree_util.keystr(path)
        np.testing.assert_array_equal(a[:len(names)], b[:len(names)], err_msg=where)
        np.testing.assert_allclose(a[len(names):], b[len(names):], rtol=1e-6, atol=1e-7, err_msg=where)
