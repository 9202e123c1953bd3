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
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from bench.data.datasets import Dataset
from bench.errors import UserError
from bench.models import losses
from bench.training import compilation, dedupe, devices, fills, hashes, memory, parameterized, recipes, resume, step
from bench.training import grid as grids
from bench.training.grid import injected  # noqa: F401  (re-exported)
from bench.training.lanes import WallShares, side_by_side
from bench.training.progress import StepBar
from bench.training.recipes import TrainConfig
from bench.training.runs import RunIndex
from initjax import rules, schemes
from initjax.registry import first_line

# name -> optimizer(lr) at a constant rate (the recipes' defaults), for callers that want just that
OPTIMIZERS: dict[str, Callable[[float], optax.GradientTransformation]] = {
    name: (lambda lr, name=name: recipes.build(name, lr)) for name in recipes.OPTIMIZERS
}


@dataclasses.dataclass
class TaskResult:
    """What training one task produced.

    Attributes:
      frame: tidy results, one row per (initializer, seed, epoch), epoch 0 being
        the untrained network.
      params: final parameters, leaves `(n_initializers, n_seeds, ...)` on the
        host; None unless asked for (and always None with several processes).
      n_params: parameters of one run.
      plan: how the runs were split into chunks.
      init_s: seconds spent initializing all runs and evaluating them before training (compilation excluded).
      compile_s: seconds spent lowering and compiling the task's programs (or loading them from the
        persistent compilation cache, ``bench.training.compilation``).
      train_s: seconds spent training and evaluating, compilation excluded (chunks trained side by side:
        the sum of their shares of the wall time, ``bench.training.lanes.WallShares``).
      program_bytes: memory XLA reserves for one chunk's training epoch
        (arguments + outputs + temporaries - donated aliases).
      trained_seed_epochs: run-epochs trained by this call (fewer than runs x
        epochs when chunks were loaded or resumed from a store; padding not counted).
      earlier_train_s, earlier_seed_epochs: training seconds and run-epochs that
        earlier, interrupted or finished, runs spent on the chunks loaded or
        resumed here (as recorded in the store; 0 without one).
      outcomes: per-example ``{"loss", "correct"}`` of every run on the test split
        after the last epoch, `(n_initializers, n_seeds, n_test)`; None when a chunk
        loaded from an older store lacks them.
    """

    frame: pd.DataFrame
    params: dict | None
    n_params: int
    plan: memory.ChunkPlan
    init_s: float
    compile_s: float
    train_s: float
    program_bytes: int
    trained_seed_epochs: int
    earlier_train_s: float = 0.0
    earlier_seed_epochs: int = 0
    outcomes: dict[str, np.ndarray] | None = None


def loss_and_accuracy(logits: jnp.ndarray, labels: jnp.ndarray, output_activation: str):
    """Per-example loss and correctness of a built-in model's head (``bench.models.losses``).

    Args:
      logits: `(batch, 1)` for ``"sigmoid"``, `(batch, n_classes)` for ``"softmax"``.
      labels: `(batch,)` integer classes.
      output_activation: ``"sigmoid"`` (binary cross-entropy) or ``"softmax"``
        (categorical cross-entropy), both computed from logits.

    Returns:
      ``(loss, correct)``, each `(batch,)` float32.
    """
    return model_loss(output_activation)(logits, labels)


def model_loss(loss) -> Callable:
    """``loss(outputs, labels) -> (loss, correct)`` for a loss spec, or a built-in model's ``output_activation``."""
    return losses.get(loss_spec(None, loss))


def loss_spec(model: nn.Module | None, loss=None):
    """The task's loss: ``loss`` when given, else the built-in model's head (``output_activation``),
    with ``"sigmoid"``/``"softmax"`` said as the ``bench.models.losses`` names.

    Raises:
      UserError: neither a loss nor a model head.
    """
    loss = getattr(model, "output_activation", None) if loss is None else loss
    if loss in ("sigmoid", "softmax"):
        return f"{loss}_cross_entropy"
    if loss is None:
        raise UserError("this model names no loss (no output_activation field): give the task a loss, e.g. "
                        "softmax_cross_entropy")
    return loss


def run_keys(experiment_seed: int, dataset: str, seeds: Sequence[int], data_seeds: int = 1):
    """Initialization and data-order keys of each run, shared by all initializers.

    Args:
      seeds: run numbers. With ``data_seeds == 1`` run ``s`` is seed ``s``: its init and
        data-order keys both come from ``s``. With ``data_seeds = K > 1`` run ``r``
        crosses init seed ``r // K`` with data-order seed ``r % K``: the init key is
        that of init seed ``r // K`` (as with ``K = 1``) and the data-order key comes
        from ``r % K`` alone, so every init seed sees the same ``K`` data orders
        (``bench.analysis.crossed``).

    Returns:
      ``(init_keys, data_keys)``, each a key array of shape `(n_runs,)`.
    """
    return _derive_keys(experiment_seed, _name_hash(dataset), _name_hash(f"{dataset}/data-order"),
                        np.asarray(seeds, np.uint32), data_seeds)


def _name_hash(name: str) -> np.uint32:
    return np.uint32(zlib.crc32(name.encode()) & 0x7FFFFFFF)


INTEGER_PROGRAM_OPTIONS = {"xla_backend_optimization_level": 0}
"""XLA options of the programs that compute integers only (the run keys; the epoch orders: hashes and a sort),
whose results no optimization level can change: LLVM's ``-O0`` compiles them in 40-60% of the time (the default
preset's orders 0.81 s -> 0.32 s, its run keys 0.45 s -> 0.26 s), and they run once a chunk or an epoch (the orders
slower by 0.4 s an epoch at 60,000 examples x 32 seeds, where an epoch trains for minutes)."""

QUICK_COMPILE_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
"""XLA options of the programs that run once a chunk or an epoch, not once a step (the initialization, the epoch
orders): XLA's CPU backend emits their fused loops as its earlier emitters did, without the MLIR fusion emitters,
and compiles them in 30-50% less time (the default preset's initialization 0.65 -> 0.43 s, its orders at ``-O0``
0.19 -> 0.09 s; the schemes preset's 4.0 -> 3.3 s, lm-init's 4.5 -> 3.7 s) with the same bits (a test compares
them), and they run as fast (orders of 60,000 examples x 32 seeds: 0.91 s either way). Not for the training
program: its steps ran 12% slower so, and its numbers changed in a model with tanh."""

TRAINING_PROGRAM_OPTIONS = {"xla_cpu_copy_insertion_use_region_analysis": True}
"""XLA options of the training program: copy insertion analyses the scan's body region by region and leaves out
the copies of the parameters it made every step (the default preset's digits MLP: an epoch of a chunk 0.060 ->
0.055 s; the schemes preset's residual MLP 0.186 -> 0.173 s), the same bits (a test compares them)."""


@functools.partial(jax.jit, static_argnums=(0, 4), compiler_options=INTEGER_PROGRAM_OPTIONS)
def _derive_keys(experiment_seed: int, dataset_hash, orders_hash, runs, data_seeds: int):
    """:func:`run_keys` as one compiled program (op by op, its few folds compiled as many programs)."""
    crossed = RunIndex(data_seeds)
    base = jax.random.fold_in(jax.random.key(experiment_seed), dataset_hash)
    seed_keys = jax.vmap(lambda s: jax.random.fold_in(base, s))(crossed.init_seed(runs))
    init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(seed_keys)
    if data_seeds == 1:
        return init_keys, jax.vmap(lambda k: jax.random.fold_in(k, 1))(seed_keys)
    orders = jax.random.fold_in(jax.random.key(experiment_seed), orders_hash)
    return init_keys, jax.vmap(lambda d: jax.random.fold_in(jax.random.fold_in(orders, d), 1))(
        crossed.data_order(runs))


SCHEME_BATCH = 256  # training examples a whole-network init scheme sees per seed


def arm_rules(arm) -> tuple[rules.Rule, ...]:
    """The per-tensor rules of an arm: a rule set as is; an initializer, or a scheme's ``base``, for every kernel."""
    if isinstance(arm, tuple):
        return arm
    return rules.compile_rules(arm.base if schemes.is_scheme(arm) else arm)


def init_params(model: nn.Module, arms: Sequence, init_keys, input_shape: Sequence[int],
                x_train: jnp.ndarray | None = None) -> dict:
    """Initial parameters of every (arm, seed), stacked.

    An arm is an initializer (every kernel), a rule set (``initjax.rules``: by
    parameter path) or a scheme (``initjax.schemes.Scheme``). The model's own
    initializers draw every parameter with the seed's key, once per seed; each arm's rules then
    redraw what they match (``initjax.rules.apply``). A scheme's ``base`` draws every
    kernel, then the scheme transforms the whole params with :data:`SCHEME_BATCH`
    training examples drawn for the seed (``x_train`` is needed then), seeing the
    model in evaluation mode (no dropout; BatchNorm at its initial running statistics).
    A model with a width parameterization then has every tensor multiplied by its init factor
    (``bench.training.parameterized``).

    Every arm of a seed is drawn in one body mapped over the seeds (``lax.map``), so all arms x seeds are one
    compiled loop, and a seed's numbers are those of the seed drawn alone. The body is traced once with each
    repeated operation computed once (``bench.training.dedupe``): the arms of a seed draw from the same keys, so
    most of their random bits are one draw, which XLA would otherwise compile and compute once per arm; and its
    independent hashes (the keys of every parameter, the draws of every parameter) are batched into one hash per
    depth (``bench.training.hashes``: on CPU each hash is a loop XLA compiles on its own). Not
    ``vmap``: on CPU, jaxlib 0.10 runs a batched QR (orthogonal init) through ``ParallelBatchMap`` on XLA's
    intra-op pool and blocks on it, and as many of those as the pool has threads, run concurrently by one
    program, deadlock it (every worker in ``BlockingCounter::Wait``; two orthogonal arms of a 3-layer MLP
    suffice on 2 cores). Mapped, every QR has a batch of one and runs inline.

    Returns:
      Params pytree with leaves `(n_arms, n_seeds, ...)`.
    """
    forward = step.forward_of(model, input_shape)
    sample = jnp.zeros((1, *input_shape), jnp.float32)
    apply_fn = forward.probe(input_shape) if any(schemes.is_scheme(arm) for arm in arms) else None
    by_arm = [arm_rules(arm) for arm in arms]
    factors = parameterized.init_factors(model, input_shape)  # None: the model has no width parameterization

    def one_seed(key):
        own = forward.init(key, sample)[0]  # the model's own draws, shared by every arm of the seed
        drawn = []
        for arm, by in zip(arms, by_arm):
            params = rules.apply(jax.random.fold_in(key, 4), own, by)
            if schemes.is_scheme(arm):
                n = x_train.shape[0]
                batch = x_train[
                    jax.random.choice(jax.random.fold_in(key, 2), n, (min(SCHEME_BATCH, n),), replace=False)
                ]
                params = arm(jax.random.fold_in(key, 3), params, apply_fn, batch)
            if factors is not None:
                params = jax.tree.map(lambda leaf, f: leaf * jnp.asarray(f, leaf.dtype), params, factors)
            drawn.append(params)
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *drawn)

    per_seed = jax.lax.map(hashes.batched_hashes(dedupe.deduplicated(one_seed)), init_keys)
    return jax.tree.map(lambda leaf: jnp.swapaxes(leaf, 0, 1), per_seed)


def initial_state(model: nn.Module, optimizer: optax.GradientTransformation, arms: Sequence, init_keys,
                  input_shape: Sequence[int], x_train: jnp.ndarray | None = None,
                  grid: grids.Grid = grids.Grid()) -> step.RunState:
    """The :class:`bench.training.step.RunState` of every (initializer, cell, seed) before training.

    Every initializer in ``arms`` is crossed with every cell of ``grid`` (initializer-major):
    leaves `(n_arms * n_cells, n_seeds, ...)`. The cells of one initializer start from the
    same draw (common random numbers), times their init scale where ``grid.init_scale_on``
    matches; their optimizer states hold their own hyperparameters (``optimizer`` built
    with the grid's optimizer factors injected).
    """
    params = with_init_scales(init_params(model, arms, init_keys, input_shape, x_train), grid)
    forward = step.forward_of(model, input_shape)
    _, model_state = forward.init(jax.random.key(0), jnp.zeros((1, *input_shape), jnp.float32))
    runs = (len(arms) * len(grid.cells()), init_keys.shape[0])
    model_state = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (*runs, *leaf.shape)), model_state)
    opt_state = set_hyperparameters(jax.vmap(jax.vmap(optimizer.init))(params), grid, len(arms))
    return step.RunState(params, opt_state, model_state)


def with_init_scales(params, grid: grids.Grid):
    """Params `(n_inits, n_seeds, ...)` crossed with the grid's cells: `(n_inits * n_cells, n_seeds, ...)`.

    Leaves that ``grid.init_scale_on`` matches are multiplied by each cell's init scale;
    the others are repeated as drawn.
    """
    cells = grid.cells()
    scales = np.array([cell.get("init_scale", 1.0) for cell in cells], np.float32)
    if len(cells) == 1 and scales[0] == 1.0:
        return params

    def crossed(path, leaf):
        factor = scales if rules.matches(grid.init_scale_on, rules.path_name(path)) else np.ones_like(scales)
        factor = jnp.asarray(factor, leaf.dtype).reshape(1, -1, *([1] * (leaf.ndim - 1)))
        scaled = leaf[:, None] * factor
        return scaled.reshape(-1, *leaf.shape[1:])

    return jax.tree_util.tree_map_with_path(crossed, params)


def grid_values(grid: grids.Grid, n_inits: int) -> dict[str, np.ndarray]:
    """Each optimizer factor of the grid per arm, `(n_inits * n_cells,)`, initializer-major."""
    cells = grid.cells()
    return {factor: np.tile(np.array([cell[factor] for cell in cells], np.float64), n_inits)
            for factor in grid.factors if factor in grids.OPTIMIZER_FACTORS}


def set_hyperparameters(opt_state, grid: grids.Grid, n_inits: int):
    """Optimizer states `(n_arms, n_seeds, ...)` of an injected recipe with each arm's grid values set."""
    values = grid_values(grid, n_inits)
    if not values:
        return opt_state
    hyperparams = dict(opt_state.hyperparams)
    for factor, per_arm in values.items():
        held = hyperparams[factor]
        hyperparams[factor] = jnp.broadcast_to(jnp.asarray(per_arm, held.dtype)[:, None], held.shape)
    return opt_state._replace(hyperparams=hyperparams)


def check_scale_pattern(model: nn.Module, input_shape: Sequence[int], grid: grids.Grid) -> None:
    """Raises UserError when the grid scales initial parameters and its pattern matches none of the model's."""
    if not grid.init_scale:
        return
    forward = step.forward_of(model, input_shape)
    params = jax.eval_shape(lambda x: forward.init(jax.random.key(0), x)[0],
                            jax.ShapeDtypeStruct((1, *input_shape), jnp.float32))
    names = [rules.path_name(path) for path, _ in jax.tree.leaves_with_path(params)]
    if not any(rules.matches(grid.init_scale_on, name) for name in names):
        raise UserError(f"init_scale_on {grid.init_scale_on!r} matches no parameter of this model (its parameters: "
                        f"{', '.join(names)}); fix the pattern")


def check_on_model(model: nn.Module, arms: Mapping[str, object], input_shape: Sequence[int]) -> None:
    """Traces each arm's initializers on the parameters they draw (``jax.eval_shape``: nothing is computed).

    ``initjax.check`` tries a small kernel; this tries the model's real parameters
    (4-D conv kernels, wide layers), where a user initializer may still fail, and
    refuses a rule that draws no parameter (a typo in a path pattern).

    Raises:
      UserError: naming the arm and parameter that failed, gave the wrong shape or
        dtype, or the rule that matches nothing.
    """
    try:
        forward = step.forward_of(model, input_shape)
        params = jax.eval_shape(lambda x: forward.init(jax.random.key(0), x)[0],
                                jax.ShapeDtypeStruct((1, *input_shape), jnp.float32))
    except Exception as error:  # user models may raise anything; name it
        raise UserError(f"model {type(model).__name__} failed on inputs of shape {[1, *input_shape]}: "
                        f"{first_line(error)}") from None
    leaves = {rules.path_name(path): leaf for path, leaf in jax.tree.leaves_with_path(params)}
    for name, arm in arms.items():
        if schemes.is_scheme(arm):
            _check_scheme(name, arm, model, input_shape, params)
        by = arm_rules(arm)
        unused = rules.unmatched_rules(list(leaves), by)
        if unused:
            raise UserError(f"{name!r}: the rule {unused[0]!r} draws no parameter of this model (its parameters: "
                            f"{', '.join(leaves)}); fix the pattern")
        for where, index in rules.assign(list(leaves), by).items():
            kernel, init = leaves[where], by[index][1]
            try:
                got = jax.eval_shape(lambda k=kernel, f=init: f(jax.random.key(0), k.shape, k.dtype))
            except Exception as error:  # user code may raise anything; name it
                raise UserError(f"initializer {name!r} failed on the parameter {where} of shape "
                                f"{list(kernel.shape)}: {first_line(error)}") from None
            if not isinstance(got, jax.ShapeDtypeStruct):
                raise UserError(f"initializer {name!r} returned {type(got).__name__} for the parameter {where}; "
                                "it must follow init(key, shape, dtype) -> Array")
            if (got.shape, got.dtype) != (kernel.shape, kernel.dtype):
                raise UserError(f"initializer {name!r} gave {got.dtype}{list(got.shape)} for the parameter {where} "
                                f"of shape {list(kernel.shape)} {kernel.dtype}; it must follow "
                                "init(key, shape, dtype) -> Array")


def _check_scheme(name, scheme, model, input_shape, expected) -> None:
    """Traces a scheme on the model; raises UserError naming it if it fails or changes the params' structure."""
    batch = jax.ShapeDtypeStruct((SCHEME_BATCH, *input_shape), jnp.float32)
    by = arm_rules(scheme)

    forward = step.forward_of(model, input_shape)

    def traced(x):
        key = jax.random.key(0)
        return scheme(jax.random.key(1), rules.apply(key, forward.init(key, x[:1])[0], by),
                      forward.probe(input_shape), x)

    try:
        got = jax.eval_shape(traced, batch)
    except Exception as error:  # user or scheme code may raise anything; name it
        raise UserError(f"init scheme {name!r} failed on this model: {first_line(error)}") from None
    if jax.tree.structure(got) != jax.tree.structure(expected) or any(
            (a.shape, a.dtype) != (b.shape, b.dtype) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected))):
        raise UserError(f"init scheme {name!r} returned parameters of another structure or shape than the model's")


def epoch_order(data_key, epoch, n: int, padded: int) -> jnp.ndarray:
    """Example indices of one epoch, a fresh permutation, `(padded,)`.

    The padding of the last, partial minibatch repeats the permutation's first
    examples: their loss weight is 0, so no update changes, and a model that
    normalizes by batch statistics (BatchNorm) sees a batch of real examples.
    """
    perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), n)
    return perm[jnp.arange(padded) % n]


def epoch_orders(data_keys, epoch, n: int, batch_size: int) -> jnp.ndarray:
    """Example indices of every seed's minibatches in ``epoch``, `(steps, n_seeds, batch_size)`
    (:func:`epoch_order` per seed; the last minibatch padded)."""
    steps = -(-n // batch_size)
    order = jax.vmap(lambda key: epoch_order(key, epoch, n, steps * batch_size))(data_keys)
    return order.reshape(-1, steps, batch_size).swapaxes(0, 1)


def make_train_steps(model: nn.Module, optimizer: optax.GradientTransformation, batch_size: int, segment: int,
                     loss=None):
    """Builds ``train_steps(state, data_keys, epoch, order, first, x, y)``: ``segment`` minibatch steps of every run.

    The single-run step (``bench.training.step.make_step``) is batched once over runs
    (``bench.training.step.over_runs``) and scanned over steps ``first, ..., first + segment - 1``
    of the epoch whose minibatches are ``order`` (:func:`epoch_orders`); steps past the epoch's
    end change nothing (the last segment of an epoch whose step count ``segment`` does not
    divide). An epoch trained in segments is the epoch trained at once, number for number: the
    state passes from one segment to the next as it passes from one step to the next.

    ``loss``: a loss spec (``bench.models.losses``); None: the built-in model's ``output_activation``.

    Args of the returned function:
      state: a :class:`bench.training.step.RunState` with leaves `(n_arms, n_seeds, ...)`.
      data_keys: `(n_seeds,)` keys; epoch, first: int32 scalars.
      order: `(steps, n_seeds, batch_size)`; x: `(n, *input_shape)`; y: `(n, ...)`.

    Returns of the returned function:
      ``(state, finite)``, ``finite`` `(n_arms, n_seeds)` bool: False where any
      minibatch loss of the segment was NaN or inf.
    """

    loss_fn = losses.get(loss_spec(model, loss))

    def train_steps(state, data_keys, epoch, order, first, x, y):
        forward = step.forward_of(model, x.shape[1:])
        one_step = step.make_step(forward, loss_fn, optimizer)
        runs_step = step.over_runs(one_step, seed_axes=(0, 0, 0, None, 0 if forward.stochastic else None))
        steps, n = order.shape[0], x.shape[0]
        runs = jax.tree.leaves(state.params)[0].shape[:2]

        def one(state, i):
            idx = order[i]  # (seeds, batch)
            weights = (i * batch_size + jnp.arange(batch_size) < n).astype(x.dtype)
            keys = jax.vmap(lambda k: step.dropout_key(k, epoch, i))(data_keys) if forward.stochastic else None
            state, loss = runs_step(state, x[idx], y[idx], weights, keys)
            return state, jnp.isfinite(loss)

        def body(state, i):
            if steps % segment == 0:
                return one(state, i)
            return jax.lax.cond(i < steps, one, lambda state, i: (state, jnp.ones(runs, bool)), state, i)

        state, finite = jax.lax.scan(body, state, first + jnp.arange(segment))
        return state, finite.all(axis=0)

    return train_steps


def make_train_epoch(model: nn.Module, optimizer: optax.GradientTransformation, batch_size: int, loss=None):
    """Builds ``train_epoch(state, data_keys, epoch, x, y) -> (state, finite)``: one whole epoch of every run
    (:func:`make_train_steps` over all the epoch's steps at once; the suite trains in segments of it)."""

    def train_epoch(state, data_keys, epoch, x, y):
        order = epoch_orders(data_keys, epoch, x.shape[0], batch_size)
        train_steps = make_train_steps(model, optimizer, batch_size, order.shape[0], loss)
        return train_steps(state, data_keys, epoch, order, jnp.asarray(0, jnp.int32), x, y)

    return train_epoch


SEGMENT_FLOPS = 12.5e9  # training FLOPs per segment of an epoch: about 0.2 s on one CPU core
MAX_SEGMENTS = 50  # segments of an epoch at most: progress at 2% of an epoch


def segment_steps(steps: int, flops_per_step: float) -> int:
    """Minibatch steps per call of the training program: the epoch split so each call does about
    :data:`SEGMENT_FLOPS` (progress within a long epoch, nothing more for a short one), at most
    :data:`MAX_SEGMENTS` calls an epoch."""
    calls = min(MAX_SEGMENTS, steps, max(1, math.ceil(steps * flops_per_step / SEGMENT_FLOPS)))
    return -(-steps // calls)


def _not_final() -> jax.Array:
    """The evaluation's ``final`` argument off: not the last epoch (put on the device; ``jnp.asarray`` compiles)."""
    return jax.device_put(np.bool_(False))


def chunked_for_eval(x: np.ndarray, y: np.ndarray, chunk: int):
    """Pads a split to whole chunks: `(n_chunks, chunk, *input_shape)`, `(n_chunks, chunk, *target_shape)`, weights."""
    n = x.shape[0]
    chunk = min(chunk, n)
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n
    xs = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]).reshape(n_chunks, chunk, *x.shape[1:])
    ys = np.concatenate([y, np.zeros((pad, *y.shape[1:]), y.dtype)]).reshape(n_chunks, chunk, *y.shape[1:])
    ws = (np.arange(n_chunks * chunk) < n).astype(np.float32).reshape(n_chunks, chunk)
    return jax.device_put(xs), jax.device_put(ys), jax.device_put(ws)  # (jnp.asarray compiles a copy per shape)


def make_evaluate(model: nn.Module, loss=None):
    """Builds ``evaluate(state, xs, ys, ws) -> sums`` `(n_arms, n_seeds, 2)`.

    ``sums[..., 0]`` is the summed loss and ``sums[..., 1]`` the summed metric (correct
    predictions; squared errors for a regression loss) over the split; the caller
    divides by the split size in float64, so an accuracy of 168/200 is recorded as
    0.84, not float32's 0.83999997.

    The split comes chunked by :func:`chunked_for_eval`; chunks are scanned so memory
    stays `O(n_models x chunk)` whatever the split size.
    """

    loss_fn = losses.get(loss_spec(model, loss))

    def evaluate(state, xs, ys, ws):
        sums = step.make_sums(step.forward_of(model, xs.shape[2:]), loss_fn)
        per_run = step.over_runs(sums, seed_axes=(0, None, None, None))

        def body(total, chunk):
            return total + per_run(state, *chunk), None

        n_runs = jax.tree.leaves(state.params)[0].shape[:2]
        total, _ = jax.lax.scan(body, jnp.zeros((*n_runs, 2), jnp.float32), (xs, ys, ws))
        return total

    return evaluate


def make_outcomes(model: nn.Module, loss=None):
    """Builds ``outcomes(state, xs, ys, ws) -> (loss, correct)``, each `(n_arms, n_seeds, n_chunks * chunk)` float.

    Per-example loss and correctness of every run on a split chunked by
    :func:`chunked_for_eval` (the padding at the end is the caller's to drop): what a
    report needs to count the test set's own sampling error (``bench.analysis.outcomes``).
    """

    loss_fn = losses.get(loss_spec(model, loss))

    def outcomes(state, xs, ys, ws):
        per_example = step.make_per_example(step.forward_of(model, xs.shape[2:]), loss_fn)
        per_run = step.over_runs(per_example, seed_axes=(0, None, None))
        loss, correct = jax.lax.map(lambda chunk: per_run(state, *chunk), (xs, ys))
        flat = lambda a: jnp.moveaxis(a, 0, -2).reshape(*a.shape[1:3], -1)  # noqa: E731
        return flat(loss), flat(correct)  # 0/1 per example, or a sequence's share of positions right

    return outcomes


def _program_bytes(compiled) -> int:
    stats = compiled.memory_analysis()
    if stats is None:
        return 0
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
               - stats.alias_size_in_bytes)


def make_evaluate_splits(model: nn.Module, loss=None):
    """Builds ``evaluate_splits(state, splits) -> sums`` `(n_splits, 2, n_arms, n_seeds)`: :func:`make_evaluate`
    on every split of the tuple ``(chunked_for_eval(...), ...)``, in its order, in one program (a tuple: a dict
    passed to a jitted function comes back in sorted key order)."""
    evaluate = make_evaluate(model, loss)

    def evaluate_splits(state, splits):
        return jnp.stack([jnp.moveaxis(evaluate(state, *chunks), -1, 0) for chunks in splits])

    return evaluate_splits


@dataclasses.dataclass(frozen=True)
class _ChunkTimes:
    """What training one chunk took: seconds are its share of the wall time (``lanes.WallShares``)."""

    init_s: float
    train_s: float
    seed_epochs: int
    earlier_s: float  # recorded by the run that checkpointed it
    earlier_seed_epochs: int


@dataclasses.dataclass
class _Programs:
    """The compiled programs of a task, reused by every chunk: four a task, each piece of work compiled once.

    ``start(init_keys, x_train) -> state``: the initial state of every run. ``orders(data_keys, epoch) -> order``:
    the epoch's minibatches. ``steps(state, data_keys, epoch, order, first, x, y) -> (state, finite)``: ``segment``
    training steps from step ``first``. ``evaluate(state, splits, final) -> (sums, outcomes)``: every split
    evaluated (``splits``: the tuple of the chunked splits, :func:`chunked_for_eval`, the test split at
    ``test_index``) and, when ``final``, the per-example outcomes on the test split (zeros otherwise; None for
    regression); it evaluates the initial state (epoch 0) as it evaluates every epoch's end, so the evaluation is
    compiled once, not into both the start and the training programs.
    """

    start: Callable
    orders: Callable
    steps: Callable
    evaluate: Callable
    segment: int
    n_steps: int
    compile_s: float
    train_bytes: int

    def run_epoch(self, state, data_keys, epoch: int, final: bool, x, y, splits, on_steps: Callable[[int], None]):
        """Trains and evaluates one epoch of every run of a chunk, segment after segment.

        ``on_steps(k)`` is told when ``k`` more steps have finished (the next segment is already
        queued, so the device does not wait on the host).

        Returns:
          ``(state, finite, sums, outcomes)``: ``finite`` `(n_arms, n_seeds)` numpy bool, ``sums``
          `(n_splits, 2, n_arms, n_seeds)` numpy, ``outcomes`` as the program gives them (on device).
        """
        epoch_arg = jax.device_put(np.int32(epoch))  # (put, not jnp.asarray: that compiles a program)
        order = self.orders(data_keys, epoch_arg)
        pending, finite = [], np.ones(0, bool)

        def finish_oldest():
            nonlocal finite
            ok, done = pending.pop(0)
            finite = np.asarray(ok) if finite.size == 0 else finite & np.asarray(ok)
            on_steps(done)

        for first in range(0, self.n_steps, self.segment):
            state, ok = self.steps(state, data_keys, epoch_arg, order, jax.device_put(np.int32(first)), x, y)
            pending.append((ok, min(self.segment, self.n_steps - first)))
            if len(pending) > 1:
                finish_oldest()
        sums, outcomes = self.evaluate(state, splits, jax.device_put(np.bool_(final)))
        while pending:
            finish_oldest()
        return state, finite, np.asarray(sums), outcomes


def _compile_programs(model, optimizer, config, start_state, start_args, data_keys, x, y, eval_splits,
                      test_index: int, model_sharding, loss=None, with_outcomes: bool = True, models_per_chunk: int = 1,
                      n_params: int = 1) -> _Programs:
    """Compiles the task's programs (:class:`_Programs`) for the arguments of a chunk (``start_args``:
    its init keys and the training inputs; ``data_keys``: its data-order keys)."""
    evaluate_splits = make_evaluate_splits(model, loss)
    outcomes_of = make_outcomes(model, loss) if with_outcomes else None
    start_parts = fills.split(start_state, *start_args)  # its one-value leaves are made on the host, not compiled
    state = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=model_sharding),
                         start_parts.shapes)
    n_steps = -(-x.shape[0] // config.batch_size)
    segment = segment_steps(n_steps, 6.0 * n_params * config.batch_size * models_per_chunk)
    train_steps = make_train_steps(model, optimizer, config.batch_size, segment, loss)
    n_test = eval_splits[test_index][0].shape[0] * eval_splits[test_index][0].shape[1]

    def evaluate(state, splits, final):
        sums = evaluate_splits(state, splits)
        if outcomes_of is None:
            return sums, None
        runs = jax.tree.leaves(state.params)[0].shape[:2]
        none = (jnp.zeros((*runs, n_test), jnp.float32), jnp.zeros((*runs, n_test), jnp.float32))
        return sums, jax.lax.cond(final, lambda state: outcomes_of(state, *splits[test_index]),
                                  lambda state: none, state)

    epoch = jax.device_put(np.int32(1))
    orders = functools.partial(epoch_orders, n=x.shape[0], batch_size=config.batch_size)
    order = jax.eval_shape(orders, data_keys, epoch)
    (start_program, orders_program, steps_program, evaluate_program), compile_s = compilation.compile_programs(
        (start_parts.computed, start_args, (), model_sharding, QUICK_COMPILE_OPTIONS),
        (orders, (data_keys, epoch), (), None, {**INTEGER_PROGRAM_OPTIONS, **QUICK_COMPILE_OPTIONS}),
        (train_steps, (state, data_keys, epoch, order, epoch, x, y), (0,), (model_sharding, model_sharding),
         TRAINING_PROGRAM_OPTIONS),
        (evaluate, (state, eval_splits, _not_final()), (), (None, model_sharding if outcomes_of else None)))

    def start(*args):
        return fills.assemble(start_parts, start_program(*args), model_sharding)

    return _Programs(start, orders_program, steps_program, evaluate_program, segment, n_steps, compile_s,
                     max(_program_bytes(steps_program), _program_bytes(evaluate_program)))


def _plan(fp: memory.Footprint, mesh, n_inits: int, n_seeds: int, data_bytes: int, chunk, max_memory,
          keep_params: bool) -> memory.ChunkPlan:
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
                           n_processes=jax.process_count(), chunk=chunk, lanes=lanes)

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
    optimizer = parameterized.optimizer(config.optax(len(dataset.x_train), grids.injected(grid)), model,
                                        dataset.input_shape, config.optimizer)
    fp = memory.footprint(model, dataset.input_shape, optimizer, config.batch_size, config.eval_batch_size)
    arrays = [dataset.x_train, dataset.y_train, *(a for pair in dataset.splits().values() for a in pair)]
    data_bytes = sum(np.asarray(a).nbytes for a in arrays)
    _plan(fp, devices.local_mesh(), n_arms, n_seeds, data_bytes, chunk, max_memory, False)


def _records(sums: np.ndarray, finite: np.ndarray, splits: list[str], split_sizes: np.ndarray,
             target_variances: np.ndarray | None = None) -> list[dict]:
    """Per-epoch metric arrays `(n_arms, n_seeds)` from the evaluation sums.

    Args:
      sums: `(epochs + 1, n_splits, 2, n_arms, n_seeds)` summed loss and metric
        (float32, as computed); divided by the split sizes in float64, so an accuracy
        of 168/200 is recorded as 0.84.
      finite: `(epochs + 1, n_arms, n_seeds)`: every minibatch loss of the epoch was finite.
      target_variances: `(n_splits,)` for a regression loss, whose summed metric is
        the squared error: recorded as ``{split}_r2`` (``bench.models.losses.r2``); None for
        classification (``{split}_accuracy``).

    A run is diverged from the first epoch with a non-finite minibatch or evaluation loss on.
    """
    metrics = np.asarray(sums, np.float64) / split_sizes[None, :, None, None, None]
    bad = ~finite | ~np.isfinite(metrics[:, :, 0]).all(axis=1)
    diverged = np.logical_or.accumulate(bad, axis=0)
    records = []
    for epoch in range(sums.shape[0]):
        record = {"epoch": epoch}
        for j, split in enumerate(splits):
            record[f"{split}_loss"] = metrics[epoch, j, 0]
            if target_variances is None:
                record[f"{split}_accuracy"] = metrics[epoch, j, 1]
            else:
                record[f"{split}_r2"] = losses.r2(metrics[epoch, j, 1], target_variances[j])
        records.append({**record, "diverged": diverged[epoch]})
    return records


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
) -> TaskResult:
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

    Returns:
      A :class:`TaskResult`. Runs whose loss became NaN or inf are marked
      ``diverged`` from that epoch on, with that epoch in ``diverged_epoch``;
      the other runs are unaffected.
    """
    compilation.use_persistent_cache(resume.cache_root())
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
    names, seeds = list(grids.arms(list(initializers), grid)), list(seeds)
    optimizer = parameterized.optimizer(config.optax(len(dataset.x_train), grids.injected(grid)), model,
                                        dataset.input_shape, config.optimizer)
    mesh = devices.local_mesh()
    model_sharding, key_sharding = devices.seed_sharding(mesh, 1), devices.seed_sharding(mesh, 0)
    x_train, y_train = jax.device_put((dataset.x_train, dataset.y_train), devices.replicated(mesh))
    splits = dataset.splits()
    eval_splits = tuple(jax.device_put(chunked_for_eval(x, y, config.eval_batch_size), devices.replicated(mesh))
                        for x, y in splits.values())
    split_sizes = np.array([len(y) for _, y in splits.values()], np.float64)

    fp = memory.footprint(model, dataset.input_shape, optimizer, config.batch_size, config.eval_batch_size)
    plan = _plan(fp, mesh, len(names), len(seeds), memory.tree_bytes((x_train, y_train, eval_splits)), chunk,
                 max_memory, keep_params)
    if store is None:
        store = resume.NullStore()
    else:
        keep_params = False
    plan = store.plan(plan, len(seeds))
    groups = plan.seed_groups(seeds)
    mine = devices.my_chunks(plan.n_chunks)

    def start_state(keys, x):
        return initial_state(model, optimizer, list(initializers.values()), keys, dataset.input_shape, x, grid)

    real = memory.real_seeds(groups)
    sums = np.zeros((len(mine), config.epochs + 1, len(splits), 2, len(names), plan.seeds_per_chunk), np.float32)
    finite = np.ones((len(mine), config.epochs + 1, len(names), plan.seeds_per_chunk), np.float32)
    n_test = len(splits["test"][1])
    test_loss = np.zeros((len(mine), len(names), plan.seeds_per_chunk, n_test), np.float32)
    # float: a language model's per-example accuracy is the share of its positions predicted right
    test_correct = np.zeros((len(mine), len(names), plan.seeds_per_chunk, n_test), np.float32)
    shapes = {"sums": sums.shape[1:], "finite": finite.shape[1:], "test_loss": test_loss.shape[1:]}
    have_outcomes = not dataset.regression  # per-example correctness: classification only
    finals = [None] * len(mine)
    steps = -(-len(dataset.x_train) // config.batch_size)  # minibatch steps per epoch
    earlier_s = compile_s = 0.0
    earlier_seed_epochs = 0
    desc = f"{dataset.name} ({len(names) * len(seeds)} runs, {len(mine)} chunk(s) of {plan.models_per_chunk})"
    with StepBar(len(mine) * config.epochs * steps, desc, progress) as bar:
        todo = []
        for i, c in enumerate(mine):
            done = store.finished(c, shapes)
            if done is None:
                todo.append((i, c))
                continue
            sums[i], finite[i] = done.sums, done.finite
            if done.outcomes is None:
                have_outcomes = False
            else:
                test_loss[i], test_correct[i] = done.outcomes
            earlier_s, earlier_seed_epochs = earlier_s + done.seconds, earlier_seed_epochs + done.seed_epochs
            bar.advance(config.epochs * steps)
        programs = None
        if todo:
            init_keys, data_keys = jax.device_put(run_keys(experiment_seed, dataset.name, groups[todo[0][1]],
                                                           data_seeds), key_sharding)
            programs = _compile_programs(
                model, optimizer, config, start_state, (init_keys, x_train), data_keys, x_train, y_train,
                eval_splits, list(splits).index("test"), model_sharding, loss, not dataset.regression,
                plan.models_per_chunk, fp.n_params)
            compile_s = programs.compile_s
            bar.exclude_from_rate()
        host = threading.Lock()  # the bar and the store, shared by the lanes
        shares = WallShares()

        def train_chunk(item: tuple[int, int], check: Callable[[], None]) -> _ChunkTimes:
            """Trains chunk ``c`` (row ``i`` of the arrays above) from its start or checkpoint to its end."""
            i, c = item
            init_keys, data_keys = jax.device_put(run_keys(experiment_seed, dataset.name, groups[c], data_seeds),
                                                  key_sharding)
            shares.start(c)
            try:
                return train_started_chunk(i, c, init_keys, data_keys, check)
            finally:
                shares.stop(c)

        def train_started_chunk(i, c, init_keys, data_keys, check) -> _ChunkTimes:
            state = programs.start(init_keys, x_train)
            first_sums = np.asarray(programs.evaluate(state, eval_splits, _not_final())[0])
            init_s = shares.seconds(c)
            with host:
                saved = store.checkpoint(c, shapes, [leaf.shape for leaf in jax.tree.leaves(state)])
            before_s, before_seed_epochs = (saved.seconds, saved.seed_epochs) if saved is not None else (0.0, 0)
            if saved is not None:
                state = jax.device_put(jax.tree.unflatten(jax.tree.structure(state), saved.leaves), model_sharding)
                sums[i], finite[i] = saved.sums, saved.finite
                with host:
                    bar.advance(saved.epoch * steps)
            else:
                sums[i, 0] = first_sums

            def on_steps(k: int) -> None:
                with host:
                    bar.advance(k)
                check()

            seed_epochs, outcomes = 0, None
            for epoch in range(1 if saved is None else saved.epoch + 1, config.epochs + 1):
                state, finite[i, epoch], sums[i, epoch], outcomes = programs.run_epoch(
                    state, data_keys, epoch, epoch == config.epochs, x_train, y_train, eval_splits, on_steps)
                seed_epochs += len(names) * sum(real[c])
                with host:
                    if epoch < config.epochs and store.due():
                        store.save_checkpoint(c, epoch, state, sums[i], finite[i],
                                              before_s + shares.seconds(c) - init_s,
                                              before_seed_epochs + seed_epochs)
            kept = None
            if outcomes is not None:
                loss, correct = outcomes
                test_loss[i], test_correct[i] = np.asarray(loss)[..., :n_test], np.asarray(correct)[..., :n_test]
                kept = (test_loss[i], test_correct[i])
            seconds = shares.seconds(c) - init_s
            with host:
                store.save_finished(c, sums[i], finite[i], before_s + seconds, before_seed_epochs + seed_epochs, kept)
            if keep_params:
                finals[i] = jax.tree.map(np.asarray, state.params)
            return _ChunkTimes(init_s, seconds, seed_epochs, before_s, before_seed_epochs)

        times = side_by_side(train_chunk, todo, plan.lanes)
    init_s = sum(t.init_s for t in times)
    train_s = sum(t.train_s for t in times)
    trained = sum(t.seed_epochs for t in times)
    earlier_s += sum(t.earlier_s for t in times)
    earlier_seed_epochs += sum(t.earlier_seed_epochs for t in times)
    sums, finite = devices.gather(sums), devices.gather(finite)
    test_loss, test_correct = devices.gather(test_loss), devices.gather(test_correct)
    have_outcomes = bool(devices.gather(np.array([have_outcomes])).all())
    trained = int(devices.gather(np.array([trained], np.int32)).sum())  # over all processes
    earlier_seed_epochs = int(devices.gather(np.array([earlier_seed_epochs], np.int32)).sum())
    keep = np.concatenate(real)
    sums = np.concatenate(list(sums), axis=-1)[..., keep]  # (epochs + 1, splits, 2, inits, seeds)
    finite = np.concatenate(list(finite), axis=-1)[..., keep] > 0  # (epochs + 1, inits, seeds)
    params = None
    if keep_params and jax.process_count() == 1:
        params = jax.tree.map(lambda *leaves: np.concatenate(leaves, axis=1)[:, keep], *finals)
    outcomes = None
    if have_outcomes:
        outcomes = {"loss": np.concatenate(list(test_loss), axis=1)[:, keep],
                    "correct": np.concatenate(list(test_correct), axis=1)[:, keep]}
    variances = np.array([dataset.target_variance(y) for _, y in splits.values()]) if dataset.regression else None
    frame = _tidy(_records(sums, finite, list(splits), split_sizes, variances), names, seeds)
    return TaskResult(frame, params, fp.n_params, plan, init_s, compile_s, train_s,
                      programs.train_bytes if programs else 0, trained, earlier_s, earlier_seed_epochs, outcomes)


def _tidy(records: list[dict], names: Sequence[str], seeds: Sequence[int]) -> pd.DataFrame:
    """Stacks per-epoch `(n_inits, n_seeds)` arrays into one row per (initializer, seed, epoch)."""
    init_index, seed_index = np.meshgrid(np.arange(len(names)), np.arange(len(seeds)), indexing="ij")
    frames = []
    for rec in records:
        columns = {
            "arm": np.asarray(names, dtype=object)[init_index.ravel()],
            "seed": np.asarray(seeds)[seed_index.ravel()],
            "epoch": rec["epoch"],
        }
        columns.update({k: np.ravel(v) for k, v in rec.items() if k != "epoch"})
        frames.append(pd.DataFrame(columns))
    frame = pd.concat(frames, ignore_index=True).sort_values(
        ["arm", "seed", "epoch"], key=_order(names), kind="stable").reset_index(drop=True)
    first = frame["epoch"].where(frame["diverged"]).groupby([frame["arm"], frame["seed"]]).transform("min")
    frame["diverged_epoch"] = first.astype("Int64")  # first diverged epoch of the run; empty if it never diverged
    return frame


def _order(names):
    rank = {name: i for i, name in enumerate(names)}
    return lambda col: col.map(rank) if col.name == "arm" else col
