"""The compiled programs of a task: the epoch orders, the training steps, the evaluation, and how they are
compiled once for every chunk of a task (:func:`compile_programs`)."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.errors import UserError, option
from bench.models import losses
from bench.training import compilation, fills, speedups, step
from bench.training.batching import ALL_AT_ONCE, Batching
from bench.training.objective import loss_spec


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
                     loss=None, batching: Batching = ALL_AT_ONCE, stops: bool = False):
    """Builds ``train_steps(state, data_keys, epoch, order, first, stop, x, y)``: up to ``segment`` minibatch steps
    of every run.

    The single-run step (``bench.training.step.make_step``) is batched once over runs
    (``bench.training.step.over_runs``) and scanned over steps ``first, ..., first + segment - 1``
    of the epoch whose minibatches are ``order`` (:func:`epoch_orders`); steps past the epoch's
    end change nothing (the last segment of an epoch whose step count ``segment`` does not
    divide), nor, with ``stops``, steps from ``stop`` on (a call that ends at an evaluation within the epoch;
    without ``stops`` the argument is unused). An epoch trained in segments is the epoch trained at once, number
    for number: the state passes from one segment to the next as it passes from one step to the next.

    ``loss``: a loss spec (``bench.models.losses``); None: the built-in model's ``output_activation``.
    ``batching``: how the runs are batched (``bench.training.batching``: vmapped, or one after the other).

    Args of the returned function:
      state: a :class:`bench.training.step.RunState` with leaves `(n_arms, n_seeds, ...)`.
      data_keys: `(n_seeds,)` keys; epoch, first, stop: int32 scalars.
      order: `(steps, n_seeds, batch_size)`; x: `(n, *input_shape)`; y: `(n, ...)`.

    Returns of the returned function:
      ``(state, finite)``, ``finite`` `(n_arms, n_seeds)` bool: False where any
      minibatch loss of the segment was NaN or inf.
    """

    loss_fn = losses.get(loss_spec(model, loss))

    def train_steps(state, data_keys, epoch, order, first, stop, x, y):
        forward = step.forward_of(model, x.shape[1:], batching.matmuls)
        one_step = step.make_step(forward, loss_fn, optimizer)
        runs_step = step.over_runs(one_step, seed_axes=(0, 0, 0, None, 0 if forward.stochastic else None),
                                   sequential=batching.sequential)
        steps, n = order.shape[0], x.shape[0]
        runs = jax.tree.leaves(state.params)[0].shape[:2]

        def one(state, i):
            idx = order[i]  # (seeds, batch)
            weights = (i * batch_size + jnp.arange(batch_size) < n).astype(x.dtype)
            keys = jax.vmap(lambda k: step.dropout_key(k, epoch, i))(data_keys) if forward.stochastic else None
            state, loss = runs_step(state, x[idx], y[idx], weights, keys)
            return state, jnp.isfinite(loss)

        def body(state, i):
            if steps % segment == 0 and not stops:
                return one(state, i)
            end = jnp.minimum(stop, steps) if stops else steps
            return jax.lax.cond(i < end, one, lambda state, i: (state, jnp.ones(runs, bool)), state, i)

        state, finite = jax.lax.scan(body, state, first + jnp.arange(segment))
        return state, finite.all(axis=0)

    return train_steps


def make_train_epoch(model: nn.Module, optimizer: optax.GradientTransformation, batch_size: int, loss=None,
                     batching: Batching = ALL_AT_ONCE):
    """Builds ``train_epoch(state, data_keys, epoch, x, y) -> (state, finite)``: one whole epoch of every run
    (:func:`make_train_steps` over all the epoch's steps at once; the suite trains in segments of it)."""

    def train_epoch(state, data_keys, epoch, x, y):
        order = epoch_orders(data_keys, epoch, x.shape[0], batch_size)
        train_steps = make_train_steps(model, optimizer, batch_size, order.shape[0], loss, batching)
        whole = jnp.asarray(order.shape[0], jnp.int32)
        return train_steps(state, data_keys, epoch, order, jnp.asarray(0, jnp.int32), whole, x, y)

    return train_epoch


SEGMENT_FLOPS = 12.5e9  # training FLOPs per segment of an epoch: about 0.2 s on one CPU core
MAX_SEGMENTS = 50  # segments of an epoch at most: progress at 2% of an epoch


def segment_steps(steps: int, flops_per_step: float) -> int:
    """Minibatch steps per call of the training program: the epoch split so each call does about
    :data:`SEGMENT_FLOPS` (progress within a long epoch, nothing more for a short one), at most
    :data:`MAX_SEGMENTS` calls an epoch."""
    calls = min(MAX_SEGMENTS, steps, max(1, math.ceil(steps * flops_per_step / SEGMENT_FLOPS)))
    return -(-steps // calls)


def evaluation_steps(n_steps: int, evals_per_epoch: int) -> tuple[int, ...]:
    """The steps of an epoch after which every run is evaluated: the first step at or past each ``j / evals``
    of the epoch, ``ceil(j * n_steps / evals)`` for ``j = 1 .. evals``; the last is the epoch's end. The ``j``-th
    is recorded at epoch ``e - 1 + j / evals`` (``bench.training.results.evaluation_epochs``), which is less than
    one step before it: at 4 an epoch of 45 steps is evaluated after steps 12, 23, 34 and 45, recorded at 0.25,
    0.5, 0.75 and 1.

    Raises:
      ValueError: more evaluations than steps (``TrainConfig.validate`` says so first).
    """
    if not 1 <= evals_per_epoch <= n_steps:
        raise ValueError(f"{evals_per_epoch} evaluations an epoch of {n_steps} steps")
    return tuple(-(-j * n_steps // evals_per_epoch) for j in range(1, evals_per_epoch + 1))


def not_final() -> jax.Array:
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


def make_evaluate(model: nn.Module, loss=None, batching: Batching = ALL_AT_ONCE):
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
        sums = step.make_sums(step.forward_of(model, xs.shape[2:], batching.matmuls), loss_fn)
        per_run = step.over_runs(sums, seed_axes=(0, None, None, None), sequential=batching.sequential)

        def body(total, chunk):
            return total + per_run(state, *chunk), None

        n_runs = jax.tree.leaves(state.params)[0].shape[:2]
        total, _ = jax.lax.scan(body, jnp.zeros((*n_runs, 2), jnp.float32), (xs, ys, ws))
        return total

    return evaluate


def make_outcomes(model: nn.Module, loss=None, batching: Batching = ALL_AT_ONCE):
    """Builds ``outcomes(state, xs, ys, ws) -> (loss, correct)``, each `(n_arms, n_seeds, n_chunks * chunk)` float.

    Per-example loss and correctness of every run on a split chunked by
    :func:`chunked_for_eval` (the padding at the end is the caller's to drop): what a
    report needs to count the test set's own sampling error (``bench.analysis.outcomes``).
    """

    loss_fn = losses.get(loss_spec(model, loss))

    def outcomes(state, xs, ys, ws):
        per_example = step.make_per_example(step.forward_of(model, xs.shape[2:], batching.matmuls), loss_fn)
        per_run = step.over_runs(per_example, seed_axes=(0, None, None), sequential=batching.sequential)
        loss, correct = jax.lax.map(lambda chunk: per_run(state, *chunk), (xs, ys))
        flat = lambda a: jnp.moveaxis(a, 0, -2).reshape(*a.shape[1:3], -1)  # noqa: E731
        return flat(loss), flat(correct)  # 0/1 per example, or a sequence's share of positions right

    return outcomes


def program_bytes(compiled) -> int:
    """Memory XLA reserves for a compiled program: arguments + outputs + temporaries - donated aliases."""
    stats = compiled.memory_analysis()
    if stats is None:
        return 0
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
               - stats.alias_size_in_bytes)


def make_evaluate_splits(model: nn.Module, loss=None, batching: Batching = ALL_AT_ONCE):
    """Builds ``evaluate_splits(state, splits) -> sums`` `(n_splits, 2, n_arms, n_seeds)`: :func:`make_evaluate`
    on every split of the tuple ``(chunked_for_eval(...), ...)``, in its order, in one program (a tuple: a dict
    passed to a jitted function comes back in sorted key order)."""
    evaluate = make_evaluate(model, loss, batching)

    def evaluate_splits(state, splits):
        return jnp.stack([jnp.moveaxis(evaluate(state, *chunks), -1, 0) for chunks in splits])

    return evaluate_splits


@dataclasses.dataclass
class Programs:
    """The compiled programs of a task, reused by every chunk: four a task, each piece of work compiled once.

    ``start(init_keys, x_train) -> state``: the initial state of every run. ``orders(data_keys, epoch) -> order``:
    the epoch's minibatches. ``steps(state, data_keys, epoch, order, first, stop, x, y) -> (state, finite)``: up to
    ``segment`` training steps from step ``first``, none from ``stop`` on. ``evaluate(state, splits, final) ->
    (sums, outcomes)``: every split evaluated (``splits``: the tuple of the chunked splits, :func:`chunked_for_eval`,
    the test split at ``test_index``) and, when ``final``, the per-example outcomes on the test split (zeros
    otherwise; None for regression); it evaluates the initial state (epoch 0) as it evaluates every epoch's end, so
    the evaluation is compiled once, not into both the start and the training programs. ``evaluations``: the steps
    of an epoch after which the runs are evaluated (:func:`evaluation_steps`; the last is ``n_steps``).
    """

    start: Callable
    orders: Callable
    steps: Callable
    evaluate: Callable
    segment: int
    n_steps: int
    compile_s: float
    train_bytes: int
    evaluations: tuple[int, ...] = ()

    def calls(self, start: int) -> list[tuple[int, int, int | None]]:
        """The training calls of an epoch from step ``start``: ``(first, stop, j)``, ``j`` the evaluation that
        follows the call (None: none)."""
        evaluations = self.evaluations or (self.n_steps,)
        out, first = [], start
        for j, point in enumerate(evaluations):
            while first < point:
                stop = min(first + self.segment, point)
                out.append((first, stop, j if stop == point else None))
                first = stop
        return out

    def run_epoch(self, state, data_keys, epoch: int, final: bool, x, y, splits, on_steps: Callable[[int], None],
                  start: int = 0, finite=None, checkpoint: Callable | None = None):
        """Trains and evaluates one epoch of every run of a chunk, segment after segment.

        ``on_steps(k)`` is told when ``k`` more steps have finished (the next segment is already
        queued, so the device does not wait on the host). ``start``: the steps of the epoch already trained
        (a chunk resumed within an epoch), ``finite`` whether each run's losses were finite in them.
        ``checkpoint(step, state, settled)`` is offered the state after each call that ends inside the epoch, once
        an evaluation there is queued (``settled()`` waits for the calls queued and returns whether each run's
        losses were finite in the epoch so far and the epoch's evaluations so far, as the result's ``points``;
        nothing waits unless it is called).

        Returns:
          ``(state, points, outcomes)``: ``points`` a list of ``(j, finite, sums)`` for each evaluation ``j`` of the
          epoch after ``start`` (the last one at its end): ``finite`` `(n_arms, n_seeds)` numpy bool, whether each
          run's losses were finite in the epoch up to it; ``sums`` `(n_splits, 2, n_arms, n_seeds)` numpy; and
          ``outcomes`` as the program gives them at the end (on device).
        """
        calls = self.calls(start)
        masked = self.n_steps % self.segment or len(self.evaluations) > 1
        if start % self.segment and not masked:  # its last call would run past the epoch
            raise UserError(f"a checkpoint inside epoch {epoch} was taken after step {start}, not a multiple of "
                            f"this program's {self.segment} steps a call: rerun with {option('fresh', True)}")
        epoch_arg = jax.device_put(np.int32(epoch))  # (put, not jnp.asarray: that compiles a program)
        order = self.orders(data_keys, epoch_arg)
        pending, finished = [], []  # calls queued and not yet finished; the epoch's finiteness after each finished
        finite = np.ones(0, bool) if finite is None else np.asarray(finite, bool)
        queued, outcomes = [], None  # evaluations: (j, calls before it, sums on device)

        def finish_oldest():
            nonlocal finite
            ok, done = pending.pop(0)
            finite = np.asarray(ok) if finite.size == 0 else finite & np.asarray(ok)
            finished.append(finite)
            on_steps(done)

        def settled():
            while pending:
                finish_oldest()
            return finite, [(j, finished[n - 1], np.asarray(sums)) for j, n, sums in queued]

        for n, (first, stop, j) in enumerate(calls, start=1):
            state, ok = self.steps(state, data_keys, epoch_arg, order, jax.device_put(np.int32(first)),
                                   jax.device_put(np.int32(stop)), x, y)
            pending.append((ok, stop - first))
            if len(pending) > 1:
                finish_oldest()
            if j is not None:
                sums, outcomes = self.evaluate(state, splits, jax.device_put(np.bool_(final and stop == self.n_steps)))
                queued.append((j, n, sums))
            if checkpoint is not None and stop < self.n_steps:
                checkpoint(stop, state, settled)
        return state, settled()[1], outcomes


def compile_programs(model, optimizer, config, start_state, start_args, data_keys, x, y, eval_splits,
                      test_index: int, model_sharding, loss=None, with_outcomes: bool = True, models_per_chunk: int = 1,
                      step_flops: float = 1.0, batching: Batching = ALL_AT_ONCE) -> Programs:
    """Compiles the task's programs (:class:`Programs`) for the arguments of a chunk (``start_args``:
    its init keys and the training inputs; ``data_keys``: its data-order keys), the runs batched as ``batching``
    says (``bench.training.batching``); ``step_flops``, one model's training step, sets the epoch's segments."""
    evaluate_splits = make_evaluate_splits(model, loss, batching)
    outcomes_of = make_outcomes(model, loss, batching) if with_outcomes else None
    start_parts = speedups.split_start(start_state, *start_args)  # one-value leaves made on the host, not compiled
    state = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=model_sharding),
                         start_parts.shapes)
    n_steps = -(-x.shape[0] // config.batch_size)
    segment = segment_steps(n_steps, step_flops * models_per_chunk)
    evaluations = evaluation_steps(n_steps, config.evals_per_epoch)
    train_steps = make_train_steps(model, optimizer, config.batch_size, segment, loss, batching,
                                   stops=len(evaluations) > 1)
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
        (start_parts.computed, start_args, (), model_sharding, {}),  # floats: XLA's defaults (speedups)
        (orders, (data_keys, epoch), (), None,
         speedups.options({**speedups.INTEGER_PROGRAM_OPTIONS, **speedups.QUICK_COMPILE_OPTIONS})),
        (train_steps, (state, data_keys, epoch, order, epoch, epoch, x, y), (0,), (model_sharding, model_sharding),
         speedups.options(speedups.TRAINING_PROGRAM_OPTIONS)),
        (evaluate, (state, eval_splits, not_final()), (), (None, model_sharding if outcomes_of else None)))

    def start(*args):
        return fills.assemble(start_parts, start_program(*args), model_sharding)

    return Programs(start, orders_program, steps_program, evaluate_program, segment, n_steps, compile_s,
                    max(program_bytes(steps_program), program_bytes(evaluate_program)), evaluations)
