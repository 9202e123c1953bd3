"""The decoder-only transformer, its role-aware init schemes against their formulas, the next-token loss and
the sequence generators against exact results."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

import initjax
from bench import data, models
from bench.data import sequences
from bench.models import losses
from bench.models.transformer import Transformer
from bench.training import recipes
from initjax import rules
from initjax import transformer as roles

V, T, D, L = 11, 8, 32, 3


def _model(norm="pre", tied=False, width=D, depth=L, heads=4):
    return models.build("transformer", (T,), V, (width,) * depth, "gelu", heads=heads, norm=norm, tied=tied)


def _params(model, key=0):
    # compiled: Flax's init dispatched op by op takes seconds on 2 cores
    return jax.jit(lambda k: model.init(k, jnp.zeros((1, T)))["params"])(jax.random.key(key))


def _tokens(key, n=4):
    return jax.random.randint(jax.random.key(key), (n, T), 0, V).astype(jnp.float32)


# ---------------------------------------------------------------- the model


@pytest.mark.parametrize("norm, tied", [("pre", False), ("post", False), ("none", True)])
def test_parameter_count_is_exact(norm, tied):
    d = D
    per_block = 4 * d * d + 3 * d + (d * 4 * d + 4 * d) + (4 * d * d + d) + 1  # attention, MLP, residual_alpha
    per_block += 0 if norm == "none" else 2 * 2 * d  # two LayerNorms, scale and bias
    expected = V * d + T * d + L * per_block + (2 * d if norm == "pre" else 0) + (0 if tied else d * V + V)
    params = jax.eval_shape(lambda: _params(_model(norm, tied)))  # shapes only: nothing is computed
    assert sum(leaf.size for leaf in jax.tree.leaves(params)) == expected
    assert ("readout" in params) == (not tied)


@pytest.mark.parametrize("norm", ["pre", "post", "none"])
def test_attention_is_causal(norm):
    model = _model(norm)
    params = _params(model)
    x = _tokens(1)
    changed = x.at[:, 5].set((x[:, 5] + 1) % V)
    apply = jax.jit(model.apply)
    a, b = apply({"params": params}, x), apply({"params": params}, changed)
    assert a.shape == (4, T, V)
    np.testing.assert_array_equal(a[:, :5], b[:, :5])
    assert not np.allclose(a[:, 5:], b[:, 5:])


def test_without_norm_gains_the_norms_have_no_parameters_and_match_the_gains_at_their_initial_values():
    """``norm_gains=False`` strips each LayerNorm's scale and bias (and nothing else): with the other parameters
    the same, the logits equal those of the model whose gains are at their initial ones and zeros, and part from
    them once the gains move."""
    gains, plain = _model(), models.build("transformer", (T,), V, (D,) * L, "gelu", heads=4, norm_gains=False)
    with_gains, without = _params(gains), _params(plain)
    norms = [path for path, _ in jax.tree_util.tree_flatten_with_path(with_gains)[0] if "norm" in str(path)]
    assert len(norms) == (2 * L + 1) * 2  # two per block and the final one, scale and bias each
    assert sum(leaf.size for leaf in jax.tree.leaves(with_gains)) - sum(
        leaf.size for leaf in jax.tree.leaves(without)) == (2 * L + 1) * 2 * D
    stripped = {name: ({k: v for k, v in sub.items() if not k.startswith("norm_")} if name.startswith("block_")
                       else sub) for name, sub in with_gains.items() if name != "final_norm"}
    assert jax.tree.structure(stripped) == jax.tree.structure(without)
    x = _tokens(3)
    np.testing.assert_allclose(plain.apply({"params": stripped}, x), gains.apply({"params": with_gains}, x),
                               rtol=1e-5, atol=1e-6)
    moved = jax.tree_util.tree_map_with_path(lambda path, v: v * 1.5 if "norm" in str(path) else v, with_gains)
    assert not np.allclose(plain.apply({"params": stripped}, x), gains.apply({"params": moved}, x), atol=1e-3)
    assert models.describe(plain, (T,)).endswith("no norm gains gelu")


def test_tied_logits_are_the_final_state_times_the_embedding():
    model = _model("none", tied=True)
    params = _params(model)
    x = _tokens(2)
    logits, state = jax.jit(lambda p: model.apply({"params": p}, x, capture_intermediates=True,
                                                  mutable=["intermediates"]))(params)
    final = state["intermediates"][f"block_{L - 1}"]["__call__"][0]
    np.testing.assert_allclose(logits, final @ params["embed"]["embedding"].T,
                               rtol=1e-5, atol=1e-5)


def test_residual_alpha_gets_no_gradient_and_no_weight_decay():
    model = _model("post")
    params = roles.deepnorm()(jax.random.key(0), _params(model), None, None)
    x, y = _tokens(3), jnp.asarray(_tokens(4), jnp.int32)

    def loss(p):
        return losses.next_token_cross_entropy(model.apply({"params": p}, x), y)[0].mean()

    grads = jax.jit(jax.grad(loss))(params)  # one program each, not an eager dispatch per operation
    assert float(grads["block_0"]["residual_alpha"]) == 0.0
    for optimizer in ("adamw", "momentum", "lion"):
        step = recipes.build(optimizer, 1e-2, weight_decay=0.1)
        moved = jax.jit(lambda p, g, step=step: optax.apply_updates(p, step.update(g, step.init(p), p)[0]))(
            params, grads)
        for i in range(L):
            assert moved[f"block_{i}"]["residual_alpha"] == params[f"block_{i}"]["residual_alpha"] == (2 * L) ** 0.25
        query = "block_0", "attn", "query", "kernel"
        assert not np.allclose(_at(moved, query), _at(params, query))


def _at(tree, path):
    for part in path:
        tree = tree[part]
    return tree


def test_bad_transformer_options_are_one_line_errors():
    from bench.errors import UserError

    for options, message in [({"heads": 5}, "whole divisor of the width 32"), ({"norm": "rms"}, "unknown"),
                             ({"tied": "yes"}, "true or false"), ({"depth": 2}, "no option 'depth'"),
                             ({"norm_gains": 0}, "norm_gains must be true or false, got 0"),
                             ({"norm_gains": False, "norm": "none"}, "needs LayerNorms to strip")]:
        with pytest.raises(UserError, match=message):
            models.build("transformer", (T,), V, (D, D), "gelu", **options)
    with pytest.raises(UserError, match="token sequences"):
        models.build("transformer", (8, 8, 1), V, (D,), "gelu")


# ---------------------------------------------------------------- the loss


def test_next_token_loss_counts_only_labelled_positions():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=(3, 5)).astype(np.int32)
    labels[:, :2] = -1
    labels[1, 4] = -1
    loss, accuracy = losses.next_token_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    for i in range(3):
        counted = [t for t in range(5) if labels[i, t] >= 0]
        np.testing.assert_allclose(loss[i], np.mean([-log_p[i, t, labels[i, t]] for t in counted]), rtol=1e-5)
        np.testing.assert_allclose(accuracy[i], np.mean([logits[i, t].argmax() == labels[i, t] for t in counted]))


# ---------------------------------------------------------------- generated sequences


def test_entropy_rate_of_a_two_state_chain_is_the_closed_form():
    a, b = 0.1, 0.3
    chain = sequences.chain_of(np.array([[1 - a, a], [b, 1 - b]]))
    np.testing.assert_allclose(chain.stationary, [b / (a + b), a / (a + b)], rtol=1e-10)

    def h(p):
        return -p * np.log(p) - (1 - p) * np.log(1 - p)

    np.testing.assert_allclose(chain.entropy_rate(), b / (a + b) * h(a) + a / (a + b) * h(b), rtol=1e-10)


def test_stationary_distribution_of_65536_contexts_is_a_fixed_point_of_the_chain():
    rng = np.random.default_rng(5)
    chain = sequences.random_chain(16, 4, 0.5, rng)
    pi, p = chain.stationary, chain.next_token
    stepped = np.zeros_like(pi)
    contexts = np.arange(len(pi))
    for token in range(16):  # the successor rule written out, independent of chain_of's reshaped sum
        np.add.at(stepped, chain.successor(contexts, np.full_like(contexts, token)), pi * p[:, token])
    assert abs(pi.sum() - 1) < 1e-12 and np.abs(stepped - pi).sum() < 1e-10


@pytest.mark.parametrize("order", [1, 2])
def test_sampled_sequences_follow_the_chain_and_their_optimal_loss_is_the_entropy_rate(order):
    rng = np.random.default_rng(order)
    chain = sequences.random_chain(4, order, 0.5, rng)
    tokens, surprise = sequences.sample_chain(chain, 4000, 24, rng)
    # every position's context is stationary: the context distribution at the last position is pi
    last = np.zeros(len(chain.stationary))
    context = sum(tokens[:, -order + j] * 4 ** (order - 1 - j) for j in range(order))
    np.add.at(last, context, 1)
    assert stats.chisquare(last, chain.stationary * len(tokens)).pvalue > 1e-3
    # -log p of each token is that of the chain's row for its context
    t = 10
    ctx = sum(tokens[:, t - order + j] * 4 ** (order - 1 - j) for j in range(order))
    np.testing.assert_allclose(surprise[:, t], -np.log(chain.next_token[ctx, tokens[:, t]]))
    per_example = np.nanmean(surprise[:, order:], axis=1)
    z = (per_example.mean() - chain.entropy_rate()) / (per_example.std(ddof=1) / np.sqrt(len(per_example)))
    assert abs(z) < 4, z


def test_markov_dataset_masks_short_contexts_and_keeps_optimal_losses_through_subsets():
    d = data.load("markov(vocab=5, order=3, context=12, n_train=300, n_val=50, n_test=80, seed=4)")
    assert d.x_train.shape == (300, 12) and d.y_train.shape == (300, 12) and d.n_classes == 5
    assert (d.y_train[:, :2] == -1).all() and (d.y_train[:, 2:] >= 0).all()
    np.testing.assert_array_equal(d.y_train[:, 2:-1], d.x_train[:, 3:])  # a label is the next input
    small = d.subset(100, 20)
    assert len(small.optimal["train"]) == 100 and len(small.optimal["test"]) == 20 and len(small.optimal["val"]) == 20
    np.testing.assert_array_equal(small.optimal["train"], d.optimal["train"][:100])
    held = data.load("markov(vocab=5, order=1, n_val=0)").hold_out(100)
    assert len(held.optimal["val"]) == 100 and len(held.optimal["train"]) == len(held.x_train)


def test_modular_addition_labels_the_sum_and_splits_every_pair_once():
    d = data.load("modular_addition(p=7, fraction=0.4)")
    x = np.concatenate([d.x_train, d.x_test]).astype(int)
    y = np.concatenate([d.y_train, d.y_test])
    assert d.n_classes == 8 and (x[:, 2] == 7).all() and (y[:, :2] == -1).all()
    np.testing.assert_array_equal(y[:, 2], (x[:, 0] + x[:, 1]) % 7)
    assert len({(a, b) for a, b, _ in x}) == 49 and len(d.x_train) == round(0.4 * 49)


def test_copy_labels_repeat_the_tokens_before_the_separator():
    d = data.load("copy(vocab=5, length=4, n_train=64, n_val=0, n_test=8)")
    x, y = d.x_train.astype(int), d.y_train
    assert d.n_classes == 6 and d.input_shape == (8,) and (x[:, 4] == 5).all() and (x[:, :4] < 5).all()
    assert (y[:, :4] == -1).all()
    np.testing.assert_array_equal(y[:, 4:], x[:, :4])  # position t predicts the token m + 1 places back
    np.testing.assert_array_equal(x[:, 5:], x[:, :3])  # the inputs after the separator are the copy so far
    assert d.optimal_loss() == {"train": 0.0, "test": 0.0}
    assert stats.chisquare(np.bincount(x[:, :4].ravel(), minlength=5)).pvalue > 1e-4  # uniform content


def test_associative_recall_answers_the_value_stored_with_the_queried_key():
    d = data.load("associative_recall(keys=6, values=3, pairs=4, n_train=256, n_val=0, n_test=8)")
    x, y = d.x_train.astype(int), d.y_train
    assert d.n_classes == 9 and d.input_shape == (9,) and (y[:, :-1] == -1).all()
    keys, values = x[:, 0:8:2], x[:, 1:8:2]
    assert all(len(set(row)) == 4 for row in keys) and (keys < 6).all() and (values >= 6).all()
    asked = np.argmax(keys == x[:, [8]], axis=1)
    assert (keys == x[:, [8]]).sum(axis=1).tolist() == [1] * len(x)  # the query is exactly one stored key
    np.testing.assert_array_equal(y[:, -1], values[np.arange(len(x)), asked])
    assert set(asked) == {0, 1, 2, 3}


@pytest.mark.parametrize("spec, message", [("markov(vocab=1)", "vocab must be an integer >= 2"),
                                           ("associative_recall(keys=3, pairs=4)", "pairs must be at most keys"),
                                           ("copy(length=0)", "length must be an integer >= 1"),
                                           ("markov(colour=2)", "unexpected keyword"),
                                           ("markov(4)", "by name"),
                                           ("markov(concentration=True)", "concentration must be a number"),
                                           ("modular_addition(fraction=1.0)", "both splits non-empty")])
def test_bad_generator_specs_are_one_line_errors(spec, message):
    from bench.errors import UserError
    from bench.experiments import presets

    with pytest.raises(UserError, match=message):
        data.load(spec)
    second = presets.Task(spec, hidden=(16,), model="transformer", label="bad")
    experiment = presets.get("lm-init")
    with pytest.raises(UserError, match=message):  # before the first task trains
        presets.validate(dataclasses.replace(experiment, tasks=(experiment.tasks[0], second)))


# ---------------------------------------------------------------- role-aware schemes against their formulas

WIDE = 256


@pytest.fixture(scope="module")
def wide():
    model = _model("post", width=WIDE, depth=4, heads=8)
    return model, _params(model)


def _by_role(params):
    found = roles.roles(params)
    leaves = {rules.path_name(p): leaf for p, leaf in jax.tree.leaves_with_path(params)}
    out = {}
    for name, role in found.items():
        out.setdefault(role, []).append(np.asarray(leaves[name]))
    return out


def _std_is(arrays, std, rel=0.03):
    values = np.concatenate([a.ravel() for a in arrays])
    assert abs(values.std() / std - 1) < rel, (values.std(), std)
    assert abs(values.mean()) < 4 * std / np.sqrt(values.size)


def test_gpt2_draws_each_role_with_its_standard_deviation(wide):
    model, params = wide
    got = _by_role(initjax.get("gpt2")(jax.random.key(1), params, None, None))
    for role in ("embedding", "query", "key", "value", "mlp_in", "readout"):
        _std_is(got[role], 0.02)
    _std_is(got["position"], 0.01, rel=0.1)
    _std_is(got["attn_out"] + got["mlp_out"], 0.02 / np.sqrt(2 * 4))
    assert all(float(a) == 1.0 for a in got["residual_alpha"])


def test_t_fixup_scales_value_output_mlp_and_embeddings_by_0_67_l_to_the_minus_quarter(wide):
    model, params = wide
    got = _by_role(initjax.get("t_fixup")(jax.random.key(2), params, None, None))
    scale = 0.67 * 4**-0.25
    _std_is(got["embedding"], scale * WIDE**-0.5)
    _std_is(got["value"] + got["attn_out"], scale * np.sqrt(2 / (2 * WIDE)))
    _std_is(got["mlp_in"] + got["mlp_out"], scale * np.sqrt(2 / (5 * WIDE)))
    _std_is(got["query"] + got["key"], np.sqrt(2 / (2 * WIDE)))
    bound = np.sqrt(3) * np.sqrt(2 / (2 * WIDE))  # Xavier uniform: bounded, flat
    q = np.concatenate([a.ravel() for a in got["query"]])
    assert q.max() <= bound and q.min() >= -bound and stats.kstest(q / bound, "uniform", (-1, 2)).pvalue > 1e-3


def test_deepnorm_sets_alpha_and_scales_branches_by_beta(wide):
    model, params = wide
    got = _by_role(initjax.get("deepnorm")(jax.random.key(3), params, None, None))
    alpha, beta = (2 * 4) ** 0.25, (8 * 4) ** -0.25
    assert roles.deepnorm_constants(4) == pytest.approx((alpha, beta))
    np.testing.assert_allclose([float(a) for a in got["residual_alpha"]], alpha, rtol=1e-6)
    _std_is(got["value"] + got["attn_out"], beta * np.sqrt(2 / (2 * WIDE)))
    _std_is(got["mlp_in"] + got["mlp_out"], beta * np.sqrt(2 / (5 * WIDE)))
    _std_is(got["query"] + got["key"], np.sqrt(2 / (2 * WIDE)))
    v = np.concatenate([a.ravel() for a in got["value"]])
    assert stats.kstest(v / v.std(), "norm").pvalue > 1e-3  # Xavier normal, untruncated


@pytest.mark.parametrize("wang", [False, True])
def test_small_init_and_wang_outputs(wide, wang):
    model, params = wide
    got = _by_role(initjax.get(f"small_init(wang={wang})")(jax.random.key(4), params, None, None))
    for role in ("embedding", "query", "value", "mlp_in", "readout"):
        _std_is(got[role], np.sqrt(2 / (5 * WIDE)))
    _std_is(got["attn_out"] + got["mlp_out"], 2 / (4 * np.sqrt(WIDE)) if wang else np.sqrt(2 / (5 * WIDE)))


def test_mimetic_products_are_the_targets_svd(wide):
    model, params = wide
    head_width = WIDE // 8
    drawn = initjax.get("mimetic(heads=8)")(jax.random.key(5), params, None, None)
    attn = drawn["block_2"]["attn"]
    q, k = np.asarray(attn["query"]["kernel"], np.float64), np.asarray(attn["key"]["kernel"], np.float64)
    query_key = rules.leaf_key(jax.random.key(5), "block_2/attn/query/kernel")
    for h in (0, 5):
        z = np.asarray(jax.random.normal(jax.random.fold_in(query_key, h), (WIDE, WIDE)), np.float64) / WIDE**0.5
        u, s, vt = np.linalg.svd(0.7 * z + 0.7 * np.eye(WIDE))
        best = (u[:, :head_width] * s[:head_width]) @ vt[:head_width]  # Eckart-Young: the best rank-r approximation
        cols = slice(h * head_width, (h + 1) * head_width)
        np.testing.assert_allclose(q[:, cols] @ k[:, cols].T, best, atol=2e-4)
    z = np.asarray(jax.random.normal(rules.leaf_key(jax.random.key(5), "block_2/attn/value/kernel"), (WIDE, WIDE)),
                   np.float64) / WIDE**0.5
    value_out = np.asarray(attn["value"]["kernel"], np.float64) @ np.asarray(attn["out"]["kernel"], np.float64)
    np.testing.assert_allclose(value_out, 0.4 * z - 0.4 * np.eye(WIDE), atol=2e-4)
    gpt = initjax.get("gpt2")(jax.random.key(5), params, None, None)
    np.testing.assert_array_equal(drawn["block_2"]["mlp"]["in"]["kernel"], gpt["block_2"]["mlp"]["in"]["kernel"])
    with pytest.raises(ValueError, match="heads=H"):
        initjax.get("mimetic")


@pytest.mark.parametrize("spec, zeroed", [("zero_residual", ("attn_out", "mlp_out")),
                                          ("mup_zero", ("readout", "query"))])
def test_zeroed_roles_and_gpt2_elsewhere_with_the_same_numbers(wide, spec, zeroed):
    model, params = wide
    got = initjax.get(spec)(jax.random.key(6), params, None, None)
    gpt = initjax.get("gpt2")(jax.random.key(6), params, None, None)
    for path, leaf in jax.tree.leaves_with_path(got):
        name = rules.path_name(path)
        if roles.role_of(name) in zeroed:
            assert not np.any(leaf)
        else:
            np.testing.assert_array_equal(leaf, _at(gpt, name.split("/")))


def test_zero_residual_blocks_are_the_identity_at_init():
    model = _model("none", depth=2)
    params = initjax.get("zero_residual")(jax.random.key(7), _params(model), None, None)
    x = _tokens(8)
    _, state = model.apply({"params": params}, x, capture_intermediates=True, mutable=["intermediates"])
    embedded = (params["embed"]["embedding"][x.astype(int)] + params["position"]["embedding"][None])
    for i in range(2):
        np.testing.assert_allclose(state["intermediates"][f"block_{i}"]["__call__"][0], embedded, atol=1e-6)


def test_role_aware_schemes_refuse_a_model_without_roles():
    mlp = models.build("mlp", (8,), 3, (16,), "relu")
    params = mlp.init(jax.random.key(0), jnp.zeros((1, 8)))["params"]
    with pytest.raises(ValueError, match="use model 'transformer'"):
        initjax.get("gpt2")(jax.random.key(0), params, None, None)


TRANSFORMER_SCHEMES = ["t_fixup", "deepnorm", "mimetic(heads=2)", "mup_zero"]  # gpt2 is inside the last two


def test_transformer_runs_inside_the_batch_equal_runs_alone():
    """Schemes x 2 seeds trained as one vmapped program; one (scheme, seed) trained alone gives its numbers."""
    from bench.training.train import TrainConfig, train_task

    d = data.load("markov(vocab=6, order=2, context=8, n_train=96, n_val=0, n_test=32)")
    model = models.build("transformer", (8,), 6, (16, 16), "gelu", heads=2, norm="post")
    config = TrainConfig(optimizer="adamw", lr=3e-3, batch_size=32, epochs=2, weight_decay=0.01)
    batch = train_task(d, model, {n: initjax.get(n) for n in TRANSFORMER_SCHEMES}, [0, 1], config, progress=False)
    alone = train_task(d, model, {"deepnorm": initjax.get("deepnorm")}, [1], config, progress=False)
    i = TRANSFORMER_SCHEMES.index("deepnorm")
    for path, leaf_batch in jax.tree.leaves_with_path(batch.params):
        name = rules.path_name(path)
        np.testing.assert_allclose(leaf_batch[i, 1], _at(alone.params, name.split("/"))[0, 0], rtol=2e-5, atol=2e-6,
                                   err_msg=name)
    rows = batch.frame[(batch.frame.arm == "deepnorm") & (batch.frame.seed == 1)].reset_index(drop=True)
    metrics = ["train_loss", "train_accuracy", "test_loss", "test_accuracy"]
    np.testing.assert_allclose(rows[metrics].to_numpy(), alone.frame[metrics].to_numpy(), rtol=1e-5, atol=1e-6)
    final = batch.frame[batch.frame.epoch == batch.frame.epoch.max()].set_index(["arm", "seed"])["test_accuracy"]
    shares = batch.outcomes["correct"]  # per sequence the share of its positions right, not rounded to 0/1
    assert 0 < np.mean((shares > 0) & (shares < 1))
    for j, name in enumerate(TRANSFORMER_SCHEMES):
        np.testing.assert_allclose(shares[j].mean(-1), [final[(name, s)] for s in (0, 1)], atol=1e-6)
    assert np.isfinite(batch.frame[metrics].to_numpy()).all()
    alpha = batch.params["block_1"]["residual_alpha"]  # fixed through training, AdamW's decay included
    np.testing.assert_allclose(alpha[i], 2**0.5, rtol=1e-6)
    assert np.all(np.delete(np.asarray(alpha), i, axis=0) == 1.0)


def test_transformer_has_the_documented_roles():
    params = _params(Transformer(vocab=V, width=D, depth=2, heads=2))
    assert sorted(set(roles.roles(params).values())) == sorted(roles.ROLES)


@pytest.mark.slow  # two transformer tasks compiled: the second CI step
def test_lm_init_smoke_runs_offline_and_reports_each_gap_to_the_optimal_loss(tmp_path, monkeypatch, capsys):
    import re
    import socket

    import pandas as pd

    from bench import cli
    from bench.experiments import presets

    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    presets.validate(presets.get("lm-init"))  # every arm of the preset resolves; two of them are trained here
    arms = "glorot_uniform,mimetic(heads=4)"
    assert cli.main(["run", "lm-init", "--smoke", "--initializers", arms, "--hidden", "16,16",  # 2 blocks: less to
                     "--out", str(tmp_path), "--no-progress", "--format", "md,tex,csv"]) == 0  # compile, same report
    text = (tmp_path / "report.md").read_text()
    results = pd.read_csv(tmp_path / "results.csv")
    task = presets.get("lm-init").tasks[0]
    optimum = float(np.mean(data.load(task.dataset).subset(*presets.SMOKE_SUBSET).optimal["test"]))
    section = text[text.index(f"## {task.name}"):]
    assert f"own loss on these test examples is {optimum:.4f} nats/token" in section
    final = results[(results.dataset == task.name) & (results.epoch == results.epoch.max())]
    for arm, losses_of_arm in final.groupby("arm")["test_loss"]:
        gap = float(re.search(rf"`{re.escape(arm)}` ([+-][0-9.]+) \[", section).group(1))
        assert gap == pytest.approx(losses_of_arm.mean() - optimum, abs=6e-5)
    assert set(final.arm) == set(arms.split(",")) and len(set(results.dataset)) == 2
    assert "### Comparisons with the best: test loss" in text  # language models are ranked by their loss
    assert "best: lowest mean" in text and "highest mean" not in text
    tex = (tmp_path / "report.tex").read_text()
    assert "Gap (nats/token)" in tex and f"({optimum:.4f} nats/token)" in tex and "best (lowest mean" in tex
    first_gap = re.search(r"& ([+-][0-9.]+) \[[+-][0-9.]+, [+-][0-9.]+\] & [0-9]+/[0-9]+ \\\\", tex).group(1)
    assert float(first_gap) == pytest.approx(final.groupby("arm")["test_loss"].mean().min() - optimum, abs=6e-4)


def test_language_models_are_ranked_by_loss_unless_a_task_is_not_one():
    import pandas as pd

    from bench.reporting.analysed import ranked_metric
    from bench.reporting.record import TaskRecord

    results = pd.DataFrame(columns=["test_loss", "test_accuracy"])
    lm = TaskRecord(model="Transformer", runs=2, init_s=0.0, compile_s=0.0, train_s=0.0, language_model=True)
    mlp = TaskRecord(model="MLP", runs=2, init_s=0.0, compile_s=0.0, train_s=0.0)
    assert ranked_metric(results, {"a": lm, "b": lm}) == "test_loss"
    assert ranked_metric(results, {"a": lm, "b": mlp}) == "test_accuracy"
    assert ranked_metric(results, {}) == "test_accuracy"  # no task recorded
