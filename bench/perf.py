"""Throughput of the trainer against the plain ways of training many seeds.

Three ways to train ``n_models`` runs for one epoch, on the same data and model:

* ``loop``: a Python loop over minibatches calling a jitted step, seed after seed
  (what a Keras or PyTorch script does);
* ``scan``: one jitted ``lax.scan`` over the epoch per seed, seed after seed;
* ``vmap``: the suite's program (``bench.train.make_train_epoch``), all seeds at once.

Each returns every run's final parameters (so the three can be checked to agree) and
is timed after a warm-up call (compilation excluded) and reported as seed-epochs
per second and achieved GFLOP/s, counting ``6 x params x batch`` FLOPs per step
(forward 2, backward 4), next to the machine's measured float32 matmul peak.
``python -m bench perf`` prints the table; ``tests/benchmarks`` time the same functions
with pytest-benchmark.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

import initjax
from bench import models
from bench.train import OPTIMIZERS, epoch_order, loss_and_accuracy, make_train_epoch, run_keys


@dataclasses.dataclass(frozen=True)
class Workload:
    """A model, optimizer and data shape to time.

    Attributes:
      name: label.
      n_features, n_classes, hidden: the MLP.
      optimizer, lr, batch_size: training.
      n_examples: examples per timed epoch (random data; timing does not depend on values).
    """

    name: str
    n_features: int
    n_classes: int
    hidden: tuple[int, ...]
    optimizer: str
    lr: float
    batch_size: int
    n_examples: int


WORKLOADS = {
    "synthetic": Workload("synthetic MLP 20-64-64-1, Adam, batch 32", 20, 2, (64, 64), "adam", 1e-3, 32, 800),
    "mnist": Workload("MNIST MLP 784-300-100-10, SGD, batch 32", 784, 10, (300, 100), "sgd", 0.01, 32, 2048),
}


@dataclasses.dataclass
class Setup:
    """Everything the three variants need, built once per (workload, n_models)."""

    workload: Workload
    model: object
    optimizer: optax.GradientTransformation
    params: dict  # leaves (1, n_models, ...)
    opt_state: dict
    data_keys: jax.Array
    x: jax.Array
    y: jax.Array
    n_params: int

    @property
    def n_models(self) -> int:
        return int(self.data_keys.shape[0])

    @property
    def flops_per_epoch(self) -> float:
        steps = self.workload.n_examples // self.workload.batch_size  # workloads hold whole batches
        return 6.0 * self.n_params * self.workload.batch_size * steps * self.n_models


def setup(workload: Workload, n_models: int, init: str = "he_normal") -> Setup:
    """Random data and ``n_models`` initialized runs of ``workload``."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(workload.n_examples, workload.n_features)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, workload.n_classes, workload.n_examples).astype(np.int32))
    model = models.mlp_for(workload.n_features, workload.n_classes, workload.hidden).clone(kernel_init=initjax.get(init))
    optimizer = OPTIMIZERS[workload.optimizer](workload.lr)
    init_keys, data_keys = run_keys(0, "perf", list(range(n_models)))
    params = jax.vmap(lambda k: model.init(k, x[:1])["params"])(init_keys)
    params = jax.tree.map(lambda p: p[None], params)
    opt_state = jax.vmap(jax.vmap(optimizer.init))(params)
    n_params = sum(p[0, 0].size for p in jax.tree.leaves(params))
    return Setup(workload, model, optimizer, params, opt_state, data_keys, x, y, n_params)


def _single_step(s: Setup):
    def loss_fn(params, xb, yb):
        return loss_and_accuracy(s.model.apply({"params": params}, xb), yb, s.model.output_activation)[0].mean()

    def step(params, opt_state, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        updates, opt_state = s.optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def _orders(s: Setup, epoch: int = 1) -> np.ndarray:
    """Minibatch indices of every seed, `(n_models, steps, batch)`; the last batch is dropped if partial."""
    n, b = s.workload.n_examples, s.workload.batch_size
    steps = n // b
    orders = jax.vmap(lambda k: epoch_order(k, epoch, n, n))(s.data_keys)
    return np.asarray(orders)[:, : steps * b].reshape(s.n_models, steps, b)


def loop_variant(s: Setup) -> Callable[[], list]:
    """(a) A Python loop over minibatches calling a jitted step, seed after seed."""
    step = jax.jit(_single_step(s))
    orders = _orders(s)
    singles = [jax.tree.map(lambda p, i=i: p[0, i], (s.params, s.opt_state)) for i in range(s.n_models)]

    def run():
        finals = []
        for i, (params, opt_state) in enumerate(singles):
            for idx in orders[i]:
                params, opt_state, _ = step(params, opt_state, s.x[idx], s.y[idx])
            finals.append(jax.block_until_ready(params))
        return finals

    return run


def scan_variant(s: Setup) -> Callable[[], list]:
    """(b) One jitted ``lax.scan`` over the epoch per seed, seed after seed."""
    step = _single_step(s)

    @jax.jit
    def epoch(params, opt_state, order, x, y):
        def body(state, idx):
            params, opt_state, loss = step(*state, x[idx], y[idx])
            return (params, opt_state), loss

        return jax.lax.scan(body, (params, opt_state), order)

    orders = jnp.asarray(_orders(s))
    singles = [jax.tree.map(lambda p, i=i: p[0, i], (s.params, s.opt_state)) for i in range(s.n_models)]

    def run():
        return [jax.block_until_ready(epoch(params, opt_state, orders[i], s.x, s.y)[0][0])
                for i, (params, opt_state) in enumerate(singles)]

    return run


def vmap_variant(s: Setup) -> Callable[[], list]:
    """(c) The suite's program: every seed in one vmapped, scanned epoch."""
    train_epoch = jax.jit(make_train_epoch(s.model, s.optimizer, s.workload.batch_size))
    epoch = jnp.asarray(1, jnp.int32)

    def run():
        params = jax.block_until_ready(train_epoch(s.params, s.opt_state, s.data_keys, epoch, s.x, s.y)[0])
        return [jax.tree.map(lambda p, i=i: p[0, i], params) for i in range(s.n_models)]

    return run


VARIANTS = {"loop": loop_variant, "scan": scan_variant, "vmap": vmap_variant}


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matmul throughput of the default device, GFLOP/s (best of ``repeats``)."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    best = min(_seconds(lambda: jax.block_until_ready(f(a))) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _seconds(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(workloads=("synthetic", "mnist"), sizes=(1, 8, 32, 128), variants=tuple(VARIANTS), repeats: int = 3,
            max_sequential: int = 32) -> pd.DataFrame:
    """Times every (workload, n_models, variant); sequential variants above ``max_sequential`` models are skipped.

    Returns:
      One row per measurement: ``workload, models, variant, seconds`` (best of
      ``repeats`` after a warm-up), ``seed_epochs_per_s``, ``gflops``.
    """
    rows = []
    for name in workloads:
        for n_models in sizes:
            s = setup(WORKLOADS[name], n_models)
            for variant in variants:
                if variant != "vmap" and n_models > max_sequential:
                    continue
                run = VARIANTS[variant](s)
                run()  # compile and warm up
                seconds = min(_seconds(run) for _ in range(repeats))
                rows.append({"workload": name, "models": n_models, "variant": variant, "seconds": seconds,
                             "seed_epochs_per_s": n_models / seconds, "gflops": s.flops_per_epoch / seconds / 1e9})
    return pd.DataFrame(rows)
