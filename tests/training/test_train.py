"""The trainer: batched runs equal lone runs, divergence stays contained, paired data order."""

import dataclasses
import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

import initjax
from bench import models
from bench.data import datasets
from bench.errors import UserError
from bench.training import initialization, programs, seeding, speedups
from bench.training.initialization import init_params
from bench.training.objective import loss_and_accuracy
from bench.training.programs import chunked_for_eval, epoch_order, make_evaluate
from bench.training.seeding import run_keys
from bench.training.step import RunState
from bench.training.train import TrainConfig, train_task
from tests.helpers import count_compiles

REPO = Path(__file__).resolve().parents[2]


def _train(dataset, names, seeds, config, model=None, chunk=None):
    model = model or models.mlp_for(dataset.n_features, dataset.n_classes, (16, 16))
    return train_task(dataset, model, {n: initjax.get(n) for n in names}, seeds, config, progress=False, chunk=chunk)


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits")


def test_run_inside_batch_equals_run_alone(digits):
    config = TrainConfig(optimizer="adam", lr=3e-3, batch_size=50, epochs=3)  # 1437 % 50 != 0: partial batch
    batch = _train(digits, ["glorot_uniform", "he_normal", "orthogonal"], [0, 1, 2], config)
    alone = _train(digits, ["he_normal"], [2], config)

    for leaf_batch, leaf_alone in zip(jax.tree.leaves(batch.params), jax.tree.leaves(alone.params)):
        np.testing.assert_allclose(leaf_batch[1, 2], leaf_alone[0, 0], rtol=2e-5, atol=2e-6)
    rows = batch.frame[(batch.frame.arm == "he_normal") & (batch.frame.seed == 2)].reset_index(drop=True)
    metrics = ["train_loss", "train_accuracy", "test_loss", "test_accuracy"]
    np.testing.assert_allclose(rows[metrics].to_numpy(), alone.frame[metrics].to_numpy(), rtol=1e-5, atol=1e-6)
    assert len(batch.frame) == 3 * 3 * (config.epochs + 1)


def test_diverged_run_is_marked_and_leaves_others_unchanged(digits):
    config = TrainConfig(optimizer="sgd", lr=0.5, batch_size=64, epochs=2)
    huge = "normal(stddev=1e3)"  # logits ~1e9: the SGD step overflows to inf, then NaN
    with_bad = _train(digits, ["glorot_normal", huge], [0, 1], config)
    without = _train(digits, ["glorot_normal"], [0, 1], config)

    last = with_bad.frame[with_bad.frame.epoch == config.epochs]
    assert last[last.arm == huge].diverged.all()
    bad = with_bad.frame[with_bad.frame.arm == huge]
    for _, run in bad.groupby("seed"):
        assert (run.diverged_epoch == run.epoch[run.diverged].min()).all()  # the epoch it happened, on every row
    assert with_bad.frame[with_bad.frame.arm == "glorot_normal"].diverged_epoch.isna().all()
    assert not last[last.arm == "glorot_normal"].diverged.any()
    good = with_bad.frame[with_bad.frame.arm == "glorot_normal"].reset_index(drop=True)
    np.testing.assert_allclose(good.test_loss, without.frame.test_loss, rtol=1e-5)


def test_epoch_order_is_a_permutation_padded_with_its_start_and_depends_on_seed_and_epoch():
    _, data_keys = run_keys(0, "digits", [0, 1])
    order = np.asarray(epoch_order(data_keys[0], 1, 10, 12))
    assert sorted(order[:10]) == list(range(10)) and list(order[10:]) == list(order[:2])
    assert not np.array_equal(order, np.asarray(epoch_order(data_keys[0], 2, 10, 12)))
    assert not np.array_equal(order, np.asarray(epoch_order(data_keys[1], 1, 10, 12)))


@pytest.mark.parametrize("n, batch_size, seeds", [(1000, 32, 8), (70_001, 128, 2)])
def test_the_integer_programs_compiled_at_O0_give_the_bits_of_the_default_level(n, batch_size, seeds, monkeypatch):
    """The run keys and the epoch orders (one shuffle round of hashes and a sort at 1,000 examples, two at 70,001),
    compiled at ``INTEGER_PROGRAM_OPTIONS``, are the numbers XLA's default optimization level gives (the keys: with
    the speed-ups on and off, ``bench.training.speedups``)."""
    runs = list(range(0, 3 * seeds, 3))
    fast_keys = seeding.run_keys(0, "d", runs, 2)
    monkeypatch.setenv(speedups.SWITCH, "1")
    default_keys = seeding.run_keys(0, "d", runs, 2)
    for a, b in zip(fast_keys, default_keys):
        np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b))
    orders = functools.partial(programs.epoch_orders, n=n, batch_size=batch_size)
    epoch = jnp.asarray(3, jnp.int32)
    low = jax.jit(orders).lower(fast_keys[1], epoch)
    fast_order = np.asarray(low.compile(speedups.INTEGER_PROGRAM_OPTIONS)(fast_keys[1], epoch))
    np.testing.assert_array_equal(fast_order, np.asarray(low.compile()(fast_keys[1], epoch)))
    assert fast_order.shape == (-(-n // batch_size), seeds, batch_size)
    assert sorted(fast_order[:, 0].ravel()[:n]) == list(range(n))

def _bits(tree):
    return [np.asarray(leaf).tobytes() for leaf in jax.tree.leaves(tree)]


# model, input shape, initializers: per-tensor draws of every kind, data-dependent schemes (the transformer's
# training program at these options is compared with XLA's defaults by tests/training/test_speedups.py, which
# trains it with the speed-ups on and off)
CASES = {
    "tanh mlp": (lambda: models.build("mlp", (13,), 3, (16, 8), "tanh"), (13,),
                 ["glorot_normal", "he_uniform", "orthogonal", "random_normal", "sparse", "zero_hadamard", "lsuv",
                  "data_dependent", "mean_field(sigma_w2=1.5, sigma_b2=0.05)"]),
    "convnet": (lambda: models.build("lenet", (16, 16, 1), 3, activation="relu"), (16, 16, 1),
                ["he_normal", "delta_orthogonal", "torch_default"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_training_options_give_the_bits_of_xlas_defaults(case):
    """The training steps compiled at ``TRAINING_PROGRAM_OPTIONS`` (``bench.training.compilation.compile_with``, as
    the trainer compiles them) compute the numbers XLA's default options give, bit for bit."""
    from bench.training import compilation

    build, input_shape, names = CASES[case]
    model, optimizer = build(), optax.adam(1e-2)
    arms = [initjax.get(name) for name in names]
    keys, data_keys = run_keys(0, case, [0, 1])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, *input_shape)).astype(np.float32), rng.integers(0, 3, 40).astype(np.int32)
    state = jax.jit(lambda keys, x: initialization.initial_state(model, optimizer, arms, keys, input_shape, x))(keys, x)

    steps = programs.make_train_steps(model, optimizer, 8, 5, None)
    epoch, first = jnp.asarray(1, jnp.int32), jnp.asarray(0, jnp.int32)
    order = programs.epoch_orders(data_keys, epoch, len(x), 8)
    stop = jnp.asarray(5, jnp.int32)
    low = jax.jit(steps).lower(state, data_keys, epoch, order, first, stop, x, y)
    program = compilation.compile_with(low, speedups.TRAINING_PROGRAM_OPTIONS)
    trained = program(state, data_keys, epoch, order, first, stop, x, y)
    default = low.compile()(state, data_keys, epoch, order, first, stop, x, y)
    assert _bits(trained) == _bits(default)
    assert not np.array_equal(np.asarray(jax.tree.leaves(trained[0].params)[0]),
                              np.asarray(jax.tree.leaves(state.params)[0]))  # it trained


def test_an_xla_option_this_jaxlib_lacks_is_left_out_and_its_value_errors_still_fail():
    from bench.training import compilation

    x = jnp.arange(3.0)
    low = jax.jit(lambda v: v * 2.0 + 1.0).lower(x)
    lacking = "xla_cpu_initjax_no_such_option"
    executable = compilation.compile_with(low, {lacking: True, "xla_backend_optimization_level": 0})
    np.testing.assert_array_equal(executable(x), [1.0, 3.0, 5.0])
    assert lacking in compilation._unknown_options
    assert "xla_backend_optimization_level" not in compilation._unknown_options
    with pytest.raises(jax.errors.JaxRuntimeError):
        compilation.compile_with(low, {"xla_backend_optimization_level": "fast"})


def test_run_keys_of_a_seed_do_not_depend_on_the_other_seeds():
    init_a, data_a = run_keys(7, "synthetic", [0, 1, 5])
    init_b, data_b = run_keys(7, "synthetic", [5])
    assert np.array_equal(jax.random.key_data(init_a[2]), jax.random.key_data(init_b[0]))
    assert np.array_equal(jax.random.key_data(data_a[2]), jax.random.key_data(data_b[0]))
    assert not np.array_equal(jax.random.key_data(init_a[0]), jax.random.key_data(data_a[0]))


def test_losses_match_hand_computed_cross_entropies():
    logits = jnp.array([[2.0], [-1.0], [0.5]])
    labels = jnp.array([1, 1, 0])
    loss, correct = loss_and_accuracy(logits, labels, "sigmoid")
    p = 1 / (1 + np.exp(-np.array([2.0, -1.0, 0.5])))
    np.testing.assert_allclose(loss, [-np.log(p[0]), -np.log(p[1]), -np.log(1 - p[2])], rtol=1e-6)
    np.testing.assert_array_equal(correct, [1, 0, 0])

    logits = jnp.array([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
    loss, correct = loss_and_accuracy(logits, jnp.array([1, 2]), "softmax")
    log_z = np.log(np.exp(np.asarray(logits)).sum(1))
    np.testing.assert_allclose(loss, [log_z[0] - 2.0, log_z[1] - 0.0], rtol=1e-6)
    np.testing.assert_array_equal(correct, [1, 0])

    # squared error to the one-hot label, averaged over the 3 outputs; correct by the argmax
    from bench.models import losses

    loss, correct = losses.get("one_hot_squared_error")(logits, jnp.array([1, 2]))
    np.testing.assert_allclose(loss, [(1 + 1 + 0) / 3, (9 + 0 + 1) / 3], rtol=1e-6)
    np.testing.assert_array_equal(correct, [1, 0])
    assert losses.outputs_for("one_hot_squared_error", 10) == 10
    assert losses.metric_of("one_hot_squared_error") == "accuracy"


def test_chunked_evaluation_equals_one_pass_over_the_split(digits):
    model = models.mlp_for(digits.n_features, digits.n_classes, (8,))
    params = jax.vmap(jax.vmap(lambda k: model.init(k, digits.x_test[:1])["params"]))(
        jax.random.split(jax.random.key(0), 6).reshape(2, 3)
    )
    state = RunState(params, None, {})
    sums = make_evaluate(model)(state, *chunked_for_eval(digits.x_test, digits.y_test, 64))  # 360 = 5*64 + 40
    loss, correct = loss_and_accuracy(
        model.apply({"params": jax.tree.map(lambda p: p[1, 2], params)}, digits.x_test), digits.y_test, "softmax"
    )
    np.testing.assert_allclose(sums[1, 2], [loss.sum(), correct.sum()], rtol=1e-5)


def test_partial_last_batch_is_weighted_by_its_real_examples():
    """Training on 5 examples with batch 4 equals two hand-written SGD steps (4 + 1 examples)."""
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    y = np.array([0, 1, 1, 0, 1], np.int32)
    data = datasets.Dataset("tiny", x, y, x, y, 2)
    model = models.mlp_for(3, 2, ())
    result = _train(data, ["glorot_normal"], [0], TrainConfig("sgd", 0.1, 4, 1), model)

    init_keys, data_keys = run_keys(0, "tiny", [0])
    params = jax.tree.map(lambda a: a[0, 0], init_params(model, [initjax.get("glorot_normal")], init_keys, (3,)))
    order = np.asarray(epoch_order(data_keys[0], 1, 5, 8))
    for idx in (order[:4], order[4:5]):
        def mean_loss(p):
            return loss_and_accuracy(model.apply({"params": p}, x[idx]), y[idx], "sigmoid")[0].mean()

        grads = jax.grad(mean_loss)(params)
        params = optax.apply_updates(params, jax.tree.map(lambda g: -0.1 * g, grads))
    for got, want in zip(jax.tree.leaves(result.params), jax.tree.leaves(params)):
        np.testing.assert_allclose(got[0, 0], want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "config, message",
    [
        (TrainConfig(lr=0.0), "learning rate"),
        (TrainConfig(epochs=0), "epochs"),
        (TrainConfig(optimizer="adagrad"), "optimizer"),
        (TrainConfig(batch_size=10_000), "batch size"),
    ],
)
def test_bad_training_config_is_a_user_error(digits, config, message):
    with pytest.raises(UserError, match=message):
        config.validate(digits.x_train.shape[0])


# The duration event jax records for every compilation request (documented with jax.monitoring; stable since 0.4.),
# and the event of a request served by the persistent compilation cache (not compiled)
def test_a_task_compiles_four_programs_whatever_its_epochs_and_chunks(digits):
    """Start (initialization), epoch orders, the training steps, and the evaluation (+ outcomes, of epoch 0 as of
    every epoch's end): 4 a task. Epochs and chunks reuse them; a new learning rate changes only the training
    program."""
    def run(epochs, lr, chunk=None, hidden=(16,)):
        model = models.mlp_for(digits.n_features, digits.n_classes, hidden)
        return lambda: _train(digits, ["he_normal", "lecun_normal"], [0, 1, 2], TrainConfig("sgd", lr, 64, epochs),
                              model, chunk=chunk)

    run(1, 0.0111)()  # compiles the small eager helpers once
    run(1, 0.0112, chunk=1)()
    one, four = count_compiles(run(1, 0.0123)), count_compiles(run(4, 0.0234))
    chunked = count_compiles(run(4, 0.0345, chunk=1))
    assert one == four == chunked == 1, (one, four, chunked)
    assert count_compiles(run(2, 0.0456, hidden=(17,))) == 3  # a new model: start, steps, evaluation (same orders)
    assert count_compiles(run(2, 0.0456, hidden=(17,))) == 0  # the same task again: nothing new


def test_a_second_process_compiles_nothing(tmp_path):
    """JAX's persistent cache, on by default in the suite's cache folder: the same task in a new process loads every
    program (0 XLA compilations), and a cache turned off compiles them all."""
    code = """
import initjax
from bench import models
from bench.data import datasets
from bench.training.train import TrainConfig, train_task
from tests.helpers import count_compiles
data, model, inits = datasets.load("digits"), models.mlp_for(64, 10, (16,)), {"he_normal": initjax.get("he_normal")}
print(count_compiles(lambda: train_task(data, model, inits, [0, 1], TrainConfig("adam", 1e-3, 64, 1), progress=False)))
"""
    env = {**os.environ, "INITJAX_CACHE": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)

    def compiles(**extra):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**env, **extra},
                              cwd=REPO, check=True)
        return int(proc.stdout.split()[-1])

    first = compiles()  # the task's 4 programs and the small eager ones (keys)
    assert first > 3 and any((tmp_path / "xla").iterdir())
    assert compiles() == 0
    assert compiles(INITJAX_COMPILE_CACHE="off") == first


def test_an_epoch_trained_in_segments_is_the_epoch_trained_at_once(digits, monkeypatch):
    """Progress comes from the segments of an epoch: one step a call, or 5 (23 steps: the last call masks 2), give
    the numbers of the whole epoch in one call, and the bar ends at chunks x epochs x steps."""
    from bench.training import progress

    config = TrainConfig("adam", 3e-3, 64, 2)  # 1437 examples: 23 steps an epoch
    model = models.mlp_for(digits.n_features, digits.n_classes, (16,))
    inits = {"he_normal": initjax.get("he_normal"), "orthogonal": initjax.get("orthogonal")}
    whole = train_task(digits, model, inits, [0, 1, 2], config, progress=False, chunk=2)
    for segment in (1, 5):
        advances = []
        monkeypatch.setattr(programs, "segment_steps", lambda steps, flops, k=segment: k)
        monkeypatch.setattr(progress.StepBar, "advance", lambda self, k, seen=advances: seen.append(k))
        parts = train_task(digits, model, inits, [0, 1, 2], config, progress=False, chunk=2)
        pd.testing.assert_frame_equal(parts.frame, whole.frame)
        jax.tree.map(np.testing.assert_array_equal, parts.params, whole.params)
        assert sum(advances) == 2 * 2 * 23 and max(advances) == segment  # 2 chunks x 2 epochs x 23 steps


@pytest.mark.parametrize(("steps", "evals", "expected"), [
    (45, 4, (12, 23, 34, 45)),  # ceil(45 j / 4): the first step at or past each quarter
    (10, 1, (10,)),
    (3, 3, (1, 2, 3)),          # every step
    (7, 2, (4, 7)),
])
def test_evaluation_steps_are_the_first_steps_at_or_past_each_share_of_the_epoch(steps, evals, expected):
    assert programs.evaluation_steps(steps, evals) == expected


def test_evaluations_within_epochs_change_no_number_and_match_runs_stopped_there(digits):
    """4 evaluations an epoch (23 steps: after steps 6, 12, 18 and 23): the epoch ends' rows and the final
    parameters are those of one evaluation an epoch, bit for bit, and the evaluation at epoch 1.25 is the test
    loss and accuracy of the runs trained by hand for one epoch and 6 steps of the second."""
    config = TrainConfig("adam", 3e-3, 64, 2)
    model = models.mlp_for(digits.n_features, digits.n_classes, (16,))
    inits = {"he_normal": initjax.get("he_normal"), "orthogonal": initjax.get("orthogonal")}
    once = train_task(digits, model, inits, [0, 3], config, progress=False)
    four = train_task(digits, model, inits, [0, 3], dataclasses.replace(config, evals_per_epoch=4), progress=False)
    assert sorted(set(four.frame["epoch"])) == [k / 4 for k in range(9)]
    ends = four.frame[four.frame["epoch"] % 1 == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(ends.astype({"epoch": int, "diverged_epoch": "Int64"}), once.frame)
    jax.tree.map(np.testing.assert_array_equal, once.params, four.params)

    init_keys, data_keys = run_keys(0, digits.name, [0, 3])
    state = jax.jit(lambda keys, x: initialization.initial_state(model, optax.adam(3e-3), list(inits.values()), keys,
                                                                 (digits.n_features,), x))(init_keys, digits.x_train)
    x, y = jnp.asarray(digits.x_train), jnp.asarray(digits.y_train)
    for epoch, stop in ((1, 23), (2, 6)):
        order = programs.epoch_orders(data_keys, jnp.asarray(epoch, jnp.int32), len(x), 64)
        steps = jax.jit(programs.make_train_steps(model, optax.adam(3e-3), 64, 23, stops=True))
        state, _ = steps(state, data_keys, jnp.int32(epoch), order, jnp.int32(0), jnp.int32(stop), x, y)
    sums = np.asarray(make_evaluate(model)(state, *chunked_for_eval(digits.x_test, digits.y_test, 2048)))
    at = four.frame[four.frame["epoch"] == 1.25].set_index(["arm", "seed"])
    for a, arm in enumerate(inits):
        for s, seed in enumerate([0, 3]):
            np.testing.assert_allclose(at.at[(arm, seed), "test_loss"], sums[a, s, 0] / len(digits.y_test), rtol=1e-5)
            assert at.at[(arm, seed), "test_accuracy"] == float(sums[a, s, 1]) / len(digits.y_test)


def test_a_checkpoint_between_evaluations_resumes_to_the_same_numbers(digits, tmp_path, monkeypatch):
    """3 evaluations an epoch of 23 steps (after steps 8, 16 and 23) trained 5 steps a call, with a checkpoint after
    each call and each epoch: stopped after the 9th checkpoint (step 13 of epoch 2, past its evaluation at step 8),
    the rerun continues from there and every evaluation, the one before the stop included, equals the
    uninterrupted run's."""
    from bench.training import resume

    config = TrainConfig("adam", 3e-3, 64, 2, evals_per_epoch=3)
    model = models.mlp_for(digits.n_features, digits.n_classes, (16,))
    inits = {"he_normal": initjax.get("he_normal")}
    whole = train_task(digits, model, inits, [0, 1], config, progress=False, chunk=2)
    monkeypatch.setattr(programs, "segment_steps", lambda steps, flops: 5)
    real, saved = resume.TaskStore.save_checkpoint, []

    def stop_after_ninth(self, chunk, epoch, *rest):
        real(self, chunk, epoch, *rest)
        saved.append((epoch, rest[5] if len(rest) > 5 else 0))  # (epochs finished, steps of the next)
        if len(saved) == 9:
            raise KeyboardInterrupt

    monkeypatch.setattr(resume.TaskStore, "save_checkpoint", stop_after_ninth)
    with pytest.raises(KeyboardInterrupt):
        train_task(digits, model, inits, [0, 1], config, progress=False, chunk=2,
                   store=resume.TaskStore(tmp_path, "digits", {"k": 1}, checkpoint_every=0))
    assert saved == [(0, 5), (0, 8), (0, 13), (0, 16), (0, 21), (1, 0), (1, 5), (1, 8), (1, 13)]
    monkeypatch.setattr(resume.TaskStore, "save_checkpoint", real)
    resumed = train_task(digits, model, inits, [0, 1], config, progress=False, chunk=2,
                         store=resume.TaskStore(tmp_path, "digits", {"k": 1}, checkpoint_every=0))
    pd.testing.assert_frame_equal(resumed.frame, whole.frame)


@pytest.mark.parametrize(("steps", "flops", "expected"), [
    (25, 1e6, 25),        # a small epoch: one call
    (1875, 13e9, 38),     # 1 call a step would be 1,875: capped at 50 calls, ceil(1875 / 50) = 38 steps each
    (100, 1e9, 13),       # 100 GFLOP: 8 calls of 12.5, ceil(100 / 8) = 13 steps
    (3, 1e12, 1),         # never fewer than one step a call
])
def test_segment_steps_splits_long_epochs_only(steps, flops, expected):
    from bench.training.programs import segment_steps

    assert segment_steps(steps, flops) == expected


# ---------------------------------------------------------------- model state, dropout, regression


def test_batchnorm_and_dropout_runs_in_the_batch_equal_runs_alone(digits):
    """BatchNorm statistics and dropout masks are per run: a run inside the vmapped batch (with a partial last
    minibatch) gives the numbers it gives alone."""
    model = models.build("mlp", digits.input_shape, digits.n_classes, (16,), norm="batch", dropout=0.3)
    config = TrainConfig("adam", 3e-3, 100, 2)  # 1437 % 100 != 0
    batch = _train(digits, ["glorot_uniform", "he_normal"], [0, 1], config, model)
    alone = _train(digits, ["he_normal"], [1], config, model)
    rows = batch.frame[(batch.frame.arm == "he_normal") & (batch.frame.seed == 1)].reset_index(drop=True)
    other = batch.frame[(batch.frame.arm == "he_normal") & (batch.frame.seed == 0)].reset_index(drop=True)
    # BatchNorm's batch reductions are ordered differently under vmap: float32 drift of ~5e-5 after 30 steps,
    # where shared statistics or masks between runs would differ by the runs' own spread (seed 0 vs 1 below)
    np.testing.assert_allclose(rows["test_loss"], alone.frame["test_loss"], rtol=5e-4)
    assert np.abs(rows["test_loss"] - other["test_loss"]).iloc[-1] > 100 * np.abs(
        rows["test_loss"] - alone.frame["test_loss"]).max()
    assert rows["test_accuracy"].iloc[-1] > 0.3  # it learns (chance: 0.1)


def test_batchnorm_statistics_follow_the_batches_and_evaluation_uses_them():
    """One step updates the running mean to 0.9 * 0 + 0.1 * the batch mean of the pre-activations (computed by
    hand); evaluation then uses the running statistics: an example's output does not depend on its batch."""
    from bench.training import step

    model = models.MLP(hidden=(4,), n_outputs=2, norm="batch")
    forward = step.forward_of(model, (3,))
    assert forward.mode == "train" and forward.stateful == ("batch_stats",) and not forward.stochastic
    x = jax.random.normal(jax.random.key(1), (8, 3)) * 2 + 1
    y = jnp.arange(8) % 2
    params, model_state = forward.init(jax.random.key(0), x[:1])
    optimizer = optax.sgd(0.0)
    state = RunState(params, optimizer.init(params), model_state)
    update = jax.jit(step.make_step(forward, initjax_free_loss, optimizer))  # compiled, not op by op
    state, _ = update(state, x, y, jnp.ones(8), jax.random.key(2))
    dense = params["Dense_0"]
    pre = np.asarray(x) @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"])
    running = state.model_state["batch_stats"]["Hidden_0"]["BatchNorm_0"]
    np.testing.assert_allclose(running["mean"], 0.1 * pre.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(running["var"], 0.9 + 0.1 * pre.var(0), rtol=1e-5)
    evaluate = jax.jit(forward)
    together = evaluate(state.params, state.model_state, x)
    alone = evaluate(state.params, state.model_state, x[3:4])
    np.testing.assert_allclose(together[3:4], alone, rtol=1e-5, atol=1e-6)


def initjax_free_loss(outputs, labels):
    return loss_and_accuracy(outputs, labels, "softmax")


def test_regression_records_mse_and_r2_as_scikit_learn_computes_them():
    from sklearn.datasets import make_regression
    from sklearn.metrics import mean_squared_error, r2_score

    from bench import data

    x, y = make_regression(n_samples=300, n_features=6, n_targets=2, noise=5.0, random_state=0)
    y = y / y.std(0)
    dataset = data.arrays(x[:200], y[:200], x[200:], y[200:], name="reg", regression=True)
    model = models.build("mlp", dataset.input_shape, 0, (16,), n_targets=dataset.n_targets)
    config = TrainConfig("adam", 1e-2, 32, 3)
    result = train_task(dataset, model, {"he_normal": initjax.get("he_normal")}, [0, 1], config, progress=False,
                        loss="mean_squared_error")
    final = result.frame[result.frame.epoch == 3].reset_index(drop=True)
    for seed in (0, 1):
        params = jax.tree.map(lambda a: a[0, seed], result.params)
        predicted = np.asarray(model.apply({"params": params}, dataset.x_test))
        row = final[final.seed == seed].iloc[0]
        np.testing.assert_allclose(row.test_loss, mean_squared_error(y[200:], predicted), rtol=1e-4)
        np.testing.assert_allclose(row.test_r2, r2_score(y[200:], predicted, multioutput="variance_weighted"),
                                   rtol=1e-4)
    start = result.frame[result.frame.epoch == 0].reset_index(drop=True)
    assert "test_accuracy" not in final and (final.test_r2 > start.test_r2 + 0.3).all()  # it learns
    assert result.outcomes is None  # per-example correctness means nothing here


def test_a_loss_that_does_not_fit_the_data_is_one_line(digits):
    model = models.mlp_for(digits.n_features, digits.n_classes, (8,))
    with pytest.raises(UserError, match="needs regression targets, digits holds classes"):
        train_task(digits, model, {"he_normal": initjax.get("he_normal")}, [0], TrainConfig(epochs=1),
                   progress=False, loss="mean_squared_error")
    with pytest.raises(UserError, match="has no option 'width'"):
        models.build("mlp", digits.input_shape, 10, (8,), width=3)
    with pytest.raises(UserError, match="unknown norm 'group'"):
        models.build("mlp", digits.input_shape, 10, (8,), norm="group")


def test_dropout_draws_from_the_step_key_in_training_only():
    from bench.training import step

    forward = step.forward_of(models.MLP(hidden=(64,), n_outputs=3, dropout=0.5), (5,))
    assert forward.stochastic and not step.forward_of(models.MLP(hidden=(64,), n_outputs=3), (5,)).stochastic
    x = jax.random.normal(jax.random.key(0), (4, 5))
    params, model_state = forward.init(jax.random.key(1), x)
    a, _ = forward.train(params, model_state, x, jax.random.key(2))
    b, _ = forward.train(params, model_state, x, jax.random.key(3))
    again, _ = forward.train(params, model_state, x, jax.random.key(2))
    assert not np.allclose(a, b) and np.array_equal(a, again)
    np.testing.assert_array_equal(forward(params, model_state, x), models.MLP(hidden=(64,), n_outputs=3).apply(
        {"params": params}, x))  # evaluation: no dropout at all


def test_constant_regression_targets_and_mixed_losses_are_refused():
    """R² divides by the targets' variance: a split with constant targets would report inf; and one report ranks
    one metric, which a mix of regression and classification tasks does not share."""
    from bench import data
    from bench.experiments import presets

    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(UserError, match="the test targets are constant"):
        data.arrays(x[:10], x[:10, 0], x[10:], np.ones(10), regression=True)
    mixed = presets.Experiment("mixed", "", (presets.Task("digits", (8,)),
                                             presets.Task("digits", (8,), label="r", loss="mean_squared_error")),
                               ("he_normal",))
    with pytest.raises(UserError, match="mix regression and classification"):
        presets.validate(mixed)


def test_the_program_store_evicts_the_least_recently_used_past_its_bound_and_what_killed_writers_left(tmp_path):
    """The compilation cache's store keeps its bound by a sweep (JAX's own listed the folder at every write, 130 ms
    at 2,900 entries, under a lock both test workers waited on): the entries used longest ago go first, a read
    counts as a use; a damaged entry reads as a miss and is removed; temp files of dead writers and JAX's
    access-time files are removed."""
    from bench.training.program_store import MAGIC, ProgramStore, sweep

    folder = tmp_path / "xla"
    store = ProgramStore(folder, max_bytes=10**9)
    for i, key in enumerate("abcdef"):
        store.put(key, bytes([i]) * 1000)
        os.utime(folder / f"{key}-cache", ns=(i * 10**9, i * 10**9))  # written in this order, a second apart
    size = 1000 + len(MAGIC) + 32
    store.put("a", b"other")  # a program is written once
    assert store.get("a") == bytes([0]) * 1000  # read now: used last
    (folder / "x-atime").write_bytes(b"\0" * 8)  # JAX's own store's
    (folder / ".x-cache.old.tmp").write_bytes(b"half")  # a killed writer's, two hours old
    os.utime(folder / ".x-cache.old.tmp", (time.time() - 7200, time.time() - 7200))
    removed = sweep(folder, max_bytes=5 * size)  # 6 entries over a bound of 5: down to 4 (80% of it)
    assert sorted(p.name for p in removed) == ["b-cache", "c-cache", "x-atime"]
    assert sorted(p.name for p in folder.iterdir()) == ["a-cache", "d-cache", "e-cache", "f-cache"]
    assert store.get("b") is None and store.get("d") == bytes([3]) * 1000
    raw = bytearray((folder / "e-cache").read_bytes())
    raw[-1] ^= 1
    (folder / "e-cache").write_bytes(bytes(raw))
    assert store.get("e") is None and not (folder / "e-cache").exists()
    small = ProgramStore(folder, max_bytes=3 * size + 100)  # the 3 left fit; writing past 1/16 of it sweeps
    small.put("g", b"g" * 1000)  # 4 over the bound: f (unread), then a (read before d) go
    assert sorted(p.name for p in folder.iterdir()) == ["d-cache", "g-cache"]
    assert sweep(tmp_path / "absent", 1) == []


def test_programs_compiled_beside_the_tracing_of_the_next_are_each_its_own():
    """XLA compiles a program in its thread while the next is traced: each executable computes its own function, in
    the order given, one program given twice is compiled once, and an error tracing a later program is raised,
    not waited on."""
    from bench.training import compilation

    x = jnp.arange(4.0)
    programs = [(lambda v, p=p: v ** p + p, (x,), (), None) for p in (1.0, 2.0, 3.0)]
    executables, _ = compilation.compile_programs(*programs, programs[1])
    for executable, power in zip(executables, (1.0, 2.0, 3.0, 2.0)):
        np.testing.assert_array_equal(executable(x), np.arange(4.0) ** power + power)
    assert executables[3] is executables[1]
    with pytest.raises(TypeError, match="add got incompatible shapes"):
        compilation.compile_programs(programs[0], (lambda v: v + jnp.ones(3), (x,), (), None))


def test_programs_of_one_module_but_other_argument_trees_are_not_shared():
    """A module leaves out the arguments its program does not read: reading ``state[0]`` of a pair, of a triple
    and of a pair whose second array is longer lowers to one module, and each gets an executable that takes its
    own arguments (the evaluation of two states whose optimizer states differ; the initialization of two
    training sets of other sizes)."""
    from bench.training import compilation

    def first(state):
        return state[0] * 2.0

    pair, triple = (jnp.ones(3), jnp.ones(2)), (jnp.ones(3), jnp.ones(2), {"lr": jnp.ones(())})
    (of_pair,), _ = compilation.compile_programs((first, (pair,), (), None))
    (of_triple,), _ = compilation.compile_programs((first, (triple,), (), None))
    assert jax.jit(first).lower(pair).as_text() == jax.jit(first).lower(triple).as_text()
    np.testing.assert_array_equal(of_triple(triple), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(of_pair(pair), [2.0, 2.0, 2.0])
    longer = (jnp.ones(3), jnp.ones(5))  # the unread argument of another shape
    (of_longer,), _ = compilation.compile_programs((first, (longer,), (), None))
    np.testing.assert_array_equal(of_longer(longer), [2.0, 2.0, 2.0])
    (again,), _ = compilation.compile_programs((first, (pair,), (), None))
    assert again is of_pair  # the same program again: reused
    (at_o0,), _ = compilation.compile_programs((first, (pair,), (), None, {"xla_backend_optimization_level": 0}))
    assert at_o0 is not of_pair  # other XLA options: compiled on their own


def test_checking_an_experiment_and_putting_its_data_on_the_device_compile_nothing(caplog):
    """Before its programs, a task compiles nothing: the recipe, initializer and model checks are traced
    (op by op, each eager op compiled a program of its own), the evaluation splits are put, not copied by
    ``jnp.asarray`` (a program per shape): 12 small programs, 0.3-0.4 s on 2 cores."""
    from bench.experiments import presets

    experiment = presets.get("default").override(initializers=["orthogonal", "he_normal", "normal(stddev=0.3)"],
                                                 optimizer="adamw(b2=0.97)", datasets=["synthetic"])
    model = models.build("mlp", (13,), 3, hidden=(7,))
    with jax.log_compiles(True), caplog.at_level("WARNING"):
        presets.validate(experiment)
        initialization.check_on_model(model, {"orthogonal": initjax.get("orthogonal")}, (13,))
        xs, ys, ws = programs.chunked_for_eval(np.ones((11, 13), np.float32), np.arange(11, dtype=np.int32), 4)
    compiled = [r.getMessage() for r in caplog.records if "XLA compilation" in r.getMessage()]
    assert compiled == []
    assert xs.shape == (3, 4, 13) and ys.dtype == jnp.int32 and float(ws.sum()) == 11.0
    np.testing.assert_array_equal(np.asarray(ys).ravel()[:11], np.arange(11))


def test_a_models_forward_is_remembered_for_that_model_object_only():
    """A task's checks and programs share one traced ``Forward`` of its model; a model rebuilt with equal fields
    (after a change its fields do not show, such as a global its module reads) is traced again."""
    from bench.training.step import forward_of

    model = models.mlp_for(4, 2, (8,))
    assert forward_of(model, (4,)) is forward_of(model, [4])
    rebuilt = models.mlp_for(4, 2, (8,))
    assert rebuilt == model and forward_of(rebuilt, (4,)) is not forward_of(model, (4,))
    assert forward_of(model, (4,), matmuls=True).matmuls and not forward_of(model, (4,)).matmuls
