"""The short options of ``python -m bench run`` as a table: each option sets a field of the experiment by its path,
through the same path as ``--set`` (``bench.experiments.experiment_file.set_path``, then the file's own checks).

``--lr 0.01`` is ``--set train.lr=0.01``; several values (``--lr 1e-3,1e-2``, ``"logspace(1e-4, 1e-1, 7)"``) are
``--set grid.lr=[...]``; ``--model resmlp`` is ``--set tasks.*.model="resmlp"`` (every task). ``--datasets`` is the
one option that is no field: it picks the tasks (``bench.experiments.spec.select_tasks``).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable

from bench.commands.arguments import integer, names, specs, widths


@dataclasses.dataclass(frozen=True)
class Field:
    """A short option and the field it sets.

    Attributes:
      option: ``--seeds``.
      path: the field's path (``train.epochs``; ``tasks.*.model`` for every task).
      parse: the command-line string to a value (argparse's ``type``; None: the string).
      help: what it does, for ``--help``.
      grid: ``recipe``: one value sets ``path``, several make ``grid.<factor>`` (clearing the other);
        ``always``: the values are always ``grid.<factor>``; None: a plain field.
    """

    option: str
    path: str
    parse: Callable | None
    help: str
    grid: str | None = None

    @property
    def dest(self) -> str:
        return self.option.removeprefix("--").replace("-", "_")


FIELDS = (
    Field("--seeds", "seeds", integer, "seeds per initializer, 1 to 100,000 (default: the preset's; 32 in default)"),
    Field("--data-seeds", "data_seeds", integer,
          "data orders crossed with every seed (default 1: seed i fixes both); the report splits the spread"),
    Field("--initializers", "initializers", specs,
          "comma-separated specs: he_normal,normal(stddev=0.1),my_module:my_init (an initializer), "
          "my_module:builder(k=v) or my_module:builder() (called to build one; module:function runs that code) "
          "(default: the preset's; 8 Keras initializers in default)"),
    Field("--epochs", "train.epochs", integer, "passes over the training set (default: the preset's; 10 in default)"),
    Field("--lr", "train.lr", None,
          "learning rate, > 0 (default: the preset's; 1e-3 in default); several make a grid trained in one program "
          'and tuned per initializer: 1e-3,1e-2,1e-1 or "logspace(1e-4, 1e-1, 7)"', grid="recipe"),
    Field("--weight-decay", "train.weight_decay", None,
          "weight decay, >= 0; several values (or linspace(...)) make a grid factor", grid="recipe"),
    Field("--momentum", "grid.momentum", None, "grid of momentum values in [0, 1): SGD's momentum, Adam's b1",
          grid="always"),
    Field("--init-scale", "grid.init_scale", None,
          "grid of multipliers of the initial kernels, e.g. 0.5,1,2 (--set grid.init_scale_on=PATTERN for other "
          "parameters)", grid="always"),
    Field("--optimizer", "train.optimizer", None,
          "sgd, momentum, nesterov, adam, adamw, lion, rmsprop, with optax keyword arguments: adamw(b2=0.95) "
          "(default: the preset's; adam in default)"),
    Field("--batch-size", "train.batch_size", integer,
          "minibatch size; a partial last batch is kept (default: the preset's; 32 in default)"),
    Field("--evals-per-epoch", "train.evals_per_epoch", integer,
          "evaluations an epoch (default 1): 4 also evaluates after each quarter of an epoch, so time to a target "
          "is measured in quarter epochs"),
    Field("--experiment-seed", "seed", integer, "root of all random keys, 0 to 2**32-1 (default 0)"),
    Field("--model", "tasks.*.model", None,
          "model of every task: mlp, resmlp, lenet, convnet, `bench list` (default: the preset's; mlp in default)"),
    Field("--hidden", "tasks.*.hidden", widths,
          "hidden widths, e.g. 300,100; resmlp: one equal width per block (default: the preset's; 64,64 in default)"),
    Field("--activation", "tasks.*.activation", None,
          "hidden activation, `bench list` shows them (default: the preset's; relu in default)"),
)
DATASETS_HELP = "comma-separated dataset names, `bench list` shows them (default: the preset's; synthetic,digits in " \
                "default)"


def options_of_fields() -> dict[str, str]:
    """Field path -> the short option that sets it (``train.lr`` and ``grid.lr`` -> ``--lr``), for naming the
    options of a library message on the command line (``bench.errors.option``)."""
    out = {}
    for field in FIELDS:
        out[field.path] = field.option
        if field.grid is not None:
            out[f"grid.{field.path.rpartition('.')[2]}"] = field.option
    return out


def add_to(parser: argparse.ArgumentParser) -> None:
    """The short options, and ``--datasets``."""
    for field in FIELDS:
        parser.add_argument(field.option, dest=field.dest, type=field.parse, help=field.help)
    parser.add_argument("--datasets", type=names, help=DATASETS_HELP)


def changes(args: argparse.Namespace) -> dict[str, object]:
    """Field path -> value of every short option given (``experiment_file.REMOVE`` clears a grid factor)."""
    from bench.experiments.experiment_file import REMOVE
    from bench.training import grid as grids

    out = {}
    for field in FIELDS:
        value = getattr(args, field.dest)
        if value is None:
            continue
        if field.grid is None:
            out[field.path] = list(value) if isinstance(value, (list, tuple)) else value
            continue
        factor = field.path.rpartition(".")[2]
        values = list(grids.parse_values(value, factor))
        if field.grid == "recipe" and len(values) == 1:
            out[field.path], out[f"grid.{factor}"] = values[0], REMOVE
        else:
            out[f"grid.{factor}"] = values
    return out


def apply(experiment, args: argparse.Namespace):
    """``experiment`` with the short options given set, then the tasks ``--datasets`` picks."""
    from bench.experiments.experiment_file import with_fields
    from bench.experiments.spec import select_tasks

    fields = changes(args)
    if fields:
        experiment = with_fields(experiment, fields, "the command line")
    return experiment if args.datasets is None else select_tasks(experiment, args.datasets)
