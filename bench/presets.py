"""Experiments: what to train, with which initializers, how many seeds; and the presets.

An :class:`Experiment` is plain data. ``python -m bench run PRESET --seeds 8 ...``
takes a preset and replaces fields with :meth:`Experiment.override`, then
:func:`validate` checks everything a user could have typed wrong before any
training starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import initjax
from bench import datasets
from bench.errors import UserError, unknown
from bench.models import ACTIVATIONS
from bench.train import TrainConfig


@dataclasses.dataclass(frozen=True)
class Task:
    """One dataset and the MLP trained on it (input and output widths come from the data).

    Attributes:
      dataset: name in ``bench.datasets.LOADERS``.
      hidden: hidden-layer widths.
      activation: hidden activation, a name in ``bench.models.ACTIVATIONS``.
    """

    dataset: str
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "relu"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A full comparison: every initializer x every seed on every task.

    Attributes:
      name: preset name; also the default report folder ``reports/<name>``.
      description: one paragraph for ``bench list`` and the report.
      tasks: datasets and models.
      initializers: spec strings (see ``initjax.spec``), in table order.
      seeds: seeds per initializer; seed ``i`` is ``i`` for ``i in range(seeds)``.
      train: optimizer, learning rate, batch size, epochs.
      seed: experiment seed, the root of every random key.
    """

    name: str
    description: str
    tasks: tuple[Task, ...]
    initializers: tuple[str, ...]
    seeds: int = 32
    train: TrainConfig = TrainConfig()
    seed: int = 0

    def override(
        self,
        *,
        seeds: int | None = None,
        initializers: Sequence[str] | None = None,
        datasets: Sequence[str] | None = None,
        epochs: int | None = None,
        lr: float | None = None,
        optimizer: str | None = None,
        batch_size: int | None = None,
        seed: int | None = None,
    ) -> Experiment:
        """A copy with the given fields replaced (None keeps the preset's value).

        ``datasets`` selects the preset's tasks by dataset name; a dataset the preset
        does not have gets the model of the preset's first task.
        """
        tasks = self.tasks
        if datasets is not None:
            by_name = {task.dataset: task for task in self.tasks}
            tasks = tuple(by_name.get(name, dataclasses.replace(self.tasks[0], dataset=name)) for name in datasets)
        train = dataclasses.replace(
            self.train,
            **{
                k: v
                for k, v in dict(epochs=epochs, lr=lr, optimizer=optimizer, batch_size=batch_size).items()
                if v is not None
            },
        )
        return dataclasses.replace(
            self,
            tasks=tasks,
            train=train,
            seeds=self.seeds if seeds is None else seeds,
            seed=self.seed if seed is None else seed,
            initializers=self.initializers if initializers is None else tuple(initializers),
        )


def validate(experiment: Experiment) -> dict[str, initjax.registry.Initializer]:
    """Checks every field a user can set, before anything is trained.

    Returns:
      Canonical initializer name -> initializer, in table order.

    Raises:
      UserError: the first problem found, in one line.
    """
    if experiment.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {experiment.seeds}")
    if not experiment.tasks:
        raise UserError("no dataset selected; give --datasets with at least one name")
    if not experiment.initializers:
        raise UserError("no initializer selected; give --initializers with at least one name")
    for task in experiment.tasks:
        if task.dataset not in datasets.LOADERS:
            raise unknown("dataset", task.dataset, datasets.LOADERS)
        if task.activation not in ACTIVATIONS:
            raise unknown("activation", task.activation, ACTIVATIONS)
    experiment.train.validate(n_train=2**62)  # the batch size is checked against each dataset later
    resolved = {}
    for spec in experiment.initializers:
        try:
            name = initjax.canonical(spec)
            resolved[name] = initjax.check(spec)
        except ValueError as error:
            raise UserError(str(error)) from None
    if len(resolved) < len(experiment.initializers):
        raise UserError(f"an initializer is listed twice in {list(experiment.initializers)}; list each once")
    return resolved


NOTEBOOK_INITIALIZERS = (
    "zeros",
    "random_normal",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "orthogonal",
)

PRESETS: dict[str, Experiment] = {
    "default": Experiment(
        name="default",
        description=(
            "The Keras initializer notebook, with confidence intervals: an MLP 20-64-64-1 "
            "(ReLU, sigmoid output) on make_classification, and an MLP 64-64-64-10 (ReLU, softmax) "
            "on sklearn digits; Adam lr 1e-3, batch 32, 10 epochs; 8 initializers x 32 seeds."
        ),
        tasks=(Task("synthetic", (64, 64)), Task("digits", (64, 64))),
        initializers=NOTEBOOK_INITIALIZERS,
        seeds=32,
        train=TrainConfig(optimizer="adam", lr=1e-3, batch_size=32, epochs=10),
    ),
}


def get(name: str) -> Experiment:
    """A preset by name.

    Raises:
      UserError: unknown name, listing the close ones.
    """
    if name not in PRESETS:
        raise unknown("preset", name, PRESETS)
    return PRESETS[name]
