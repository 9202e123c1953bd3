"""The three ways `bench perf` times an epoch train the same runs to the same parameters."""

import jax
import numpy as np
import pytest

from bench import perf


@pytest.mark.parametrize(("workload", "n_models", "chunk"), [("synthetic", 3, None), ("mnist", 3, None),
                                                             ("synthetic", 24, 2)])
def test_loop_scan_and_vmap_give_the_same_runs(workload, n_models, chunk):
    """24 models = 8 initializers x 3 seeds in chunks of 2 seeds: the last chunk is padded."""
    w = perf.WORKLOADS[workload]
    small = perf.Workload(w.name, w.n_features, w.n_classes, w.hidden, w.optimizer, w.lr, w.batch_size, 8 * w.batch_size)
    s = perf.setup(small, n_models=n_models)
    results = {"loop": perf.loop_variant(s)(), "scan": perf.scan_variant(s)(), "vmap": perf.vmap_variant(s, chunk)().runs()}
    assert len(results["vmap"]) == n_models
    for i in range(n_models):
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
