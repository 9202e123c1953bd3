"""The transformer trace of ``bench.studies.early_steps``: statistics against numpy from the parameters, the
runs' own first steps against one optimizer update done by hand, a run in the batch against the run alone."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import initjax
from bench import data, models
from bench.models import losses
from bench.studies import early_steps
from bench.training import programs, seeding
from bench.training.initialization import init_params

ARMS = ("gpt2", "zero_residual", "mup_zero")


@pytest.fixture(scope="module")
def task():
    d = data.load("markov(vocab=6, order=1, context=8, n_train=64, n_val=0, n_test=16)")
    model = models.build("transformer", (8,), 6, (16, 16), "gelu", heads=2, norm="pre")
    return d, model, jnp.asarray(d.x_train), jnp.asarray(d.y_train)


def _trace(task, arms, seeds, steps=2):
    d, model, x, y = task
    init_keys, data_keys = seeding.run_keys(0, d.name, seeds)
    optimizer = optax.adam(3e-3)
    traced = early_steps.trace(model, optimizer, losses.get("next_token_cross_entropy"),
                               [initjax.get(a) for a in arms], init_keys, data_keys, x, y, 16, steps)
    return traced, init_keys, data_keys, optimizer


@pytest.fixture(scope="module")
def batch(task):
    return _trace(task, ARMS, [0, 1])


def _layer_norm(h):
    return (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-6)


def test_statistics_at_init_match_numpy_from_the_parameters(task, batch):
    d, model, x, _ = task
    traced, init_keys, _, _ = batch
    params = jax.tree.map(lambda leaf: np.asarray(leaf[0, 1], np.float64),  # gpt2, seed 1
                          init_params(model, [initjax.get("gpt2")], init_keys, d.input_shape, x))
    tokens = np.asarray(x[:early_steps.PROBE], int)
    h = params["embed"]["embedding"][tokens] + params["position"]["embedding"][None]
    np.testing.assert_allclose(traced["residual_rms"][0, 0, 1, 0], np.sqrt(np.mean(h**2)), rtol=1e-5)
    block = params["block_0"]
    z = _layer_norm(h)
    q = (z @ block["attn"]["query"]["kernel"] + block["attn"]["query"]["bias"]).reshape(*h.shape[:2], 2, 8)
    k = (z @ block["attn"]["key"]["kernel"]).reshape(*h.shape[:2], 2, 8)
    logits = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(8)
    causal = np.broadcast_to(np.tril(np.ones((8, 8), bool)), logits.shape)
    np.testing.assert_allclose(traced["logit_std"][0, 0, 1, 0], logits[causal].std(), rtol=1e-4)
    np.testing.assert_allclose(traced["logit_max"][0, 0, 1, 0], np.abs(logits[causal]).max(), rtol=1e-4)
    # zero residual branches: every block is the identity, so the stream keeps the embeddings' RMS and no update
    zero = ARMS.index("zero_residual")
    rms = traced["residual_rms"][0, zero]  # (seeds, layers)
    np.testing.assert_allclose(rms, np.broadcast_to(rms[:, :1], rms.shape), rtol=1e-6)
    assert np.all(traced["attn_branch_ratio"][0, zero] == 0) and np.all(traced["mlp_branch_ratio"][0, zero] == 0)
    # muP's zero query: every logit is 0 at init; with the readout at 0 too, the first update moves the readout
    # alone (no gradient reaches below it), and the second one the query
    mup = ARMS.index("mup_zero")
    assert np.all(traced["logit_max"][:2, mup] == 0) and np.all(traced["logit_std"][2, mup] > 0)


def test_first_step_is_the_runs_own_update_and_a_run_alone_matches_the_batch(task, batch):
    d, model, x, y = task
    traced, init_keys, data_keys, optimizer = batch
    params = jax.tree.map(lambda leaf: leaf[1, 0],  # zero_residual, seed 0
                          init_params(model, [initjax.get(a) for a in ARMS], init_keys, d.input_shape, x))
    first = programs.epoch_order(data_keys[0], 0, len(x), 64)[:16]  # the seed's first minibatch of epoch 0
    loss = losses.get("next_token_cross_entropy")

    @jax.jit  # one program, not hundreds of dispatched operations
    def by_hand(params):
        grads = jax.grad(lambda p: loss(model.apply({"params": p}, x[first]), y[first])[0].mean())(params)
        updates, _ = optimizer.update(grads, optimizer.init(params), params)
        return early_steps.stream_statistics(model, optax.apply_updates(params, updates), x[:early_steps.PROBE])

    expected = by_hand(params)
    for name, values in expected.items():
        np.testing.assert_allclose(traced[name][1, 1, 0], values, rtol=2e-5, atol=1e-7, err_msg=name)
    alone, *_ = _trace(task, ["zero_residual"], [0])
    for name, values in alone.items():
        np.testing.assert_allclose(traced[name][:, 1, 0], values[:, 0, 0], rtol=2e-5, atol=1e-7, err_msg=name)


def test_trace_refuses_more_steps_than_an_epoch(task):
    with pytest.raises(ValueError, match="from 1 to the 4 steps of one epoch"):
        _trace(task, ["gpt2"], [0], steps=5)


def test_diagnose_uses_the_next_token_loss_and_traces_a_transformer_instead_of_its_jacobian():
    from bench.experiments.presets import Experiment, Task
    from bench.studies import diagnose
    from bench.training.recipes import TrainConfig

    spec = "markov(vocab=6, order=1, context=8, n_train=64, n_val=0, n_test=16)"
    task = Task(spec, hidden=(16,), activation="gelu", model="transformer", model_args={"heads": 2}, label="lm")
    experiment = Experiment("t", "", (task,), ("gpt2",), seeds=1, train=TrainConfig(lr=3e-3, batch_size=16))
    result = diagnose.diagnose(experiment, seeds=1, steps=2)
    assert result.jacobian.empty  # token ids have no derivative
    assert sorted(set(result.early["step"])) == [0, 1, 2] and sorted(set(result.early["layer"])) == [0, 1]
    # the readout's gradient variance, by hand: d(mean over examples of each one's mean over counted positions)
    # / d logits = (softmax - one hot) / (counted positions * batch), times the batch for a per-example gradient
    ds = data.load(spec)
    model = models.build("transformer", (8,), 6, (16,), "gelu", heads=2)
    init_keys, _ = seeding.run_keys(0, ds.name, [0])
    params = jax.tree.map(lambda leaf: leaf[0, 0], init_params(model, [initjax.get("gpt2")], init_keys,
                                                                     ds.input_shape, jnp.asarray(ds.x_train)))
    x, y = ds.x_train[:diagnose.BATCH], ds.y_train[:diagnose.BATCH]
    logits = np.asarray(model.apply({"params": params}, jnp.asarray(x)), np.float64)
    counted = y >= 0
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    grad = (probs - np.eye(6)[np.where(counted, y, 0)]) * counted[..., None] / counted.sum(1)[:, None, None]
    readout = result.layers[result.layers["layer"] == "readout"]["gradient_variance"].item()
    assert readout == pytest.approx(grad.var(), rel=1e-4)
