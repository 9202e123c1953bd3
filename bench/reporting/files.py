"""The report's files read, checked and written: ``results.csv`` (+ ``results.parquet``) and ``run.json``.

Every file is verified before it is trusted (its checksum, its format, the runs it must hold) and written
atomically, so a report is rendered from exactly what a run wrote or not at all.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import UserError
from bench.reporting.record import FORMAT_VERSION, RunRecord
from bench.store import read_json_checked, write_atomic, write_json_verified
from bench.training.results import evaluation_epochs


def write_results(out_dir: Path, results: pd.DataFrame, record: RunRecord) -> tuple[RunRecord, list[Path]]:
    """Writes ``results.csv`` (floats in full precision, so a re-rendered report is identical) and, where pyarrow
    is installed, ``results.parquet``; returns the record stamped with this format and the table's checksum (for
    :func:`write_record`) and the files written."""
    table = results.to_csv(index=False)
    record = record.replace(format=FORMAT_VERSION, results_sha256=hashlib.sha256(table.encode()).hexdigest())
    return record, [write_atomic(out_dir / "results.csv", table), *write_parquet(out_dir, results)]


def write_record(out_dir: Path, record: RunRecord) -> Path:
    """Writes ``run.json`` with its checksum, atomically."""
    return write_json_verified(out_dir / "run.json", record.to_json())


def write_parquet(out_dir: Path, results: pd.DataFrame) -> list[Path]:
    """``results.parquet`` beside ``results.csv`` where pyarrow is installed (none without)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return []
    import io

    buffer = io.BytesIO()
    results.to_parquet(buffer, index=False)
    return [write_atomic(out_dir / "results.parquet", buffer.getvalue())]


def read_floats_exactly(csv: Path, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (read from ``csv``) with its float columns re-parsed by Python's correctly rounded ``float``.

    ``results.csv`` holds each float's shortest round-trip repr, but pandas' own parser
    (2.x's default ``high``) reads some of them 1 ulp off; a re-rendered interval then
    depends on the pandas version. Parsing the text with ``float`` gives back exactly the
    floats that were written, whatever the pandas version.
    """
    floats = list(table.select_dtypes("float").columns)
    if not floats:
        return table
    text = pd.read_csv(csv, dtype=str, usecols=floats, keep_default_na=False)
    exact = {c: np.array([float(v) if v else np.nan for v in text[c]]) for c in floats}
    return table.assign(**exact)


def read_record(path: str | Path) -> RunRecord:
    """The run record ``run.json``, checked before it is trusted: its own checksum (format 2 on; files of format 1,
    written before, have none), a format this version reads, and the checksum of ``results.csv`` it must carry.

    Raises:
      UserError: one line naming the file: damaged, edited, of a newer version, or without a checksum.
    """
    path = Path(path)
    remedy = "rerun the experiment (finished chunks are reused) or restore the file"
    record, verified = read_json_checked(path, remedy)
    version = record.get("format", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(
            f"{path} has results format {version!r}; this initjax reads format <= {FORMAT_VERSION}: upgrade initjax"
        )
    if version >= 2 and not verified:  # format 1 (older versions) carried none
        raise UserError(f"{path} has no checksum: damaged or edited; {remedy}")
    if not isinstance(record.get("results_sha256"), str):
        raise UserError(f"{path} lacks the checksum of results.csv (results_sha256): damaged or edited; {remedy}")
    return RunRecord.from_json(record, str(path))


def load(run_dir: str | Path) -> tuple[pd.DataFrame, RunRecord]:
    """Reads ``results.csv`` and ``run.json`` of a finished run.

    Raises:
      UserError: a file is missing or unreadable, naming it.
    """
    run_dir = Path(run_dir)
    csv, json_file = run_dir / "results.csv", run_dir / "run.json"
    for path in (csv, json_file):
        if not path.is_file():
            raise UserError(f"{path} not found; give the folder of a finished `python -m bench run`")
    record = read_record(json_file)
    try:
        results = read_floats_exactly(csv, pd.read_csv(csv))
    except (ValueError, OSError) as error:
        raise UserError(f"{csv} is damaged ({type(error).__name__}); rerun the experiment") from None
    if "arm" not in results and "initializer" in results:  # written before arms had their own column
        results.insert(results.columns.get_loc("initializer"), "arm", results["initializer"])
    missing = {"dataset", "model", "arm", "seed", "epoch", "diverged"} - set(results.columns)
    if missing:
        raise UserError(f"{csv} lacks the columns {sorted(missing)}; it is not an initjax results table")
    check_against_run(results, record, csv)
    if record.results_sha256 != hashlib.sha256(csv.read_bytes()).hexdigest():
        raise UserError(f"{csv} was changed after the run wrote it (its checksum in run.json differs); "
                        "rerun the experiment (finished chunks are reused) or restore the file")
    results["diverged"] = results["diverged"].astype(bool)
    if "diverged_epoch" in results:  # integers with gaps read back as floats; keep them integers
        integers = pd.api.types.is_integer_dtype(results["epoch"])
        results["diverged_epoch"] = results["diverged_epoch"].astype("Int64" if integers else "Float64")
    return results, record


def _row(keys, values) -> str:
    """``dataset=digits, seed=4, ...`` with numpy scalars as plain numbers."""
    return ", ".join(f"{k}={v.item() if hasattr(v, 'item') else v}" for k, v in zip(keys, values))


def check_against_run(results: pd.DataFrame, record: RunRecord, csv: Path) -> None:
    """Checks that ``results`` holds exactly the runs ``run.json`` describes: tasks, initializers, seeds, epochs.

    Every (task, initializer, seed[, data order]) must have one row per epoch ``0..E``
    and nothing else, so a truncated table (a final epoch missing) or an edited name
    (a phantom initializer with one run) is refused rather than reported.

    Raises:
      UserError: naming the first row that is missing or should not be there.
    """
    remedy = "rerun the experiment (finished chunks are reused) or restore the file"
    try:
        experiment = record.experiment
        names, tasks = list(record.initializers), list(record.tasks)
        seeds, orders = int(experiment["seeds"]), int(experiment.get("data_seeds", 1))
        epochs = int(experiment["train"]["epochs"])
        evals = int(experiment["train"].get("evals_per_epoch", 1))
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{csv.with_name('run.json')} lacks the experiment's tasks, initializers, seeds or epochs; "
                        f"{remedy}") from None
    for column, known, what in (("dataset", tasks, "task"), ("arm", names, "arm")):
        extra = sorted(set(results[column].astype(str)) - set(known))
        if extra:
            raise UserError(f"{csv} has the {what} {extra[0]!r}, which run.json does not list ({', '.join(known)}); "
                            f"{remedy}")
    keys = ["dataset", "arm", "seed"] + (["data_seed"] if orders > 1 else []) + ["epoch"]
    first = record.first_epoch()
    levels = [tasks, names, range(seeds)] + ([range(orders)] if orders > 1 else []) + [
        evaluation_epochs(epochs, evals)[first * evals:]]
    expected = pd.MultiIndex.from_product(levels, names=keys)
    try:
        got = pd.MultiIndex.from_frame(results[keys].astype({k: int for k in keys[2:-1]} | {
            "epoch": int if evals == 1 else float}))
    except (KeyError, ValueError, TypeError):
        raise UserError(f"{csv} lacks or damages the columns {', '.join(keys)}; {remedy}") from None
    if got.has_duplicates:
        raise UserError(f"{csv} has the row {_row(keys, got[got.duplicated()][0])} twice; {remedy}")
    missing, extra = expected.difference(got), got.difference(expected)
    if len(missing) or len(extra):
        row, problem = (missing[0], "lacks") if len(missing) else (extra[0], "has an unexpected")
        raise UserError(f"{csv} {problem} row {_row(keys, row)} ({len(got)} rows; run.json describes "
                        f"{len(expected)}); {remedy}")

