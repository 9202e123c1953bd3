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
_OMITTED_WHEN_NONE = ("arms", "peak_rss_bytes", "results_sha256")  # absent from files that never had them


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One run of an experiment as ``run.json`` records it.

    Attributes:
      experiment: the experiment as run (``Experiment.record()``: name, tasks, initializers, seeds, train, ...).
      initializers: the arms' names, in the results' order.
      tasks: task name -> what the trainer measured of it (model, data, runs, timings, throughput, chunking;
        language models also ``language_model`` and the generated data's ``optimal_loss``).
      runs, compile_s, init_s, wall_s: totals over the tasks, in runs and seconds.
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
    tasks: dict[str, dict]
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

    _ORDER = ("format", "experiment", "initializers", "arms", "statistics", "tasks", "runs", "compile_s", "init_s",
              "environment", "processes", "peak_rss_bytes", "device_peak_bytes", "command", "wall_s",
              "results_sha256")  # as the files have always been written

    @classmethod
    def from_json(cls, payload: Mapping, source: str = "run.json") -> RunRecord:
        """The record of a JSON object (``run.json`` without its checksum).

        Raises:
          UserError: a required field is missing or a field is unknown, naming it and ``source``.
        """
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
        return cls(**{key: payload[key] for key in payload})

    def to_json(self) -> dict:
        """The JSON object of this record, fields in their written order (None optional fields left out)."""
        return {name: getattr(self, name) for name in self._ORDER
                if not (name in _OMITTED_WHEN_NONE and getattr(self, name) is None)}

    def replace(self, **changes) -> RunRecord:
        return dataclasses.replace(self, **changes)

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.experiment["name"]

    def arms_of(self) -> dict[str, dict]:
        """Arm name -> its factor values (``initializer`` and any grid factors)."""
        return self.arms or {name: {"initializer": name} for name in self.initializers}

    def run_id(self) -> str:
        """Six hex digits naming the experiment as run (its every setting): LaTeX labels of two runs of one preset
        with other seeds or settings differ, so both tables can go into one paper."""
        return hashlib.sha256(json.dumps(self.experiment, sort_keys=True, default=str).encode()).hexdigest()[:6]

    def reference(self) -> dict:
        """The recipe's values of the grid factors (learning rate, weight decay; init scale 1: the initializers as
        drawn), where a grid's ranking verdict is checked."""
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
