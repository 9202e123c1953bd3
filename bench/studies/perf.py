"""Throughput of the trainer against the plain ways of training many seeds.

Three ways to train ``n_models`` runs for one epoch, on the same data and model:

* ``loop``: a Python loop over minibatches calling a jitted step, seed after seed
  (what a Keras or PyTorch script does);
* ``scan``: one jitted ``lax.scan`` over the epoch per seed, seed after seed;
* ``vmap``: the suite's program (``bench.training.train.make_train_epoch``): runs laid out
  as the suite lays them out, ``8 initializers x n/8 seeds`` (the initializers of a
  seed share its minibatches), trained in chunks of seeds chosen by
  ``bench.training.memory.plan`` (or ``chunk``), one compiled program for every chunk;
* ``torch`` (when torch is installed): the peer a PyTorch user would pick, the same MLPs
  stacked and trained by ``torch.func`` under ``torch.compile`` (``bench.studies.peers``).

The ``transformer`` workload is the suite's decoder-only language model on random tokens; its
rates are also given in tokens per second (every position of a sequence is predicted), and its
FLOPs count ``6 x params x tokens`` (attention's own ``q k`` and ``weights v`` products left out:
at context 32 and width 32 they add about a sixth).

:mod:`bench.studies.notebook_job` times the initializer notebook's whole job (initialization,
compilation, training, evaluation) by initjax and by the torch peer.

Each returns every run's final parameters (so the three can be checked to agree: the
vmapped one per chunk, split by :meth:`Chunked.runs`) and
is timed after a warm-up call (compilation excluded) and reported as seed-epochs
per second and achieved GFLOP/s, counting ``6 x params x batch`` FLOPs per step
(forward 2, backward 4), next to the machine's measured float32 matmul peak.
``python -m bench perf`` prints the table; ``tests/benchmarks`` time the same functions
with pytest-benchmark.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from flax import nnx

import initjax
from bench import models
from bench.models.conv import ConvNet
from bench.training import layouts, memory
from bench.training.batching import ALL_AT_ONCE, Batching, xla_flops
from bench.training.lanes import side_by_side
from bench.training.objective import loss_and_accuracy
from bench.training.programs import epoch_order, make_train_epoch
from bench.training.seeding import run_keys
from bench.training.step import RunState
from bench.training.train import OPTIMIZERS, batching_of


@dataclasses.dataclass(frozen=True)
class Workload:
    """A model, optimizer and data shape to time.

    Attributes:
      name: label.
      n_features, n_classes, hidden: the MLP.
      optimizer, lr, batch_size: training.
      n_examples: examples per timed epoch (random data; timing does not depend on values).
      max_sequential: largest model count the sequential variants are timed at
        (their rate per model does not depend on the count; MNIST's are slow).
      max_models: largest model count any variant is timed at (the conv nets' epochs are long).
      kind: ``"mlp"``; ``"transformer"``: ``n_features`` is then the context,
        ``n_classes`` the vocabulary, ``hidden`` one width per block (4 heads); ``"conv"``: a
        ``bench.models.conv.ConvNet`` on ``image`` inputs, one 3x3 convolution (same padding) per entry of
        ``convs``, each followed by ReLU and a 2x2 max pool, then the dense layers ``hidden``.
      image: `(H, W, C)` of a ``conv`` workload's inputs.
      convs: a ``conv`` workload's channels per convolution.
    """

    name: str
    n_features: int
    n_classes: int
    hidden: tuple[int, ...]
    optimizer: str
    lr: float
    batch_size: int
    n_examples: int
    max_sequential: int = 256
    kind: str = "mlp"
    max_models: int = 65_536
    image: tuple[int, int, int] | None = None
    convs: tuple[int, ...] = ()

    @property
    def tokens_per_example(self) -> int:
        """Predicted positions per example: the context for a language model, else 1."""
        return self.n_features if self.kind == "transformer" else 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.image if self.kind == "conv" else (self.n_features,)


WORKLOADS = {
    "synthetic": Workload("synthetic MLP 20-64-64-1, Adam, batch 32", 20, 2, (64, 64), "adam", 1e-3, 32, 800),
    # the same MLP written in Flax NNX (NNXMLP below), through bench.models.nnx_model: the NNX path's cost
    "synthetic-nnx": Workload("synthetic MLP 20-64-64-1 in Flax NNX, Adam, batch 32", 20, 2, (64, 64), "adam", 1e-3,
                              32, 800, kind="nnx-mlp"),
    # and in Equinox (equinox_mlp below, through bench.models.equinox_model; the equinox extra)
    "synthetic-equinox": Workload("synthetic MLP 20-64-64-1 in Equinox, Adam, batch 32", 20, 2, (64, 64), "adam",
                                  1e-3, 32, 800, kind="equinox-mlp"),
    "mnist": Workload("MNIST MLP 784-300-100-10, SGD, batch 32", 784, 10, (300, 100), "sgd", 0.01, 32, 2048, 32),
    "mnist-nnx": Workload("MNIST MLP 784-300-100-10 in Flax NNX, SGD, batch 32", 784, 10, (300, 100), "sgd", 0.01, 32,
                          2048, 32, kind="nnx-mlp"),
    "mnist-equinox": Workload("MNIST MLP 784-300-100-10 in Equinox, SGD, batch 32", 784, 10, (300, 100), "sgd", 0.01,
                              32, 2048, 32, kind="equinox-mlp"),
    "transformer": Workload("Transformer pre-LN 2x32, 4 heads, context 32, vocab 32, Adam, batch 32", 32, 32,
                            (32, 32), "adam", 1e-3, 32, 512, 32, kind="transformer"),
    # the issue's conv nets: two convolutions on sklearn digits' 8x8 images, and Flax's MNIST CNN example
    # (conv 32, conv 64, dense 256; SGD with momentum 0.9, lr 0.1, batch 128) on MNIST-size inputs
    "digits-cnn": Workload("CNN 8x8x1 conv 16-32 dense 64, Adam, batch 32", 64, 10, (64,), "adam", 1e-3, 32, 512, 32,
                           kind="conv", image=(8, 8, 1), convs=(16, 32), max_models=32),
    "mnist-cnn": Workload("CNN 28x28x1 conv 32-64 dense 256, SGD momentum, batch 128", 784, 10, (256,), "momentum",
                          0.1, 128, 512, 8, kind="conv", image=(28, 28, 1), convs=(32, 64), max_models=32),
}


@dataclasses.dataclass
class Setup:
    """Everything the three variants need, built once per (workload, n_models)."""

    workload: Workload
    model: object
    optimizer: optax.GradientTransformation
    params: dict  # leaves (n_inits, n_seeds, ...)
    opt_state: dict
    data_keys: jax.Array  # (n_seeds,)
    x: jax.Array
    y: jax.Array
    n_params: int
    step_flops: float | None = None  # one model's training step, by XLA's cost analysis (conv workloads)

    @property
    def n_inits(self) -> int:
        return int(jax.tree.leaves(self.params)[0].shape[0])

    @property
    def n_models(self) -> int:
        return self.n_inits * int(self.data_keys.shape[0])

    def run_state(self, i: int):
        """Parameters and optimizer state of run ``i`` (initializer-major), unbatched."""
        n_seeds = int(self.data_keys.shape[0])
        return jax.tree.map(lambda p: p[i // n_seeds, i % n_seeds], (self.params, self.opt_state))

    @property
    def flops_per_epoch(self) -> float:
        """Training FLOPs of an epoch of every model: XLA's count of one step where measured (a convolution does
        far more work per parameter than ``6 x params`` says), else ``6 x params`` per token."""
        steps = self.workload.n_examples // self.workload.batch_size  # workloads hold whole batches
        if self.step_flops is not None:
            return self.step_flops * steps * self.n_models
        tokens = self.workload.batch_size * self.workload.tokens_per_example
        return 6.0 * self.n_params * tokens * steps * self.n_models


def setup(workload: Workload, n_models: int, init: str = "he_normal") -> Setup:
    """Random data and ``n_models`` initialized runs of ``workload``.

    ``n_models`` a multiple of 8 is laid out as 8 initializers x ``n_models / 8``
    seeds (all starting from ``init``: values do not change the timing), any
    other count as 1 x ``n_models``.
    """
    rng = np.random.default_rng(0)
    if workload.kind == "transformer":  # random tokens; every next token predicted
        x = jnp.asarray(rng.integers(0, workload.n_classes, (workload.n_examples, workload.n_features)), jnp.float32)
        y = jnp.asarray(rng.integers(0, workload.n_classes, x.shape), jnp.int32)
    else:
        x = jnp.asarray(rng.normal(size=(workload.n_examples, *workload.input_shape)).astype(np.float32))
        y = jnp.asarray(rng.integers(0, workload.n_classes, workload.n_examples).astype(np.int32))
    model = setup_model(workload)
    if workload.kind not in ("nnx-mlp", "equinox-mlp"):  # they draw with their own initializers (no timing change)
        model = model.clone(kernel_init=initjax.get(init))
    optimizer = OPTIMIZERS[workload.optimizer](workload.lr)
    n_inits = 8 if n_models % 8 == 0 else 1
    init_keys, data_keys = run_keys(0, "perf", list(range(n_models // n_inits)))
    params = jax.jit(jax.vmap(lambda k: model.init(k, x[:1])["params"]))(init_keys)  # compiled: not op by op
    params = jax.tree.map(lambda p: jnp.repeat(p[None], n_inits, axis=0), params)
    layout = layouts.of(model, optimizer, workload.input_shape)  # trained in the model's own layout, as the suite does
    if layout is not None:
        model, params = layout.model, layout.runs(layout.inward)(params)
    opt_state = jax.vmap(jax.vmap(optimizer.init))(params)
    n_params = sum(p[0, 0].size for p in jax.tree.leaves(params))
    s = Setup(workload, model, optimizer, params, opt_state, data_keys, x, y, n_params)
    return dataclasses.replace(s, step_flops=step_flops(s)) if workload.kind == "conv" else s


def setup_model(workload: Workload):
    """The workload's model (a Flax module with a ``kernel_init`` field)."""
    if workload.kind == "transformer":
        return models.build("transformer", (workload.n_features,), workload.n_classes, workload.hidden, "gelu",
                            heads=4)
    if workload.kind == "conv":
        return ConvNet(tuple(((c, 3, "SAME"),) for c in workload.convs), workload.hidden, workload.n_classes)
    if workload.kind in ("nnx-mlp", "equinox-mlp"):
        binary = workload.n_classes == 2  # one sigmoid unit, as the built-in MLP's head
        spec = NNXMLP if workload.kind == "nnx-mlp" else equinox_mlp
        model = models.from_spec(spec, {"hidden": workload.hidden}, n_outputs=1 if binary else workload.n_classes,
                                 input_shape=(workload.n_features,))
        return model.clone(output_activation="sigmoid" if binary else "softmax")
    return models.mlp_for(workload.n_features, workload.n_classes, workload.hidden)


class NNXMLP(nnx.Module):
    """The suite's MLP (ReLU hidden layers, logits out) in Flax NNX, for the ``synthetic-nnx`` workload."""

    def __init__(self, din: int, dout: int, hidden: tuple[int, ...], rngs: nnx.Rngs):
        widths = (din, *hidden)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths, widths[1:])])
        self.head = nnx.Linear(widths[-1], dout, rngs=rngs)

    def __call__(self, x):
        for layer in self.layers:
            x = jax.nn.relu(layer(x))
        return self.head(x)


def equinox_mlp(in_size: int, out_size: int, hidden: tuple[int, ...], key):
    """The suite's MLP in Equinox (``eqx.nn.Linear`` layers, ReLU between), for the ``*-equinox`` workloads."""
    from bench.models.equinox_model import equinox

    eqx = equinox()
    widths = (in_size, *hidden, out_size)
    layers = []
    for i, layer_key in enumerate(jax.random.split(key, len(widths) - 1)):
        layers.append(eqx.nn.Linear(widths[i], widths[i + 1], key=layer_key))
        if i < len(widths) - 2:
            layers.append(eqx.nn.Lambda(jax.nn.relu))
    return eqx.nn.Sequential(layers)


def step_flops(s: Setup) -> float:
    """FLOPs of one model's training step on one minibatch, as XLA's cost analysis of the compiled step counts
    them."""
    params, opt_state = s.run_state(0)
    b = s.workload.batch_size
    return xla_flops(jax.jit(_single_step(s)).lower(params, opt_state, s.x[:b], s.y[:b]).compile())


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
    orders = np.asarray(jax.vmap(lambda k: epoch_order(k, epoch, n, n))(s.data_keys))
    orders = np.tile(orders, (s.n_inits, 1))  # run i = (init i // n_seeds, seed i % n_seeds)
    return orders[:, : steps * b].reshape(s.n_models, steps, b)


def loop_variant(s: Setup) -> Callable[[], list]:
    """(a) A Python loop over minibatches calling a jitted step, seed after seed."""
    step = jax.jit(_single_step(s))
    orders = _orders(s)
    singles = [s.run_state(i) for i in range(s.n_models)]

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
    singles = [s.run_state(i) for i in range(s.n_models)]

    def run():
        return [jax.block_until_ready(epoch(params, opt_state, orders[i], s.x, s.y)[0][0])
                for i, (params, opt_state) in enumerate(singles)]

    return run


def vmap_variant(s: Setup, chunk: int | None = None, batching=None) -> Callable[[], list]:
    """(c) The suite's program: the runs in chunks of seeds, each chunk one scanned epoch of its models batched as
    the suite batches them (``bench.training.batching``: vmapped; a conv net's convolutions as products of patches;
    ``batching`` forces another way), on a CPU two chunks at a time (``bench.training.lanes``)."""
    n_seeds = int(s.data_keys.shape[0])
    how = batching if batching is not None else batching_of(s.model, s.workload.input_shape, s.workload.batch_size)
    fp = memory.footprint(s.model, s.workload.input_shape, s.optimizer, s.workload.batch_size, 2048, how.matmuls)
    on_cpu = jax.default_backend() == "cpu"
    plan = memory.plan(fp, s.n_inits, n_seeds, resident=0, budget=2**62, on_cpu=on_cpu, chunk=chunk,
                       lanes=memory.CPU_LANES if on_cpu and jax.device_count() == 1 else 1, batching=how)
    groups = [jnp.asarray(g) for g in plan.seed_groups(list(range(n_seeds)))]
    chunks = [(*jax.tree.map(lambda p, g=g: p[:, g], (s.params, s.opt_state)), s.data_keys[g]) for g in groups]
    train_epoch = jax.jit(make_train_epoch(s.model, s.optimizer, s.workload.batch_size, batching=plan.batching))
    epoch = jnp.asarray(1, jnp.int32)
    keep = np.concatenate(memory.real_seeds(plan.seed_groups(list(range(n_seeds)))))

    def one_chunk(chunk, check):
        params, opt_state, keys = chunk
        return jax.block_until_ready(train_epoch(RunState(params, opt_state, {}), keys, epoch, s.x, s.y)[0].params)

    def run():
        return Chunked(side_by_side(one_chunk, chunks, plan.lanes), keep, s.n_models)

    return run


@dataclasses.dataclass
class Chunked:
    """Final parameters of the vmapped variant, per chunk; :meth:`runs` splits them (outside the timing)."""

    finals: list
    keep: np.ndarray
    n_models: int

    def runs(self) -> list:
        params = jax.tree.map(lambda *leaves: np.concatenate(leaves, axis=1)[:, self.keep], *self.finals)
        n_seeds = int(self.keep.sum())
        return [jax.tree.map(lambda p, i=i: p[i // n_seeds, i % n_seeds], params) for i in range(self.n_models)]


# the suite's program with its rule overridden: sequential, XLA's convolutions one model after the other;
# matmuls, convolutions as products of patches, every model vmapped
VARIANTS = {"loop": loop_variant, "scan": scan_variant, "vmap": vmap_variant,
            "sequential": functools.partial(vmap_variant, batching=Batching(sequential=True)),
            "matmuls": functools.partial(vmap_variant, batching=Batching(matmuls=True))}
ONLY_WHERE_THE_RULE_CHOOSES_OTHERWISE = ("sequential", "matmuls")  # timed only where the suite does not vmap as it is


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


def measure(workloads=("synthetic", "mnist"), sizes=(1, 8, 32, 128, 256), variants=None,
            repeats: int = 3, rows: list[dict] | None = None, log=None) -> pd.DataFrame:
    """Times every (workload, n_models, variant).

    ``variants``: default ``loop``, ``scan``, ``vmap`` and, when torch is installed, the peer ``torch``
    (:func:`torch_variant`), and ``sequential`` (the suite's program, XLA's convolutions one model after the
    other) and ``matmuls`` (convolutions as products of patches, every model vmapped) where the suite's rule does
    not vmap the model as it is (a conv net: ``bench.training.batching``).
    Sequential variants above the workload's ``max_sequential`` are skipped, every variant above its
    ``max_models``.

    Args:
      rows: a list the finished rows are appended to as they come (so a caller
        interrupted halfway still has them).
      log: ``log(text)`` is told what is being timed before each measurement.

    Returns:
      One row per measurement: ``workload, models, variant, seconds`` (best of
      ``repeats`` after a warm-up), ``seed_epochs_per_s``, ``gflops``.
    """
    from bench.studies import peers

    rows = [] if rows is None else rows
    if variants is None:
        variants = (*VARIANTS, *(PEERS if peers.available() else ()))
    for name in workloads:
        for n_models in [n for n in sizes if n <= WORKLOADS[name].max_models]:
            s = setup(WORKLOADS[name], n_models)
            for variant in variants:
                if variant in ("loop", "scan", "sequential") and n_models > WORKLOADS[name].max_sequential:
                    continue
                if variant in PEERS and WORKLOADS[name].kind != "mlp":  # the torch peer builds MLPs
                    continue
                if variant in ONLY_WHERE_THE_RULE_CHOOSES_OTHERWISE and batching_of(
                        s.model, s.workload.input_shape, s.workload.batch_size) == ALL_AT_ONCE:
                    continue
                if log is not None:
                    log(f"timing {name}, {n_models} model(s), {variant}: compile, warm up, best of {repeats}")
                run = {**VARIANTS, **PEERS}[variant](s)
                run()  # compile and warm up
                seconds = min(_seconds(run) for _ in range(repeats))
                rows.append({"workload": name, "models": n_models, "layout": f"{s.n_inits} x {s.n_models // s.n_inits}",
                             "variant": variant, "seconds": seconds,
                             "seed_epochs_per_s": n_models / seconds, "gflops": s.flops_per_epoch / seconds / 1e9,
                             "tokens_per_s": n_models * s.workload.n_examples * s.workload.tokens_per_example
                             / seconds})
    return pd.DataFrame(rows)


def grid_setup(workload: Workload, n_inits: int = 8, lrs: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1),
               n_seeds: int = 8) -> Setup:
    """``n_inits`` initializers x ``len(lrs)`` learning rates x ``n_seeds`` seeds of ``workload`` as the suite lays
    a grid out: arms `(n_inits * len(lrs))` whose optimizer states hold their own learning rate
    (``bench.training.grid``), one program for all."""
    from bench.training import recipes
    from bench.training.grid import Grid
    from bench.training.initialization import set_hyperparameters

    base = setup(workload, n_inits * n_seeds)  # data, model, parameter shapes
    optimizer = recipes.build(workload.optimizer, workload.lr, injected=("lr",))
    params = jax.tree.map(lambda p: jnp.repeat(p[:1, :n_seeds], n_inits * len(lrs), axis=0), base.params)
    opt_state = set_hyperparameters(jax.vmap(jax.vmap(optimizer.init))(params), Grid(lr=tuple(lrs)), n_inits)
    return dataclasses.replace(base, optimizer=optimizer, params=params, opt_state=opt_state,
                               data_keys=base.data_keys[:n_seeds])


def measure_grid(workload: str = "synthetic", repeats: int = 3, rounds: int = 3) -> pd.DataFrame:
    """Run-epochs per second of a grid (8 initializers x 4 learning rates x 8 seeds) and of as many runs as seeds
    (8 initializers x 32 seeds) on the same workload, timed in alternation (:func:`alternated`: the best of
    ``rounds`` x ``repeats`` rounds).

    Returns:
      One row per layout: ``layout, runs, seconds`` (best over all rounds), ``seed_epochs_per_s``, and
      ``ratio``: the grid's rate over the seeds' rate.
    """
    setups = {"8 initializers x 32 seeds": setup(WORKLOADS[workload], 256),
              "8 initializers x 4 lr x 8 seeds": grid_setup(WORKLOADS[workload])}  # (not `layouts`: the module)
    runs = {name: vmap_variant(s) for name, s in setups.items()}
    best = {name: min(seconds) for name, seconds in alternated(runs, rounds * repeats).items()}
    rows = [{"layout": name, "runs": setups[name].n_models, "seconds": best[name],
             "seed_epochs_per_s": setups[name].n_models / best[name]} for name in runs]
    table = pd.DataFrame(rows)
    table["ratio"] = table["seed_epochs_per_s"] / table["seed_epochs_per_s"].iloc[0]
    return table


def alternated(runs: dict[str, Callable], rounds: int, repeats: int = 1, seed: int = 0) -> dict[str, list[float]]:
    """Seconds of each run, compiled and warmed up first, then timed in ``rounds`` rounds, each run once a round in
    a random order (``repeats`` calls a timing): runs compared within a round share the machine's state of the
    moment, which a noisy shared machine changes between rounds."""
    for run in runs.values():
        run()  # compile and warm up
    rng = np.random.default_rng(seed)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name in rng.permutation(list(runs)):
            times[name].append(_seconds(lambda run=runs[name]: [run() for _ in range(repeats)]) / repeats)
    return times


FRAMEWORKS = {"Flax NNX": "nnx", "Equinox": "equinox"}  # workload suffix of the same MLP in each


def measure_frameworks(workloads=("synthetic", "mnist"), sizes=(8, 32), rounds: int = 15,
                       repeats: int = 2) -> pd.DataFrame:
    """Run-epochs per second of the same MLP written in Flax NNX and in Equinox against linen's, in the suite's
    program, timed in alternation (:func:`alternated`).

    Returns:
      One row per (workload, models, framework): ``linen_seed_epochs_per_s`` (median), ``ratio`` (the median over
      rounds of the framework's rate over linen's in the same round) and ``low``, ``high``: its 95% bootstrap
      interval over rounds (``scipy.stats.bootstrap``, percentile). Equinox rows only with the equinox extra.
    """
    from scipy import stats

    from bench.models.equinox_model import is_available

    rows = []
    for base in workloads:
        for n_models in sizes:
            names = {"linen": base, **{fw: f"{base}-{suffix}" for fw, suffix in FRAMEWORKS.items()
                                       if suffix != "equinox" or is_available()}}
            runs = {fw: vmap_variant(setup(WORKLOADS[name], n_models)) for fw, name in names.items()}
            times = {fw: np.asarray(t) for fw, t in alternated(runs, rounds, repeats).items()}
            for fw in list(names)[1:]:
                ratios = times["linen"] / times[fw]
                ci = stats.bootstrap((ratios,), np.median, method="percentile", random_state=0).confidence_interval
                rows.append({"workload": base, "models": n_models, "framework": fw,
                             "linen_seed_epochs_per_s": n_models / np.median(times["linen"]),
                             "ratio": float(np.median(ratios)), "low": ci.low, "high": ci.high})
    return pd.DataFrame(rows)


PEAK_WAYS = ("suite", "loop")
PEAK_INITIALIZERS = ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal", "lecun_uniform",
                     "orthogonal", "random_normal")


def peak_rss(workload: str = "mnist", way: str = "suite", n_inits: int = 8, n_seeds: int = 128,
             n_train: int = 2048, n_test: int = 512) -> dict:
    """Trains ``n_inits`` x ``n_seeds`` runs of a workload of :data:`WORKLOADS` for one epoch and reports memory.

    ``way``: ``"suite"`` (``bench.training.train.train_task``, as ``python -m bench run`` trains: planned chunks,
    every split evaluated at epochs 0 and 1) or ``"loop"`` (the plain loop: one run after the other, a jitted
    step per minibatch, then train and test evaluated 2,048 examples at a time by a jitted forward pass). Run each
    in a fresh process (``python -c "from bench.studies import perf; print(perf.peak_rss('mnist-cnn', 'loop',
    2, 2, 6000, 10000))"``): the peak resident size is the process's. Data are random arrays of the workload's
    shape (memory does not depend on the values).

    Returns:
      ``peak_rss_bytes``; ``models_at_once``: models whose training state and step are in memory together (the
      loop: 1; the suite: its chunks side by side times their models, or one model per chunk where a chunk's
      models run one after the other); for the suite also ``estimated_peak_bytes``, ``models_per_chunk``,
      ``n_chunks``, ``eval_chunk``, ``train_s``.
    """
    from bench.data.datasets import Dataset
    from bench.training.train import TrainConfig, train_task

    if way not in PEAK_WAYS:
        raise ValueError(f"way must be one of {PEAK_WAYS}, got {way!r}")
    w = WORKLOADS[workload]
    rng = np.random.default_rng(0)
    split = lambda n: (rng.random((n, *w.input_shape), np.float32),  # noqa: E731
                       rng.integers(0, w.n_classes, n).astype(np.int32))
    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    model = setup_model(w)
    names = list(PEAK_INITIALIZERS[:n_inits])
    config = TrainConfig(optimizer=w.optimizer, lr=w.lr, batch_size=w.batch_size, epochs=1)
    if way == "loop":
        _plain_loop(model, OPTIMIZERS[w.optimizer](w.lr), w.batch_size, [initjax.get(n) for n in names], n_seeds,
                    (x_train, y_train), (x_test, y_test), config.eval_batch_size)
        return {"peak_rss_bytes": memory.peak_rss_bytes(), "models_at_once": 1}
    data = Dataset(f"{workload}-shaped", x_train, y_train, x_test, y_test, w.n_classes)
    result = train_task(data, model, {n: initjax.get(n) for n in names}, range(n_seeds), config, progress=False,
                        keep_params=False)
    plan = result.plan
    return {"peak_rss_bytes": memory.peak_rss_bytes(), "estimated_peak_bytes": plan.estimate,
            "models_at_once": plan.lanes * (1 if plan.batching.sequential else plan.models_per_chunk),
            "models_per_chunk": plan.models_per_chunk, "n_chunks": plan.n_chunks, "train_s": result.train_s}


def _plain_loop(model, optimizer, batch_size: int, inits: list, n_seeds: int, train: tuple, test: tuple,
                eval_batch: int) -> None:
    """One epoch of every (initializer, seed) run, one run after the other, as a plain Flax/optax script trains."""
    def loss_fn(params, xb, yb, m):
        return loss_and_accuracy(m.apply({"params": params}, xb), yb, m.output_activation)[0].mean()

    for init in inits:
        m = model.clone(kernel_init=init)

        @jax.jit
        def step(params, opt_state, xb, yb, m=m):
            grads = jax.grad(loss_fn)(params, xb, yb, m)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        evaluate = jax.jit(lambda params, xb, yb, m=m: loss_and_accuracy(m.apply({"params": params}, xb), yb,
                                                                          m.output_activation)[1].sum())
        for seed in range(n_seeds):
            params = m.init(jax.random.key(seed), train[0][:1])["params"]
            opt_state = optimizer.init(params)
            order = np.random.default_rng(seed).permutation(len(train[0]))
            for b in range(0, len(order) - batch_size + 1, batch_size):
                params, opt_state = step(params, opt_state, train[0][order[b:b + batch_size]],
                                         train[1][order[b:b + batch_size]])
            for x, y in (train, test):
                sum(float(evaluate(params, x[i:i + eval_batch], y[i:i + eval_batch]))
                    for i in range(0, len(x), eval_batch))


# ---------------------------------------------------------------- the peer: torch.func + torch.compile


def torch_variant(s: Setup) -> Callable[[], list]:
    """(d) PyTorch's way (``bench.studies.peers.Ensemble``): the same MLPs stacked, ``torch.func`` + ``torch.compile``,
    one epoch over the same minibatches (its own initial weights: values do not change the timing)."""
    import torch

    from bench.studies import peers

    w = s.workload
    n_seeds = s.n_models // s.n_inits
    ensemble = peers.Ensemble(w.n_features, w.hidden, w.n_classes, ["he_normal"] * s.n_models,
                              [i % n_seeds for i in range(s.n_models)], w.optimizer, w.lr)
    x, y = torch.as_tensor(np.array(s.x)), torch.as_tensor(np.array(s.y), dtype=torch.long)  # copies: writable
    order = torch.as_tensor(_orders(s))

    def run():
        ensemble.train_epoch(x, y, order)
        return [p.detach() for p in ensemble.params.values()]

    return run


PEERS = {"torch": torch_variant}
