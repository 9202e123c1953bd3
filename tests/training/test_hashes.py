"""bench.training.hashes: the Threefry hashes of one depth computed as one, the values bit for bit unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import initjax
from bench import models
from bench.training import hashes, initialization, seeding
from initjax import registry, rules
from tests.helpers import count_primitive


def _hash_count(fn, *args) -> int:
    """Threefry hashes in the program of ``fn`` as XLA gets it (key operations lowered to their hashes)."""
    return jax.jit(fn).lower(*args).as_text().count("threefry2x32")


def _every_initializer_on_its_own_parameter(key):
    """Every registered initializer on a parameter of its own, keyed by its path (``initjax.rules``), as an arm
    draws a model's kernels: keys derived in two steps, then a draw each."""
    names = registry.names(include_schemes=False)
    params = {name: jnp.zeros((12, 16) if i % 2 else (3, 3, 4, 8)) for i, name in enumerate(names)}
    by = tuple((name, initjax.get(name)) for name in names)
    return rules.apply(jax.random.fold_in(key, 4), params, by)


def test_every_registered_initializer_draws_the_same_bits_with_its_hashes_batched():
    key = jax.random.key(5)
    plain = jax.jit(_every_initializer_on_its_own_parameter)(key)
    batched = jax.jit(hashes.batched_hashes(_every_initializer_on_its_own_parameter))(key)
    for name in plain:
        np.testing.assert_array_equal(np.asarray(batched[name]), np.asarray(plain[name]), err_msg=name)


def test_the_hashes_of_one_depth_become_one():
    """Three kernels, each drawn from a key folded from the run's key: the three folds are one hash, the three
    draws another (and the first fold a third); a fold of a draw's output comes a depth later."""
    def three(key):
        base = jax.random.fold_in(key, 4)
        kernels = [jax.random.normal(jax.random.fold_in(base, i), (20, 8 * (i + 1))) for i in range(3)]
        later = jax.random.fold_in(base, kernels[0][0, 0].astype(jnp.uint32))
        return kernels, jax.random.key_data(later)

    key = jax.random.key(1)
    assert _hash_count(three, key) == 8
    batched = hashes.batched_hashes(three)
    closed = jax.make_jaxpr(batched)(key)
    assert count_primitive(closed.jaxpr, "threefry2x32") == 4 and count_primitive(closed.jaxpr, "random_bits") == 0
    for a, b in zip(jax.tree.leaves(jax.jit(three)(key)), jax.tree.leaves(jax.jit(batched)(key))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_batched_keys_splits_broadcast_folds_and_other_generators_keep_their_bits():
    def keys_of_all_kinds(key, rbg_key):
        split = jax.random.split(key, (2, 3))  # a key array: the operations map over it
        folded = jax.vmap(jax.vmap(lambda k: jax.random.fold_in(k, 7)))(split)
        by_message = jax.vmap(lambda m: jax.random.fold_in(key, m))(jnp.arange(4, dtype=jnp.uint32))  # one key
        bits = jax.vmap(lambda k: jax.random.bits(k, (5,)))(folded.reshape(-1))
        return (bits, jax.random.key_data(by_message), jax.random.uniform(folded[0, 0], (3, 3)),
                jax.random.normal(rbg_key, (4,)))  # another generator: left as it is

    args = (jax.random.key(2), jax.random.key(2, impl="rbg"))
    plain = jax.jit(keys_of_all_kinds)(*args)
    batched = jax.jit(hashes.batched_hashes(keys_of_all_kinds))(*args)
    for a, b in zip(plain, batched):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert count_primitive(jax.make_jaxpr(hashes.batched_hashes(keys_of_all_kinds))(*args).jaxpr, "threefry2x32") < \
        _hash_count(keys_of_all_kinds, *args)


def test_a_large_hash_stays_on_its_own_and_what_no_output_needs_is_dropped():
    big = hashes.MAX_BATCHED + 2  # 2 * big bits: a hash of more than MAX_BATCHED numbers
    def draws(key):
        unused = jax.random.normal(jax.random.fold_in(key, 9), (30,))  # dead code: never computed
        del unused
        return (jax.random.bits(jax.random.fold_in(key, 1), (2 * big,)), jax.random.bits(jax.random.fold_in(key, 2),
                                                                                        (16,)))

    key = jax.random.key(3)
    closed = jax.make_jaxpr(hashes.batched_hashes(draws))(key)
    shapes = sorted(eqn.outvars[0].aval.shape for eqn in closed.jaxpr.eqns if eqn.primitive.name == "threefry2x32")
    assert len(shapes) == 3 and max(shapes)[0] > hashes.MAX_BATCHED  # the folds: one; the two draws: two
    for a, b in zip(jax.jit(draws)(key), jax.jit(hashes.batched_hashes(draws))(key)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_function_with_effects_is_traced_as_it_is():
    seen = []

    def noisy(key):
        jax.debug.callback(lambda v: seen.append(int(v)), jax.random.key_data(key)[1])
        return jax.random.bits(jax.random.fold_in(key, 1), (3,)), jax.random.bits(jax.random.fold_in(key, 2), (3,))

    key = jax.random.key(4)
    plain = jax.jit(noisy)(key)
    batched = jax.block_until_ready(jax.jit(hashes.batched_hashes(noisy))(key))
    assert seen == [4, 4]
    assert count_primitive(jax.make_jaxpr(hashes.batched_hashes(noisy))(key).jaxpr, "threefry2x32") == 4  # none batched
    for a, b in zip(plain, batched):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("model_name", ["mlp", "resmlp"])
def test_the_init_program_holds_fewer_hash_loops(model_name):
    """The default preset's arms on an MLP and a residual MLP: the compiled init program's ``while`` loops (the
    seeds' map, and a hash loop per depth instead of one per parameter and step)."""
    model = models.build(model_name, (20,), 2, (64, 64), "relu")
    arms = [initjax.get(n) for n in ["zeros", "random_normal", "glorot_normal", "glorot_uniform", "he_normal",
                                     "he_uniform", "lecun_normal", "orthogonal"]]
    keys, _ = seeding.run_keys(0, "hashes", [0, 1])

    def loops(batched):
        program = jax.jit(lambda k: initialization.init_params(model, arms, k, (20,))).lower(keys).compile()
        return program.as_text().count(" while("), program(keys)

    with_batching, drawn = loops(True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashes, "batched_hashes", lambda fn: fn)
        without, plain = loops(False)
    assert with_batching <= 5 < without, (with_batching, without)
    for a, b in zip(jax.tree.leaves(drawn), jax.tree.leaves(plain)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_the_hashes_of_a_depth_are_batched_in_runs_of_at_most_max_batched_numbers():
    third = hashes.MAX_BATCHED // 3  # three draws of a third fit in one hash; a fourth starts another

    def draws(key):
        return [jax.random.bits(jax.random.fold_in(key, i), (third,)) for i in range(4)]

    key = jax.random.key(6)
    closed = jax.make_jaxpr(hashes.batched_hashes(draws))(key)
    sizes = sorted(eqn.outvars[0].aval.shape[0] for eqn in closed.jaxpr.eqns if eqn.primitive.name == "threefry2x32")
    assert sizes == [4, third, 3 * third], sizes  # the four folds; the draws: three, then one
    for a, b in zip(jax.jit(draws)(key), jax.jit(hashes.batched_hashes(draws))(key)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
