"""The presets: experiment files shipped with the package: ``bench/experiments/NAME.toml``, and each paper
reproduction's ``bench/reproductions/FOLDER/experiment.toml`` (named as its folder with ``-`` for ``_``), read by
``bench.experiments.experiment_file`` into a :class:`bench.experiments.spec.Experiment`; ``python -m bench show
NAME`` prints one to copy, ``python -m bench list`` lists them.
"""

from __future__ import annotations

import functools
import json
import tomllib
from pathlib import Path

from bench.errors import unknown
from bench.experiments import experiment_file
from bench.experiments.spec import (  # noqa: F401 (the spec's names, where earlier versions defined them)
    FACTORS,
    MAX_EPOCHS,
    MAX_SEEDS,
    SMOKE_SUBSET,
    Arm,
    Experiment,
    Task,
    smoke,
    validate,
)

PRESET_FOLDER = Path(__file__).parent  # the presets: experiment files shipped with the package
REPRODUCTIONS_FOLDER = PRESET_FOLDER.parent / "reproductions"  # and each reproduction's experiment, by its folder


@functools.cache
def preset_files() -> dict[str, Path]:
    """Preset name -> its experiment file, sorted by name."""
    files = {path.stem: path for path in PRESET_FOLDER.glob("*.toml")}
    files.update({path.parent.name.replace("_", "-"): path for path in REPRODUCTIONS_FOLDER.glob("*/experiment.toml")})
    return dict(sorted(files.items()))


@functools.cache
def _presets() -> dict[str, Experiment]:
    return {name: experiment_file.load(path) for name, path in preset_files().items()}


def names() -> list[str]:
    """The presets' names, sorted (each file is read on first use)."""
    return list(_presets())


def get(name: str) -> Experiment:
    """A preset by name.

    Raises:
      UserError: unknown name, listing the close ones.
    """
    presets = _presets()
    if name not in presets:
        raise unknown("preset", name, presets)
    return presets[name]


def shipped(experiment_name: str) -> dict | None:
    """The JSON record of the preset an experiment of this name (a ``-smoke`` one too) is, as shipped; None when
    there is no such preset. A report says what a run changed of it (``bench.reporting.describe.describe_run``)."""
    base = _presets().get(str(experiment_name).removesuffix("-smoke"))
    return None if base is None else json.loads(json.dumps(base.record(), default=str))


def preset_file(name: str) -> Path:
    """The experiment file of a preset (``python -m bench show NAME`` prints it)."""
    get(name)
    return preset_files()[name]


def is_experiment_file(name) -> bool:
    """Whether a ``run`` argument names an experiment file rather than a preset (a preset's name wins over a
    stray file of that name in the working directory)."""
    if not isinstance(name, (str, Path)):
        return False
    return str(name).endswith(".toml") or Path(name).is_file() and str(name) not in _presets()


def resolve(name: str | Path, overrides: list[str] = ()) -> Experiment:
    """A preset by name or an experiment file by path, with ``--set`` overrides applied.

    Raises:
      UserError: unknown preset (with the known ones), or any error of ``experiment_file.load``.
    """
    if is_experiment_file(name):
        return experiment_file.load(name, overrides)
    experiment = get(str(name))
    if not overrides:
        return experiment
    return experiment_file.from_dict(
        experiment_file.apply_overrides(tomllib.loads(experiment_file.dump(experiment)), list(overrides)),
        f"preset {name}")
