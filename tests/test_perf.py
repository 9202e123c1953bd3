"""The three ways `bench perf` times an epoch train the same runs to the same parameters."""

import jax
import numpy as np
import pytest

from bench import perf


@pytest.mark.parametrize("workload", ["synthetic", "mnist"])
def test_loop_scan_and_vmap_give_the_same_runs(workload):
    w = perf.WORKLOADS[workload]
    small = perf.Workload(w.name, w.n_features, w.n_classes, w.hidden, w.optimizer, w.lr, w.batch_size, 8 * w.batch_size)
    s = perf.setup(small, n_models=3)
    results = {name: variant(s)() for name, variant in perf.VARIANTS.items()}
    for i in range(3):
        for other in ("loop", "scan"):
            for a, b in zip(jax.tree.leaves(results["vmap"][i]), jax.tree.leaves(results[other][i])):
                np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    first = jax.tree.leaves(results["vmap"][0])
    assert not all(np.allclose(a, b) for a, b in zip(first, jax.tree.leaves(results["vmap"][1])))  # seeds differ


def test_flop_count_by_hand():
    s = perf.setup(perf.WORKLOADS["synthetic"], n_models=2)
    params = 20 * 64 + 64 + 64 * 64 + 64 + 64 * 1 + 1
    assert s.n_params == params
    assert s.flops_per_epoch == 6 * params * 32 * 25 * 2
