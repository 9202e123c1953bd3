"""Experiment files: an experiment written in TOML, versionable next to a paper.

``python -m bench run study.toml`` runs one; ``--set train.lr=0.01`` (any field, lists
by index: ``tasks.0.model=...``) overrides it; ``python -m bench show PRESET`` prints a
preset in this form. A minimal file::

    name = "ln-mlp"
    seeds = 8
    initializers = ["he_normal", "glorot_uniform", "mypkg.inits:scaled_orthogonal(scale=1.5)"]
    [train]
    optimizer = "adamw"
    lr = 1e-3
    batch_size = 32
    epochs = 5
    [[tasks]]
    data = "npz:data/my_data.npz"         # keys x_train, y_train, x_test, y_test
    model = "mypkg.models:LayerNormMLP"   # any flax.linen.Module
    model_args = { widths = [128, 128] }
    loss = "softmax_cross_entropy"

A ``[grid]`` table crosses every initializer with hyperparameter values, trained in the
same program (``bench.training.grid``)::

    [grid]
    lr = "logspace(1e-4, 1e-1, 7)"    # or a list: [1e-3, 1e-2, 1e-1]
    weight_decay = [0.0, 0.01]
    init_scale = [0.5, 1.0, 2.0]
    init_scale_on = "*/kernel"

An arm that applies initializers by parameter path (``initjax.rules``, first match wins)
is a table in ``initializers``: ``{ name = "zero-head", rules = { "head/kernel" = "zeros",
"*/kernel" = "he_normal" } }``.

Paths are the file's own: a relative ``npz:`` or ``text(path=...)`` path is taken from the file's
folder, and that folder is put first on ``sys.path`` so ``mypkg.models:...`` next to it imports.
Every key is checked: an unknown key, a wrong type or a missing file is one line
naming the key and the file.
"""

from __future__ import annotations

import json
import math
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.errors import UserError, option
from bench.experiments.spec import Arm, Experiment, Task
from bench.models import MODELS
from bench.training import grid as grids
from bench.training.recipes import TrainConfig
from initjax.spec import parse_spec

# key -> (accepted types, what to write in a message)
_INT, _NUM, _STR = (int,), (int, float), (str,)
TOP = {"name": (_STR, "a string"), "description": (_STR, "a string"), "seeds": (_INT, "an integer"),
       "data_seeds": (_INT, "an integer"), "seed": (_INT, "an integer"), "initializers": ((list,), "a list"),
       "train": ((dict,), "a table"), "tasks": ((list,), "an array of tables [[tasks]]"),
       "grid": ((dict,), "a table [grid]"), "launcher": ((dict,), "a table [launcher]")}
# how the study's shards are submitted (bench run --launcher; bench.commands.launching), not what they compute:
# not part of the experiment, read by launcher_of
LAUNCHER = {"kind": (_STR, '"submitit"'), "array": (_INT, "an integer"), "slurm_partition": (_STR, "a string"),
            "timeout_min": (_INT, "an integer"), "gpus_per_node": (_INT, "an integer"),
            "cpus_per_task": (_INT, "an integer"), "mem_gb": (_INT, "an integer"), "wait": ((bool,), "true or false")}
GRID = {**{f: ((list, str, int, float), "a list of numbers or a range string") for f in grids.FACTORS},
        "init_scale_on": (_STR, "a string")}
TRAIN = {"optimizer": (_STR, "a string"), "lr": (_NUM, "a number"), "batch_size": (_INT, "an integer"),
         "epochs": (_INT, "an integer"), "eval_batch_size": (_INT, "an integer"), "schedule": (_STR, "a string"),
         "weight_decay": (_NUM, "a number"), "clip": (_NUM, "a number"), "evals_per_epoch": (_INT, "an integer")}
TASK = {"data": (_STR, "a string"), "model": (_STR, "a string"), "model_args": ((dict,), "a table"),
        "hidden": ((list,), "a list of integers"), "activation": (_STR, "a string"), "loss": (_STR, "a string"),
        "label": (_STR, "a string"), "subset": ((list,), "a list [n_train, n_test]")}
ARM = {"name": (_STR, "a string"), "rules": ((dict,), "a table of pattern = initializer")}


def _check_keys(table: dict, schema: dict, where: str, origin: str) -> None:
    for key, value in table.items():
        name = f"{where}{key}"
        if key not in schema:
            raise UserError(f"{origin}: unknown key {name!r}; known: {', '.join(where + k for k in schema)}")
        types, said = schema[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise UserError(f"{origin}: {name} must be {said}, got {value!r}")


def _arm(item, i: int, origin: str) -> str | Arm:
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        raise UserError(f"{origin}: initializers[{i}] must be a spec string or a table {{name, rules}}, got {item!r}")
    _check_keys(item, ARM, f"initializers[{i}].", origin)
    if "name" not in item or "rules" not in item:
        raise UserError(f"{origin}: initializers[{i}] needs both name and rules")
    for pattern, spec in item["rules"].items():
        if not isinstance(spec, str):
            raise UserError(f"{origin}: initializers[{i}].rules.{pattern} must be an initializer spec string, "
                            f"got {spec!r}")
    return Arm.of(item["name"], item["rules"])


def _task(table, i: int, origin: str, folder: Path) -> Task:
    where = f"tasks[{i}]."
    if not isinstance(table, dict):
        raise UserError(f"{origin}: tasks[{i}] must be a table, got {table!r}")
    _check_keys(table, TASK, where, origin)
    if "data" not in table:
        raise UserError(f"{origin}: {where}data is missing (a dataset name, npz:PATH or module:function)")
    data = table["data"]
    if data.startswith("npz:"):
        path = Path(data[4:]).expanduser()
        path = path if path.is_absolute() else folder / path
        if not path.is_file():
            raise UserError(f"{origin}: {where}data names {path}, which does not exist")
        data = f"npz:{path}"
    elif data.startswith("text("):
        data = _text_from(folder, data, f"{origin}: {where}data")
    fields: dict[str, Any] = {"dataset": data}
    for key in ("model", "activation", "loss", "label"):
        if key in table:
            fields[key] = table[key]
    if "model_args" in table:
        fields["model_args"] = table["model_args"]
    if "hidden" in table:
        if not all(isinstance(w, int) and not isinstance(w, bool) for w in table["hidden"]):
            raise UserError(f"{origin}: {where}hidden must be a list of integers, got {table['hidden']!r}")
        fields["hidden"] = tuple(table["hidden"])
    if "subset" in table:
        subset = table["subset"]
        if len(subset) != 2 or not all(isinstance(n, int) and n >= 1 for n in subset):
            raise UserError(f"{origin}: {where}subset must be [n_train, n_test], two integers >= 1, got {subset!r}")
        fields["subset"] = tuple(subset)
    return Task(**fields)


def from_dict(raw: dict, origin: str = "<experiment>", folder: Path | None = None) -> Experiment:
    """An :class:`Experiment` from parsed TOML (see the module docstring).

    Raises:
      UserError: unknown keys, wrong types, missing required keys or files, naming ``origin``.
    """
    folder = folder or Path.cwd()
    _check_keys(raw, TOP, "", origin)
    for key in ("initializers", "tasks"):
        if key not in raw or not raw[key]:
            raise UserError(f"{origin}: {key} is missing or empty")
    train = raw.get("train", {})
    _check_keys(train, TRAIN, "train.", origin)
    train = {k: float(v) if TRAIN[k][0] is _NUM else v for k, v in train.items()}
    tasks = tuple(_task(t, i, origin, folder) for i, t in enumerate(raw["tasks"]))
    arms = tuple(_arm(a, i, origin) for i, a in enumerate(raw["initializers"]))
    fields = {k: raw[k] for k in ("seeds", "data_seeds", "seed") if k in raw}
    if "launcher" in raw:  # checked here too, so that a typo there is found by any command
        _check_keys(raw["launcher"], LAUNCHER, "launcher.", origin)
    if "grid" in raw:
        _check_keys(raw["grid"], GRID, "grid.", origin)
        try:
            fields["grid"] = grids.Grid.of(**raw["grid"])
        except UserError as error:
            raise UserError(f"{origin}: grid: {error}") from None
    return Experiment(name=raw.get("name", Path(origin).stem), description=raw.get("description", ""), tasks=tasks,
                      initializers=arms, train=TrainConfig(**train), **fields)


def _parse_value(text: str):
    """A ``--set`` value: a TOML value (``0.01``, ``[64, 64]``, ``"adamw"``, ``true``), else the text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:  # [[[[...]]]] nested thousands deep
        raise UserError(f"{option('assignments')} value {text[:40]!r}... nests deeper than TOML can be read here; "
                        "flatten it") from None


def apply_overrides(raw: dict, assignments: list[str]) -> dict:
    """``raw`` with each ``dotted.key=value`` of ``assignments`` set (:func:`set_path`; the value read as TOML).

    Raises:
      UserError: an assignment without ``=``, or a path through something that is not a table or list.
    """
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option('assignments')} needs key=value (e.g. train.lr=0.01), got {assignment!r}")
        set_path(raw, key.strip(), _parse_value(text))
    return raw


def set_path(raw: dict, key: str, value) -> None:
    """Sets the field ``key`` of an experiment's raw table: ``train.lr``, ``tasks.0.model`` (a list index),
    ``tasks.*.model`` (every item of a list); the value ``REMOVE`` removes the field. Every way of setting a field
    (``--set``, the short options of ``python -m bench run``) goes through here, then :func:`from_dict` checks the
    whole.

    Raises:
      UserError: a path through something that is not a table or a list index in range.
    """
    *parents, last = key.split(".")
    nodes = [raw]
    for i, part in enumerate(parents):
        step = []
        for node in nodes:
            if isinstance(node, list) and part == "*":
                step += node
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                step.append(node[int(part)])
            elif isinstance(node, dict):
                step.append(node.setdefault(part, {}))
            else:
                raise UserError(f"{option('assignments')} {key}: {'.'.join(parents[:i + 1])} is not a table or a list "
                                "index in range")
        nodes = step
    for node in nodes:
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            node[int(last)] = value
        elif isinstance(node, dict):
            if value is REMOVE:
                node.pop(last, None)
            else:
                node[last] = value
        else:
            raise UserError(f"{option('assignments')} {key}: {'.'.join(parents) or key} is not a table")


REMOVE = object()  # set_path's value that removes a field


def with_fields(experiment: Experiment, fields: Mapping[str, object], origin: str) -> Experiment:
    """``experiment`` with each field path of ``fields`` set (:func:`set_path`), checked as a file is
    (:func:`from_dict`)."""
    raw = tomllib.loads(dump(experiment))
    for key, value in fields.items():
        set_path(raw, key, value)
    return from_dict(raw, origin)


def load(path: str | Path, overrides: list[str] = ()) -> Experiment:
    """The experiment of a TOML file, with ``--set`` overrides applied.

    Raises:
      UserError: a missing or unreadable file, invalid TOML, or any check of :func:`from_dict`.
    """
    path, raw = _read(path)
    folder = path.resolve().parent
    if str(folder) not in sys.path:  # the study's own modules (mypkg.models:...) live beside it
        sys.path.insert(0, str(folder))
    return from_dict(apply_overrides(raw, list(overrides)), str(path), folder)


def launcher_of(path: str | Path) -> dict:
    """The ``[launcher]`` table of an experiment file (``kind = "submitit"``, ``array``, ``slurm_partition``,
    ``timeout_min``, ``gpus_per_node``, ``cpus_per_task``, ``mem_gb``, ``wait``): how ``bench run`` submits the
    study's shards when the command line does not say; {} without one.

    Raises:
      UserError: an unknown key or a wrong type, naming the file.
    """
    path, raw = _read(path)
    table = raw.get("launcher", {})
    if not isinstance(table, dict):
        raise UserError(f"{path}: launcher must be a table [launcher]")
    _check_keys(table, LAUNCHER, "launcher.", str(path))
    if table.get("kind", "submitit") != "submitit":
        raise UserError(f"{path}: launcher.kind must be \"submitit\" (other schedulers run {option('shard')} I/N "
                        "themselves: docs/guides/clusters.md)")
    return table


def _read(path: str | Path) -> tuple[Path, dict]:
    """``(path, its parsed TOML)``.

    Raises:
      UserError: a missing or unreadable file, or invalid TOML.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"experiment file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"experiment file {path} cannot be read: {error}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:  # tables or arrays nested thousands deep
        raise UserError(f"{path}: nests tables or arrays deeper than can be read; an experiment needs a few "
                        "levels") from None
    return path, raw


# ------------------------------------------------------------------ writing


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML has no place for {value} here")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise ValueError(f"cannot write {type(value).__name__} to TOML")


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def dump(experiment: Experiment) -> str:
    """The experiment as an experiment file (what ``python -m bench show`` prints); :func:`load` reads it back."""
    record = experiment.record()
    defaults = Task(dataset="").record()
    lines = [f"name = {_value(record['name'])}", f"description = {_value(record['description'])}",
             f"seeds = {record['seeds']}"]
    lines += [f"{k} = {record[k]}" for k in ("data_seeds", "seed") if record[k] != (1 if k == "data_seeds" else 0)]
    arms = [a if isinstance(a, str) else {"name": a["name"], "rules": a["rules"]} for a in record["initializers"]]
    lines += ["initializers = [", *(f"    {_value(a)}," for a in arms), "]", "", "[train]"]
    grid_lines = [f"{k} = {_value(v)}" for k, v in record.get("grid", {}).items()]
    train_defaults = TrainConfig().__dict__
    lines += [f"{k} = {_value(v)}" for k, v in record["train"].items()
              if v is not None and (k in ("optimizer", "lr", "batch_size", "epochs") or v != train_defaults[k])]
    if grid_lines:
        lines += ["", "[grid]", *grid_lines]
    for task in record["tasks"]:
        lines += ["", "[[tasks]]", f"data = {_value(task['dataset'])}"]
        builtin = task["model"] in MODELS
        for key in ("model", "hidden", "activation", "model_args", "loss", "label", "subset"):
            shown = key == "model" or builtin and key in ("hidden", "activation") or task[key] != defaults[key]
            if task[key] is not None and shown:
                lines.append(f"{key} = {_value(task[key])}")
    return "\n".join(lines) + "\n"


def _text_from(folder: Path, data: str, where: str) -> str:
    """A ``text(path=...)`` spec with its path taken from the experiment file's ``folder``."""
    try:
        parsed = parse_spec(data)
    except ValueError as error:
        raise UserError(f"{where} {data!r}: {error}") from None
    kwargs = dict(parsed.kwargs)
    if not isinstance(kwargs.get("path"), str):
        raise UserError(f"{where} {data!r} names no file; write text(path=\"corpus.txt\")")
    path = Path(kwargs["path"]).expanduser()
    kwargs["path"] = str(path if path.is_absolute() else folder / path)
    return f"text({', '.join(f'{key}={value!r}' for key, value in kwargs.items())})"
