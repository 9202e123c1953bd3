"""``python -m bench diagnose PRESET``: signal propagation at initialization, per initializer.

For every task of the preset and every initializer, ``seeds`` networks are
initialized exactly as ``python -m bench run`` initializes them (same keys, same
scheme batches), then ``initjax.diagnostics`` measures on a batch of training
examples each layer's pre-activation mean and variance, the variance of the
back-propagated gradient of the loss, and the singular values of the
input-output Jacobian, and the initial guessing bias: the share of those examples
the untrained network assigns to its most predicted class, and the entropy of its
predicted classes (``initjax.diagnostics.guessing_bias``). Written to
``<out>/diagnostics/``: ``diagnostics.csv`` (one row per task, initializer, seed
and layer), ``guessing.csv`` (one row per task, initializer and seed), ``jacobian.csv``,
``diagnostics.md`` (table of seed means with min-max) and figures (variance vs
depth, gradient variance vs depth, Jacobian spectra). The gradient is that of the
task's own loss (for a language model, next-token cross-entropy over the counted
positions). Token inputs have no Jacobian; for the suite's transformer,
``bench.studies.early_steps`` traces instead the residual stream's RMS and the
attention logits' scale at initialization and over the first optimizer steps
(``early_steps.csv`` and figures).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bench import models
from bench.errors import UserError
from bench.experiments import presets
from bench.experiments.spec import Experiment
from bench.experiments.tasks import task_data, task_model
from bench.models import losses
from bench.reporting.figures import plt, save
from bench.store import path_name, write_atomic
from bench.studies import early_steps
from bench.training import parameterized, step
from bench.training.initialization import check_on_model, init_params
from bench.training.objective import loss_spec
from bench.training.seeding import run_keys
from initjax import diagnostics

BATCH = 512  # examples the statistics are measured on
JACOBIAN_EXAMPLES = 4


@dataclasses.dataclass
class Diagnosis:
    """Tidy diagnostics of an experiment's initializations.

    Attributes:
      layers: ``dataset, model, initializer, seed, layer, depth, width, mean,
        variance, gradient_variance``: one row per layer of each run.
      jacobian: ``dataset, initializer, seed, example, index, singular_value`` (none for token inputs).
      early: the transformer tasks' ``bench.studies.early_steps.tidy`` rows (empty without one).
      guessing: ``dataset, arm, seed, max_share, entropy``: the initial guessing bias of each run on the
        measured examples (``initjax.diagnostics.guessing_bias``).
    """

    layers: pd.DataFrame
    jacobian: pd.DataFrame
    early: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    guessing: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)


def diagnose(experiment: Experiment, seeds: int = 8, data_dir=None, steps: int = early_steps.STEPS) -> Diagnosis:
    """Initializes ``seeds`` runs per initializer of every task and measures them (no training); a transformer's
    runs are also traced over their first ``steps`` optimizer steps (``bench.studies.early_steps``)."""
    initializers = presets.validate(experiment)
    layer_frames, jacobian_frames, early_frames, guessing_frames = [], [], [], []
    for task in experiment.tasks:
        data = task_data(task, data_dir)
        model, loss = task_model(task, data)
        check_on_model(model, initializers, data.input_shape)
        per_example_loss = losses.get(loss_spec(model, loss))
        mean_loss = lambda outputs, labels, f=per_example_loss: f(outputs, labels)[0].mean()  # noqa: E731
        x, y = jnp.asarray(data.x_train[:BATCH]), jnp.asarray(data.y_train[:BATCH])
        tokens = np.issubdtype(data.x_train.dtype, np.integer) or early_steps.is_traced(model)
        init_keys, data_keys = run_keys(experiment.seed, data.name, list(range(seeds)))
        x_train = jnp.asarray(data.x_train)  # an argument, not a constant baked into the program
        if early_steps.is_traced(model):
            n_steps = min(steps, -(-len(data.x_train) // experiment.train.batch_size))
            optimizer = parameterized.recipe(experiment.train, model, data.input_shape, len(data.x_train))
            traced = early_steps.trace(model, optimizer, per_example_loss,
                                       list(initializers.values()), init_keys, data_keys, x_train,
                                       jnp.asarray(data.y_train), experiment.train.batch_size, n_steps)
            early_frames.append(early_steps.tidy(traced, task.name, list(initializers)))
        for name, init in initializers.items():
            params = jax.jit(lambda k, x_all, i=init: init_params(model, [i], k, data.input_shape, x_all))(
                init_keys, x_train)
            params = jax.tree.map(lambda p: p[0], params)  # (seeds, ...)
            apply_fn = step.forward_of(model, data.input_shape).probe(data.input_shape)
            paths = diagnostics.layer_paths(jax.tree.map(lambda p: p[0], params), apply_fn, x)
            if not paths:
                described = models.describe(model, data.input_shape)
                raise UserError(f"diagnose found no Dense, Linear or Conv layer (flax.linen or flax.nnx) in "
                                f"{described}: nothing to measure")
            stats = jax.jit(jax.vmap(lambda p: diagnostics.layer_statistics(p, apply_fn, x, y, mean_loss)))(params)
            stats = {k: np.asarray(v) for k, v in stats.items()}
            bias = jax.jit(jax.vmap(lambda p: diagnostics.guessing_bias(apply_fn(p, x)[0])))(params)
            guessing_frames.append(pd.DataFrame({"dataset": task.name, "arm": name, "seed": np.arange(seeds),
                                                 "max_share": np.asarray(bias["max_share"], np.float64),
                                                 "entropy": np.asarray(bias["entropy"], np.float64)}))
            for seed in range(seeds):
                layer_frames.append(pd.DataFrame({
                    "dataset": task.name, "model": models.describe(model, data.input_shape), "arm": name,
                    "seed": seed, "layer": paths, "depth": np.arange(1, len(paths) + 1), "width": stats["width"][seed],
                    "mean": stats["mean"][seed], "variance": stats["variance"][seed],
                    "gradient_variance": stats["gradient_variance"][seed]}))
            if tokens:  # d logits / d token id is not defined
                continue
            sv = np.asarray(jax.jit(
                jax.vmap(lambda p: diagnostics.jacobian_singular_values(p, apply_fn, x[:JACOBIAN_EXAMPLES]))
            )(params))  # (seeds, examples, k)
            s, e, i = np.meshgrid(*map(np.arange, sv.shape), indexing="ij")
            jacobian_frames.append(
                pd.DataFrame(
                    {
                        "dataset": task.name,
                        "arm": name,
                        "seed": s.ravel(),
                        "example": e.ravel(),
                        "index": i.ravel(),
                        "singular_value": sv.ravel(),
                    }
                )
            )
    jacobian = pd.concat(jacobian_frames, ignore_index=True) if jacobian_frames else pd.DataFrame(
        columns=["dataset", "arm", "seed", "example", "index", "singular_value"])
    early = pd.concat(early_frames, ignore_index=True) if early_frames else pd.DataFrame()
    return Diagnosis(pd.concat(layer_frames, ignore_index=True), jacobian, early,
                     pd.concat(guessing_frames, ignore_index=True))


def summary(diagnosis: Diagnosis) -> pd.DataFrame:
    """Per task, initializer and layer: seed means and ranges of the variances."""
    grouped = diagnosis.layers.groupby(["dataset", "arm", "depth", "layer"], sort=False)
    table = grouped.agg(variance=("variance", "mean"), variance_min=("variance", "min"),
                        variance_max=("variance", "max"), gradient_variance=("gradient_variance", "mean"),
                        gradient_min=("gradient_variance", "min"), gradient_max=("gradient_variance", "max"))
    return table.reset_index()


def jacobian_summary(diagnosis: Diagnosis) -> pd.DataFrame:
    """Per task and initializer: mean, largest and smallest Jacobian singular value, and their ratio."""
    j = diagnosis.jacobian
    per = j.groupby(["dataset", "arm", "seed", "example"], sort=False)["singular_value"].agg(
        ["mean", "max", "min"])
    per["condition"] = per["max"] / per["min"].where(per["min"] > 0)
    return per.groupby(["dataset", "arm"], sort=False).mean().reset_index()


def guessing_summary(diagnosis: Diagnosis) -> pd.DataFrame:
    """Per task and initializer: the initial guessing bias's seed means and ranges."""
    grouped = diagnosis.guessing.groupby(["dataset", "arm"], sort=False)
    return grouped.agg(max_share=("max_share", "mean"), max_share_min=("max_share", "min"),
                       max_share_max=("max_share", "max"), entropy=("entropy", "mean"),
                       entropy_min=("entropy", "min"), entropy_max=("entropy", "max")).reset_index()


def variance_figure(diagnosis: Diagnosis, dataset: str, column: str) -> plt.Figure:
    """``column`` (``variance`` or ``gradient_variance``) vs depth, one line per initializer, log scale."""
    data = diagnosis.layers[diagnosis.layers["dataset"] == dataset]
    fig, ax = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    for name, rows in data.groupby("arm", sort=False):
        by_depth = rows.groupby("depth")[column]
        positive = by_depth.mean() > 0  # layers at exactly 0 (Fixup's zeroed ones) have no place on a log axis
        mean = by_depth.mean().where(positive)
        ax.plot(mean.index, mean.values, marker="o", ms=3, label=name)
        ax.fill_between(mean.index, by_depth.min().where(positive).values, by_depth.max().where(positive).values,
                        alpha=0.15)
    ax.set_yscale("log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("layer (forward order)")
    ax.set_ylabel(
        {"variance": "pre-activation variance", "gradient_variance": "back-propagated gradient variance"}[column]
    )
    ax.set_title(f"{dataset}: mean over seeds, band = min-max (layers at 0 not drawn)")
    ax.legend(fontsize=7, ncols=2)
    return fig


def jacobian_figure(diagnosis: Diagnosis, dataset: str) -> plt.Figure:
    """Sorted singular values of the input-output Jacobian (mean over seeds and examples)."""
    data = diagnosis.jacobian[diagnosis.jacobian["dataset"] == dataset]
    fig, ax = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    for name, rows in data.groupby("arm", sort=False):
        curve = rows.groupby("index")["singular_value"].mean()
        ax.plot(curve.index + 1, curve.values, marker=".", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("singular value index")
    ax.set_ylabel("singular value of d outputs / d input")
    ax.set_title(f"{dataset}: Jacobian spectrum at initialization")
    ax.legend(fontsize=7, ncols=2)
    return fig


def early_lines(early: pd.DataFrame, dataset: str) -> list[str]:
    """The markdown section of a transformer task's :mod:`bench.studies.early_steps` trace."""
    table = early_steps.summary(early[early["dataset"] == dataset]).drop(columns=["dataset"])
    steps = int(early["step"].max())
    return [f"### Residual stream and attention logits over the first {steps} steps", "",
            f"On {early_steps.PROBE} training sequences, the runs' own optimizer and minibatches; means over seeds. "
            "Residual RMS: sqrt(mean h²) of the stream leaving the last block. Logit std and max |logit|: of "
            "q·k/sqrt(head width) over the causal entries, the largest over blocks. Branch/stream: RMS of a "
            "sublayer's output over that of the stream it is added to, the largest over blocks and sublayers "
            "(a post-LN stream is renormalized to RMS 1, so this is what grows there). Every layer and step is in "
            "`early_steps.csv`.", "",
            table.rename(columns={"arm": "initializer"}).to_markdown(index=False, floatfmt=".3g"), ""]


def write(diagnosis: Diagnosis, out: str | Path, experiment: Experiment, command: str = "") -> list[Path]:
    """Writes CSVs, ``diagnostics.md`` and figures under ``out``; returns the paths."""
    out = Path(out)
    files = [write_atomic(out / "diagnostics.csv", diagnosis.layers.to_csv(index=False)),
             write_atomic(out / "guessing.csv", diagnosis.guessing.to_csv(index=False)),
             write_atomic(out / "jacobian.csv", diagnosis.jacobian.to_csv(index=False))]
    if len(diagnosis.early):
        files.append(write_atomic(out / "early_steps.csv", diagnosis.early.to_csv(index=False)))
    table, jac, guessing = summary(diagnosis), jacobian_summary(diagnosis), guessing_summary(diagnosis)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    lines = [f"# initjax diagnostics: {experiment.name}", "",
             "Signal propagation at initialization (no training): per layer, the pre-activation variance over the "
             f"first {BATCH} training examples and units, and the variance of the back-propagated gradient of the "
             "cross-entropy with respect to it (per example); mean over seeds, [min, max] in brackets. Then the "
             "singular values of the input-output Jacobian.", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    for dataset in table["dataset"].unique():
        rows = table[table["dataset"] == dataset]
        shown = pd.DataFrame({
            "initializer": rows["arm"], "layer": rows["depth"].astype(str) + " " + rows["layer"],
            "variance": [f"{v:.3g} [{lo:.3g}, {hi:.3g}]" for v, lo, hi in
                         zip(rows["variance"], rows["variance_min"], rows["variance_max"])],
            "gradient variance": [f"{v:.3g} [{lo:.3g}, {hi:.3g}]" for v, lo, hi in
                                  zip(rows["gradient_variance"], rows["gradient_min"], rows["gradient_max"])]})
        j = jac[jac["dataset"] == dataset].drop(columns=["dataset"]).rename(columns={"arm": "initializer"})
        bias = guessing[guessing["dataset"] == dataset]
        lines += [f"## {dataset}", "", shown.to_markdown(index=False), "", "### Initial guessing bias", "",
                  f"The share of the {BATCH} examples the untrained network assigns to its most predicted class (1 / "
                  "classes: an even spread; 1: every example in one class) and the entropy of its predicted classes "
                  "over log(classes) (1: even; 0: one class); mean over seeds, [min, max] in brackets.", "",
                  pd.DataFrame({"initializer": bias["arm"],
                                "largest class share": [f"{v:.3g} [{lo:.3g}, {hi:.3g}]" for v, lo, hi in zip(
                                    bias["max_share"], bias["max_share_min"], bias["max_share_max"])],
                                "entropy": [f"{v:.3g} [{lo:.3g}, {hi:.3g}]" for v, lo, hi in zip(
                                    bias["entropy"], bias["entropy_min"], bias["entropy_max"])]}
                               ).to_markdown(index=False), ""]
        figures = [(f"{dataset}-variance", variance_figure(diagnosis, dataset, "variance")),
                   (f"{dataset}-gradient-variance", variance_figure(diagnosis, dataset, "gradient_variance"))]
        if len(j):
            lines += ["### Input-output Jacobian", "", j.to_markdown(index=False, floatfmt=".3g"), ""]
            figures.append((f"{dataset}-jacobian", jacobian_figure(diagnosis, dataset)))
        else:
            lines += ["No input-output Jacobian: the inputs are token ids, which have no derivative.", ""]
        if len(diagnosis.early) and dataset in set(diagnosis.early["dataset"]):
            lines += early_lines(diagnosis.early, dataset)
            figures += [(f"{dataset}-residual-init", early_steps.residual_figure(diagnosis.early, dataset)),
                        (f"{dataset}-early-steps", early_steps.steps_figure(diagnosis.early, dataset))]
        for stem, fig in figures:
            saved = save(fig, out / "figures" / path_name(stem), ("png",))
            files += saved
            lines += [f"![{stem}](figures/{saved[0].name})", ""]
    files.append(write_atomic(out / "diagnostics.md", "\n".join(lines)))
    return files
