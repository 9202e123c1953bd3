"""What a run was, in words: the experiment against its preset as shipped, its arms, grid and recipe, and what
each task's training cost."""

from __future__ import annotations

import json

import numpy as np

from bench.reporting.record import RunRecord, TaskRecord
from bench.reporting.text import rate
from bench.training.grid import format_value
from bench.training.memory import format_bytes
from bench.training.recipes import LEFT_OUT


def describe_run(experiment: dict, shipped: dict | None = None) -> str:
    """The preset's description when the run is the preset as shipped; else what was run, and what was changed.

    A report must describe the runs it reports: ``--seeds 8`` on a preset described as
    "32 seeds" is said as such.

    Args:
      experiment: the run record's ``experiment``.
      shipped: the record of the preset of that name as shipped (``bench.experiments.presets.shipped``); None
        when the run is of no preset.
    """
    if "source" in experiment:  # runs trained elsewhere (bench.experiments.external) say what they are
        return experiment["description"]
    cells = int(np.prod([len(v) for k, v in experiment.get("grid", {}).items() if k != "init_scale_on"]))
    design = (f"{len(experiment['initializers'])} initializers"
              + (f" x {cells} hyperparameter cells" if cells > 1 else "") + f" x {experiment['seeds']} seeds"
              + (f" x {experiment['data_seeds']} data orders" if experiment.get("data_seeds", 1) > 1 else "")
              + f"; {experiment['train']['optimizer']} lr {experiment['train']['lr']:g}, batch "
              f"{experiment['train']['batch_size']}, {experiment['train']['epochs']} epochs; tasks: "
              + ", ".join(t.get("name") or t.get("label") or t["dataset"] for t in experiment["tasks"]))
    if shipped is None:
        return f"Runs: {design}."
    ran = json.loads(json.dumps(experiment, default=str))
    changed = [key for key in shipped if key not in ("name", "description") and key in ran
               and _differs(shipped[key], ran[key])] + [key for key in ran if key not in shipped and _given(ran[key])]
    if not changed:
        return experiment["description"]
    return (f"Runs: {design}. This is the `{shipped['name']}` preset with {', '.join(changed)} changed; as shipped: "
            f"{shipped['description']}")


def _given(value) -> bool:
    """Whether a setting the shipped preset lacks says anything (a grid of empty factors does not)."""
    if isinstance(value, dict):
        return any(_given(v) for k, v in value.items() if k != "init_scale_on")
    return bool(value)


def _differs(shipped, ran) -> bool:
    """Whether a run's recorded setting differs from the preset's; fields a run.json of an older version
    lacks are the defaults it ran with, so they are not compared, nor are those a record leaves out at their
    default (``bench.training.recipes.LEFT_OUT``)."""
    if isinstance(shipped, dict) and isinstance(ran, dict):
        return any(_differs(shipped.get(k, LEFT_OUT.get(k)), v) for k, v in ran.items())
    if isinstance(shipped, list) and isinstance(ran, list) and len(shipped) == len(ran):
        return any(_differs(a, b) for a, b in zip(shipped, ran))
    return shipped != ran


def describe_arm(name: str, experiment: dict) -> str:
    """An arm as the report names it: `` `he_normal` ``, or a rule set with its rules in order."""
    for arm in experiment.get("initializers", []):
        if isinstance(arm, dict) and arm.get("name") == name:
            rules = "; ".join(f"`{pattern}`: `{spec}`" for pattern, spec in arm["rules"].items())
            return f"`{name}` (by parameter path, first match wins: {rules}; the rest as the model makes them)"
    return f"`{name}`"


def describe_grid(grid: dict, n_arms: int) -> str:
    """``lr 0.001, 0.01, 0.1 (x every initializer: 24 arms, one program per task)``."""
    factors = "; ".join(f"{k.replace('_', ' ')} {', '.join(format_value(v) for v in values)}"
                        for k, values in grid.items() if k != "init_scale_on")
    where = f" (init scale on `{grid['init_scale_on']}`)" if "init_scale_on" in grid else ""
    return (f"{factors}{where}, crossed with every initializer: {n_arms} arms trained in one program per task; "
            "seed i has the same initial draw and data order in every cell")


def describe_training(train: dict) -> str:
    """``adamw(b2=0.95), lr 0.001 (warmup_cosine(warmup=0.05)), weight decay 0.01, clip 1, batch 32, 5 epochs``
    (``, evaluated 4 times an epoch`` where it was)."""
    schedule = train.get("schedule", "constant")
    text = f"{train['optimizer']}, lr {train['lr']:g}" + ("" if schedule == "constant" else f" ({schedule})")
    if train.get("weight_decay"):
        text += f", weight decay {train['weight_decay']:g}"
    if train.get("clip") is not None:
        text += f", gradient norm clipped at {train['clip']:g}"
    evals = int(train.get("evals_per_epoch", 1))
    return text + f", batch {train['batch_size']}, {train['epochs']} epochs" + (
        f", evaluated {evals} times an epoch" if evals > 1 else "")


def throughput(info: TaskRecord) -> str:
    """'128 runs; compile 1.9 s, training and evaluation 1743 s (0.73 seed-epochs/s, ...)'."""
    earlier = info.earlier_train_s
    text = (f"{info.runs} runs; compile {info.compile_s:.1f} s, training and evaluation "
            f"{info.train_s + earlier:.1f} s" + (f" ({earlier:.1f} s of it in earlier runs)" if earlier else ""))
    if info.seed_epochs_per_s is not None:
        text += f" ({rate(info.seed_epochs_per_s)} seed-epochs/s"
        if info.train_gflops is not None:
            per_example = (f"{info.flops_per_example / 1e6:,.3g} MFLOP per example (XLA's count)"
                           if info.flops_per_example else f"6 x {info.n_params:,} params per example")
            text += (f", {info.train_examples_per_s:,.0f} training examples/s, "
                     f"{info.train_gflops:.3g} GFLOP/s of training at {per_example}")
        text += ")"
    text += "."
    if info.chunks_loaded or info.chunks_resumed:
        text += (f" Resumed: {info.chunks_loaded} finished chunk(s) loaded from an earlier run of the same "
                 f"experiment and {info.chunks_resumed} continued from its checkpoint; times and rates add up the "
                 "training every run recorded.")
    if info.chunks is not None:
        text += (f" {info.chunks} chunk(s) of {info.models_per_chunk} models ({info.chunk_reason}); "
                 f"estimated peak memory {format_bytes(info.estimated_peak_bytes)}"
                 + (f", XLA's training program {format_bytes(info.program_bytes)}" if info.program_bytes else "")
                 + ".")
    return text


def peak_memory(record: RunRecord) -> str:
    """The process's (and the first device's) peak memory, as the header gives it."""
    text = f"{format_bytes(record.peak_rss_bytes)} resident (process peak)"
    if record.device_peak_bytes:
        text += f", {format_bytes(record.device_peak_bytes)} on the first device"
    if record.processes > 1:
        text += f"; {record.processes} processes (figures of process 0)"
    return text
