"""The experiment spec: what to train, with which initializers, how many seeds, and its one check.

An :class:`Experiment` is plain data: its :class:`Task` s (a dataset and a model), its arms (initializer specs
or :class:`Arm` rule sets), the training recipe and the hyperparameter grid. The shipped presets are experiment
files (``bench.experiments.presets``, read by ``bench.experiments.experiment_file``); ``python -m bench run
PRESET --seeds 8 ...`` replaces fields with :meth:`Experiment.override`, then :func:`validate` checks everything a
user could have typed wrong before any training starts.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import initjax
from bench import data
from bench.data import datasets, sequences, text
from bench.errors import UserError, option, unknown
from bench.models import ACTIVATIONS, MODELS, losses
from bench.store import safe_name
from bench.training import grid as grids
from bench.training import recipes
from bench.training.recipes import LEFT_OUT, TrainConfig
from initjax import rules


@dataclasses.dataclass(frozen=True)
class Task:
    """One dataset, the model trained on it and the loss.

    Attributes:
      dataset: what to train on (``bench.data``): a built-in name, ``npz:PATH``,
        ``module:function``, or (from Python) a ``bench.data.datasets.Dataset``.
      hidden: built-in models' hidden-layer widths (conv nets: the dense widths; empty keeps the default).
      activation: built-in models' hidden activation, a name in ``bench.models.ACTIVATIONS``.
      model: a built-in name in ``bench.models.MODELS``, or any ``flax.linen.Module``:
        ``module:attr`` naming a module class, instance or factory, or (from Python)
        the object itself (``bench.models.from_spec``).
      model_args: keyword arguments a model class or factory is called with.
      loss: name in ``bench.models.losses.LOSSES``, ``module:function`` or a callable; None:
        sigmoid cross-entropy on one output for two classes, else softmax cross-entropy.
      subset: ``(n_train, n_test)``: train on the first examples only (smoke runs).
      label: the task's name in results and reports (the ``dataset`` column);
        default the dataset's (``bench.data.default_name``). Tasks on one dataset need distinct labels.
    """

    dataset: Any
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    model: Any = "mlp"
    subset: tuple[int, int] | None = None
    label: str | None = None
    model_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    loss: Any = None

    @property
    def name(self) -> str:
        return self.label or data.default_name(self.dataset)

    @property
    def builtin_model(self) -> bool:
        return isinstance(self.model, str) and self.model in MODELS

    def record(self) -> dict:
        """The task as JSON-safe data (results metadata, resume keys): objects by their spec or qualified name."""
        return {
            "name": self.name,
            "dataset": data.describe_spec(self.dataset),
            "hidden": list(self.hidden),
            "activation": self.activation,
            "model": _named(self.model),
            "subset": None if self.subset is None else list(self.subset),
            "label": self.label,
            "model_args": json.loads(json.dumps(dict(self.model_args), default=str)),
            "loss": _named(self.loss),
        }


def _train_record(train: TrainConfig) -> dict:
    """The recipe as JSON-safe data, without the fields at the value records leave out (``recipes.LEFT_OUT``)."""
    return {k: v for k, v in dataclasses.asdict(train).items() if k not in LEFT_OUT or v != LEFT_OUT[k]}


def _named(obj):
    """A spec string or None as is; a Python object as ``module:qualname`` (a module instance: its repr)."""
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__"):
        return f"{obj.__module__}:{obj.__qualname__}"
    return repr(obj)


@dataclasses.dataclass(frozen=True)
class Arm:
    """A named rule set: initializers applied by parameter path (``initjax.rules``).

    Attributes:
      name: the arm's name in results and reports.
      rules: ``((pattern, initializer spec), ...)``, first match wins.
    """

    name: str
    rules: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, name: str, rules: Mapping[str, str] | Sequence[tuple[str, str]]) -> Arm:
        pairs = rules.items() if isinstance(rules, Mapping) else rules
        return cls(name, tuple((str(p), str(i)) for p, i in pairs))


# what an arm may vary; results carry one column per factor the experiment varies, next to the arm's name
FACTORS = ("initializer", *grids.FACTORS)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A full comparison: every initializer x every seed on every task.

    Attributes:
      name: preset name; also the default report folder ``runs/<name>``.
      description: one paragraph for ``bench list`` and the report.
      tasks: datasets and models.
      initializers: the arms compared, in table order: spec strings (``initjax.spec``; an
        initializer draws every kernel, a scheme the whole network) or :class:`Arm` rule sets.
      seeds: seeds per initializer; seed ``i`` is ``i`` for ``i in range(seeds)``.
      train: optimizer, learning rate, batch size, epochs.
      seed: experiment seed, the root of every random key.
      data_seeds: data-order seeds crossed with every init seed (1: seed ``i`` fixes
        both, as by default; ``bench.analysis.crossed``).
      grid: hyperparameter values crossed with every initializer (``bench.training.grid``);
        each (initializer, cell) is an arm. Empty: one arm per initializer at the recipe's values.
    """

    name: str
    description: str
    tasks: tuple[Task, ...]
    initializers: tuple[str | Arm, ...]
    seeds: int = 32
    train: TrainConfig = TrainConfig()
    seed: int = 0
    data_seeds: int = 1
    grid: grids.Grid = grids.Grid()

    def arms(self, initializers: Sequence[str] | None = None) -> dict[str, dict]:
        """Arm name -> its factor values (``initializer`` and the grid's), in table order.

        ``initializers``: the canonical names (:func:`validate`'s keys); default the names as listed.
        """
        if initializers is None:
            initializers = [a if isinstance(a, str) else a.name for a in self.initializers]
        return grids.arms(list(initializers), self.grid)

    def record(self) -> dict:
        """The experiment as JSON-safe data (``run.json``, resume keys, ``bench show``)."""
        return {
            "name": self.name,
            "description": self.description,
            "tasks": [t.record() for t in self.tasks],
            "initializers": [a if isinstance(a, str) else {"name": a.name, "rules": dict(a.rules)}
                             for a in self.initializers],
            "seeds": self.seeds,
            "train": _train_record(self.train),
            "seed": self.seed,
            "data_seeds": self.data_seeds,
            **({"grid": self.grid.record()} if self.grid else {}),
        }

    def override(
        self,
        *,
        seeds: int | None = None,
        initializers: Sequence[str] | None = None,
        datasets: Sequence[str] | None = None,
        epochs: int | None = None,
        lr: float | Sequence[float] | str | None = None,
        weight_decay: float | Sequence[float] | str | None = None,
        momentum: float | Sequence[float] | str | None = None,
        init_scale: float | Sequence[float] | str | None = None,
        grid: grids.Grid | Mapping | None = None,
        optimizer: str | None = None,
        batch_size: int | None = None,
        seed: int | None = None,
        model: str | None = None,
        hidden: Sequence[int] | None = None,
        activation: str | None = None,
        data_seeds: int | None = None,
    ) -> Experiment:
        """A copy with the given fields replaced (None keeps the preset's value).

        ``datasets`` selects the preset's tasks by dataset name or task label; a
        dataset the preset does not have gets the model of the preset's first task. ``model``,
        ``hidden`` and ``activation`` replace those of every task.

        ``lr``, ``weight_decay`` and ``momentum``: one value sets the recipe's; several (a
        list, ``"1e-3,1e-2"`` or ``"logspace(1e-4, 1e-1, 7)"``) make it a grid factor.
        ``init_scale``: any values make it a grid factor. ``grid`` (a ``Grid`` or a mapping of
        factor -> values) replaces the grid, before those.
        """
        new_grid = self.grid if grid is None else grid if isinstance(grid, grids.Grid) else grids.Grid.of(**grid)
        fixed = {}
        for factor, value in (("lr", lr), ("weight_decay", weight_decay), ("momentum", momentum),
                              ("init_scale", init_scale)):
            if value is None:
                continue
            values = grids.parse_values(value, factor)
            if len(values) > 1 or factor in ("init_scale", "momentum"):  # no recipe field of their own
                new_grid = dataclasses.replace(new_grid, **{factor: values})
            else:
                new_grid = dataclasses.replace(new_grid, **{factor: ()})
                fixed[factor] = values[0]
        lr, weight_decay = fixed.get("lr"), fixed.get("weight_decay")
        tasks = self.tasks if datasets is None else select_tasks(self, datasets).tasks
        task_fields = {k: v for k, v in dict(model=model, activation=activation).items() if v is not None}
        if hidden is not None:
            task_fields["hidden"] = tuple(hidden)
        tasks = tuple(dataclasses.replace(task, **task_fields) for task in tasks)
        train = dataclasses.replace(
            self.train,
            **{
                k: v
                for k, v in dict(epochs=epochs, lr=lr, weight_decay=weight_decay, optimizer=optimizer,
                                 batch_size=batch_size).items()
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
            data_seeds=self.data_seeds if data_seeds is None else data_seeds,
            grid=new_grid,
        )


def select_tasks(experiment: Experiment, datasets: Sequence[str]) -> Experiment:
    """The experiment's tasks picked by dataset name or task label, in the order given; a dataset it does not have
    gets a task like its first (the same model and options)."""
    picked = []
    for name in datasets:
        matching = [t for t in experiment.tasks if name in (t.name, t.dataset)]
        picked += matching or [dataclasses.replace(experiment.tasks[0], dataset=name, label=None)]
    return dataclasses.replace(experiment, tasks=tuple(picked))


SMOKE_SUBSET = (512, 256)


def smoke(experiment: Experiment) -> Experiment:
    """The tiny form of an experiment, for tests: 2 seeds, 1 epoch, 512 training examples."""
    return dataclasses.replace(
        experiment,
        name=f"{experiment.name}-smoke",
        seeds=2,
        tasks=tuple(dataclasses.replace(t, subset=SMOKE_SUBSET) for t in experiment.tasks),
        train=dataclasses.replace(experiment.train, epochs=1, batch_size=min(experiment.train.batch_size, 64)),
    )


def _unknown_dataset(spec: str) -> UserError:
    """An unknown dataset's one line, with the spelling of a file where the name looks like one."""
    error = unknown("dataset", spec, {**datasets.LOADERS, **sequences.GENERATORS, **text.TEXTS})
    if spec.lower().endswith(".npz"):
        return UserError(f"{error}; a file of arrays is named npz:PATH (data = \"npz:{spec}\")")
    return error


MAX_SEEDS = 100_000  # per initializer; more is no longer a seed count but a typo (memory is planned later)
MAX_EPOCHS = 1_000_000


def validate(experiment: Experiment) -> dict[str, initjax.registry.Initializer]:
    """Checks every field a user can set, before anything is trained.

    Returns:
      Canonical initializer name -> initializer, in table order.

    Raises:
      UserError: the first problem found, in one line.
    """
    for field, value, high in (("seeds", experiment.seeds, MAX_SEEDS), ("data_seeds", experiment.data_seeds, 1000),
                               ("train.epochs", experiment.train.epochs, MAX_EPOCHS),
                               ("seed", experiment.seed, 2**32 - 1)):
        low = 0 if field == "seed" else 1
        if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and low <= value <= high):
            raise UserError(f"{option(field)} must be an integer from {low} to {high:,}, got {value}")
    if experiment.data_seeds > 1 and experiment.seeds < 2:
        raise UserError(f"{option('data_seeds')} > 1 needs {option('seeds')} >= 2: the variance decomposition "
                        "crosses init and data-order seeds")
    if not experiment.tasks:
        raise UserError(f"no dataset selected; give {option('datasets')} with at least one name")
    if not experiment.initializers:
        raise UserError(f"no initializer selected; give {option('initializers')} with at least one name")
    names = [task.name for task in experiment.tasks]
    for task in experiment.tasks:
        if task.label is not None:  # a label names files (figures, the cache's task folder): it stays in its folder
            safe_name(task.label, "task label")
    if len(set(names)) < len(names):
        raise UserError(f"two tasks are named alike in {names}; give tasks on one dataset distinct labels")
    if len({losses.is_regression(task.loss) for task in experiment.tasks}) > 1:
        raise UserError("the tasks mix regression and classification losses, which one report cannot rank by one "
                        "metric; run them as two experiments")
    for task in experiment.tasks:
        spec = task.dataset
        if isinstance(spec, str) and not data.known(spec):
            raise _unknown_dataset(spec)
        if data.generated(spec):
            data.generate(spec)  # bad arguments are refused before any task trains (generated once, then cached)
        if task.activation not in ACTIVATIONS:
            raise unknown("activation", task.activation, ACTIVATIONS)
        if isinstance(task.model, str) and ":" not in task.model and task.model not in MODELS:
            raise unknown("model", task.model, MODELS)
        if task.loss is not None:
            losses.get(task.loss)  # raises on an unknown name or a spec that does not import
        if any(w < 1 for w in task.hidden):
            raise UserError(f"hidden widths must be >= 1, got {tuple(task.hidden)}")
        if task.model == "resmlp" and (not task.hidden or len(set(task.hidden)) != 1):
            raise UserError(f"resmlp needs equal hidden widths, one per residual block (e.g. "
                            f"{option('tasks.*.hidden', ','.join(['64'] * 8))}); got {tuple(task.hidden)}")
    experiment.train.validate(n_train=None)  # the batch size is checked against each dataset later
    experiment.grid.validate()
    recipes.check(experiment.train.optimizer, experiment.train.schedule, grids.injected(experiment.grid))
    resolved = {}
    for arm in experiment.initializers:
        try:
            if isinstance(arm, Arm):
                name, value = arm.name, rules.compile_rules(arm.rules)
                if not name or name in initjax.BUILTIN_NAMES:
                    raise ValueError(f"the rule set {arm.name!r} needs a name of its own (not empty, not a "
                                     "registered initializer's)")
            elif isinstance(arm, str):
                name, value = initjax.canonical(arm), initjax.check(arm)
            else:
                raise ValueError(f"an arm is a spec string or a bench.Arm rule set, got {type(arm).__name__}")
        except ValueError as error:
            raise UserError(str(error)) from None
        resolved[name] = value
    if len(resolved) < len(experiment.initializers):
        raise UserError(f"an initializer is listed twice in {list(experiment.initializers)}; list each once")
    return resolved
