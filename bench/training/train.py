"""Training every initializer x every seed of a task as one compiled program.

The state of all runs (``bench.training.step.RunState``: parameters, optimizer state, the
model's own state such as BatchNorm statistics) lives in one pytree whose leaves
have two leading axes, `(n_arms, n_seeds, ...)`. One training step is the
single-run update of ``bench.training.step`` under two ``jax.vmap`` (``bench.training.step.over_runs``,
applied here once): the inner one over seeds (each seed has its own minibatch), the
outer one over arms (which share the seed's minibatch, so the data is gathered
once). A whole epoch is one ``lax.scan`` over minibatches; Python loops over epochs
only, to evaluate, record, checkpoint and show progress.

Randomness is derived, never drawn from a global state: seed ``s`` of a task gets
``k = fold_in(fold_in(key(experiment_seed), crc32(dataset)), s)``, its initial
weights come from ``fold_in(k, 0)`` and its data order in epoch ``e`` from
``fold_in(fold_in(k, 1), e)``. Every initializer of seed ``s`` therefore sees the
same data order *and* the same random stream (common random numbers: glorot_normal
and he_normal weights of one seed are scaled copies of each other), which makes the
comparison between initializers paired, and any single run can be re-created
alone with the same numbers.

The parts, one module each: ``keys`` (each run's keys), ``initialization`` (the initial state of every run),
``programs`` (the compiled programs), ``results`` (records and the tidy table), ``speedups`` (the rewrites and
compile options behind one switch, ``INITJAX_PLAIN=1`` for plain programs); this module checks a task, plans
its chunks and trains them.
"""



from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.data.datasets import Dataset
from bench.errors import UserError
from bench.models import losses
from bench.training import batching, compilation, devices, layouts, memory, parameterized, recipes, resume, step
from bench.training import grid as grids
from bench.training.initialization import check_on_model, check_scale_pattern, initial_state
from bench.training.lanes import WallShares, side_by_side
from bench.training.objective import loss_spec
from bench.training.programs import Programs, chunked_for_eval, compile_programs, not_final
from bench.training.progress import StepBar
from bench.training.recipes import TrainConfig
from bench.training.results import ChunkTimes, TaskResult, evaluation_epochs, records, tidy
from bench.training.seeding import run_keys

# name -> optimizer(lr) at a constant rate (the recipes' defaults), for callers that want just that
OPTIMIZERS: dict[str, Callable[[float], optax.GradientTransformation]] = {
    name: (lambda lr, name=name: recipes.build(name, lr)) for name in recipes.OPTIMIZERS
}

__all__ = ["OPTIMIZERS", "TaskResult", "TrainConfig", "check_plan", "check_task", "train_task"]


def check_task(dataset: Dataset, model: nn.Module, initializers: Mapping[str, object], config: TrainConfig,
               grid: grids.Grid, loss=None):
    """The task's loss spec, once every setting is checked against the data and the model (nothing compiled).

    Raises:
      UserError: a bad setting, an arm that does not fit the model, or a loss of the other kind than the data.
    """
    config.validate(dataset.x_train.shape[0])
    grid.validate()
    recipes.check(config.optimizer, config.schedule, grids.injected(grid))
    check_on_model(model, initializers, dataset.input_shape)
    check_scale_pattern(model, dataset.input_shape, grid)
    loss = loss_spec(model, loss)
    losses.get(loss)  # an unknown loss fails here, before anything is compiled
    if losses.is_regression(loss) != dataset.regression:
        wants = losses.is_regression(loss)
        raise UserError(f"the loss {loss} needs {'regression targets' if wants else 'classes'}, {dataset.name} holds "
                        f"{'regression targets' if dataset.regression else 'classes'}: give a "
                        f"{'classification' if wants else 'regression'} loss, or data built with "
                        f"bench.data.arrays(..., regression={wants})")
    if isinstance(loss, str):
        outputs = jax.eval_shape(lambda x: model.apply(model.init(jax.random.key(0), x), x),
                                 jax.ShapeDtypeStruct((2, *dataset.input_shape), jnp.float32))
        losses.check_shape(type(model).__name__, outputs.shape, loss, dataset.n_classes, dataset.n_targets)
    return loss


@dataclasses.dataclass(frozen=True)
class _OnDevices:
    """A task's data placed on this process's devices, and where the runs' state and keys go."""

    mesh: object
    x: jax.Array
    y: jax.Array
    splits: dict  # name -> (x, y) on the host
    eval_splits: tuple  # each split chunked for the evaluation (``chunked_for_eval``), replicated
    model_sharding: object
    key_sharding: object

    @classmethod
    def of(cls, dataset: Dataset, eval_batch_size: int) -> _OnDevices:
        mesh = devices.local_mesh()
        x, y = jax.device_put((dataset.x_train, dataset.y_train), devices.replicated(mesh))
        splits = dataset.splits()
        eval_splits = tuple(jax.device_put(chunked_for_eval(sx, sy, eval_batch_size), devices.replicated(mesh))
                            for sx, sy in splits.values())
        return cls(mesh, x, y, splits, eval_splits, devices.seed_sharding(mesh, 1), devices.seed_sharding(mesh, 0))

    @property
    def bytes(self) -> int:
        return memory.tree_bytes((self.x, self.y, self.eval_splits))

    @property
    def split_sizes(self) -> np.ndarray:
        return np.array([len(sy) for _, sy in self.splits.values()], np.float64)


@dataclasses.dataclass
class _Chunks:
    """What every chunk of this process recorded, row ``i`` per chunk: evaluation sums `(evaluations, n_splits, 2,
    n_arms, seeds_per_chunk)` (the start, then ``evals_per_epoch`` an epoch), finiteness, the test split's per-example
    outcomes and the final parameters. The chunks trained side by side write their own rows."""

    sums: np.ndarray
    finite: np.ndarray
    test_loss: np.ndarray
    test_correct: np.ndarray  # float: a language model's per-example accuracy is its share of positions right
    finals: list
    have_outcomes: bool

    @classmethod
    def empty(cls, n_chunks: int, evaluations: int, n_splits: int, n_arms: int, per_chunk: int, n_test: int,
              have_outcomes: bool) -> _Chunks:
        runs = (n_chunks, n_arms, per_chunk)
        return cls(np.zeros((n_chunks, evaluations, n_splits, 2, n_arms, per_chunk), np.float32),
                   np.ones((n_chunks, evaluations, n_arms, per_chunk), np.float32),
                   np.zeros((*runs, n_test), np.float32), np.zeros((*runs, n_test), np.float32),
                   [None] * n_chunks, have_outcomes)

    @property
    def shapes(self) -> dict[str, tuple]:
        """A chunk's arrays' shapes, as a store checks them."""
        return {"sums": self.sums.shape[1:], "finite": self.finite.shape[1:], "test_loss": self.test_loss.shape[1:]}

    def load_finished(self, store, mine: Sequence[int]) -> tuple[list[tuple[int, int]], float, int]:
        """Fills the rows of the chunks the store holds finished; returns the (row, chunk) still to train and the
        seconds and run-epochs the loaded chunks recorded."""
        todo, seconds, seed_epochs = [], 0.0, 0
        for i, c in enumerate(mine):
            done = store.finished(c, self.shapes)
            if done is None:
                todo.append((i, c))
                continue
            self.sums[i], self.finite[i] = done.sums, done.finite
            if done.outcomes is None:
                self.have_outcomes = False
            else:
                self.test_loss[i], self.test_correct[i] = done.outcomes
            seconds, seed_epochs = seconds + done.seconds, seed_epochs + done.seed_epochs
        return todo, seconds, seed_epochs

    def gathered(self, real: list, keep_params: bool) -> tuple[np.ndarray, np.ndarray, dict | None, dict | None]:
        """``(sums, finite, params, outcomes)`` of every process's chunks with the padding seeds dropped: sums
        `(evaluations, n_splits, 2, n_arms, n_seeds)`, finite `(evaluations, n_arms, n_seeds)` bool."""
        sums, finite = devices.gather(self.sums), devices.gather(self.finite)
        test_loss, test_correct = devices.gather(self.test_loss), devices.gather(self.test_correct)
        have_outcomes = bool(devices.gather(np.array([self.have_outcomes])).all())
        keep = np.concatenate(real)
        params = None
        if keep_params and jax.process_count() == 1:
            params = jax.tree.map(lambda *leaves: np.concatenate(leaves, axis=1)[:, keep], *self.finals)
        outcomes = None
        if have_outcomes:
            outcomes = {"loss": np.concatenate(list(test_loss), axis=1)[:, keep],
                        "correct": np.concatenate(list(test_correct), axis=1)[:, keep]}
        return (np.concatenate(list(sums), axis=-1)[..., keep], np.concatenate(list(finite), axis=-1)[..., keep] > 0,
                params, outcomes)


@dataclasses.dataclass
class _ChunkTrainer:
    """Trains a chunk from its start or its checkpoint to its end, writing its row of :class:`_Chunks`; chunks may
    train side by side (``lanes.side_by_side``): the progress bar and the store are shared under one lock."""

    programs: Programs
    data: _OnDevices
    chunks: _Chunks
    store: object
    bar: StepBar
    keys: Callable[[int], tuple]
    epochs: int
    steps: int
    evals_per_epoch: int
    runs_per_seed: int
    real: list
    keep_params: bool
    outward: Callable  # final parameters, the training layout -> Flax's (bench.training.layouts)
    shares: WallShares = dataclasses.field(default_factory=WallShares)
    host: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def __call__(self, item: tuple[int, int], check: Callable[[], None]) -> ChunkTimes:
        i, c = item
        init_keys, data_keys = self.keys(c)
        self.shares.start(c)
        try:
            return self._train(i, c, init_keys, data_keys, check)
        finally:
            self.shares.stop(c)

    def _start(self, i: int, c: int, init_keys):
        """The chunk's state at its start or checkpoint, its epoch 0 recorded; ``(state, saved, init_s, draw_s)``:
        ``init_s`` the seconds to here, ``draw_s`` those drawing the initial state (the rest: its evaluation)."""
        programs, chunks = self.programs, self.chunks
        state = jax.block_until_ready(programs.start(init_keys, self.data.x))
        draw_s = self.shares.seconds(c)
        first_sums = np.asarray(programs.evaluate(state, self.data.eval_splits, not_final())[0])
        init_s = self.shares.seconds(c)
        with self.host:
            saved = self.store.checkpoint(c, chunks.shapes, [leaf.shape for leaf in jax.tree.leaves(state)])
        if saved is None:
            chunks.sums[i, 0] = first_sums
            return state, None, init_s, draw_s
        state = jax.device_put(jax.tree.unflatten(jax.tree.structure(state), saved.leaves), self.data.model_sharding)
        chunks.sums[i], chunks.finite[i] = saved.sums, saved.finite
        with self.host:
            self.bar.advance(saved.epoch * self.steps + saved.step)
        return state, saved, init_s, draw_s

    def _train(self, i: int, c: int, init_keys, data_keys, check: Callable[[], None]) -> ChunkTimes:
        chunks, data = self.chunks, self.data
        state, saved, init_s, draw_s = self._start(i, c, init_keys)
        before_s, before_seed_epochs = (saved.seconds, saved.seed_epochs) if saved is not None else (0.0, 0)

        def on_steps(k: int) -> None:
            with self.host:
                self.bar.advance(k)
            check()

        def record(epoch: int, points) -> None:
            """Writes the epoch's evaluations (``Programs.run_epoch``'s ``points``) into the chunk's rows."""
            for j, finite, sums in points:
                row = (epoch - 1) * self.evals_per_epoch + j + 1
                chunks.finite[i, row], chunks.sums[i, row] = finite, sums

        seed_epochs, outcomes = 0, None
        first = 1 if saved is None else saved.epoch + 1
        for epoch in range(first, self.epochs + 1):
            start, finite = (saved.step, saved.epoch_finite) if saved is not None and epoch == first else (0, None)

            def within(step, state, settled, epoch=epoch, trained=seed_epochs):  # a checkpoint inside the epoch, if due
                with self.host:
                    if not self.store.due():
                        return
                finite, points = settled()
                record(epoch, points)
                with self.host:
                    self.store.save_checkpoint(c, epoch - 1, state, chunks.sums[i], chunks.finite[i],
                                               before_s + self.shares.seconds(c) - init_s,
                                               before_seed_epochs + trained, step, finite)

            state, points, outcomes = self.programs.run_epoch(
                state, data_keys, epoch, epoch == self.epochs, data.x, data.y, data.eval_splits, on_steps,
                start, finite, within)
            record(epoch, points)
            seed_epochs += self.runs_per_seed * sum(self.real[c])
            with self.host:
                if epoch < self.epochs and self.store.due():
                    self.store.save_checkpoint(c, epoch, state, chunks.sums[i], chunks.finite[i],
                                               before_s + self.shares.seconds(c) - init_s,
                                               before_seed_epochs + seed_epochs)
        kept = None
        if outcomes is not None:
            n_test = chunks.test_loss.shape[-1]
            loss, correct = outcomes
            chunks.test_loss[i] = np.asarray(loss)[..., :n_test]
            chunks.test_correct[i] = np.asarray(correct)[..., :n_test]
            kept = (chunks.test_loss[i], chunks.test_correct[i])
        seconds = self.shares.seconds(c) - init_s
        with self.host:
            self.store.save_finished(c, chunks.sums[i], chunks.finite[i], before_s + seconds,
                                     before_seed_epochs + seed_epochs, kept)
            self.store.release(c)
        if self.keep_params:
            chunks.finals[i] = jax.tree.map(np.asarray, self.outward(state.params))
        return ChunkTimes(init_s, seconds, seed_epochs, before_s, before_seed_epochs, draw_s)


def _same(params):
    return params


def _one_model_call(model: nn.Module, input_shape) -> tuple[step.Forward, tuple]:
    """The one-model forward pass of ``model`` and its arguments on one example, as shapes (nothing computed)."""
    forward = step.forward_of(model, input_shape)
    sample = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    params, model_state = jax.eval_shape(lambda x: forward.init(jax.random.key(0), x), sample)
    return forward, (params, model_state, sample)


def batching_of(model: nn.Module, input_shape, batch_size: int) -> batching.Batching:
    """How a chunk's models of ``model`` are batched (``bench.training.batching.choose``, from the one-model
    forward pass, traced), trained in minibatches of ``batch_size``."""
    return batching.choose(*_one_model_call(model, input_shape), batch_size)


def counted_step_flops(model: nn.Module, input_shape, batch_size: int, how: batching.Batching) -> float | None:
    """One model's training-step FLOPs as XLA counts them (``bench.training.batching.step_flops``) for a model the
    rule does not simply vmap (its convolutions do far more work per parameter than ``6 x params``); None for the
    others, whose ``6 x params`` per example stands."""
    if how == batching.ALL_AT_ONCE:
        return None
    return batching.step_flops(*_one_model_call(model, input_shape), batch_size)


def _plan(fp: memory.Footprint, mesh, n_inits: int, n_seeds: int, data_bytes: int, chunk, max_memory,
          keep_params: bool, how: batching.Batching = batching.ALL_AT_ONCE) -> memory.ChunkPlan:
    """The chunk plan for this process's devices: host memory on CPU, device memory elsewhere."""
    device = mesh.devices.flat[0]
    kept = fp.params * n_inits * n_seeds if keep_params else 0
    if device.platform == "cpu":
        resident = memory.current_rss_bytes() + data_bytes + kept
        budget = max_memory or int(0.8 * (memory.available_bytes() + memory.current_rss_bytes()))
    else:
        resident = data_bytes
        limit = memory.device_memory_bytes(device)
        budget = max_memory or int(0.8 * limit * mesh.size) if limit else max_memory or 2**62
    lanes = memory.CPU_LANES if device.platform == "cpu" and mesh.size == 1 else 1  # an accelerator runs one at a time

    def plan(chunk):
        return memory.plan(fp, n_inits, n_seeds, resident, budget, device.platform == "cpu", n_devices=mesh.size,
                           n_processes=jax.process_count(), chunk=chunk, lanes=lanes, batching=how)

    mine = plan(chunk)
    if jax.process_count() == 1:
        return mine
    agreed = int(devices.gather(np.array([mine.seeds_per_chunk], np.int32)).min())  # hosts may differ in memory
    return mine if agreed == mine.seeds_per_chunk else dataclasses.replace(plan(agreed), reason=mine.reason)


def check_plan(dataset: Dataset, model: nn.Module, n_arms: int, n_seeds: int, config: TrainConfig,
               chunk: int | None = None, max_memory: int | None = None, grid: grids.Grid = grids.Grid()) -> None:
    """Raises UserError now where :func:`train_task` would find, later, that the task does not fit the memory budget
    (a run checks every task before it trains the first: a second task that cannot fit was found after the first
    had trained for minutes)."""
    optimizer = parameterized.recipe(config, model, dataset.input_shape, len(dataset.x_train), grids.injected(grid))
    how = batching_of(model, dataset.input_shape, config.batch_size)
    fp = memory.footprint(model, dataset.input_shape, optimizer, config.batch_size, config.eval_batch_size,
                          how.matmuls)
    arrays = [dataset.x_train, dataset.y_train, *(a for pair in dataset.splits().values() for a in pair)]
    data_bytes = sum(np.asarray(a).nbytes for a in arrays)
    mesh = devices.local_mesh()
    _plan(fp, mesh, n_arms, n_seeds, data_bytes, chunk, max_memory, False, how)


@dataclasses.dataclass(frozen=True)
class ShardWork:
    """What a shard did of one task (:func:`train_task` with ``shard``): the chunk plan, the chunks it trained,
    found finished, and left to the processes that claim them (chunk -> ``claims.Holder``), and its seconds."""

    plan: memory.ChunkPlan
    trained: list[int]
    found: list[int]
    elsewhere: dict
    compile_s: float
    train_s: float


def _claimed(store, todo: list[tuple[int, int]], name: str, sharded: bool) -> tuple[list[tuple[int, int]], dict]:
    """The chunks of ``todo`` this process now claims, and those another live process holds (chunk -> holder):
    left to it by a shard; a whole run stops in one line naming the holder instead (its results would lack them).
    """
    mine, elsewhere = [], {}
    for i, c in todo:
        holder = store.claim(c)
        if holder is None:
            mine.append((i, c))
        else:
            elsewhere[c] = holder
    if elsewhere and not sharded:
        store.close()
        c, holder = next(iter(elsewhere.items()))
        raise UserError(f"{name}: chunk {c} is being trained by pid {holder.pid} on {holder.host} (claimed "
                        f"{holder.age():.0f} s ago, a shard of this study); wait for it to finish "
                        "(python -m bench status) and run again")
    return mine, elsewhere


def train_task(
    dataset: Dataset,
    model: nn.Module,
    initializers: Mapping[str, Callable],
    seeds: Sequence[int],
    config: TrainConfig,
    experiment_seed: int = 0,
    progress: bool = True,
    chunk: int | None = None,
    max_memory: int | None = None,
    keep_params: bool = True,
    store: resume.TaskStore | resume.NullStore | None = None,
    data_seeds: int = 1,
    loss=None,
    grid: grids.Grid = grids.Grid(),
    shard: Callable[[int, float], Sequence[int]] | None = None,
) -> TaskResult | ShardWork:
    """Trains every initializer x grid cell x seed on ``dataset``, chunk after chunk of seeds.

    The runs are split into chunks of seeds (:mod:`bench.training.memory`); each chunk
    trains every initializer of its seeds through all epochs, sharded over the
    local devices (:mod:`bench.training.devices`), with programs compiled once for all
    chunks. With several processes each trains its own chunks and all records are
    gathered at the end. A run's numbers do not depend on the chunking or on the
    other runs: each seed's keys are derived from the seed alone.

    Args:
      dataset: train and test arrays.
      model: any Flax module, ``model.apply({"params": p}, x)`` giving outputs for the loss.
      initializers: arm name -> initializer (every kernel), rule set
        (``initjax.rules.compile_rules``) or scheme, in table order.
      seeds: seed numbers; seed ``s`` gives the same run whatever the other seeds.
      config: optimizer, learning rate, batch size, epochs.
      experiment_seed: root of every key.
      progress: show a progress bar on stderr.
      chunk: seeds per chunk (None: chosen from the memory estimate).
      max_memory: memory budget in bytes (None: 80% of what is available).
      keep_params: return the final parameters (held on the host; not with a
        ``store``, which may hold finished chunks as records only).
      store: where finished chunks and checkpoints are kept; chunks found there
        are not trained again, a checkpointed chunk continues from its epoch, and
        the stored chunk plan is reused (:mod:`bench.training.resume`); None keeps nothing.
      data_seeds: ``K > 1`` makes ``seeds`` run numbers crossing init seed ``r // K``
        with data-order seed ``r % K`` (:func:`run_keys`).
      loss: a loss spec or callable (``bench.models.losses``); None: the built-in model's
        ``output_activation`` (sigmoid or softmax cross-entropy).
      grid: hyperparameter values crossed with every initializer (``bench.training.grid``):
        each (initializer, cell) is an arm named ``grid.arm_name``, all trained by the
        same programs (one compilation whatever the number of cells); seed ``s`` has the
        same initial draw, data order and dropout keys in every cell.
      shard: a shard of a study (``bench.training.shards``): given the plan's chunk count and one chunk's
        estimated cost, the chunks this process trains into ``store``; chunks another process claims
        (``bench.training.claims``) are left to it. Then no runs are returned: a :class:`ShardWork`.

    Returns:
      A :class:`TaskResult`. Runs whose loss became NaN or inf are marked
      ``diverged`` from that epoch on, with that epoch in ``diverged_epoch``;
      the other runs are unaffected.
    """
    compilation.use_persistent_cache(resume.cache_root())
    loss = check_task(dataset, model, initializers, config, grid, loss)
    names, seeds = list(grids.arms(list(initializers), grid)), list(seeds)
    optimizer = parameterized.recipe(config, model, dataset.input_shape, len(dataset.x_train), grids.injected(grid))
    how = batching_of(model, dataset.input_shape, config.batch_size)
    fp = memory.footprint(model, dataset.input_shape, optimizer, config.batch_size, config.eval_batch_size,
                          how.matmuls)
    data = _OnDevices.of(dataset, fp.eval_chunk)
    step_flops = counted_step_flops(model, dataset.input_shape, config.batch_size, how)
    plan = _plan(fp, data.mesh, len(names), len(seeds), data.bytes, chunk, max_memory, keep_params, how)
    store, keep_params = (resume.NullStore(), keep_params) if store is None else (store, False)
    plan = store.plan(plan, len(seeds))
    unit_cost = float(fp.n_params) * len(dataset.x_train) * config.epochs * plan.models_per_chunk
    groups = plan.seed_groups(seeds)
    mine = devices.my_chunks(plan.n_chunks) if shard is None else list(shard(plan.n_chunks, unit_cost))
    real = memory.real_seeds(groups)
    chunks = _Chunks.empty(len(mine), config.epochs * config.evals_per_epoch + 1, len(data.splits), len(names),
                           plan.seeds_per_chunk, len(data.splits["test"][1]), have_outcomes=not dataset.regression)

    def keys(c: int) -> tuple:
        return jax.device_put(run_keys(experiment_seed, dataset.name, groups[c], data_seeds), data.key_sharding)

    layout = layouts.of(model, optimizer, dataset.input_shape)  # the model's own layout while it trains, if any

    def start_state(init_keys, x):
        return initial_state(model, optimizer, list(initializers.values()), init_keys, dataset.input_shape, x, grid,
                             layout)

    steps = -(-len(dataset.x_train) // config.batch_size)  # minibatch steps per epoch
    desc = f"{dataset.name} ({len(names) * len(seeds)} runs, {len(mine)} chunk(s) of {plan.models_per_chunk})"
    with StepBar(len(mine) * config.epochs * steps, desc, progress) as bar, contextlib.closing(store):
        todo, earlier_s, earlier_seed_epochs = chunks.load_finished(store, mine)
        todo, elsewhere = _claimed(store, todo, dataset.name, sharded=shard is not None)
        if len(todo) < len(mine):
            bar.advance((len(mine) - len(todo)) * config.epochs * steps)
        programs = None
        if todo:
            init_keys, data_keys = keys(todo[0][1])
            trained = model if layout is None else layout.model
            programs = compile_programs(trained, optimizer, config, start_state, (init_keys, data.x), data_keys, data.x,
                                        data.y, data.eval_splits, list(data.splits).index("test"),
                                        data.model_sharding, loss, not dataset.regression, plan.models_per_chunk,
                                        step_flops or 6.0 * fp.n_params * config.batch_size, plan.batching)
            bar.exclude_from_rate()
        trainer = _ChunkTrainer(programs, data, chunks, store, bar, keys, config.epochs, steps,
                                config.evals_per_epoch, len(names), real,
                                keep_params, _same if layout is None else jax.jit(layout.runs(layout.outward)))
        times = side_by_side(trainer, todo, plan.lanes)
    if shard is not None:
        return ShardWork(plan, [c for _, c in todo], [c for c in mine if c not in {c for _, c in todo}
                                                       and c not in elsewhere], elsewhere,
                         programs.compile_s if programs else 0.0, sum(t.train_s for t in times))
    sums, finite, params, outcomes = chunks.gathered(real, keep_params)
    variances = (np.array([dataset.target_variance(sy) for _, sy in data.splits.values()])
                 if dataset.regression else None)
    frame = tidy(records(sums, finite, list(data.splits), data.split_sizes, variances,
                         evaluation_epochs(config.epochs, config.evals_per_epoch)), names, seeds)
    trained = int(devices.gather(np.array([sum(t.seed_epochs for t in times)], np.int32)).sum())  # all processes
    earlier_seed_epochs += sum(t.earlier_seed_epochs for t in times)
    earlier_seed_epochs = int(devices.gather(np.array([earlier_seed_epochs], np.int32)).sum())
    return TaskResult(frame, params, fp.n_params, plan, sum(t.init_s for t in times),
                      programs.compile_s if programs else 0.0, sum(t.train_s for t in times),
                      programs.train_bytes if programs else 0, trained,
                      earlier_s + sum(t.earlier_s for t in times), earlier_seed_epochs, outcomes,
                      step_flops / config.batch_size if step_flops else None, sum(t.draw_s for t in times))
