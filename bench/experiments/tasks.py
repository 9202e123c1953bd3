"""One task of an experiment: its data and model, the key of its numbers in the cache (everything they depend
on) and the record of what its training measured."""

from __future__ import annotations

import pandas as pd

from bench import data as bench_data
from bench import models
from bench.experiments import presets
from bench.experiments.spec import Experiment
from bench.models import losses
from bench.reporting.record import TaskRecord
from bench.training import resume
from bench.training.runs import RunIndex

TUNING_VALIDATION = 0.2  # of the training examples, held out when a grid is tuned on data without a validation split


def task_data(task: presets.Task, data_dir=None, download: bool = False, tuned: bool = False):
    """The task's dataset (its subset for smoke runs), with regression targets where its loss wants them.

    ``tuned``: the experiment picks hyperparameters per initializer (a grid of several
    cells); the choice needs a validation split, so a dataset without one holds out the
    first :data:`TUNING_VALIDATION` of its training examples (after the subset), never its test split.
    """
    data = bench_data.load(task.dataset, data_dir, download, regression=losses.is_regression(task.loss))
    data = data.subset(*task.subset) if task.subset else data
    if tuned and data.x_val is None:
        data = data.hold_out(int(round(TUNING_VALIDATION * len(data.x_train))))
    return data


def task_model(task: presets.Task, data) -> tuple:
    """The task's Flax module and loss: a built-in model shaped for the data, or the user's module.

    Returns:
      ``(model, loss)``; ``loss`` None means the built-in model's own head.
    """
    if task.builtin_model:
        model = models.build(task.model, data.input_shape, data.n_classes, task.hidden, task.activation,
                             n_targets=data.n_targets if data.regression else None, **task.model_args)
        return model, task.loss
    loss = task.loss if task.loss is not None else losses.default_for(data.n_classes)
    width = losses.outputs_for(loss, data.n_classes, data.n_targets) if isinstance(loss, str) else None
    return models.from_spec(task.model, task.model_args, width, data.input_shape), loss


def user_code(experiment: Experiment, task: presets.Task) -> list:
    """Everything user-supplied that the task's numbers depend on: arms' specs, model, data and loss functions."""
    specs = []
    for arm in experiment.initializers:
        specs += [spec for _, spec in arm.rules] if isinstance(arm, presets.Arm) else [arm]
    specs += [obj for obj in (task.model, task.loss) if obj is not None and not isinstance(obj, str)]
    if models.functions.is_functions(task.model):  # its code is in init and apply, not in the pair's own class
        specs += [task.model.init, task.model.apply]
    specs += [obj for obj in (task.model, task.loss, task.dataset) if isinstance(obj, str) and ":" in obj
              and not obj.startswith("npz:") and not bench_data.text.is_text(obj)]  # files: the data's fingerprint
    return specs


def task_key(experiment: Experiment, task: presets.Task, data) -> dict:
    """Everything a task's numbers depend on (``bench.training.resume``): versions, settings, data, and the code."""
    return {**resume.environment_key(), "experiment": numbers_config(experiment), "task": task.record(),
            "data": data.fingerprint(), "code": resume.code_key(user_code(experiment, task))}


def task_record(model_name: str, data, result, runs: int, store: resume.TaskStore | None,
                language_model: bool = False) -> TaskRecord:
    """What the report header says about one task: data, timings, throughput, chunks, memory, resumption."""
    plan = result.plan
    return TaskRecord(
        model=model_name,
        language_model=language_model,
        data=f"{data.source}; {len(data.x_train):,} train"
        + (f" / {len(data.x_val):,} validation" if data.x_val is not None else "")
        + f" / {len(data.x_test):,} test examples",
        runs=runs,
        init_s=result.init_s,
        draw_s=result.draw_s,
        compile_s=result.compile_s,
        train_s=result.train_s,
        earlier_train_s=result.earlier_train_s,
        n_params=int(result.n_params),
        optimal_loss=data.optimal_loss() if data.optimal is not None else None,
        **_rates(result.trained_seed_epochs + result.earlier_seed_epochs, len(data.x_train),
                 result.flops_per_example or 6.0 * result.n_params, result.train_s + result.earlier_train_s),
        flops_per_example=result.flops_per_example,
        chunks=plan.n_chunks,
        models_per_chunk=plan.models_per_chunk,
        chunk_reason=plan.reason,
        estimated_peak_bytes=plan.estimate,
        program_bytes=result.program_bytes,
        chunks_loaded=len(store.loaded) if store else 0,
        chunks_resumed=len(store.resumed) if store else 0,
    )


def _rates(seed_epochs: int, n_train: int, flops_per_example: float, seconds: float) -> dict:
    """Throughput over the training this run and the earlier runs it resumed from recorded (none: nothing)."""
    if seed_epochs == 0 or seconds <= 0:
        return {}
    examples = seed_epochs * n_train
    return {
        "seed_epochs_per_s": seed_epochs / seconds,
        "train_examples_per_s": examples / seconds,
        # FLOPs per training example: 6 x params (forward 2, backward 4), or XLA's count; evaluation not counted
        "train_gflops": flops_per_example * examples / seconds / 1e9,
    }


def split_runs(frame: pd.DataFrame, data_seeds: int) -> pd.DataFrame:
    """Run numbers as ``seed`` (the init seed) and ``data_seed`` (the data order) when data orders are crossed
    (``bench.training.runs``)."""
    if data_seeds == 1:
        return frame
    runs, crossed = frame["seed"].to_numpy(), RunIndex(data_seeds)
    return frame.assign(seed=crossed.init_seed(runs), data_seed=crossed.data_order(runs))


def numbers_config(experiment: Experiment) -> dict:
    """The experiment's fields that the numbers depend on (not its name or description)."""
    config = experiment.record()
    config.pop("name"), config.pop("description")
    return config
