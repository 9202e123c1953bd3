"""Runs trained elsewhere, read into the suite's results table, so that their report is the suite's own.

A table of one row per run (or per run and epoch), from a CSV, parquet or JSON-lines file or a data frame, with
columns naming each run's arm, seed, metric and optionally its task and epoch, becomes the tidy table the trainer
writes (``dataset, model, arm, initializer, seed, epoch, <metric>, diverged, diverged_epoch``) and a run record
(``bench.reporting.record.RunRecord``) that says where the runs came from. The report, ``bench report`` and
``bench calibrate`` then read them as they read the suite's runs.

The metric keeps its name where its suffix already says which way is better (``_accuracy``, ``_r2``: higher;
``_loss``: lower), else gets ``_score`` (higher is better) or ``_error`` (lower is better) as the user says. A
hyperparameter grid (``factors``: columns of a learning rate, weight decay, momentum or init scale) makes each
(arm, cell) an arm named as the suite names its grid's (``he lr=0.001``), the user's arm its ``initializer``; with a
validation column (``val_<metric>`` in the table) the report tunes each initializer on it as it tunes the suite's
grids (``bench.analysis.tuning``). Seeds
are numbered ``0..n-1`` in their sorted order (the record keeps the values given); with ``paired``, every arm must
have run the same seeds, which are then taken as common random numbers. Every problem of the table is refused in
one line naming the file, the column and a row, before anything is written.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import speed
from bench.analysis.outcomes import as_stored
from bench.analysis.stats import metric_range
from bench.errors import UserError, option
from bench.reporting.record import RunRecord, TaskRecord, environment
from bench.schema import FACTORS
from bench.training.grid import arm_name, format_value

READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "jsonl"}
HIGHER, LOWER = ("_accuracy", "_r2", "_score"), ("_loss", "_error")
LOWER_WORDS = ("loss", "error")  # a metric whose name holds one is read as lower-is-better by the analysis
FACTOR_NAMES = {  # a grid factor's column as people name it -> the suite's factor (bench.schema.FACTORS)
    **{name: "lr" for name in ("lr", "learning_rate", "learningrate", "eta", "step_size", "stepsize")},
    **{name: "weight_decay" for name in ("weight_decay", "weightdecay", "wd", "decay")},
    **{name: "momentum" for name in ("momentum", "beta1", "b1", "mom")},
    **{name: "init_scale" for name in ("init_scale", "initscale", "scale", "gain", "init_gain")},
}


@dataclasses.dataclass(frozen=True)
class Columns:
    """Which columns of the user's table say what.

    Attributes:
      arm, seed, metric: the columns of each run's arm (initializer), seed, and the metric compared.
      task: the column of each run's task (None: one task, named after the file).
      epoch: the column of each row's epoch (None: one row per run, its final value).
      model: the column of each task's model (None: the file's stem); one model a task.
      higher_is_better: which way the metric is better (None: its name must say it, ``_accuracy``, ``_loss``...).
      factors: ``(column, factor)`` pairs of a hyperparameter grid, ``factor`` one of ``bench.schema.FACTORS``
        (:func:`factor_of` reads them as ``--factor`` gives them).
      validation: the column of the metric on a validation split, on which a grid's cells are chosen (None: the
        grid's arms are compared as they are, untuned).
    """

    arm: str
    seed: str
    metric: str
    task: str | None = None
    epoch: str | None = None
    higher_is_better: bool | None = None
    model: str | None = None
    factors: tuple[tuple[str, str], ...] = ()
    validation: str | None = None


def factor_of(spec: str) -> tuple[str, str]:
    """``(column, factor)`` of a ``--factor`` value: ``COL=FACTOR`` (``lr_used=lr``), or ``COL`` alone when its name
    says which factor it is (``lr``, ``learning_rate``, ``config/lr``, ``wd``, ``beta1``, ``gain``, ...:
    :data:`FACTOR_NAMES`).

    Raises:
      UserError: a factor the analysis does not tune over, or a name that says none.
    """
    column, _, said = spec.partition("=")
    column, said = column.strip(), said.strip()
    if not column:
        raise UserError(f"{option('factor')} {spec!r} names no column; give COL or COL=FACTOR (e.g. lr_used=lr)")
    word = re.split(r"[/.]", (said or column).lower())[-1]
    factor = FACTOR_NAMES.get(re.sub(r"\W+", "_", word).strip("_"))
    if factor is None:
        raise UserError(f"{option('factor')} {spec!r}: the grid's factors are a learning rate, weight decay, momentum "
                        f"or init scale; say which with COL=FACTOR ({', '.join(FACTORS)}). Factors that change the "
                        f"model or the data (width, depth, batch size) are tasks: give them one column with "
                        f"{option('task')}")
    return column, factor

def read_table(path: str | Path, layout: str | None = None) -> pd.DataFrame:
    """The table in ``path``: a CSV, parquet or JSON-lines file (by its suffix), or a TensorBoard log folder
    (:func:`read_tensorboard`, its run folders named as ``layout`` says).

    Raises:
      UserError: a missing or unreadable file, another suffix, or a folder without ``layout``.
    """
    path = Path(path)
    if path.is_dir():
        if layout is None:
            raise UserError(f"{path} is a folder: read as TensorBoard logs, it needs {option('layout')} naming how "
                            "its run folders say each run's arm and seed, e.g. '{arm}/seed{seed}'")
        return read_tensorboard(path, layout)
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: runs are read from a .csv, .parquet or .jsonl file (one row per run or per run "
                        f"and epoch) or a TensorBoard log folder, not {path.suffix or 'a file without a suffix'}")
    if not path.is_file():
        raise UserError(f"{path} does not exist; give the file of your runs")
    try:
        if kind == "csv":
            return pd.read_csv(path)
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_json(path, lines=True)
    except ImportError:
        raise UserError(f"{path}: reading parquet needs pyarrow: pip install pyarrow") from None
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path} cannot be read as {kind}: {first}") from None


def read_tensorboard(folder: str | Path, layout: str) -> pd.DataFrame:
    """The scalars of a TensorBoard log folder as a table: one row per run folder and step, a column per tag
    (``step``, ``test/accuracy``, ...), and a column per field of ``layout``, the run folders' relative path with
    ``{field}`` where a value stands (``{arm}/seed{seed}``: ``he/seed3`` gives arm ``he`` and seed ``3``).
    Read by tbparse (``pip install -e '.[tensorboard]'``).

    Raises:
      UserError: tbparse missing, no scalars, a layout without fields, or a run folder the layout does not match.
    """
    try:
        from tbparse import SummaryReader
    except ImportError:
        raise UserError("reading TensorBoard logs needs tbparse: pip install -e '.[tensorboard]'") from None
    fields = re.findall(r"\{(\w+)\}", layout)
    if not fields:
        raise UserError(f"{option('layout')} {layout!r} names no field; write each varying part as {{name}}, "
                        "e.g. '{arm}/seed{seed}'")
    pattern = re.compile("".join(f"(?P<{part[1:-1]}>[^/]+?)" if re.fullmatch(r"\{\w+\}", part) else re.escape(part)
                                 for part in re.split(r"(\{\w+\})", layout)))
    with warnings.catch_warnings():  # tbparse 0.0.9 uses pandas calls pandas 3.1 deprecates, once per run and tag
        warnings.filterwarnings("ignore", message="The inplace keyword")
        warnings.filterwarnings("ignore", message="Converting a Series or array of length 1 into a scalar")
        scalars = SummaryReader(str(folder), pivot=True, extra_columns={"dir_name"}).scalars
    if scalars.empty:
        raise UserError(f"{folder} holds no TensorBoard scalars; give the folder your runs logged to")
    runs = scalars["dir_name"].astype(str).str.replace("\\", "/")
    matches = runs.map(lambda name: pattern.fullmatch(name))
    unmatched = runs[matches.isna()]
    if len(unmatched):
        raise UserError(f"{folder}: the run folder {unmatched.iloc[0] or '.'!r} does not match {option('layout')} "
                        f"{layout!r}")
    table = scalars.drop(columns="dir_name").reset_index(drop=True)
    for field in fields:
        table[field] = [m.group(field) for m in matches]
    for field in fields:  # seeds and epochs written as digits are numbers
        numeric = pd.to_numeric(table[field], errors="coerce")
        if numeric.notna().all():
            table[field] = numeric
    return table


def metric_name(metric: str, higher_is_better: bool | None, source: str) -> str:
    """The metric's column in the suite's table: its own name where the suffix says which way is better, else
    with ``_score`` or ``_error``.

    Raises:
      UserError: the direction is neither said nor in the name, or contradicts the name.
    """
    metric = re.sub(r"\W+", "_", metric).strip("_") or "metric"  # a TensorBoard tag test/accuracy: test_accuracy
    says = True if metric.endswith(HIGHER) else False if metric.endswith(LOWER) else None
    if says is None and any(word in metric for word in LOWER_WORDS):
        says = False
    if higher_is_better is None:
        if says is None:
            raise UserError(f"{source}: say which way the metric {metric!r} is better: "
                            f"{option('higher_is_better', True)} or {option('higher_is_better', False)}")
        higher_is_better = says
    if says is not None and says != higher_is_better:
        raise UserError(f"{source}: the metric {metric!r} is named as {'higher' if says else 'lower'}-is-better but "
                        f"was said to be {'higher' if higher_is_better else 'lower'}-is-better; rename the column or "
                        "drop the flag")
    if metric.endswith(HIGHER + LOWER):
        return metric
    return f"{metric}_score" if higher_is_better else f"{metric}_error"


def tidy_runs(table: pd.DataFrame, columns: Columns, source: str, nan_diverged: bool = False,
              default_name: str | None = None, shared_seeds: bool = True) -> pd.DataFrame:
    """The user's table as the suite's tidy results (see the module docstring), checked.

    ``shared_seeds``: every arm must have run the same seeds (paired runs, a grid, per-example outcomes); False
    (unpaired runs): each arm its own seeds and count, numbered ``0..n-1`` within the arm.

    ``nan_diverged``: a NaN or infinite metric marks its run diverged from that epoch on (the analysis scores it
    as the worst run, as it scores the suite's diverged runs); otherwise such a row is refused. ``default_name``:
    the task and the model where no column names them (default: the file's stem).

    Raises:
      UserError: naming ``source``, the column and the first offending row (its 1-based number in the file).
    """
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise UserError(f"{source} holds no runs; give a table of one row per run (or per run and epoch)")
    table = table.reset_index(drop=True)  # rows by position (a filtered frame keeps its old labels)
    roles = {"arm": columns.arm, "seed": columns.seed, "metric": columns.metric, "task": columns.task,
             "epoch": columns.epoch, "model": columns.model, "validation": columns.validation,
             **{factor: col for col, factor in columns.factors}}
    named = {role: col for role, col in roles.items() if col is not None}
    given = [factor for _, factor in columns.factors]
    if len(set(given)) < len(given):
        again = next(f for f in given if given.count(f) > 1)
        cols = [col for col, f in columns.factors if f == again]
        raise UserError(f"{source}: the columns {cols[0]!r} and {cols[1]!r} are both the {again} factor; give one")
    for role, col in named.items():
        if col not in table.columns:
            raise UserError(f"{source} has no column {col!r} (the {role}); its columns: "
                            f"{', '.join(map(str, table.columns))}")
    twice = [col for col in dict.fromkeys(named.values()) if list(named.values()).count(col) > 1]
    if twice:
        both = [role for role, col in named.items() if col == twice[0]]
        raise UserError(f"{source}: the column {twice[0]!r} is named as both the {both[0]} and the {both[1]}")
    name = metric_name(columns.metric, columns.higher_is_better, source)
    rows = pd.DataFrame({"row": np.arange(len(table)) + 2 if source.endswith(".csv") else np.arange(len(table)) + 1})
    for role in ("arm", "task", "model"):
        if role in named:
            values = table[named[role]]
            _refuse_where(values.isna() | (values.astype(str).str.strip() == ""), rows, source, named[role],
                          f"has no {role}")
            rows[role] = values.astype(str).str.strip()
    default_name = default_name or Path(source).stem or "runs"
    if "task" not in named:
        rows["task"] = default_name
    if "model" in named:
        models = rows.groupby("task", sort=False)["model"].nunique()
        if (models > 1).any():
            task = models[models > 1].index[0]
            two = list(dict.fromkeys(rows.loc[rows["task"] == task, "model"]))[:2]
            raise UserError(f"{source}: task {task!r} has the models {two[0]!r} and {two[1]!r} in {columns.model}; "
                            "one model a task (give each model its own task)")
    else:
        rows["model"] = default_name
    seeds = table[columns.seed]
    _refuse_where(seeds.isna(), rows, source, columns.seed, "has no seed")
    rows["seed_value"] = seeds.to_numpy()
    rows["epoch"] = _integers(table, columns.epoch, rows, source) if columns.epoch else 0
    rows[name] = _measured(table, columns.metric, rows, source, nan_diverged)
    bad = ~np.isfinite(rows[name].to_numpy())
    if columns.validation:
        validation = _measured(table, columns.validation, rows, source, nan_diverged)
        _refuse_where(~np.isfinite(validation) & ~bad, rows, source, columns.validation,
                      f"is NaN or infinite where {columns.metric} is a number; a run that diverged has both NaN",
                      show=table[columns.validation])
        rows[validation_name(name)] = validation
    rows["initializer"] = rows["arm"]
    factors = [factor for factor in FACTORS if factor in given]
    for factor in factors:
        column = named[factor]
        values = pd.to_numeric(table[column], errors="coerce")
        _refuse_where(~np.isfinite(values.to_numpy(np.float64)), rows, source, column,
                      f"is not a number (a value of the {factor} factor)", show=table[column])
        rows[factor] = values.to_numpy(np.float64)
    if factors:
        rows["arm"] = [arm_name(init, dict(zip(factors, cell)))
                       for init, cell in zip(rows["initializer"], rows[factors].itertuples(index=False))]
        _check_grid(rows, source, columns, factors)
    keys = ["task", "arm", "seed_value", "epoch"]
    dup = rows.duplicated(keys, keep=False)
    if dup.any():
        first = rows[dup].iloc[0]
        later = rows[dup & (rows[keys] == first[keys]).all(axis=1)].iloc[1]
        raise UserError(f"{source}: rows {first['row']} and {later['row']} are the same run "
                        f"({_describe(first, columns)}); keep one row per run" + (" and epoch" if columns.epoch
                                                                                   else ""))
    _check_epochs(rows, source, columns)
    _check_design(rows, source, columns, shared_seeds or bool(factors))
    _check_range(rows, name, columns.metric, source)
    if columns.validation:
        _check_range(rows, validation_name(name), columns.validation, source)
    return _tidy(rows, name, factors)


def validation_name(metric: str) -> str:
    """The validation metric's column beside ``metric``, as ``bench.analysis.grid_cube.selection_metric`` finds
    it: ``test_accuracy`` -> ``val_accuracy``, ``bleu_score`` -> ``val_bleu_score``."""
    return "val_" + metric.removeprefix("test_")


def _measured(table: pd.DataFrame, column: str, rows: pd.DataFrame, source: str, nan_diverged: bool) -> np.ndarray:
    """A metric column as numbers: text that is no number refused, NaN or infinite values refused unless the user
    said they mark diverged runs (``nan_diverged``)."""
    raw = table[column]
    values = pd.to_numeric(raw, errors="coerce")
    _refuse_where(values.isna() & raw.notna() & ~raw.astype(str).str.strip().str.lower().isin(
        ("nan", "inf", "-inf", "infinity", "-infinity", "")), rows, source, column, "is not a number", show=raw)
    values = values.to_numpy(np.float64)
    if not nan_diverged:
        _refuse_where(~np.isfinite(values), rows, source, column,
                      f"is NaN or infinite; if that run diverged, say {option('nan_diverged', True)} (it is then "
                      "scored as the worst run), else remove the run", show=raw)
    return values


def _check_range(rows: pd.DataFrame, name: str, column: str, source: str) -> None:
    """Every finite value within what the metric can be (the analysis bounds its intervals there)."""
    low, high = metric_range(name)
    outside = rows[name].notna() & np.isfinite(rows[name]) & ~rows[name].between(low, high)
    if outside.any():
        row = rows[outside].iloc[0]
        if name.endswith("_accuracy"):
            raise UserError(f"{source}, row {row['row']}: {column} = {row[name]:g} is not an accuracy in "
                            "[0, 1]; give fractions (0.93, not 93)")
        raise UserError(f"{source}, row {row['row']}: {column} = {row[name]:g} is outside what a "
                        f"{name.rsplit('_', 1)[1]} can be; give the column another name and say which way is "
                        f"better ({option('higher_is_better', False)} or {option('higher_is_better', True)})")


def _check_grid(rows: pd.DataFrame, source: str, columns: Columns, factors: list[str]) -> None:
    """Every initializer at every cell of its task's grid (the cells any initializer ran)."""
    for task, group in rows.groupby("task", sort=False):
        runs = list(group[factors].itertuples(index=False, name=None))
        cells, have = list(dict.fromkeys(runs)), set(zip(group["initializer"], runs))
        for init in dict.fromkeys(group["initializer"]):
            lacking = next((cell for cell in cells if (init, cell) not in have), None)
            if lacking is not None:
                where = f" on task {task!r}" if columns.task else ""
                at = " ".join(f"{f}={format_value(v)}" for f, v in zip(factors, lacking))
                raise UserError(f"{source}: arm {init!r}{where} has no run at {at}, which other arms ran; every "
                                "arm needs every cell of the grid")


def _refuse_where(mask: pd.Series, rows: pd.DataFrame, source: str, column: str, problem: str, show=None) -> None:
    mask = np.asarray(mask, bool)
    if mask.any():
        i = int(np.flatnonzero(mask)[0])
        value = "" if show is None else f" ({_plain(show.iloc[i])!r})"
        raise UserError(f"{source}, row {rows['row'].iloc[i]}: {column}{value} {problem}")


def _integers(table: pd.DataFrame, column: str, rows: pd.DataFrame, source: str) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce")
    whole = values.notna() & (values == values.round()) & (values >= 0)
    _refuse_where(~whole, rows, source, column, "is not an epoch (a whole number >= 0)", show=table[column])
    return values.to_numpy().astype(int)


def _describe(row, columns: Columns) -> str:
    parts = ([f"task {row['task']!r}"] if columns.task else []) + [f"arm {row['arm']!r}",
                                                                    f"seed {_plain(row['seed_value'])!r}"]
    return ", ".join(parts + ([f"epoch {row['epoch']}"] if columns.epoch else []))


def _check_epochs(rows: pd.DataFrame, source: str, columns: Columns) -> None:
    """Every run has the same epochs, consecutive."""
    epochs = sorted(rows["epoch"].unique())
    if epochs != list(range(epochs[0], epochs[-1] + 1)):
        gap = next(e for e in range(epochs[0], epochs[-1] + 1) if e not in epochs)
        raise UserError(f"{source}: no run has epoch {gap} of {columns.epoch} ({epochs[0]}..{epochs[-1]}); give "
                        "consecutive epochs")
    per_run = rows.groupby(["task", "arm", "seed_value"], sort=False)["epoch"].agg(frozenset)
    whole = frozenset(epochs)
    short = per_run[per_run != whole]
    if len(short):
        (task, arm, seed), got = short.index[0], short.iloc[0]
        missing = sorted(whole - got)
        where = f", task {task!r}" if columns.task else ""
        raise UserError(f"{source}: the run of arm {arm!r}, seed {_plain(seed)!r}{where}"
                        + f" lacks epoch {missing[0]} (the runs have epochs {epochs[0]}..{epochs[-1]}); give every "
                        f"run every epoch, its metric NaN from where it diverged (with {option('nan_diverged', True)})")


def _check_design(rows: pd.DataFrame, source: str, columns: Columns, shared_seeds: bool = True) -> None:
    """Two arms or more, each with 2 seeds or more on every task (with ``shared_seeds``, the same seeds), and the
    same arms on every task."""
    runs = rows.drop_duplicates(["task", "arm", "seed_value"])
    arms = list(dict.fromkeys(runs["arm"]))
    if len(arms) < 2:
        raise UserError(f"{source}: {columns.arm} names one arm ({arms[0]!r}); a comparison needs two or more")
    seeds = sorted(runs["seed_value"].unique(), key=_sort_key)
    for (task, arm), group in runs.groupby(["task", "arm"], sort=False):
        if len(group) < 2:
            raise UserError(f"{source}: arm {arm!r}" + (f" on task {task!r}" if columns.task else "")
                            + f" has {len(group)} run; every arm needs 2 seeds or more for an interval")
        missing = [s for s in seeds if s not in set(group["seed_value"])] if shared_seeds else []
        if missing:
            raise UserError(f"{source}: arm {arm!r}" + (f" on task {task!r}" if columns.task else "")
                            + f" has no run of seed {_plain(missing[0])!r}, which other arms ran; paired runs, a "
                            "grid and per-example outcomes need every arm to run the same seeds (a failed run as a "
                            f"row with a NaN metric, with {option('nan_diverged', True)}; or leave out "
                            f"{option('paired', True)})")
    for task, group in runs.groupby("task", sort=False):
        absent = [arm for arm in arms if arm not in set(group["arm"])]
        if absent:
            raise UserError(f"{source}: task {task!r} has no run of arm {absent[0]!r}; every task needs every arm")


def _sort_key(value):
    return (0, float(value), "") if isinstance(value, int | float | np.integer | np.floating) else (1, 0.0, str(value))


def _tidy(rows: pd.DataFrame, name: str, factors: list[str]) -> pd.DataFrame:
    """The checked rows as the suite's results: arms initializer-major in the table's order, a grid's cells in
    ascending order within each, seeds numbered in their sorted order; a run diverged from its first NaN on."""
    seeds = sorted(rows["seed_value"].unique(), key=_sort_key)
    initializers = list(dict.fromkeys(rows["initializer"]))
    first_rows = rows.drop_duplicates("arm")
    arms = sorted(first_rows["arm"], key=dict(zip(first_rows["arm"], zip(
        first_rows["initializer"].map(initializers.index), *(first_rows[f] for f in factors)))).get)
    tasks = list(dict.fromkeys(rows["task"]))
    measured = [c for c in (name, validation_name(name)) if c in rows]
    out = pd.DataFrame({
        "dataset": rows["task"], "model": rows["model"], "arm": rows["arm"], "initializer": rows["initializer"],
        **{f: rows[f] for f in factors},
        "seed": _numbered(rows), "epoch": rows["epoch"].astype(int),
        **{c: rows[c] for c in measured}})
    out = out.sort_values(["dataset", "arm", "seed", "epoch"], key=lambda col: col.map(
        {t: i for i, t in enumerate(tasks)} if col.name == "dataset" else {a: i for i, a in enumerate(arms)})
        if col.name in ("dataset", "arm") else col, kind="stable").reset_index(drop=True)
    bad = ~np.isfinite(out[measured].to_numpy(np.float64)).all(axis=1)
    out["diverged"] = pd.Series(bad).groupby([out["dataset"], out["arm"], out["seed"]]).cummax().to_numpy()
    first = out["epoch"].where(out["diverged"]).groupby([out["dataset"], out["arm"], out["seed"]]).transform("min")
    out["diverged_epoch"] = first.astype("Int64")
    out.attrs["seed_values"] = [_plain(s) for s in seeds]
    return out


def _numbered(rows: pd.DataFrame) -> np.ndarray:
    """Each row's seed as its rank among its arm's seeds on its task, from 0 in their sorted order: with shared
    seeds the same number for the same seed in every arm (paired), else each arm's runs ``0..n-1``."""
    out = np.empty(len(rows), int)
    for _, group in rows.groupby(["task", "arm"], sort=False):
        order = {value: i for i, value in enumerate(sorted(group["seed_value"].unique(), key=_sort_key))}
        out[group.index.to_numpy()] = group["seed_value"].map(order).to_numpy()
    return out


def _plain(value):
    """A value of the user's table as Python (and JSON) writes it: ``100``, not ``np.int64(100)``."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return int(value) if float(value).is_integer() else float(value)
    return value if isinstance(value, int | str) else str(value)


def record_of(results: pd.DataFrame, source: str, columns: Columns, paired: bool, command: str,
              margin: float | None, name: str | None = None, reference: dict | None = None) -> RunRecord:
    """The run record of external runs: what they are and where they came from (no training); ``name``: the
    report's (default: the file's stem); ``reference``: a grid's recipe values, where its ranking is checked."""
    arms = list(dict.fromkeys(results["arm"]))
    initializers = list(dict.fromkeys(results["initializer"]))
    factors = [f for f in FACTORS if f in results]
    grid = {f: sorted(float(v) for v in results[f].unique()) for f in factors}
    tasks = list(dict.fromkeys(results["dataset"]))
    first, last = int(results["epoch"].min()), int(results["epoch"].max())
    runs = results.drop_duplicates(["dataset", "arm", "seed"])
    counts = runs.groupby("arm", sort=False).size() // len(tasks)  # each arm's runs on a task
    seeds = int(counts.max())
    per_task = {t: int((runs["dataset"] == t).sum()) for t in tasks}
    design = (f"{len(initializers)} arms x {len(arms) // len(initializers)} grid cells ("
              + "; ".join(f"{f.replace('_', ' ')} {', '.join(map(format_value, v))}" for f, v in grid.items())
              + ")" if factors else f"{len(arms)} arms")
    experiment = {
        "name": name or Path(source).stem or "runs",
        "description": (f"Runs trained elsewhere, read from {Path(source).name}: {design} x "
                        + (f"{seeds} seeds" if counts.nunique() == 1 else f"{counts.min()}-{seeds} runs")
                        + (f" x {len(tasks)} tasks" if len(tasks) > 1 else "")
                        + (f", epochs {first}..{last}" if last > first else "") + "."),
        "tasks": [{"name": t, "dataset": t} for t in tasks],
        "initializers": initializers,
        "seeds": seeds,
        "train": {"epochs": last},
        **({"grid": grid} if factors else {}),
        "source": {"file": str(source), "arm": columns.arm, "seed": columns.seed, "metric": columns.metric,
                   "task": columns.task, "model": columns.model, "epoch": columns.epoch, "paired": paired,
                   "seeds": results.attrs.get("seed_values", list(range(seeds))), "first_epoch": first,
                   **({"runs_per_arm": {a: int(n) for a, n in counts.items()}} if counts.nunique() > 1 else {}),
                   **({"factors": {col: f for col, f in columns.factors}, "validation": columns.validation,
                       "reference": dict(reference or {})} if factors else {})},
    }
    model = results.groupby("dataset", sort=False)["model"].first()
    task_records = {t: TaskRecord(model=str(model[t]), runs=per_task[t], init_s=0.0, compile_s=0.0, train_s=0.0,
                                  data="the runs' own (trained elsewhere)") for t in tasks}
    statistics = {"margin": margin} if margin is not None else {}
    cells = results.drop_duplicates("arm").set_index("arm")
    return RunRecord(experiment=experiment, initializers=arms, tasks=task_records, runs=sum(per_task.values()),
                     compile_s=0.0, init_s=0.0, environment=environment(), command=command, wall_s=0.0,
                     statistics=statistics,
                     arms={arm: {"initializer": str(cells.at[arm, "initializer"]),
                                 **{f: float(cells.at[arm, f]) for f in factors}} for arm in arms} if factors
                     else None)


OUTCOME_COLUMNS = ("example", "correct")  # besides the runs' arm, seed (and task) columns; "loss" optional


def outcomes_of(table: pd.DataFrame, results: pd.DataFrame, columns: Columns, source: str) -> dict[str, dict]:
    """Per-example test outcomes of every run (``bench.analysis.outcomes``' form: per task, ``names``, ``seeds``,
    ``correct`` and ``loss`` of shape `(arms, seeds, examples)`), from a long table of one row per (run, example):
    the runs' own arm, seed (and task) columns, ``example``, ``correct`` (0/1, or a fraction) and optionally
    ``loss``. With them the intervals of the test accuracy count the test set's sampling error.

    Raises:
      UserError: a missing column, a run without outcomes or outcomes of no run, runs on different examples, a
        duplicate, or outcomes whose mean is not the run's final accuracy in the runs' table.
    """
    if "test_accuracy" not in results.columns:
        raise UserError(f"{source}: per-example outcomes are of the test accuracy; name the runs' metric column "
                        "test_accuracy (a fraction per run)")
    table = table.reset_index(drop=True)
    keys = [c for c in (columns.task, columns.arm, *(col for col, _ in columns.factors), columns.seed)
            if c is not None]
    for col in [*keys, *OUTCOME_COLUMNS]:
        if col not in table.columns:
            raise UserError(f"{source} has no column {col!r}; per-example outcomes need the runs' "
                            f"{', '.join(keys)} and {', '.join(OUTCOME_COLUMNS)} (loss optional)")
    correct = pd.to_numeric(table["correct"], errors="coerce")
    bad = correct.isna() | ~correct.between(0, 1)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(f"{source}, row {i + 2 if source.endswith('.csv') else i + 1}: correct "
                        f"({_plain(table['correct'].iloc[i])!r}) is not 0, 1 or a fraction between")
    frame = pd.DataFrame({"task": table[columns.task].astype(str).str.strip() if columns.task
                          else results["dataset"].iloc[0], "arm": table[columns.arm].astype(str).str.strip(),
                          "seed_value": table[columns.seed].to_numpy(), "example": table["example"].to_numpy(),
                          "correct": correct.to_numpy(np.float64),
                          "loss": pd.to_numeric(table["loss"], errors="coerce").to_numpy(np.float64)
                          if "loss" in table.columns else np.nan})
    factors = [f for f in FACTORS if f in results]
    if factors:  # a grid's arm is the initializer at a cell, named as the runs' are
        column = {f: col for col, f in columns.factors}
        cells = zip(*(pd.to_numeric(table[column[f]], errors="coerce").to_numpy(np.float64) for f in factors))
        frame["arm"] = [arm_name(init, dict(zip(factors, cell))) for init, cell in zip(frame["arm"], cells)]
    if frame.duplicated(["task", "arm", "seed_value", "example"]).any():
        row = frame[frame.duplicated(["task", "arm", "seed_value", "example"])].iloc[0]
        raise UserError(f"{source}: example {_plain(row['example'])!r} of arm {row['arm']!r}, seed "
                        f"{_plain(row['seed_value'])!r} is there twice")
    seeds = results.attrs.get("seed_values") or sorted(frame["seed_value"].unique(), key=_sort_key)
    number = {value: i for i, value in enumerate(seeds)}
    final = results[results["epoch"] == results["epoch"].max()]
    out = {}
    for task, rows in final.groupby("dataset", sort=False):
        arms = list(dict.fromkeys(rows["arm"]))
        mine = frame[frame["task"] == task]
        examples = sorted(mine["example"].unique(), key=_sort_key)
        grid = mine.assign(seed=mine["seed_value"].map(lambda v: number.get(_plain(v), number.get(v))))
        if grid["seed"].isna().any() or not set(grid["arm"]) <= set(arms):
            row = grid[grid["seed"].isna() | ~grid["arm"].isin(arms)].iloc[0]
            raise UserError(f"{source}: outcomes of arm {row['arm']!r}, seed {_plain(row['seed_value'])!r}, which "
                            "the runs do not have")
        cube = grid.pivot_table(index=["arm", "seed"], columns="example", values=["correct", "loss"],
                                aggfunc="first", dropna=False)
        shape = (len(arms), len(seeds), len(examples))
        index = pd.MultiIndex.from_product([arms, range(len(seeds))], names=["arm", "seed"])
        right = cube["correct"].reindex(index=index, columns=examples)
        if right.isna().any().any():
            (arm, seed), example = right.index[right.isna().any(axis=1)][0], None
            example = right.columns[right.loc[(arm, seed)].isna()][0]
            raise UserError(f"{source}: arm {arm!r}, seed {seeds[seed]!r}" + (f", task {task!r}" if columns.task
                                                                              else "")
                            + f" has no outcome of example {_plain(example)!r}; every run needs every example")
        item = {"names": arms, "seeds": list(range(len(seeds))), "correct": right.to_numpy().reshape(shape),
                "loss": cube["loss"].reindex(index=index, columns=examples).to_numpy().reshape(shape)}
        accuracy = item["correct"].mean(-1)
        stated = rows.set_index(["arm", "seed"])["test_accuracy"]
        for i, arm in enumerate(arms):
            for j in range(len(seeds)):
                if not np.isclose(stated[(arm, j)], accuracy[i, j], rtol=0, atol=1e-6):
                    raise UserError(f"{source}: the outcomes of arm {arm!r}, seed {seeds[j]!r} give an accuracy of "
                                    f"{accuracy[i, j]:.6g}, the runs' table {stated[(arm, j)]:.6g}; give the outcomes "
                                    "of the runs whose final accuracy the table holds")
        out[task] = as_stored(item)  # as outcomes.npz holds them: the report equals its re-rendering
    return out


def read_outcome_arrays(path: str | Path, columns: Columns) -> pd.DataFrame:
    """Per-example outcomes from an ``.npz`` of arrays, as the long table :func:`outcomes_of` reads (its columns
    named as ``columns`` names the runs'): ``correct`` `(arms, seeds, examples)` (0/1 or fractions), ``arms``
    `(arms,)` and ``seeds`` `(seeds,)` as the runs' table names them, optionally ``loss`` of ``correct``'s shape;
    for several tasks (test sets of their own sizes) ``TASK/correct`` and ``TASK/loss`` for each task instead.

    Raises:
      UserError: an unreadable file, a missing array, or shapes that do not fit, naming the file.
    """
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError) as error:
        raise UserError(f"{path} cannot be read as an .npz of arrays: {str(error).splitlines()[0]}") from None
    tasks = {name.rpartition("/")[0]: name for name in arrays if name.endswith("/correct")}
    if "correct" in arrays:
        tasks[None] = "correct"
    missing = [name for name in ("arms", "seeds") if name not in arrays] + ([] if tasks else ["correct"])
    if missing:
        raise UserError(f"{path} has no array {missing[0]!r}; give correct (arms, seeds, examples), arms, seeds and "
                        "optionally loss (several tasks: TASK/correct and TASK/loss for each)")
    if len(tasks) > 1 and None in tasks:
        raise UserError(f"{path} has both correct and TASK/correct arrays; give one task's correct or each task's")
    if None not in tasks and columns.task is None:
        raise UserError(f"{path} holds the outcomes of tasks {', '.join(map(repr, tasks))}; name the runs' task "
                        f"column with {option('task')}")
    arms, seeds = arrays["arms"], arrays["seeds"]
    frames = []
    for task, key in tasks.items():
        correct = arrays[key]
        loss_key = key.removesuffix("correct") + "loss"
        if correct.shape[:2] != (len(arms), len(seeds)) or correct.ndim != 3:
            raise UserError(f"{path}: {key} has shape {correct.shape}; give (arms, seeds, examples) = ({len(arms)}, "
                            f"{len(seeds)}, examples) as arms and seeds say")
        if loss_key in arrays and arrays[loss_key].shape != correct.shape:
            raise UserError(f"{path}: {loss_key} has shape {arrays[loss_key].shape}, {key} {correct.shape}; give "
                            "one loss per outcome")
        a, r, e = np.indices(correct.shape).reshape(3, -1)
        frame = pd.DataFrame({columns.arm: arms[a].astype(str) if arms.dtype.kind in "SU" else arms[a],
                              columns.seed: seeds[r], "example": e, "correct": correct.reshape(-1)})
        if task is not None:
            frame.insert(0, columns.task, task)
        if loss_key in arrays:
            frame["loss"] = arrays[loss_key].reshape(-1)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def analyze(runs: pd.DataFrame | str | Path, *, arm: str, seed: str, metric: str, task: str | None = None,
            epoch: str | None = None, model: str | None = None, higher_is_better: bool | None = None,
            paired: bool = False,
            nan_diverged: bool = False, margin: float | None = None, out: str | Path | None = None,
            overwrite: bool = False, formats=None, command: str = "", name: str | None = None,
            layout: str | None = None, outcomes: pd.DataFrame | str | Path | None = None, factors=(),
            validation: str | None = None, reference: dict | None = None, speed_target: str | None = None):
    """The suite's report of runs trained elsewhere: ``bench.analyze(table_or_file, arm=..., seed=..., metric=...)``.

    Args:
      runs: a data frame, or a CSV, parquet or JSON-lines file, of one row per run (or per run and epoch).
      arm, seed, metric, task, epoch, model, higher_is_better: the columns, as :class:`Columns` names them.
      paired: the seeds are common random numbers of every arm (the same data order and stream for seed i of every
        arm), so runs of one seed are compared pairwise; False: Welch differences.
      nan_diverged: a NaN or infinite metric is a diverged run (else refused).
      margin: the equivalence margin in the metric's units (needed for a ``_score`` or ``_error`` metric; default
        0.5 pp for an accuracy, 0.01 for a loss).
      out: the folder to write the report to (None: computed, not written); ``overwrite``: over a report there.
      outcomes: per-example test outcomes of every run (:func:`outcomes_of`: a table or its file, or an ``.npz`` of
        arrays, :func:`read_outcome_arrays`), so that the intervals count the test set's sampling error; None:
        they are conditional on the test set.
      layout: for a TensorBoard log folder, how its run folders name each run (:func:`read_tensorboard`).
      factors: a hyperparameter grid's columns, each ``"COL"`` or ``"COL=FACTOR"`` (:func:`factor_of`): each
        (arm, cell) is an arm, and with ``validation`` each arm is tuned on it (``bench.analysis.tuning``).
      validation: the column of the metric on a validation split (a grid's cells are chosen on it, reported on
        ``metric``).
      reference: the recipe's value of the grid's factors (``{"lr": 1e-3}``), where the report checks whether the
        ranking holds once every arm is tuned (None: not checked).
      speed_target: the time-to-target level of the speed verdicts (``bench.analysis.speed.parse_target``: ``0.9``,
        ``90%`` of the best mean final, the default 95%, or ``test_loss=0.3``).
      formats: the report's formats (default all); name: the report's title (default: the file's stem, "runs" for
        a data frame).

    Returns:
      ``bench.Outcome``: ``.results``, ``.summary``, ``.analysis``, ``.record``, ``.files``.

    Raises:
      UserError: a bad table (one line naming the file, column and row), a missing margin, or ``out`` holding a
        report; nothing is written then.
    """
    from bench.experiments.runner import Outcome, publish, refuse_overwrite
    from bench.reporting import FORMATS
    from bench.reporting.analysed import analyse, check_options, settings_of
    from bench.store import exclusive

    source = str(runs) if not isinstance(runs, pd.DataFrame) else "the table"
    table = read_table(runs, layout) if not isinstance(runs, pd.DataFrame) else runs
    columns = Columns(arm, seed, metric, task, epoch, higher_is_better, model,
                      tuple(factor_of(spec) if isinstance(spec, str) else tuple(spec) for spec in factors), validation)
    if reference and not columns.factors:
        raise UserError(f"{option('reference')} is a grid's recipe value; give the grid's columns with "
                        f"{option('factor')}")
    label = name or (Path(source).stem if not isinstance(runs, pd.DataFrame) else "runs")
    results = tidy_runs(table, columns, source, nan_diverged, default_name=label,
                        shared_seeds=paired or outcomes is not None)
    name = metric_name(metric, higher_is_better, source)
    if margin is None and name.endswith(("_score", "_error")):
        raise UserError(f"{source}: give the equivalence margin of {metric!r} in its own units "
                        f"({option('margin')}: the smallest difference that matters), for the 'equivalent' verdicts")
    record = record_of(results, source, columns, paired, command or "bench.analyze(...)", margin, label,
                       reference_of(reference, results))
    if speed_target is not None:
        speed.parse_target(speed_target, option("speed_target"))
        record = record.replace(statistics={**record.statistics, "speed_target": speed_target})
    test_outcomes = {}
    if outcomes is not None:
        outcome_source = str(outcomes) if not isinstance(outcomes, pd.DataFrame) else "the outcomes table"
        outcome_table = outcomes if isinstance(outcomes, pd.DataFrame) else (
            read_outcome_arrays(outcomes, columns) if str(outcomes).lower().endswith(".npz") else read_table(outcomes))
        test_outcomes = outcomes_of(outcome_table, results, columns, outcome_source)
    options = dict(metric=name, paired=paired, margin=margin)
    check_options(results, name, None, settings_of(record, margin), paired)
    if out is None:
        analysis = analyse(results, name, None, paired, settings_of(record, margin), test_outcomes or None,
                           record.reference())
        return Outcome(results, analysis, record, [], test_outcomes)
    with exclusive(out):
        refuse_overwrite(out, overwrite)
        analysis, files = publish(out, results, record, test_outcomes, runs_changed=True,
                                  formats=list(formats or FORMATS), **options)
    return Outcome(results, analysis, record, files, test_outcomes)


def reference_of(reference: dict | None, results: pd.DataFrame) -> dict[str, float]:
    """``reference`` (factor or its column's name -> value) as the grid's factors' values, each one of the grid's.

    Raises:
      UserError: a factor the grid does not vary, or a value not on the grid.
    """
    out = {}
    for key, value in (reference or {}).items():
        factor = factor_of(str(key))[1]
        if factor not in results:
            raise UserError(f"{option('reference')} {key}={value}: the grid has no {factor} factor; give a value "
                            f"of one of its factors ({', '.join(f for f in FACTORS if f in results)})")
        grid = np.unique(results[factor].to_numpy(np.float64))
        try:
            at = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{option('reference')} {key}={value!r} is not a number") from None
        if not np.isclose(grid, at, rtol=1e-9, atol=0).any():
            raise UserError(f"{option('reference')} {key}={value}: not a value of the grid's {factor} "
                            f"({', '.join(map(format_value, grid))}); give the recipe's value, which the grid holds")
        out[factor] = float(grid[np.isclose(grid, at, rtol=1e-9, atol=0)][0])
    return out


def analyze_scores(scores: dict, *, higher_is_better: bool = True, tasks=None, paired: bool = False,
                   margin: float | None = None, metric: str = "score", out: str | Path | None = None, **options):
    """rliable's input, the suite's report: ``scores`` maps each arm to an array `(runs, tasks)` (or `(runs,)`) of
    final scores; ``tasks`` names the columns (default ``task0``, ...). See :func:`analyze` for the rest.

    Raises:
      UserError: an arm whose array is not 1-D or 2-D, or whose task count differs from the others'.
    """
    frames = []
    widths = set()
    for name, values in scores.items():
        values = np.asarray(values, np.float64)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise UserError(f"scores of arm {name!r} have shape {values.shape}; give (runs, tasks) or (runs,)")
        widths.add(values.shape[1])
        names = list(tasks) if tasks is not None else [f"task{j}" for j in range(values.shape[1])]
        if len(names) != values.shape[1]:
            raise UserError(f"scores of arm {name!r} have {values.shape[1]} tasks, tasks names {len(names)}")
        runs, cols = np.meshgrid(np.arange(values.shape[0]), np.arange(values.shape[1]), indexing="ij")
        frames.append(pd.DataFrame({"arm": name, "seed": runs.ravel(), "task": np.asarray(names)[cols.ravel()],
                                    metric: values.ravel()}))
    if len(widths) > 1:
        raise UserError(f"the arms' scores have different task counts ({sorted(widths)}); give every arm every task")
    if not frames:
        raise UserError("no scores given; give {arm: array of shape (runs, tasks)}")
    return analyze(pd.concat(frames, ignore_index=True), arm="arm", seed="seed", metric=metric, task="task",
                   higher_is_better=higher_is_better, paired=paired, margin=margin, out=out, **options)
