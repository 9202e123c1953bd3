"""Outputs that hold one value throughout, made on the host (bench.training.fills)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bench.training import fills, initialization, step


def _bits(tree):
    return [(leaf.dtype, leaf.shape, np.asarray(leaf).tobytes()) for leaf in jax.tree.leaves(tree)]


def _assembled(fn, *args):
    parts = fills.split(fn, *args)
    return parts, fills.assemble(parts, jax.jit(parts.computed)(*args))


def test_one_value_outputs_are_found_and_put_back_bit_for_bit_the_rest_is_computed():
    def fn(x, n):
        stacked = jax.lax.map(lambda k: (jnp.zeros(3), k * x.sum(), jnp.full((2,), -0.0)), jnp.arange(4.0))
        return {
            "zeros": jnp.zeros((2, 3)),
            "ones_int": jnp.ones((5,), jnp.int32),
            "nan": jnp.full((2, 2), jnp.nan).T,
            "exact": jnp.full((3,), 3, jnp.int32).astype(jnp.float16),  # 3 converts exactly
            "inexact": jnp.full((3,), 0.1, jnp.float32).astype(jnp.float16),  # 0.1 does not: left to XLA
            "equal_parts": jnp.concatenate([jnp.zeros(2), jnp.zeros(3)]),
            "unequal_parts": jnp.concatenate([jnp.zeros(2), jnp.ones(3)]),
            "arguments": x * 2, "an_argument_broadcast": jnp.broadcast_to(n, (3,)),
            "mapped_zeros": stacked[0], "mapped_computed": stacked[1], "mapped_negative_zero": stacked[2],
            "jitted": jax.jit(lambda: jnp.ones((2,)))().reshape(1, 2),
            "constant": jnp.asarray(np.full((2,), 7.0, np.float32)) + 0 * x[:2],
        }

    x, n = jnp.arange(3.0), jnp.float32(5)
    parts, got = _assembled(fn, x, n)
    found = dict(zip(sorted(got), (None if f is None else f.item() for f in parts.fills)))  # dicts flatten sorted
    assert found.pop("nan") != found.pop("nan", 0.0)  # NaN, itself
    assert found == {"zeros": 0.0, "ones_int": 1, "exact": 3.0, "inexact": None, "equal_parts": 0.0,
                     "unequal_parts": None, "arguments": None, "an_argument_broadcast": None, "mapped_zeros": 0.0,
                     "mapped_computed": None, "mapped_negative_zero": -0.0, "jitted": 1.0, "constant": None}
    assert np.signbit(np.asarray(got["mapped_negative_zero"])).all()
    assert _bits(got) == _bits(jax.jit(fn)(x, n))


def test_a_constant_of_equal_elements_is_a_fill_and_one_of_unequal_elements_is_not():
    equal, unequal = np.full((4,), 2.5, np.float32), np.array([0.0, -0.0], np.float32)  # equal, not the same bits
    parts, got = _assembled(lambda x: (jnp.asarray(equal), jnp.asarray(unequal), x), jnp.ones(2))
    assert [None if f is None else f.item() for f in parts.fills] == [2.5, None, None]
    assert _bits(got) == _bits((equal, unequal, jnp.ones(2)))


def test_the_initialization_program_computes_only_the_drawn_kernels():
    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(1)(nn.relu(nn.Dense(8)(x)))

    model, optimizer = MLP(), optax.adam(1e-3)
    arms = [jax.nn.initializers.glorot_uniform(), jax.nn.initializers.orthogonal()]
    keys = jax.random.split(jax.random.key(0), 3)

    def start(keys):
        return initialization.initial_state(model, optimizer, arms, keys, (4,))

    parts, got = _assembled(start, keys)
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(parts.shapes)[0]]
    computed = [path for path, fill in zip(paths, parts.fills) if fill is None]
    assert computed == [".params['Dense_0']['kernel']", ".params['Dense_1']['kernel']"]
    assert _bits(got) == _bits(jax.jit(start)(keys))
    assert isinstance(got, step.RunState)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.int8, jnp.bool_])
def test_fills_keep_their_type(dtype):
    parts, got = _assembled(lambda: jnp.ones((2, 3), dtype))
    assert parts.fills[0] is not None and got.dtype == dtype and _bits(got) == _bits(jnp.ones((2, 3), dtype))
