"""Run numbers cross init seeds with data orders in one place (``bench.training.runs.RunIndex``): unpacked alike
from Python, numpy and inside a compiled program, and the keys of runs follow their seed and order."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.training.runs import RunIndex
from bench.training.seeding import run_keys


@pytest.mark.parametrize("orders", [1, 3])
def test_every_seed_meets_every_order_once_and_packing_inverts_unpacking(orders):
    index, seeds = RunIndex(orders), 4
    runs = np.asarray(index.numbers(seeds))
    pairs = set(zip(index.init_seed(runs).tolist(), index.data_order(runs).tolist()))
    assert pairs == {(s, d) for s in range(seeds) for d in range(orders)} and len(runs) == seeds * orders
    assert np.array_equal(index.pack(index.init_seed(runs), index.data_order(runs)), runs)
    compiled = jax.jit(lambda r: (index.init_seed(r), index.data_order(r)))(jnp.asarray(runs))
    assert np.array_equal(compiled[0], index.init_seed(runs)) and np.array_equal(compiled[1], index.data_order(runs))


def test_crossed_runs_share_the_init_key_of_their_seed_and_the_data_key_of_their_order():
    index = RunIndex(3)
    runs = index.numbers(2)
    init_keys, data_keys = (np.asarray(jax.random.key_data(k)) for k in run_keys(0, "digits", runs, 3))
    alone_init, _ = (np.asarray(jax.random.key_data(k)) for k in run_keys(0, "digits", [0, 1], 1))
    for r in runs:
        assert np.array_equal(init_keys[r], alone_init[index.init_seed(r)])  # as the seed's run with one order
        same_order = [q for q in runs if index.data_order(q) == index.data_order(r)]
        assert all(np.array_equal(data_keys[q], data_keys[r]) for q in same_order)
    assert len({data_keys[r].tobytes() for r in runs}) == 3
