"""pytest-benchmark timings of the hot paths (not timed in the default run: --benchmark-disable).

    pytest tests/benchmarks --benchmark-enable --benchmark-json=bench.json

`extra_info` carries seed-epochs per second and GFLOP/s (6 x params x batch per step),
so loop, scan and vmap can be compared within one run of one machine.
"""

import jax
import jax.numpy as jnp
import pytest

import initjax
from bench import perf


@pytest.mark.parametrize("name", initjax.BUILTIN_NAMES)
def test_initializer_1024(benchmark, name):
    init = jax.jit(lambda key: initjax.get(name)(key, (1024, 1024), jnp.float32))
    key = jax.random.key(0)
    jax.block_until_ready(init(key))
    out = benchmark(lambda: jax.block_until_ready(init(key)))
    assert out.shape == (1024, 1024)


@pytest.mark.parametrize("workload", ["synthetic", "mnist"])
@pytest.mark.parametrize("n_models", [1, 8, 32, 128])
@pytest.mark.parametrize("variant", ["loop", "scan", "vmap"])
def test_epoch(benchmark, workload, n_models, variant):
    if variant != "vmap" and n_models > 32:
        pytest.skip("sequential variants scale linearly; timed up to 32 models")
    s = perf.setup(perf.WORKLOADS[workload], n_models)
    run = perf.VARIANTS[variant](s)
    run()  # compile outside the timing
    benchmark.pedantic(run, rounds=3, iterations=1)
    seconds = benchmark.stats.stats.min if benchmark.stats else float("nan")
    benchmark.extra_info.update(
        models=n_models, seed_epochs_per_s=n_models / seconds, gflops=s.flops_per_epoch / seconds / 1e9,
        examples_per_epoch=s.workload.n_examples,
    )
