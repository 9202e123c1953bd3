"""Running an experiment end to end: validate, train every task, summarize, write.

``bench.run(...)`` is the notebook entry point; ``python -m bench run`` calls the
same :func:`run_experiment`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import pandas as pd

import initjax
from bench import models
from bench.analysis import outcomes, speed, stats
from bench.data import limits
from bench.errors import Interrupted, UserError, option
from bench.experiments import presets, sharded
from bench.experiments.spec import Experiment
from bench.experiments.tasks import split_runs, task_data, task_key, task_model, task_record
from bench.models import losses
from bench.reporting import FORMATS, check_formats, image_formats, report
from bench.reporting.analysed import Analysis, analyse, ranked_metric
from bench.reporting.files import load
from bench.reporting.record import RunRecord, environment
from bench.store import exclusive, staged, write_atomic
from bench.training import devices, memory, resume
from bench.training.objective import loss_spec
from bench.training.runs import RunIndex
from bench.training.train import check_plan, train_task


@dataclasses.dataclass
class Outcome:
    """What a run produced.

    Attributes:
      results: tidy table, one row per (dataset, model, initializer, seed, epoch).
      analysis: summary statistics, comparisons, ties, curves and power advice.
      record: experiment, environment and timings (``run.json``).
      files: paths written (empty when nothing was written).
      test_outcomes: per task, every run's per-example test loss and correctness
        (``bench.analysis.outcomes``), which the intervals of test metrics count.
    """

    results: pd.DataFrame
    analysis: Analysis
    record: RunRecord
    files: list[Path]
    test_outcomes: dict = dataclasses.field(default_factory=dict)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per (task, arm) with the arm's factors: runs, diverged, mean of the ranked metric with its
        95% interval, spread, IQM, and the verdict with the simultaneous interval of the difference to the best
        of the others."""
        keys = ["dataset", "model", "arm"]
        rows = self.analysis.summary[self.analysis.summary["metric"] == self.analysis.metric]
        rows = rows[[*keys, "metric", "runs", "diverged", "mean", "mean_low", "mean_high", "std", "iqm"]]
        verdicts = self.analysis.comparisons[[*keys, "verdict", "to_best_low", "to_best_high", "p", "d_z",
                                              "win_rate"]]
        return _with_factors(rows.merge(verdicts, on=keys, how="left").reset_index(drop=True),
                             self.record.arms_of())

    def report(self, out: str | Path, formats: Sequence[str] = FORMATS, overwrite: bool = False) -> list[Path]:
        """Writes the full report (markdown, LaTeX, CSV, figures) to ``out``; returns the files written.

        Raises:
          UserError: ``out`` already holds a report and ``overwrite`` is False.
        """
        with exclusive(out):
            refuse_overwrite(out, overwrite)
            return publish(out, self.results, self.record, self.test_outcomes, runs_changed=True, formats=formats)[1]


def write_report(out: str | Path, results: pd.DataFrame, record: RunRecord, test_outcomes: dict,
                 **options) -> tuple[Analysis, list[Path]]:
    """``outcomes.npz`` (removed when there are none: an older one describes other runs), then the report files.

    ``options`` go to ``bench.reporting.report.write``. Returns its analysis and every file written.
    """
    stored = outcomes.save(out, test_outcomes) if test_outcomes else None
    if not test_outcomes:
        (Path(out) / outcomes.FILE).unlink(missing_ok=True)
        if options.get("dropped") is not None:
            options["dropped"].add(outcomes.FILE)
    shipped = None if record.external else presets.shipped(record.name)
    analysis, files = report.write(out, results, record, test_outcomes=test_outcomes, shipped=shipped, **options)
    return analysis, ([stored] if stored is not None else []) + files


def publish(out: str | Path, results: pd.DataFrame, record: RunRecord, test_outcomes: dict,
            runs_changed: bool = False, calibration_from: str | Path | None = None,
            **options) -> tuple[Analysis, list[Path]]:
    """:func:`write_report` into a staged copy of ``out`` that replaces it as a whole (``bench.store.staged``):
    a failure midway (a full disk, Ctrl-C) leaves the previous report as it was. The caller holds ``out``'s lock.

    ``runs_changed``: the report is of new runs, so the previous report's figures are not carried over (its
    calibration, and files a reproduction or the user put there, are; a calibration says itself whether it
    describes these runs). ``calibration_from``: a folder whose ``calibration.json`` comes with these runs
    (:func:`carry_calibration`).
    """
    with staged(out) as stage:
        if runs_changed:
            stage.dropped.add("figures/")
        carried = carry_calibration(calibration_from, stage.path) if calibration_from is not None else None
        analysis, files = write_report(stage.path, results, record, test_outcomes, previous=out,
                                       dropped=stage.dropped, **options)
    return analysis, [stage.final(path) for path in files + ([carried] if carried is not None else [])]


def rerender(folder: str | Path, name: str | None = None, formats: Sequence[str] = FORMATS) -> Outcome:
    """Re-renders the report of a finished run in ``folder`` in place (``results.csv``, ``run.json`` and
    ``outcomes.npz``, each checked as ``bench report`` checks them), training nothing; the statistics are today's.
    ``formats``: as :func:`run_experiment` takes them.

    Raises:
      UserError: no finished run there, a damaged file, or (``name`` given) the run of another experiment.
    """
    if not (Path(folder) / "run.json").is_file():
        raise UserError(f"{folder} holds no finished run (no run.json); run it first, without "
                        f"{option('from_results', True)}")
    with exclusive(folder):
        results, record = load(folder)
        ran = str(record.experiment.get("name", ""))
        if name is not None and ran != name:
            raise UserError(f"{folder} holds a run of {ran!r}, not {name!r}; give its own {option('out')}")
        test_outcomes = outcomes.load(folder, results)
        with staged(folder) as stage:
            analysis, files = report.write(stage.path, results, record, _with_csv(formats), test_outcomes=test_outcomes,
                                           previous=folder,
                                           dropped=stage.dropped, paired=record.paired(),
                                           shipped=None if record.external else presets.shipped(ran))
    return Outcome(results, analysis, record, [stage.final(path) for path in files], test_outcomes)


def _with_csv(formats: Sequence[str]) -> tuple[str, ...]:
    """The report ``formats`` checked, with ``csv``: the runs themselves are always kept (a later ``bench report``
    draws them)."""
    check_formats(formats)
    return (*formats, "csv") if "csv" not in formats else tuple(formats)


def carry_calibration(source: str | Path, out: str | Path) -> Path | None:
    """Copies ``source``'s ``calibration.json`` (``bench calibrate``) to ``out``, a report of ``source``'s runs
    written elsewhere (``bench report DIR --out OTHER``), so its report has the calibration line DIR's has: the
    file's fingerprint of the runs, settings and code, not its folder, says whether it describes them (other
    settings given to the report make it a "rerun calibrate" line, as in place). Returns the copy, or None
    where ``source`` has none (an earlier file in ``out`` is left to its fingerprint)."""
    from bench.analysis import calibrate

    calibration = Path(source) / calibrate.FILE
    if not calibration.is_file():
        return None
    return write_atomic(Path(out) / calibrate.FILE, calibration.read_bytes())


def refuse_overwrite(out: str | Path, overwrite: bool) -> None:
    """Raises UserError when ``out`` already holds a report (``run.json``) and overwriting was not asked for."""
    if not overwrite and (Path(out) / "run.json").exists():
        raise UserError(f"{out} already holds a report; choose another folder or ask to overwrite it "
                        f"({option('overwrite', True)})")


def run_experiment(
    experiment: Experiment,
    out: str | Path | None = None,
    progress: bool = True,
    command: str = "",
    baseline: str | None = None,
    data_dir: str | Path | None = None,
    download: bool = False,
    chunk: int | None = None,
    max_memory: int | None = None,
    fresh: bool = False,
    checkpoint_every: float = 60.0,
    margin: float | None = None,
    fixed_test_set: bool = False,
    speed_target: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> Outcome:
    """Trains every task of ``experiment``, analyses the runs and writes the report to ``out`` (if given).

    ``data_dir`` and ``download`` say where image datasets are found (see
    ``bench.data.datasets``); ``chunk`` (seeds per chunk) and ``max_memory`` (bytes)
    override the chunk plan (see ``bench.training.memory``). With or without ``out``, finished chunks
    and checkpoints (every ``checkpoint_every`` seconds) are kept in the cache folder
    (``bench.training.resume.cache_root``: ``$INITJAX_CACHE``, else the user cache directory)
    and a rerun of the same experiment resumes from them; ``fresh`` forgets them first. ``speed_target``: the
    report's time-to-target level (``bench.analysis.speed.parse_target``; None: 95% of the best mean final);
    ``formats``: the report's files (``bench.reporting.FORMATS``; ``("md", "csv")``: no figures), ``results.csv``
    and ``run.json`` always among them (a later ``bench report`` reads them).
    With several JAX processes (``--distributed``) every process trains its chunks and only process 0 writes files.

    Raises:
      UserError: invalid experiment, baseline or unwritable ``out``, before any
        training; missing data.
      Interrupted: Ctrl-C; the message says what is saved and how to resume.
    """
    start = time.perf_counter()
    initializers = presets.validate(experiment)
    arm_names = experiment.arms(list(initializers))
    if baseline is not None and baseline not in arm_names:
        try:
            baseline = initjax.canonical(baseline)
        except ValueError as error:
            raise UserError(str(error)) from None
        if baseline not in arm_names:
            raise UserError(f"{option('baseline')} {baseline!r} is not among the initializers {list(arm_names)}")
    if margin is not None and not margin >= 0:
        raise UserError(f"{option('margin')} must be >= 0 (in the metric's units, 0.005 = 0.5 pp), got {margin}")
    speed.parse_target(speed_target, option("speed_target"))  # before any training
    formats = _with_csv(formats)
    with contextlib.ExitStack() as held:
        stage = None
        if out is not None:  # every process keeps its finished chunks there; one run at a time
            held.enter_context(exclusive(out, jax.process_index()))
            if devices.is_main_process():  # the report replaces the folder's as a whole, once written
                stage = held.enter_context(staged(out))
                stage.dropped.add("figures/")  # the previous report's: of other runs
        return _train_and_write(experiment, initializers, out, stage, progress, command, baseline, data_dir,
                                download, chunk, max_memory, fresh, checkpoint_every, margin, fixed_test_set, start,
                                speed_target, formats)


def _train_and_write(experiment, initializers, out, stage, progress, command, baseline, data_dir, download, chunk,
                     max_memory, fresh, checkpoint_every, margin, fixed_test_set, start, speed_target,
                     formats) -> Outcome:
    """:func:`run_experiment` once the input is checked and the output folder is held."""
    runs = RunIndex(experiment.data_seeds).numbers(experiment.seeds)  # bench.training.runs
    arms = experiment.arms(list(initializers))
    frames, tasks, test_outcomes, early = [], {}, {}, []
    settings = stats.Settings(seed=experiment.seed, margin=margin, fixed_test_set=fixed_test_set)
    tuned = len(experiment.grid.cells()) > 1
    with limits.budget(max_memory):
        first = check_every_task(experiment, len(arms), len(runs), data_dir, download, chunk, max_memory)
    for number, task in enumerate(experiment.tasks, start=1):
        with limits.budget(max_memory):
            data = first if number == 1 else task_data(task, data_dir, download, tuned=tuned)
        first = None
        model, loss = task_model(task, data)
        name = models.describe(model, data.input_shape)
        result, store = _trained(experiment, task, data, model, loss, initializers, runs,
                                 progress=progress, chunk=chunk, max_memory=max_memory, fresh=fresh,
                                 checkpoint_every=checkpoint_every)
        if (store.loaded or store.resumed) and devices.is_main_process():
            print(_reused(task.name, store, result.plan.n_chunks), file=sys.stderr)
        frames.append(split_runs(result.frame, experiment.data_seeds).assign(
            experiment=experiment.name, dataset=task.name, model=name))
        tasks[task.name] = task_record(name, data, result, len(arms) * len(runs), store,
                                      language_model=loss_spec(model, loss) in losses.SEQUENCE)
        if result.outcomes is not None:
            test_outcomes[task.name] = outcomes.as_stored({"names": list(arms), "seeds": runs, **result.outcomes})
        if stage is not None and number < len(experiment.tasks) and image_formats(formats):
            # its figures are drawn while the next tasks train (the report keeps those it would draw alike)
            early.append(report.draw_early(stage.path, _column_order(_with_factors(frames[-1], arms)), task.name,
                                           tasks[task.name], settings, formats))
    results = _column_order(_with_factors(pd.concat(frames, ignore_index=True), arms))
    record = _run_record(experiment, arms, settings, tasks, command, start, speed_target)
    if stage is None:
        shown = None if fixed_test_set else test_outcomes
        analysis = analyse(results, ranked_metric(results, record.tasks), settings=settings,
                           test_outcomes=shown, reference=record.reference())
        return Outcome(results, analysis, record, [], test_outcomes)
    try:
        analysis, files = write_report(stage.path, results, record, test_outcomes, baseline=baseline,
                                       early=[drawn for drawn in early if drawn is not None], previous=out,
                                       dropped=stage.dropped, measure_peak=True, formats=formats)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while writing the report (the previous one in {out} is as it was); every run "
                          f"is saved in {resume.cache_root()}: rerun the same command to write it (nothing is "
                          "retrained)") from None
    return Outcome(results, analysis, record, [stage.final(path) for path in files], test_outcomes)


def _trained(experiment, task, data, model, loss, initializers, runs, *, progress, chunk, max_memory, fresh,
             checkpoint_every):
    """``(train_task's result, its resume.TaskStore)`` for one task: finished chunks are kept in (and taken from)
    the cache, one writer per task folder of it, whichever report folder it is for, or none."""
    with contextlib.ExitStack() as held:
        key = task_key(experiment, task, data)
        held.enter_context(exclusive(resume.task_folder(resume.cache_root(), task.name, key), jax.process_index()))
        if fresh:
            resume.remove(resume.cache_root(), task.name, key)
        store = resume.TaskStore(resume.cache_root(), task.name, key, checkpoint_every)
        sharded.check_records(experiment.name, task.name, store.key, resume.unfinished(store.folder))
        try:
            result = train_task(data, model, initializers, runs, experiment.train, experiment.seed,
                                progress and devices.is_main_process(), chunk, max_memory, keep_params=False,
                                store=store, data_seeds=experiment.data_seeds, loss=loss, grid=experiment.grid)
        except KeyboardInterrupt:
            raise Interrupted(_interrupted(store)) from None
    return result, store


def _run_record(experiment, arms: dict, settings: stats.Settings, tasks: dict, command: str | None,
                start: float, speed_target: str | None = None) -> RunRecord:
    """The run's record (``run.json``) once every task has trained; ``start``: ``time.perf_counter()`` then;
    ``speed_target`` (given) is kept with the statistics settings, so a re-rendered report keeps it."""
    return RunRecord(
        experiment=experiment.record(),
        initializers=list(arms),
        arms=arms if experiment.grid else None,
        statistics={**dataclasses.asdict(settings), **({"speed_target": speed_target} if speed_target else {})},
        tasks=tasks,
        runs=sum(t.runs for t in tasks.values()),
        compile_s=sum(t.compile_s for t in tasks.values()),
        init_s=sum(t.init_s for t in tasks.values()),
        draw_s=None if any(t.draw_s is None for t in tasks.values()) else sum(t.draw_s for t in tasks.values()),
        environment=environment(),
        processes=jax.process_count(),
        peak_rss_bytes=memory.peak_rss_bytes(),
        device_peak_bytes=memory.device_peak_bytes(jax.local_devices()[0]),
        command=command or f"bench.run({experiment.name!r})",
        wall_s=time.perf_counter() - start,
    )


def check_every_task(experiment: Experiment, n_arms: int, n_runs: int, data_dir, download: bool, chunk, max_memory):
    """Loads each task's data and checks its chunk plan against the memory budget before any training (a task that
    cannot fit is refused now, not after the tasks before it trained); returns the first task's data, which is
    kept for its training (the others are loaded again when their turn comes, one at a time).

    Raises:
      UserError: a task's data cannot be loaded, or even its smallest chunk does not fit.
    """
    tuned = len(experiment.grid.cells()) > 1
    first = None
    for number, task in enumerate(experiment.tasks):
        data = task_data(task, data_dir, download, tuned=tuned)
        model, _ = task_model(task, data)
        if len(experiment.tasks) > 1:
            check_plan(data, model, n_arms, n_runs, experiment.train, chunk, max_memory, experiment.grid)
        if number == 0:
            first = data
    return first


def run(experiment: Experiment | str | Path = "default", *, out: str | Path | None = None, progress: bool = True,
        assignments: Sequence[str] = (), **options) -> Outcome:
    """Runs an experiment, a preset or an experiment file, and returns its :class:`Outcome`.

    Example (in a notebook)::

        import bench
        outcome = bench.run("default", seeds=8, initializers=["he_normal", "glorot_uniform"])
        outcome.summary                 # verdicts and intervals per task and initializer
        outcome.results                 # every run's metrics at every epoch
        outcome.report("reports/mine")  # markdown, LaTeX, CSV and figures

    Args:
      experiment: a :class:`bench.Experiment`, a preset name or a ``.toml`` path.
      out: folder for the report and results; None writes no report (``outcome.report(out)`` later). Finished
        chunks are cached either way, as the command line caches them: a second call with the same experiment
        loads them instead of training (``fresh=True`` retrains).
      progress: show progress bars.
      assignments: ``"train.lr=0.01"``-style settings of any field, as ``--set`` on the CLI.
      **options: fields to replace (``seeds``, ``initializers``, ``datasets``, ``epochs``,
        ``lr``, ``optimizer``, ``batch_size``, ``seed``, ``model``, ``hidden``, ``activation``,
        ``data_seeds``) and run options (``data_dir``, ``download``, ``chunk``,
        ``max_memory``, ``fresh``, ``checkpoint_every``, ``margin``, ``baseline``,
        ``fixed_test_set``, ``speed_target``, ``formats``: the report's files, e.g. ``("md", "csv")``).

    Raises:
      UserError: bad input, before any training (the message names Python arguments).
      TypeError: an option that does not exist.
    """

    fields = set(inspect.signature(Experiment.override).parameters) - {"self"}
    run_options = set(inspect.signature(run_experiment).parameters) - {"experiment", "out", "progress", "command"}
    unknown_options = set(options) - fields - run_options
    if unknown_options:
        raise TypeError(f"bench.run() got unexpected options {sorted(unknown_options)}; "
                        f"fields: {sorted(fields)}; run options: {sorted(run_options)}")
    try:
        if not isinstance(experiment, Experiment):
            experiment = presets.resolve(experiment, list(assignments))
        elif assignments:
            raise UserError("assignments= applies to a preset or a file; replace fields of an Experiment with "
                            "dataclasses.replace")
        experiment = experiment.override(**{k: v for k, v in options.items() if k in fields})
        return run_experiment(experiment, out, progress, **{k: v for k, v in options.items() if k in run_options})
    except UserError as error:
        raise UserError(str(error)) from None


def _reused(name: str, store: resume.TaskStore, n_chunks: int) -> str:
    """What a rerun took from earlier work, said on the console (the numbers come from there)."""
    resumed = f", continued {len(store.resumed)} from a checkpoint" if store.resumed else ""
    return (f"{name}: loaded {len(store.loaded)} of {n_chunks} finished chunk(s) from {store.folder}{resumed}; "
            "--fresh to retrain")


def _interrupted(store) -> str:
    finished, checkpoints = len(resume.chunks_in(store.folder)), len(resume.chunks_in(store.folder, True))
    return (f"interrupted; {finished} finished chunk(s) and {checkpoints} checkpoint(s) of the current task are saved "
            f"in {store.folder}: rerun the same command to resume (add {option('fresh', True)} to start over)")


def _with_factors(table: pd.DataFrame, arms: dict[str, dict]) -> pd.DataFrame:
    """``table`` with one column per factor its arms vary (of ``presets.FACTORS``; ``arms``: name -> factor
    values) right after the ``arm`` column."""
    varied = [f for f in presets.FACTORS if any(f in values for values in arms.values())]
    table = table.drop(columns=[c for c in presets.FACTORS if c in table])
    factors = pd.DataFrame([arms[name] for name in table["arm"]], columns=varied, index=table.index)
    at = table.columns.get_loc("arm") + 1
    return pd.concat([table.iloc[:, :at], factors, table.iloc[:, at:]], axis=1)


def _column_order(results: pd.DataFrame) -> pd.DataFrame:
    first = ["experiment", "dataset", "model", "arm", *[f for f in presets.FACTORS if f in results], "seed"] + (
        ["data_seed"] if "data_seed" in results else []
    )
    first += ["epoch"]
    return results[first + [c for c in results.columns if c not in first]]
