"""A transformer's residual stream and attention logits at initialization and over its first optimizer steps.

Post-LN transformers trained without warm-up fail in the first few hundred steps (Liu et al.
2020, arXiv:2004.08249; Huang et al. 2020, T-Fixup; Wang et al. 2022, DeepNet): the residual
stream or the attention logits grow until the softmax saturates. This module measures both on a
fixed probe batch, for every (initializer, seed) at once:

* the residual stream's RMS, ``sqrt(mean(h**2))`` over the probe's examples, positions and
  features, entering block 0 (embeddings plus positions: layer 0) and leaving each block
  (layers ``1..L``);
* per block, the standard deviation and the largest magnitude of the attention logits
  ``q . k / sqrt(head width)`` over the causal entries (a query and the keys at or before it),
  all heads and probe examples;
* per block, for the attention and the MLP sublayer, the RMS of the branch's output over that
  of the stream it is added to (``alpha h``): the relative size of each residual update, the
  quantity whose growth Liu et al. 2020 blame for post-LN's instability (a post-LN stream is
  renormalized after every addition, so its RMS stays 1 and this ratio is what moves).

The steps are the run's own: the initial state of ``python -m bench run`` (same keys, same
schemes), the recipe's optimizer, and the minibatches of the seed's first epoch.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from bench.models.transformer import Transformer
from bench.training import step
from bench.training.initialization import initial_state
from bench.training.programs import epoch_orders

STEPS = 32  # optimizer steps traced after initialization
PROBE = 64  # training sequences the statistics are measured on


def stream_statistics(model: Transformer, params, tokens: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """One network's residual-stream RMS and attention-logit scale on ``tokens`` `(batch, context)`.

    Returns:
      ``{"residual_rms": (L + 1,), "logit_std": (L,), "logit_max": (L,), "attn_branch_ratio": (L,),
      "mlp_branch_ratio": (L,)}`` (see the module docstring).
    """
    _, state = model.apply({"params": params}, tokens, mutable=["intermediates"])
    sown = state["intermediates"]
    streams = [sown["residual"][0]] + [sown[f"block_{i}"]["residual"][0] for i in range(model.depth)]
    blocks = [sown[f"block_{i}"] for i in range(model.depth)]
    logits = [block["attn"]["attention_logits"][0] for block in blocks]  # (batch, heads, t, s)
    context = tokens.shape[-1]
    causal = jnp.broadcast_to(jnp.tril(jnp.ones((context, context), bool)), logits[0].shape)
    count = causal.sum()

    def logit_std(z):
        mean = jnp.sum(jnp.where(causal, z, 0.0)) / count
        return jnp.sqrt(jnp.sum(jnp.where(causal, jnp.square(z - mean), 0.0)) / count)

    return {
        "residual_rms": jnp.stack([jnp.sqrt(jnp.mean(jnp.square(h))) for h in streams]),
        "logit_std": jnp.stack([logit_std(z) for z in logits]),
        "logit_max": jnp.stack([jnp.max(jnp.where(causal, jnp.abs(z), 0.0)) for z in logits]),
        **{f"{name}_branch_ratio": jnp.stack([block[f"{name}_branch_ratio"][0] for block in blocks])
           for name in ("attn", "mlp")},
    }


def trace(model: Transformer, optimizer: optax.GradientTransformation, loss_fn, arms, init_keys, data_keys,
          x_train: jnp.ndarray, y_train: jnp.ndarray, batch_size: int, steps: int = STEPS) -> dict[str, np.ndarray]:
    """:func:`stream_statistics` of every (arm, seed) at initialization and after each of ``steps`` updates.

    Args:
      arms: initializers, rule sets or schemes (``bench.training.train.init_params``).
      init_keys, data_keys: `(n_seeds,)` keys of the runs (``bench.training.train.run_keys``).
      loss_fn: ``loss(outputs, labels) -> (per_example_loss, metric)`` (``bench.models.losses``).
      steps: at most the steps of one epoch (the seed's first-epoch minibatches, in its order).

    Returns:
      :func:`stream_statistics`'s entries with leading axes `(steps + 1, n_arms, n_seeds)`.
    """
    n = x_train.shape[0]
    if not 1 <= steps <= -(-n // batch_size):
        raise ValueError(f"steps must be from 1 to the {-(-n // batch_size)} steps of one epoch, got {steps}")
    input_shape = x_train.shape[1:]
    forward = step.forward_of(model, input_shape)
    if forward.stochastic or forward.stateful:
        raise ValueError("the trace needs a model without dropout or batch statistics")
    state = initial_state(model, optimizer, arms, init_keys, input_shape, x_train)
    order = epoch_orders(data_keys, 0, n, batch_size)[:steps]  # (steps, seeds, batch)
    probe = x_train[:PROBE]
    runs_step = step.over_runs(step.make_step(forward, loss_fn, optimizer), seed_axes=(0, 0, 0, None))
    measure = step.over_runs(lambda s, x: stream_statistics(model, s.params, x), seed_axes=(0, None))

    def one(state, i):
        weights = (i * batch_size + jnp.arange(batch_size) < n).astype(x_train.dtype)
        state, _ = runs_step(state, x_train[order[i]], y_train[order[i]], weights)
        return state, measure(state, probe)

    @jax.jit
    def run(state):
        _, after = jax.lax.scan(one, state, jnp.arange(steps))
        return jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), measure(state, probe), after)

    return {name: np.asarray(values) for name, values in run(state).items()}


def tidy(traced: dict[str, np.ndarray], dataset: str, names: list[str]) -> pd.DataFrame:
    """:func:`trace`'s arrays as rows ``dataset, arm, seed, step, layer, residual_rms, logit_std, logit_max,
    attn_branch_ratio, mlp_branch_ratio``; layer 0 is the embedding (no block: those columns are NaN)."""
    rms = traced["residual_rms"]  # (steps + 1, arms, seeds, L + 1)
    per_block = {key: np.concatenate([np.full((*values.shape[:3], 1), np.nan), values], axis=-1)
                 for key, values in traced.items() if key != "residual_rms"}
    s, a, r, layer = np.meshgrid(*map(np.arange, rms.shape), indexing="ij")
    return pd.DataFrame({"dataset": dataset, "arm": np.asarray(names)[a.ravel()], "seed": r.ravel(),
                         "step": s.ravel(), "layer": layer.ravel(), "residual_rms": rms.ravel(),
                         **{key: values.ravel() for key, values in per_block.items()}})


def summary(early: pd.DataFrame) -> pd.DataFrame:
    """Per task and initializer, means over seeds: the last block's residual RMS at init, after one step and at
    the last step; the largest over blocks of the attention-logit std and magnitude, and of the branch-to-stream
    RMS ratio of either sublayer, at init and at the last step."""
    last_layer, last_step = early["layer"].max(), early["step"].max()
    per_seed = early.groupby(["dataset", "arm", "seed", "step"], sort=False).agg(
        logit_std=("logit_std", "max"), logit_max=("logit_max", "max"), attn=("attn_branch_ratio", "max"),
        mlp=("mlp_branch_ratio", "max"))
    per_seed["ratio"] = per_seed[["attn", "mlp"]].max(axis=1)
    per_seed["top_rms"] = early[early["layer"] == last_layer].set_index(["dataset", "arm", "seed", "step"])[
        "residual_rms"]
    means = per_seed.groupby(["dataset", "arm", "step"], sort=False).mean()

    def at(column, when):
        return means.xs(when, level="step")[column]

    table = pd.DataFrame({
        "residual RMS, last block, init": at("top_rms", 0), "after step 1": at("top_rms", min(1, last_step)),
        f"after step {last_step}": at("top_rms", last_step),
        "logit std, init": at("logit_std", 0), f"logit std, step {last_step}": at("logit_std", last_step),
        "max |logit|, init": at("logit_max", 0), f"max |logit|, step {last_step}": at("logit_max", last_step),
        "branch/stream, init": at("ratio", 0), f"branch/stream, step {last_step}": at("ratio", last_step)})
    return table.reset_index()


def residual_figure(early: pd.DataFrame, dataset: str):
    """Residual-stream RMS against layer at initialization, one line per initializer (mean over seeds, log scale)."""
    from bench.reporting.figures import plt

    rows = early[(early["dataset"] == dataset) & (early["step"] == 0)]
    fig, ax = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    for name, arm in rows.groupby("arm", sort=False):
        curve = arm.groupby("layer")["residual_rms"].mean()
        ax.plot(curve.index, curve.values, marker="o", ms=3, label=name)
    ax.set_yscale("log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("layer (0: embeddings; i: leaving block i)")
    ax.set_ylabel("residual stream RMS")
    ax.set_title(f"{dataset}: residual stream at initialization (mean over seeds)")
    ax.legend(fontsize=7, ncols=2)
    return fig


def steps_figure(early: pd.DataFrame, dataset: str):
    """Over the first steps: the last block's residual RMS (left) and the largest attention-logit std over blocks
    (right), one line per initializer, mean over seeds."""
    from bench.reporting.figures import plt

    rows = early[early["dataset"] == dataset]
    top = rows[rows["layer"] == rows["layer"].max()]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for name, arm in top.groupby("arm", sort=False):
        curve = arm.groupby("step")["residual_rms"].mean()
        left.plot(curve.index, curve.values, label=name)
    for name, arm in rows.groupby("arm", sort=False):
        curve = arm.groupby(["step", "seed"])["logit_std"].max().groupby("step").mean()
        right.plot(curve.index, curve.values, label=name)
    left.set_ylabel("residual RMS leaving the last block")
    right.set_ylabel("attention-logit std (largest block)")
    left.set_yscale("log")
    right.set_yscale("symlog", linthresh=1e-3)  # muP's zero query starts at exactly 0
    for ax in (left, right):
        ax.set_xlabel("optimizer step")
    left.legend(fontsize=7, ncols=2)
    fig.suptitle(f"{dataset}: the first {int(rows['step'].max())} steps (mean over seeds)")
    return fig


def is_traced(model: nn.Module) -> bool:
    """Whether :func:`trace` applies: the suite's own transformer."""
    return isinstance(model, Transformer)
