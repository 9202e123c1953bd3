"""pytest-benchmark timings of the hot paths (not timed in the default run: --benchmark-disable).

    pytest tests/benchmarks --benchmark-enable --benchmark-json=bench.json

`extra_info` carries seed-epochs per second and GFLOP/s (6 x params x batch per step),
so loop, scan and vmap can be compared within one run of one machine.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import initjax
from bench import models
from bench.studies import notebook_job, peers, perf

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", [n for n in initjax.names(include_schemes=False) if n in initjax.BUILTIN_NAMES])
def test_initializer_1024(benchmark, name):
    init = jax.jit(lambda key: initjax.get(name)(key, (1024, 1024), jnp.float32))
    key = jax.random.key(0)
    jax.block_until_ready(init(key))
    out = benchmark(lambda: jax.block_until_ready(init(key)))
    assert out.shape == (1024, 1024)


@pytest.mark.parametrize("workload", ["synthetic", "synthetic-nnx", "synthetic-equinox", "mnist", "mnist-nnx",
                                      "mnist-equinox", "transformer", "digits-cnn", "mnist-cnn"])
@pytest.mark.parametrize("n_models", [1, 8, 32, 128, 256])
@pytest.mark.parametrize("variant", ["loop", "scan", "vmap", "sequential", "torch"])
def test_epoch(benchmark, workload, n_models, variant):
    """n_models a multiple of 8 = 8 initializers x n_models / 8 seeds, as the suite lays them out; ``torch``: the same
    MLPs stacked, torch.func + torch.compile (the peers extra). The transformer's rates are in tokens/s too (every
    position predicted), at 1, 8 and 32 models against a plain single-model loop. ``vmap`` is the suite's program
    as its rule batches the models (``bench.training.batching``: the conv nets' convolutions as products of
    patches), ``sequential`` the same program with XLA's convolutions one model after the other, timed where the
    rule does not vmap the model as it is; the conv nets' FLOPs are XLA's count of their step. The ``-nnx`` and
    ``-equinox`` workloads are the synthetic and MNIST MLPs written in Flax NNX and in Equinox, timed in the suite's
    program against the linen MLP's (the same runs)."""
    w = perf.WORKLOADS[workload]
    if w.kind in ("nnx-mlp", "equinox-mlp") and variant != "vmap":
        pytest.skip("the NNX and Equinox paths are timed in the suite's program only, against the linen MLP's")
    if w.kind == "equinox-mlp":
        pytest.importorskip("equinox", reason="the Equinox workload needs the equinox extra")
    if variant in ("loop", "scan", "sequential") and n_models > w.max_sequential:
        pytest.skip("a sequential variant's rate per model does not depend on the count; timed up to max_sequential")
    if n_models > w.max_models:
        pytest.skip("the conv nets are timed up to 32 models")
    if variant == "sequential" and w.kind != "conv":
        pytest.skip("the suite vmaps an MLP or a transformer as it is: only conv nets are also timed sequential")
    if workload == "transformer" and (n_models > 32 or variant == "torch"):
        pytest.skip("the transformer is timed at 1, 8 and 32 models, against the plain loops (the torch peer is MLPs)")
    if variant == "torch" and w.kind == "conv":
        pytest.skip("the torch peer builds MLPs")
    if variant == "torch":
        pytest.importorskip("torch", reason="the torch peer needs the peers extra: pip install -e '.[peers]'")
    s = perf.setup(perf.WORKLOADS[workload], n_models)
    run = {**perf.VARIANTS, **perf.PEERS}[variant](s)
    run()  # compile outside the timing
    benchmark.pedantic(run, rounds=3, iterations=1)
    seconds = benchmark.stats.stats.min if benchmark.stats else float("nan")
    benchmark.extra_info.update(
        models=n_models, seed_epochs_per_s=n_models / seconds, gflops=s.flops_per_epoch / seconds / 1e9,
        examples_per_epoch=s.workload.n_examples, layout=f"{s.n_inits} x {s.n_models // s.n_inits}",
        tokens_per_s=n_models * s.workload.n_examples * s.workload.tokens_per_example / seconds,
    )


@pytest.mark.parametrize("layout", ["seeds 8x32", "grid 8x4x8"])
def test_grid_epoch(benchmark, layout):
    """A grid costs what its runs cost: 8 initializers x 4 learning rates x 8 seeds against 8 x 32 seeds, the same
    256 runs of the synthetic MLP (compare ``seed_epochs_per_s`` of the two within one run; target >= 0.9x)."""
    workload = perf.WORKLOADS["synthetic"]
    s = perf.grid_setup(workload) if layout.startswith("grid") else perf.setup(workload, 256)
    run = perf.vmap_variant(s)
    run()
    benchmark.pedantic(run, rounds=5, iterations=1)
    seconds = benchmark.stats.stats.min if benchmark.stats else float("nan")
    benchmark.extra_info.update(models=s.n_models, seed_epochs_per_s=s.n_models / seconds,
                                layout=f"{s.n_inits} arms x {s.n_models // s.n_inits} seeds")


@pytest.mark.parametrize("evals_per_epoch", [1, 4])
def test_evaluations_within_epochs(benchmark, evals_per_epoch):
    """The default preset's digits task (8 initializers x 32 seeds, 10 epochs) evaluated once or 4 times an epoch
    (``--evals-per-epoch``): ``extra_info`` holds the training and evaluation seconds of each, to compare within
    one run (measured 1.65x on the whole preset, docs/performance-log.md)."""
    from bench.data import datasets
    from bench.experiments import presets
    from bench.training.train import train_task

    experiment = presets.get("default")
    config = dataclasses.replace(experiment.train, evals_per_epoch=evals_per_epoch)
    dataset = datasets.load("digits")
    model = models.mlp_for(dataset.n_features, dataset.n_classes, (64, 64))
    inits = {name: initjax.get(name) for name in experiment.initializers}

    def run():
        return train_task(dataset, model, inits, range(32), config, progress=False, keep_params=False).train_s

    run()  # compiled once (the persistent cache keeps it)
    seconds = benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info.update(evals_per_epoch=evals_per_epoch, train_s=seconds)


def test_notebook_job(benchmark):
    """The notebook job whole (8 initializers x 32 seeds, 10 epochs: init + compile + train + evaluate) by initjax
    and, with the peers extra, by torch.func + torch.compile, each in fresh processes with cold then warm compilation
    caches (``notebook_job.notebook_jobs``); ``extra_info`` holds every job's seconds, to compare within one run
    (target: initjax at most half the peer's)."""
    jobs = benchmark.pedantic(lambda: notebook_job.notebook_jobs(rounds=1), rounds=1, iterations=1)
    benchmark.extra_info.update({f"{row.peer}, {row.caches}: total_s": row.total_s for row in jobs.itertuples()})
    benchmark.extra_info.update({f"{row.peer}, {row.caches}: process_s": row.process_s for row in jobs.itertuples()})
    assert set(jobs.peer) == {"initjax", "torch.func + torch.compile"} if peers.available() else {"initjax"}


def _peak_rss(*args) -> dict:
    """``perf.peak_rss(*args)`` in a fresh process (the peak resident size is the process's)."""
    code = f"import json; from bench.studies import perf; print(json.dumps(perf.peak_rss(*{args!r})))"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=REPO)
    return json.loads(done.stdout.splitlines()[-1])


def test_peak_memory_mnist_cnn_against_the_plain_loop(benchmark):
    """The Flax MNIST CNN, 2 initializers x 2 seeds, one epoch of 6,000 MNIST-size examples, 10,000 test: the suite's
    peak within 1.5x the plain loop's per model trained at once (issue 43), and within its plan's estimate."""
    loop = _peak_rss("mnist-cnn", "loop", 2, 2, 6000, 10000)
    suite = benchmark.pedantic(lambda: _peak_rss("mnist-cnn", "suite", 2, 2, 6000, 10000), rounds=1, iterations=1)
    benchmark.extra_info.update({**suite, "loop_peak_rss_bytes": loop["peak_rss_bytes"]})
    assert suite["peak_rss_bytes"] / suite["models_at_once"] <= 1.5 * loop["peak_rss_bytes"], (suite, loop)
    assert suite["peak_rss_bytes"] <= suite["estimated_peak_bytes"] * 1.25, suite


def test_peak_memory_mnist_mlp_8x128(benchmark):
    """Peak resident memory of 8 initializers x 128 seeds of the MNIST MLP, in a fresh process (issue: < 4 GB)."""
    result = benchmark.pedantic(lambda: _peak_rss("mnist"), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    assert result["peak_rss_bytes"] < 4 * 2**30
    assert result["peak_rss_bytes"] <= result["estimated_peak_bytes"] * 1.25
