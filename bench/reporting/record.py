"""The run record (``run.json``): what was run, where, how long it took, as one typed, versioned value.

A report is rendered from ``results.csv`` and this record only, so every field a renderer reads is named here;
:meth:`RunRecord.from_json` refuses a record that lacks one or carries a field this version does not know, and
:meth:`RunRecord.to_json` writes the fields back in the order they were always written (a re-rendered
``run.json`` is byte-identical).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path

from bench.errors import UserError

FORMAT_VERSION = 2  # of run.json + results.csv; bump when their meaning changes (2: run.json carries its checksum)
_OMITTED_WHEN_NONE = ("arms", "peak_rss_bytes", "results_sha256", "draw_s")  # absent from files that never had them


def _checked_fields(cls, payload: Mapping, source: str) -> dict:
    """``payload`` as keyword arguments of the dataclass ``cls``: an unknown field or a missing required one is
    refused in one line naming it and ``source``."""
    if not isinstance(payload, Mapping):
        raise UserError(f"{source} is not a JSON object: damaged or edited; rerun the experiment")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(payload) - known)
    if unknown:
        raise UserError(f"{source} has the field {unknown[0]!r}, which this initjax does not know: written by a "
                        "newer version (upgrade initjax) or edited (rerun the experiment)")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in payload]
    if missing:
        raise UserError(f"{source} lacks {missing[0]!r}: damaged or edited; rerun the experiment (finished "
                        "chunks are reused) or restore the file")
    return dict(payload)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskRecord:
    """What the trainer measured of one task (``RunRecord.tasks[name]``), for the report's header and footer.

    Attributes:
      model: the model's one-line description; data: the data's source and split sizes.
      runs: runs trained (arms x seeds x data orders).
      init_s, compile_s, train_s: seconds drawing the initial parameters and evaluating them (epoch 0: nearly all of
        it), compiling, and training (with the later evaluations) in this run;
      draw_s: of ``init_s``, the seconds drawing the initial parameters alone (None in records written before it
        was measured apart);
        earlier_train_s: training seconds of the earlier runs it resumed from.
      n_params: parameters of one model.
      chunks, models_per_chunk, chunk_reason, estimated_peak_bytes: the memory plan (``bench.training.memory``;
        None in a record built by hand); program_bytes: XLA's training program's memory (0 where not reported).
      chunks_loaded, chunks_resumed: chunks taken finished from the cache, or continued from a checkpoint.
      language_model: the task predicts tokens (the report adds bits per token); optimal_loss: the generated
        data's own best loss per split, where it is known.
      seed_epochs_per_s, train_examples_per_s, train_gflops: throughput (None: nothing was trained).
      flops_per_example: a training example's FLOPs as XLA counts them, for a conv net (None: ``6 x n_params``).
    """

    model: str
    runs: int
    init_s: float
    compile_s: float
    train_s: float
    draw_s: float | None = None
    data: str = "n/a"
    earlier_train_s: float = 0.0
    n_params: int = 0
    chunks: int | None = None
    models_per_chunk: int | None = None
    chunk_reason: str | None = None
    estimated_peak_bytes: int | None = None
    program_bytes: int | None = None
    chunks_loaded: int = 0
    chunks_resumed: int = 0
    language_model: bool = False
    optimal_loss: dict | None = None
    seed_epochs_per_s: float | None = None
    train_examples_per_s: float | None = None
    train_gflops: float | None = None
    flops_per_example: float | None = None

    _ORDER = ("model", "language_model", "data", "runs", "init_s", "draw_s", "compile_s", "train_s", "earlier_train_s",
              "n_params", "optimal_loss", "seed_epochs_per_s", "train_examples_per_s", "train_gflops", "chunks",
              "models_per_chunk", "chunk_reason", "estimated_peak_bytes", "program_bytes", "chunks_loaded",
              "chunks_resumed", "flops_per_example")  # as the files have always been written

    @classmethod
    def from_json(cls, payload: Mapping, source: str) -> TaskRecord:
        return cls(**_checked_fields(cls, payload, source))

    def to_json(self) -> dict:
        """The JSON object, fields in their written order; ``language_model`` only when true, the fields that may
        be None only when known."""
        return {name: getattr(self, name) for name in self._ORDER
                if getattr(self, name) is not None and not (name == "language_model" and not self.language_model)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One run of an experiment as ``run.json`` records it.

    Attributes:
      experiment: the experiment as run (``Experiment.record()``: name, tasks, initializers, seeds, train, ...).
      initializers: the arms' names, in the results' order.
      tasks: task name -> what the trainer measured of it (:class:`TaskRecord`).
      runs, compile_s, init_s, wall_s: totals over the tasks, in runs and seconds; draw_s: the tasks' (None in
        records written before it was measured apart).
      environment: versions, backend, devices, git commit and date (:func:`environment`).
      command: the command line that ran it.
      format: the record's format (:data:`FORMAT_VERSION` when written by this version).
      arms: arm name -> its factor values, with a hyperparameter grid (None without).
      statistics: the ``stats.Settings`` the run was reported with (older records: some missing, defaults).
      processes: how many JAX processes trained it.
      peak_rss_bytes, device_peak_bytes: the process's and the first device's peak memory, where measured.
      results_sha256: the checksum of ``results.csv`` as written next to it.
    """

    experiment: dict
    initializers: list[str]
    tasks: dict[str, TaskRecord]
    runs: int
    compile_s: float
    init_s: float
    environment: dict[str, str]
    command: str
    wall_s: float
    format: int = FORMAT_VERSION
    arms: dict[str, dict] | None = None
    statistics: dict = dataclasses.field(default_factory=dict)
    processes: int = 1
    peak_rss_bytes: int | None = None
    device_peak_bytes: int | None = None
    results_sha256: str | None = None
    draw_s: float | None = None

    _ORDER = ("format", "experiment", "initializers", "arms", "statistics", "tasks", "runs", "compile_s", "init_s",
              "draw_s", "environment", "processes", "peak_rss_bytes", "device_peak_bytes", "command", "wall_s",
              "results_sha256")  # as the files have always been written

    @classmethod
    def from_json(cls, payload: Mapping, source: str = "run.json") -> RunRecord:
        """The record of a JSON object (``run.json`` without its checksum).

        Raises:
          UserError: a required field is missing or a field is unknown, naming it and ``source``.
        """
        fields = _checked_fields(cls, payload, source)
        if not isinstance(fields["tasks"], Mapping):
            raise UserError(f"{source}: tasks is not a JSON object: damaged or edited; rerun the experiment")
        fields["tasks"] = {name: TaskRecord.from_json(task, f"{source} (task {name!r})")
                           for name, task in fields["tasks"].items()}
        return cls(**fields)

    def to_json(self) -> dict:
        """The JSON object of this record, fields in their written order (None optional fields left out)."""
        tasks = {name: task.to_json() for name, task in self.tasks.items()}
        return {name: tasks if name == "tasks" else getattr(self, name) for name in self._ORDER
                if not (name in _OMITTED_WHEN_NONE and getattr(self, name) is None)}

    def replace(self, **changes) -> RunRecord:
        return dataclasses.replace(self, **changes)

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.experiment["name"]

    @property
    def external(self) -> bool:
        """Whether these runs were trained elsewhere and read from a table (``bench.experiments.external``)."""
        return "source" in self.experiment

    def first_epoch(self) -> int:
        """The first epoch the runs have: 0 (the initial evaluation) for the suite's own, the table's for runs
        trained elsewhere."""
        return int(self.experiment.get("source", {}).get("first_epoch", 0))

    def has_curves(self) -> bool:
        """Whether the runs have learning curves (more than one epoch each): the suite's always (epoch 0 on); runs
        trained elsewhere where their table had epochs."""
        return int(self.experiment.get("train", {}).get("epochs", 1)) > self.first_epoch()

    def paired(self) -> bool:
        """Whether runs of one seed are paired across arms: always for the suite's own (common random numbers);
        as the user said for runs trained elsewhere."""
        return bool(self.experiment.get("source", {}).get("paired", True))

    def arms_of(self) -> dict[str, dict]:
        """Arm name -> its factor values (``initializer`` and any grid factors)."""
        return self.arms or {name: {"initializer": name} for name in self.initializers}

    def run_id(self) -> str:
        """Six hex digits naming the experiment as run (its every setting): LaTeX labels of two runs of one preset
        with other seeds or settings differ, so both tables can go into one paper."""
        return hashlib.sha256(json.dumps(self.experiment, sort_keys=True, default=str).encode()).hexdigest()[:6]

    def reference(self) -> dict:
        """The recipe's values of the grid factors (learning rate, weight decay; init scale 1: the initializers as
        drawn), where a grid's ranking verdict is checked; of runs trained elsewhere, those the user gave."""
        if self.external:
            return dict(self.experiment["source"].get("reference") or {})
        train = self.experiment.get("train", {})
        return {"init_scale": 1.0, **{factor: train[factor] for factor in ("lr", "weight_decay") if factor in train}}


def environment() -> dict[str, str]:
    """Versions, backend and devices, for the report header."""
    import flax
    import jax
    import optax

    import initjax

    devices = jax.devices()
    return {
        "initjax": initjax.__version__,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "devices": f"{len(devices)} x {devices[0].device_kind}",
        "git commit": git_commit(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def git_commit() -> str:
    """The commit of the working tree this package runs from, with ``+dirty`` if changed."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")
