"""The coordinate check (Yang et al. 2021, Tensor Programs V, Sec. 7 / microsoft/mup's ``coord_check``): do a
parameterization's activations and their updates keep their size as the model widens?

For each parameterization and width, the same MLP (or decoder-only transformer) is initialized
(``lecun_normal``, the fan-in draw the tables assume), then trained for a few steps on the same minibatches.
After each step ``t`` every layer's output is measured on a fixed probe batch: an MLP's pre-activations (the
last layer's are the logits); a transformer's embedding output, each block's residual stream and attention
logits, and its logits (microsoft/mup's coordinate check of a transformer looks at the same):

* ``rms``: ``sqrt(mean(h_t^2))``, the size of the coordinates;
* ``update_rms``: ``sqrt(mean((h_t - h_0)^2))``, how far training has moved them.

A parameterization is width-stable when neither grows or shrinks with width: the slope of ``log rms``
against ``log width`` (:func:`slopes`, least squares over the widths, per layer and step) is near 0.
What the math says of the updates' slopes in the first steps (Tensor Programs IV-V; ``n`` the width):

=============  ==========================  ==========================  ==================
               SP                          NTK                         muP
=============  ==========================  ==========================  ==================
Adam           input 0, hidden 1, output 1  input and hidden -1/2,       0 everywhere
                                           output 0
SGD            input -1/2, hidden 1/2,     input and hidden -1/2,       0 everywhere
               output 1                    output 0
=============  ==========================  ==========================  ==================

(SP under Adam: each step moves every entry of a matrix by ``Theta(lr)``, and a layer summing ``n`` of
them moves by ``Theta(n lr)``; NTK's features barely move, the kernel regime.) At initialization
every layer's output is width-stable but muP's logits, ``~ n^-1/2`` (output variance ``1/fan_in^2``).

**Over depth** (``sweep="depth"``: a ResMLP or a pre-LN transformer of 2, 4, ..., 32 blocks at one width, the
narrowest depth the base depth): the same measurements of the depth-independent layers (the stem's or
embedding's output, the residual stream after the first and after the last block, the last block's attention
logits, the logits), their slopes against ``log depth``. Without a depth rule (muP alone) the stream at
initialization grows with depth (each block adds a branch about the stream's size: at least as ``sqrt(L)``;
the ResMLP's pre-activation blocks compound, slope 1.08 over 2-32 blocks in ``reports/coordcheck-depth-resmlp-
adam``) and its updates with it; Depth-muP's ``L^-1/2`` branches and CompleteP's ``L^-1`` keep the last block's
stream and its updates depth-stable (Yang et al. 2023, Tensor Programs VI; Dey et al. 2025).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

import initjax
from bench import data as datasets
from bench import models
from bench.errors import UserError, option, unknown
from bench.models import losses
from bench.training import initialization, objective, parameterized, programs, recipes, seeding
from initjax import parameterization as param

WIDTHS = (64, 128, 256, 512, 1024, 2048)
TRANSFORMER_WIDTHS = (32, 64, 128, 256, 512)
TRANSFORMER_DATA = "markov(vocab=16, order=2, concentration=0.3, context=16, n_train=512, n_val=64, n_test=64)"
HEADS = 4  # the transformer's heads at every width: the head width grows with the model's
MODELS = ("mlp", "resmlp", "transformer")
DEPTH_MODELS = ("resmlp", "transformer")
SWEEPS = ("width", "depth")
PROBE = 256  # examples (sequences) the coordinates are measured on


@dataclasses.dataclass(frozen=True)
class Setup:
    """What is checked.

    Attributes:
      dataset: a classification dataset spec (``bench.data``), e.g. ``"digits"``; a token language for the
        transformer (:data:`TRANSFORMER_DATA`).
      depth: hidden layers of the MLP (all of one width), blocks of the transformer.
      activation: hidden activation.
      optimizer: optimizer spec (``bench.training.recipes``), e.g. ``"adam"``.
      lr: learning rate at the base width.
      base_width: where every parameterization is the same model.
      steps: optimizer steps after initialization.
      batch_size: examples per step.
      seeds: networks per (parameterization, width); their statistics are averaged.
      data_dir: where image datasets are found (``bench.data``).
      model: ``"mlp"``, ``"resmlp"`` or ``"transformer"`` (pre-LN, :data:`HEADS` heads).
      sweep: ``"width"`` (the widths vary at ``depth``) or ``"depth"`` (the depths vary at ``base_width``).
      base_depth: the depth where every depth rule is the base model (a depth sweep: its narrowest depth; a width
        sweep: ``depth``).
    """

    dataset: str = "digits"
    depth: int = 2
    activation: str = "relu"
    optimizer: str = "adam"
    lr: float = 1e-2
    base_width: int = 64
    steps: int = 5
    batch_size: int = 64
    seeds: int = 3
    data_dir: str | None = None
    model: str = "mlp"
    sweep: str = "width"
    base_depth: int | None = None


def setup_from(parameterizations: Sequence[str], widths: Sequence[int], **fields) -> Setup:
    """A :class:`Setup`, checked with the parameterizations and the widths (or, ``sweep="depth"``, the depths) it is
    run with; a depth sweep's base depth is its narrowest depth.

    Raises:
      UserError: an unknown parameterization or optimizer, fewer than two sizes, or a count below 1.
    """
    setup = Setup(**fields)
    if setup.sweep not in SWEEPS:
        raise unknown("coordinate-check sweep", setup.sweep, SWEEPS)
    if setup.model not in MODELS:
        raise unknown("coordinate-check model", setup.model, MODELS)
    for name in parameterizations:
        try:
            param.get(name)
        except ValueError:
            raise unknown("parameterization", name, param.PARAMETERIZATIONS) from None
    parameterized.family(setup.optimizer)
    sizes = "depths" if setup.sweep == "depth" else "widths"
    if len(set(widths)) < 2 or min(widths) < 1:
        raise UserError(f"{option(sizes)} needs at least two distinct {sizes} >= 1 to fit a slope, "
                        f"got {list(widths)}")
    if setup.sweep == "depth":
        if setup.model not in DEPTH_MODELS:
            raise UserError(f"a coordinate check over depth needs a residual model ({' or '.join(DEPTH_MODELS)}), "
                            f"not {setup.model!r}")
        if min(widths) < 2:
            raise UserError(f"{option('depths')} must be >= 2 blocks (the first and the last block are measured), "
                            f"got {list(widths)}")
        setup = dataclasses.replace(setup, base_depth=min(widths))
    for name in ("depth", "steps", "seeds", "base_width", "batch_size"):
        if getattr(setup, name) < 1:
            raise UserError(f"{option(name)} must be >= 1, got {getattr(setup, name)}")
    if not setup.lr > 0:
        raise UserError(f"{option('lr')} must be > 0, got {setup.lr}")
    if setup.model == "transformer" and (setup.base_width % HEADS or (setup.sweep == "width"
                                                                       and any(w % HEADS for w in widths))):
        raise UserError(f"the transformer has {HEADS} heads: {option('widths')} and {option('base_width')} "
                        f"must be multiples of {HEADS}")
    return setup


def _layer_outputs(model, params, x) -> list[jnp.ndarray]:
    """The coordinates measured, in :func:`layer_names`' order: every Dense layer's output of an MLP
    `(batch, width)`; a transformer's embedding output and residual stream after each block `(batch, context,
    width)`, each block's attention logits `(batch, heads, context, context)` and the logits."""
    out, state = model.apply({"params": params}, x, capture_intermediates=True, mutable=["intermediates"])
    inter = state["intermediates"]
    if hasattr(model, "hidden"):
        return [inter[f"Dense_{i}"]["__call__"][0] for i in range(len(model.hidden) + 1)]
    if not hasattr(model, "heads"):  # a ResMLP: the stem's output, the stream after each block, the logits
        return [inter["stem"]["__call__"][0], *[inter[f"block_{i}"]["__call__"][0] for i in range(model.depth)],
                out]
    blocks = [inter[f"block_{i}"] for i in range(model.depth)]
    return [inter["residual"][0], *[b["residual"][0] for b in blocks],
            *[b["attn"]["attention_logits"][0] for b in blocks], out]


def layer_names(model) -> list[str]:
    """The names of :func:`_layer_outputs`' coordinates: ``input``, ``hidden_1``, ..., ``output`` (MLP);
    ``embedding``, ``block_0``, ..., ``attn_logits_0``, ..., ``output`` (transformer); ``stem``, ``block_0``, ...,
    ``output`` (ResMLP)."""
    if hasattr(model, "hidden"):
        layers = len(model.hidden) + 1
        return [layer_name(i, layers) for i in range(layers)]
    if not hasattr(model, "heads"):
        return ["stem", *[f"block_{i}" for i in range(model.depth)], "output"]
    return ["embedding", *[f"block_{i}" for i in range(model.depth)],
            *[f"attn_logits_{i}" for i in range(model.depth)], "output"]


def _build(setup: Setup, data: datasets.Dataset, parameterization: str, size: int):
    """The model at a width (or, a depth sweep, a depth) ``size``."""
    width, depth = (setup.base_width, size) if setup.sweep == "depth" else (size, setup.depth)
    options = {"heads": HEADS} if setup.model == "transformer" else {}
    if param.get(parameterization).depth is not None:
        options["base_depth"] = setup.base_depth or setup.depth
    return models.build(setup.model, data.input_shape, data.n_classes, (width,) * depth, setup.activation,
                        parameterization=parameterization, base_width=setup.base_width, **options)


def depth_layers(names: Sequence[str], depth: int) -> dict[str, str]:
    """Of :func:`layer_names` at ``depth`` blocks, those a depth sweep compares, by depth-independent names: the
    first and the last block's stream (``first_block``, ``last_block``), the last block's attention logits
    (``last_attn_logits``), and the stem's, embedding's and logits' as they are."""
    renamed = {"block_0": "first_block", f"block_{depth - 1}": "last_block",
               f"attn_logits_{depth - 1}": "last_attn_logits"}
    return {name: renamed.get(name, name) for name in names
            if name in renamed or not name.startswith(("block_", "attn_logits_"))}


def load(setup: Setup) -> datasets.Dataset:
    """The setup's dataset, refused unless it is a classification dataset of feature vectors or images (a token
    language for the transformer)."""
    data = datasets.load(setup.dataset, setup.data_dir)
    sequences = not data.regression and data.y_train.ndim == 2
    if setup.model == "transformer" and not sequences:
        raise UserError(f"the transformer's coordinate check needs a token language (e.g. {TRANSFORMER_DATA}); "
                        f"{setup.dataset} is not one")
    if setup.model == "mlp" and (data.regression or data.y_train.ndim != 1):
        raise UserError(f"the coordinate check trains an MLP classifier; {setup.dataset} is not a classification "
                        "dataset of feature vectors or images")
    return data


def measure(setup: Setup, data: datasets.Dataset, parameterization: str, width: int) -> pd.DataFrame:
    """One (parameterization, width) on ``data`` (:func:`load`): per seed, layer and step, ``rms`` and
    ``update_rms`` (module docstring); ``width`` is a depth in a depth sweep, whose layers are
    :func:`depth_layers`. Columns ``width`` and ``depth`` both."""
    model = _build(setup, data, parameterization, width)
    x_all, y_all = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    probe = x_all[:PROBE]
    init_keys, data_keys = seeding.run_keys(0, data.name, list(range(setup.seeds)))
    params = jax.tree.map(lambda leaf: leaf[0], initialization.init_params(
        model, [initjax.get("lecun_normal")], init_keys, data.input_shape))  # (seeds, ...)
    base = recipes.build(setup.optimizer, setup.lr, total_steps=setup.steps,
                         per_tensor=parameterized.per_tensor(model, data.input_shape, setup.optimizer))
    optimizer = parameterized.optimizer(base, model, data.input_shape, setup.optimizer)
    loss = losses.get(objective.loss_spec(model, None))

    def one_seed(params, data_key):
        order = programs.epoch_order(data_key, 0, len(x_all), setup.steps * setup.batch_size)
        batches = order.reshape(setup.steps, setup.batch_size)

        def step(carry, idx):
            params, state = carry
            grads = jax.grad(lambda p: loss(model.apply({"params": p}, x_all[idx]), y_all[idx])[0].mean())(params)
            updates, state = optimizer.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            return (params, state), _layer_outputs(model, params, probe)

        first = _layer_outputs(model, params, probe)
        _, later = jax.lax.scan(step, (params, optimizer.init(params)), batches)
        outputs = [jnp.concatenate([h0[None], h], 0) for h0, h in zip(first, later)]  # (steps + 1, probe, ...)
        rms = jnp.stack([jnp.sqrt(jnp.mean(h**2, axis=tuple(range(1, h.ndim)))) for h in outputs], 1)
        moved = jnp.stack([jnp.sqrt(jnp.mean((h - h[:1]) ** 2, axis=tuple(range(1, h.ndim)))) for h in outputs], 1)
        return rms, moved  # (steps + 1, layers) each

    rms, moved = jax.jit(jax.vmap(one_seed))(params, data_keys)
    rms, moved = np.asarray(rms), np.asarray(moved)
    index = np.indices(rms.shape).reshape(3, -1)
    width, depth = (setup.base_width, width) if setup.sweep == "depth" else (width, setup.depth)
    table = pd.DataFrame({
        "parameterization": parameterization, "width": width, "depth": depth, "seed": index[0], "step": index[1],
        "layer": np.asarray(layer_names(model))[index[2]], "rms": rms.ravel(), "update_rms": moved.ravel()})
    if setup.sweep == "width":
        return table
    kept = depth_layers(layer_names(model), depth)
    return table[table["layer"].isin(list(kept))].assign(layer=lambda t: t["layer"].map(kept)).reset_index(drop=True)


def layer_name(i: int, layers: int) -> str:
    """``input``, ``hidden_1``..., ``output``: a layer by its role."""
    return "input" if i == 0 else "output" if i == layers - 1 else f"hidden_{i}"


def run(setup: Setup, parameterizations: Sequence[str] = ("sp", "mup"),
        widths: Sequence[int] = WIDTHS) -> pd.DataFrame:
    """:func:`measure` for every parameterization and width: one tidy table."""
    data = load(setup)
    return pd.concat([measure(setup, data, p, w) for p in parameterizations for w in widths], ignore_index=True)


def swept(table: pd.DataFrame) -> str:
    """``"depth"`` where the table's depths vary, else ``"width"``."""
    return "depth" if "depth" in table and table["depth"].nunique() > 1 else "width"


def slopes(table: pd.DataFrame, column: str = "update_rms") -> pd.DataFrame:
    """Per parameterization, layer and step, the least-squares slope of ``log column`` (the seeds' mean)
    against ``log width`` (a depth sweep: ``log depth``): 0 is stable, 1 grows like the width (depth)."""
    size = swept(table)
    means = table.groupby(["parameterization", "layer", "step", size], sort=False)[column].mean().reset_index()
    rows = []
    for (p, layer, step), group in means.groupby(["parameterization", "layer", "step"], sort=False):
        values = group[column].to_numpy(np.float64)
        if not np.all(np.isfinite(values) & (values > 0)):
            slope = np.nan  # nothing moved (step 0's update), a layer at exactly 0, or a diverged run
        else:
            slope = float(np.polyfit(np.log(group[size].to_numpy(np.float64)), np.log(values), 1)[0])
        rows.append({"parameterization": p, "layer": layer, "step": step, "slope": slope})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """The updates' slopes at the last step, parameterizations x layers: the one table to read."""
    s = slopes(table, "update_rms")
    last = s[s["step"] == s["step"].max()]
    return last.pivot_table(index="parameterization", columns="layer", values="slope", sort=False)


def figure(table: pd.DataFrame, column: str, path: Path) -> list[Path]:
    """One panel per (parameterization, layer): ``column`` against width (depth), log-log, one line per step."""
    from bench.reporting.figures import plt, save

    size = swept(table)
    params = list(dict.fromkeys(table["parameterization"]))
    layers = list(dict.fromkeys(table["layer"]))
    fig, axes = plt.subplots(len(params), len(layers), figsize=(2.6 * len(layers), 2.4 * len(params)),
                             squeeze=False, sharex=True, constrained_layout=True)
    means = table.groupby(["parameterization", "layer", "step", size])[column].mean()
    for r, p in enumerate(params):
        for c, layer in enumerate(layers):
            ax = axes[r, c]
            for step, curve in means.loc[p, layer].groupby(level="step"):
                if column == "update_rms" and step == 0:
                    continue
                ax.plot(curve.index.get_level_values(size), curve.to_numpy(), marker="o", ms=3,
                        label=f"step {step}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{p}: {layer}", fontsize=9)
            if r == len(params) - 1:
                ax.set_xlabel(size)
            if c == 0:
                ax.set_ylabel(column.replace("_", " "))
    axes[0, -1].legend(fontsize=7)
    return save(fig, path, ("png",))


def write(setup: Setup, table: pd.DataFrame, folder: Path, command: str) -> list[Path]:
    """``coordcheck.csv`` (every measurement), ``slopes.csv``, ``coordcheck.md`` and two figures in ``folder``."""
    from bench.store import write_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    both = pd.concat([slopes(table, c).assign(statistic=c) for c in ("rms", "update_rms")], ignore_index=True)
    files = [write_atomic(folder / "coordcheck.csv", table.to_csv(index=False)),
             write_atomic(folder / "slopes.csv", both.to_csv(index=False))]
    for column in ("update_rms", "rms"):
        files += figure(table, column, folder / f"coordcheck-{column}")
    files.append(write_atomic(folder / "coordcheck.md", markdown(setup, table, command)))
    return files


def markdown(setup: Setup, table: pd.DataFrame, command: str) -> str:
    """The slopes of both statistics per layer and step, and what they mean."""
    size = swept(table)
    blocks = "L" if size == "depth" else str(setup.depth)
    shape = {"transformer": f"transformer with {blocks} pre-LN blocks, {HEADS} heads",
             "resmlp": f"ResMLP with {blocks} residual blocks"}.get(setup.model,
                                                                    f"MLP with {setup.depth} hidden layers")
    where = (f"width {setup.base_width}, base depth {setup.base_depth}" if size == "depth"
             else f"at base width {setup.base_width}")
    lines = [f"# Coordinate check{' over depth' if size == 'depth' else ''}: {setup.dataset}, {shape}", "",
             f"Command: `{command}`. {setup.optimizer} at lr {setup.lr:g} ({where}), "
             f"batch {setup.batch_size}, {setup.steps} steps, {setup.seeds} seeds per {size}; {size}s "
             f"{', '.join(str(w) for w in sorted(table[size].unique()))}; coordinates measured on {PROBE} "
             "training examples.", "",
             f"Slope of log RMS against log {size} (least squares over the {size}s; 0: {size}-stable, 0.5: grows "
             f"like sqrt({size}), 1: like the {size}).", ""]
    for column, title in (("rms", "Layer outputs h_t"), ("update_rms", "Their updates h_t - h_0")):
        s = slopes(table, column)
        wide = s.pivot_table(index=["parameterization", "layer"], columns="step", values="slope", sort=False)
        if column == "update_rms":
            wide = wide.drop(columns=0, errors="ignore")  # nothing has moved at step 0
        wide.columns = [f"step {c}" for c in wide.columns]
        lines += [f"## {title}", "", wide.round(2).reset_index().to_markdown(index=False), ""]
    lines += ["![updates](coordcheck-update_rms.png)", "", "![outputs](coordcheck-rms.png)", ""]
    return "\n".join(lines)
