"""Reports: statistics of a finished run rendered as terminal tables, markdown, LaTeX and figures.

A report is rendered from two files only, ``results.csv`` (the tidy runs) and
``run.json`` (the experiment, environment and timings), so ``python -m bench report
DIR`` can re-render it with other options without training anything.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import platform
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import advice, aggregate, compare, crossed, maxt, outcomes, scoring, stats, transfer, tuning
from bench.errors import UserError
from bench.reporting import FORMATS, drawing
from bench.reporting import transfer as transfer_report
from bench.reporting import tuning as grid_report
from bench.store import path_name, read_json_checked, write_atomic, write_json_verified
from bench.training import memory
from bench.training.memory import format_bytes

FORMAT_VERSION = 2  # of run.json + results.csv; bump when their meaning changes (2: run.json carries its checksum)
# differences the power advice is given for
DELTAS = {"accuracy": (0.005, 0.01), "r2": (0.005, 0.01), "loss": (0.01, 0.05)}


@dataclasses.dataclass(frozen=True)
class Compared:
    """The part of an :class:`Analysis` computed first (same names): what the early figures read
    (``comparisons`` None for the figures of the runs alone, drawn before any statistic)."""

    metric: str
    comparisons: pd.DataFrame | None
    paired: bool
    settings: stats.Settings


@dataclasses.dataclass
class Analysis:
    """Everything a report shows, computed once from the results table.

    Attributes:
      metric: the metric ranked, compared and tested (e.g. ``test_accuracy``).
      summary: ``stats.summarize`` of every metric shown.
      comparisons: ``compare.compare``: verdicts and simultaneous intervals per initializer.
      curves: ``stats.summarize_curves`` of ``metric``.
      advice: ``advice.seeds_advice`` of ``metric``.
      baseline: the reference of the difference columns given, or None for the best.
      paired: whether runs were compared as seed-matched pairs.
      settings: level, seeds and margin of the statistics.
      divergence: ``stats.divergence``: when the diverged runs diverged.
      across: ``aggregate.aggregate``: normalized scores over tasks (empty with one task).
      ranks: ``aggregate.rank_test``: exact Friedman test and critical difference over tasks, or None.
      test_examples: per task, the test examples whose sampling error the test
        metrics' intervals include (absent: intervals over seeds only).
      sources: ``crossed.decomposition``: init / data-order / rest standard deviations
        (empty unless data orders were crossed with init seeds).
      tuning: ``tuning.analyse``: per task ``(dataset, model)``, the grid's tuned comparison,
        sensitivity and ranking verdict (empty without a grid).
      transfer: ``transfer.analyze``: per width family, the best learning rate at each width and whether it
        moves (empty without width series trained over a learning-rate grid).
    """

    metric: str
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    curves: pd.DataFrame
    advice: pd.DataFrame
    baseline: str | None
    paired: bool
    settings: stats.Settings
    divergence: pd.DataFrame
    across: pd.DataFrame
    ranks: dict | None
    test_examples: dict[str, int]
    sources: pd.DataFrame
    tuning: dict = dataclasses.field(default_factory=dict)
    transfer: dict = dataclasses.field(default_factory=dict)

    @property
    def margin(self) -> float:
        return compare.default_margin(self.metric) if self.settings.margin is None else self.settings.margin


def analyse(
    results: pd.DataFrame,
    metric: str | None = None,
    baseline: str | None = None,
    paired: bool = True,
    settings: stats.Settings = stats.Settings(),
    test_outcomes: dict[str, dict] | None = None,
    reference: dict | None = None,
    on_comparisons: Callable[[Compared], None] | None = None,
    widths: dict[str, tuple[str, int]] | None = None,
) -> Analysis:
    """Computes every statistic of the report.

    ``reference``: the recipe's hyperparameters (``{"lr": 1e-3}``), where a grid's ranking is checked.
    ``widths``: task name -> (family, width) of the tasks that form width series (``transfer.families``), whose
    best learning rates are compared across widths when the runs have a learning-rate grid.
    ``on_comparisons`` is told the comparisons as soon as they exist (the report starts drawing
    the figures that need no more while the rest is computed).

    ``test_outcomes`` (``bench.analysis.outcomes``): per task, every run's per-example test
    outcomes; with them the intervals of test metrics include the test set's own
    sampling error.

    Raises:
      UserError: unknown metric or baseline, or a negative margin.
    """
    metric = metric or stats.default_metric(results)
    check_options(results, metric, baseline, settings, paired)
    metrics = stats.metric_columns(results)
    shown = [m for m in dict.fromkeys([metric, stats.default_metric(results), "test_loss"]) if m in metrics]
    test_outcomes = test_outcomes or {}
    extras: dict[tuple, list] = {}
    for source in (outcomes.arm_variances(results, test_outcomes, shown), crossed.arm_variances(results, shown)):
        for key, part in source.items():
            extras.setdefault(key, []).append(part)
    comparisons = compare.compare(results, metric, baseline, paired, settings, test_outcomes)
    if on_comparisons is not None:
        on_comparisons(Compared(metric, comparisons, paired, settings))
    examples = {task: int(item["correct"].shape[-1]) for task, item in test_outcomes.items()}
    summary = stats.summarize(results, shown, settings, extras, examples)
    kind = metric.rpartition("_")[2]
    return Analysis(
        metric=metric,
        summary=summary,
        comparisons=comparisons,
        curves=stats.summarize_curves(results, summary, metric, settings=settings),
        advice=advice.seeds_advice(results, metric, DELTAS[kind], paired, settings, test_outcomes=test_outcomes),
        baseline=baseline,
        paired=paired,
        settings=settings,
        divergence=stats.divergence(results),
        across=aggregate.aggregate(results, metric, settings),
        ranks=aggregate.rank_test(results, metric, seed=settings.seed),
        test_examples=examples,
        sources=crossed.decomposition(results, metric, settings),
        tuning=tuning.analyse(results, metric, settings,
                              compare.default_margin(metric) if settings.margin is None else settings.margin,
                              reference),
        transfer=transfer.analyze(results, widths) if widths and "lr" in results else {},
    )


def check_options(results: pd.DataFrame, metric: str, baseline: str | None, settings: stats.Settings,
                  paired: bool = True) -> None:
    """Raises UserError when the metric or baseline is not in the results, the margin is negative or the
    statistic unknown."""
    metrics = stats.metric_columns(results)
    if metric not in metrics:
        raise UserError(f"unknown metric {metric!r}; the results have {', '.join(metrics)}")
    if baseline is not None and baseline not in set(results["arm"]):
        raise UserError(f"baseline {baseline!r} is not among the initializers {sorted(set(results['arm']))}")
    if settings.margin is not None and not settings.margin >= 0:
        raise UserError(f"--margin must be >= 0 (in the metric's units, 0.005 = 0.5 pp), got {settings.margin}")
    if settings.statistic not in maxt.STATISTICS or (settings.statistic == "trimmed" and not paired):
        raise UserError(f"--statistic must be one of {', '.join(maxt.STATISTICS)} (trimmed only for paired runs), "
                        f"got {settings.statistic!r}")


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


# ---------------------------------------------------------------- formatting


def _interval(mean: float, low: float, high: float, digits: int = 3) -> str:
    if pd.isna(mean):
        return "n/a"
    if pd.isna(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _p(p: float) -> str:
    if pd.isna(p):
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _title(metric: str) -> str:
    return metric.replace("_", " ")


def _ranked(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """Summary rows of ``analysis.metric`` for a dataset, best first, with the verdicts."""
    rows = analysis.summary[(analysis.summary["dataset"] == dataset) & (analysis.summary["metric"] == analysis.metric)]
    rows = rows.sort_values("mean", ascending=not stats.higher_is_better(analysis.metric), na_position="last")
    verdict = analysis.comparisons[analysis.comparisons["dataset"] == dataset].set_index("arm")["verdict"]
    return rows.assign(verdict=rows["arm"].map(verdict).fillna("no runs"))


def _points(metric: str) -> tuple[float, str]:
    """Differences of accuracies are shown in percentage points."""
    return (100.0, " pp") if metric.endswith("accuracy") else (1.0, "")


def summary_table(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """Per initializer, best first: verdict, mean and IQM of the ranked metric with CIs, the loss, divergence."""
    level = f"{analysis.settings.level:.0%}"
    ranked = _ranked(analysis, dataset)
    others = analysis.summary[analysis.summary["dataset"] == dataset].set_index(["arm", "metric"])
    metric = analysis.metric
    shown = list(dict.fromkeys(analysis.summary["metric"]))
    second = "test_loss" if metric != "test_loss" else next((m for m in shown if m != metric), metric)
    table = {
        "rank": range(1, len(ranked) + 1),
        "initializer": ranked["arm"],
        "verdict": ranked["verdict"],
        f"{_title(metric)} mean [{level} CI]": [
            _interval(r["mean"], r["mean_low"], r["mean_high"]) for _, r in ranked.iterrows()
        ],
        f"IQM [{level} CI]": [_interval(r["iqm"], r["iqm_low"], r["iqm_high"]) for _, r in ranked.iterrows()],
        "median": [f"{v:.3f}" if pd.notna(v) else "n/a" for v in ranked["median"]],
        "std": [f"{v:.4f}" if pd.notna(v) else "n/a" for v in ranked["std"]],
    }
    if second in set(analysis.summary["metric"]):
        table[f"{_title(second)} mean [{level} CI]"] = [
            _interval(*others.loc[(n, second), ["mean", "mean_low", "mean_high"]]) for n in ranked["arm"]
        ]
    table["diverged"] = [
        f"{d}/{r}" + (f" [{lo:.0%}, {hi:.0%}]" if d else "")
        for d, r, lo, hi in zip(ranked["diverged"], ranked["runs"], ranked["diverged_low"], ranked["diverged_high"])
    ]
    return pd.DataFrame(table)


def _signed(value: float, low: float, high: float, scale: float, unit: str, digits: int = 2) -> str:
    if pd.isna(value):
        return "n/a"
    return f"{scale * value:+.{digits}f}{unit} [{scale * low:+.{digits}f}, {scale * high:+.{digits}f}]"


def comparison_table(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """Each initializer against the best (or the baseline): verdict, simultaneous intervals, effect sizes."""
    rows = analysis.comparisons[(analysis.comparisons["dataset"] == dataset) & analysis.comparisons["vs"].notna()]
    scale, unit = _points(analysis.metric)
    digits = 2 if unit else 4
    return pd.DataFrame(
        {
            "initializer": rows["arm"],
            "verdict": rows["verdict"] + np.where(rows["significant"], " (better than all)", "")
            + np.where(rows["step_down"].fillna(False).astype(bool), " ‡", ""),
            "to the best of the others [sim. CI]": [
                f"[{scale * lo:+.{digits}f}, {scale * hi:+.{digits}f}]{unit}"
                for lo, hi in zip(rows["to_best_low"], rows["to_best_high"])
            ],
            "vs": rows["vs"],
            "n": rows["n"],
            "Δ vs [sim. CI]": [
                _signed(d, lo, hi, scale, unit, digits) + (" †" if floored else "")
                for d, lo, hi, floored in zip(rows["diff"], rows["low"], rows["high"], rows["floored"].fillna(False))
            ],
            "p (step-down max-T)": [_p(p) for p in rows["p"]],
            ("d_z [CI]" if analysis.paired else "d_av"): [
                _interval(d, lo, hi, 2) for d, lo, hi in zip(rows["d_z"], rows["d_z_low"], rows["d_z_high"])
            ],
            ("wins vs" if analysis.paired else "P(better) vs"): [f"{w:.0%}" for w in rows["win_rate"]],
        }
    )


def describe_run(experiment: dict, shipped: dict | None = None) -> str:
    """The preset's description when the run is the preset as shipped; else what was run, and what was changed.

    A report must describe the runs it reports: ``--seeds 8`` on a preset described as
    "32 seeds" is said as such.

    Args:
      experiment: the run record's ``experiment``.
      shipped: the record of the preset of that name as shipped (``bench.experiments.presets.shipped``); None
        when the run is of no preset.
    """
    cells = int(np.prod([len(v) for k, v in experiment.get("grid", {}).items() if k != "init_scale_on"]))
    design = (f"{len(experiment['initializers'])} initializers"
              + (f" x {cells} hyperparameter cells" if cells > 1 else "") + f" x {experiment['seeds']} seeds"
              + (f" x {experiment['data_seeds']} data orders" if experiment.get("data_seeds", 1) > 1 else "")
              + f"; {experiment['train']['optimizer']} lr {experiment['train']['lr']:g}, batch "
              f"{experiment['train']['batch_size']}, {experiment['train']['epochs']} epochs; tasks: "
              + ", ".join(t.get("name") or t.get("label") or t["dataset"] for t in experiment["tasks"]))
    if shipped is None:
        return f"Runs: {design}."
    ran = json.loads(json.dumps(experiment, default=str))
    changed = [key for key in shipped if key not in ("name", "description") and key in ran
               and _differs(shipped[key], ran[key])] + [key for key in ran if key not in shipped and _given(ran[key])]
    if not changed:
        return experiment["description"]
    return (f"Runs: {design}. This is the `{shipped['name']}` preset with {', '.join(changed)} changed; as shipped: "
            f"{shipped['description']}")


def _given(value) -> bool:
    """Whether a setting the shipped preset lacks says anything (a grid of empty factors does not)."""
    if isinstance(value, dict):
        return any(_given(v) for k, v in value.items() if k != "init_scale_on")
    return bool(value)


def _differs(shipped, ran) -> bool:
    """Whether a run's recorded setting differs from the preset's; fields a run.json of an older version
    lacks are the defaults it ran with, so they are not compared."""
    if isinstance(shipped, dict) and isinstance(ran, dict):
        return any(_differs(shipped.get(k), v) for k, v in ran.items())
    if isinstance(shipped, list) and isinstance(ran, list) and len(shipped) == len(ran):
        return any(_differs(a, b) for a, b in zip(shipped, ran))
    return shipped != ran


def arms_of(meta: dict) -> dict[str, dict]:
    """Arm name -> its factor values (``initializer`` and any grid factors) of a run's ``run.json``."""
    return meta.get("arms") or {name: {"initializer": name} for name in meta["initializers"]}


def describe_arm(name: str, experiment: dict) -> str:
    """An arm as the report names it: `` `he_normal` ``, or a rule set with its rules in order."""
    for arm in experiment.get("initializers", []):
        if isinstance(arm, dict) and arm.get("name") == name:
            rules = "; ".join(f"`{pattern}`: `{spec}`" for pattern, spec in arm["rules"].items())
            return f"`{name}` (by parameter path, first match wins: {rules}; the rest as the model makes them)"
    return f"`{name}`"


def describe_grid(grid: dict, n_arms: int) -> str:
    """``lr 0.001, 0.01, 0.1 (x every initializer: 24 arms, one program per task)``."""
    from bench.training.grid import format_value

    factors = "; ".join(f"{k.replace('_', ' ')} {', '.join(format_value(v) for v in values)}"
                        for k, values in grid.items() if k != "init_scale_on")
    where = f" (init scale on `{grid['init_scale_on']}`)" if "init_scale_on" in grid else ""
    return (f"{factors}{where}, crossed with every initializer: {n_arms} arms trained in one program per task; "
            "seed i has the same initial draw and data order in every cell")


def describe_training(train: dict) -> str:
    """``adamw(b2=0.95), lr 0.001 (warmup_cosine(warmup=0.05)), weight decay 0.01, clip 1, batch 32, 5 epochs``."""
    schedule = train.get("schedule", "constant")
    text = f"{train['optimizer']}, lr {train['lr']:g}" + ("" if schedule == "constant" else f" ({schedule})")
    if train.get("weight_decay"):
        text += f", weight decay {train['weight_decay']:g}"
    if train.get("clip") is not None:
        text += f", gradient norm clipped at {train['clip']:g}"
    return text + f", batch {train['batch_size']}, {train['epochs']} epochs"


def finished_initializers(analysis: Analysis, dataset: str) -> int:
    """How many initializers of the task have a run that finished without diverging (diverged runs are scored and
    compared, but a task whose runs all diverged has nothing to compare)."""
    rows = analysis.summary
    return int((rows.loc[(rows["dataset"] == dataset) & (rows["metric"] == analysis.metric), "finished"] > 0).sum())


def finished_arms(results: pd.DataFrame, metric: str, dataset: str) -> int:
    """How many initializers of the task have a run whose last epoch did not diverge and has a finite ``metric``:
    :func:`finished_initializers` from the runs, before the comparisons exist."""
    rows = stats.final_epoch(results[results["dataset"] == dataset])
    return int(rows.loc[stats.finished(rows, metric), "arm"].nunique())


def has_finished_runs(analysis: Analysis, dataset: str) -> bool:
    """Whether any run of the task finished without diverging (else there is nothing to compare)."""
    return finished_initializers(analysis, dataset) > 0


def curve_table(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """Learning-curve statistics: area under the curve, best epoch, epochs to the threshold."""
    rows = analysis.curves[analysis.curves["dataset"] == dataset]
    rows = rows.sort_values("auc", ascending=not stats.higher_is_better(analysis.metric))
    return pd.DataFrame(
        {
            "initializer": rows["arm"],
            "AUC (mean over epochs) [CI]": [
                _interval(a, lo, hi) for a, lo, hi in zip(rows["auc"], rows["auc_low"], rows["auc_high"])
            ],
            "best (mean)": [f"{v:.3f}" for v in rows["best"]],
            "best epoch (median)": [f"{v:g}" for v in rows["best_epoch"]],
            "epochs to threshold (median)": [f"{v:g}" if pd.notna(v) else "never" for v in rows["epochs_to_threshold"]],
            "runs reaching it": [f"{v:.0%}" for v in rows["reached"]],
        }
    )


def advice_sentences(analysis: Analysis, dataset: str) -> list[str]:
    """'For this procedure to call an initializer 0.5 pp worse *worse* with 80% power, N seeds' per difference."""
    rows = analysis.advice[analysis.advice["dataset"] == dataset]
    scale, unit = _points(analysis.metric)
    spread = "paired differences" if analysis.paired else "runs, times sqrt 2"
    sources = [name for name, counted in (("the test set's", dataset in analysis.test_examples),
                                          ("the data orders'", not analysis.sources.empty)) if counted]
    what, helps = " and ".join(sources), " or ".join(
        [h for h, counted in (("a larger test set", dataset in analysis.test_examples),
                              ("more data orders", not analysis.sources.empty)) if counted])
    out = []
    for r in rows.itertuples():
        size = f"{scale * r.delta:g}{unit}"
        others = "the other" if r.k == 2 else f"{r.k - 1} others"
        if not np.isfinite(r.sd):
            out.append(f"No advice for a {size} difference: fewer than two initializers whose runs vary.")
            continue
        test = (f"; {what} own standard error of a difference, {scale * r.test_sd:.2g}{unit}, does not shrink "
                f"with seeds: {helps} helps where seeds cannot" if r.test_sd > 0 and sources else "")
        if r.seeds is None or pd.isna(r.seeds):
            out.append(f"To call an initializer {size} worse than {others} *worse* with 80% power, more than "
                       f"{r.max_seeds} seeds per initializer are needed (power at {r.max_seeds}: {r.power:.0%}; "
                       f"median sd of {spread}: {scale * r.sd:.3g}{unit}{test}).")
            continue
        out.append(
            f"To call an initializer {size} worse than {others} *worse* with 80% power, this report's "
            f"procedure needs {int(r.seeds)} seeds per initializer (simulated power there {r.power:.0%}; "
            f"{analysis.settings.level:.0%} simultaneous intervals over the {r.k * (r.k - 1) // 2} pairs; "
            f"median sd of {spread}: {scale * r.sd:.3g}{unit}{test})."
        )
    return out


def sources_lines(analysis: Analysis, dataset: str) -> list[str]:
    """'Where the spread comes from': init vs data-order vs rest, per initializer (crossed runs only)."""
    if analysis.sources.empty:
        return []
    rows = analysis.sources[analysis.sources["dataset"] == dataset]
    scale, unit = _points(analysis.metric)
    level = f"{analysis.settings.level:.0%}"
    def cell(r, part):
        high = r[f"sd_{part}_high"]
        return (f"{scale * r[f'sd_{part}']:.2f} [{scale * r[f'sd_{part}_low']:.2f}, "
                f"{'n/a' if pd.isna(high) else f'{scale * high:.2f}'}] ({r[f'share_{part}']:.0%})")

    table = pd.DataFrame({
        "initializer": rows["arm"],
        f"init seed sd{unit} [{level} CI] (share)": [cell(r, "init") for _, r in rows.iterrows()],
        f"data order sd{unit} [{level} CI] (share)": [cell(r, "data") for _, r in rows.iterrows()],
        f"interaction + rest sd{unit} [{level} CI] (share)": [cell(r, "rest") for _, r in rows.iterrows()],
    })
    first = rows.iloc[0]
    return [
        f"### Where the spread comes from: {int(first['n_init'])} init seeds x {int(first['n_data'])} data orders",
        "",
        table.to_markdown(index=False),
        "",
        "Two-way random-effects ANOVA of the final runs (one run a cell, so the interaction is not separable from "
        "the rest), on the init seeds with every data order finished; intervals: chi-square for the rest, "
        "Satterthwaite for init and data order (n/a: estimated at 0, or under one degree of freedom: more seeds "
        "needed). Means and comparisons count the "
        "data orders' share (s²_data / K), which more init seeds do not average away.",
        "",
    ]


def _rate(value: float) -> str:
    """1,050 or 0.734: three significant digits without scientific notation."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _throughput(info: dict) -> str:
    """'128 runs; compile 1.9 s, training and evaluation 1743 s (0.73 seed-epochs/s, ...)'."""
    earlier = info.get("earlier_train_s", 0.0)
    text = (f"{info['runs']} runs; compile {info['compile_s']:.1f} s, training and evaluation "
            f"{info['train_s'] + earlier:.1f} s" + (f" ({earlier:.1f} s of it in earlier runs)" if earlier else ""))
    if "seed_epochs_per_s" in info:
        text += f" ({_rate(info['seed_epochs_per_s'])} seed-epochs/s"
        if "train_gflops" in info:
            text += (f", {info['train_examples_per_s']:,.0f} training examples/s, "
                     f"{info['train_gflops']:.3g} GFLOP/s of training at 6 x {info['n_params']:,} params per example")
        text += ")"
    text += "."
    if info.get("chunks_loaded") or info.get("chunks_resumed"):
        text += (f" Resumed: {info['chunks_loaded']} finished chunk(s) loaded from an earlier run of the same "
                 f"experiment and {info['chunks_resumed']} continued from its checkpoint; times and rates add up the "
                 "training every run recorded.")
    if "chunks" in info:
        text += (f" {info['chunks']} chunk(s) of {info['models_per_chunk']} models ({info['chunk_reason']}); "
                 f"estimated peak memory {format_bytes(info['estimated_peak_bytes'])}"
                 + (f", XLA's training program {format_bytes(info['program_bytes'])}" if info["program_bytes"] else "")
                 + ".")
    return text


def _test_loss_rows(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """The summary rows of a task's final test loss, lowest first."""
    summary = analysis.summary
    return summary[(summary["dataset"] == dataset) & (summary["metric"] == "test_loss")].sort_values("mean")


def optimum_gaps(analysis: Analysis, dataset: str, info: dict) -> tuple[float | None, pd.DataFrame]:
    """The Bayes-optimal loss of the task's own test examples (generated data, ``bench.data.sequences``; None when
    unknown) and, per initializer, best first, its mean final test loss minus that optimum with the table's CI
    (columns ``arm, gap, gap_low, gap_high``)."""
    optimum = (info.get("optimal_loss") or {}).get("test")
    rows = _test_loss_rows(analysis, dataset)
    if optimum is None or rows.empty:
        return None, pd.DataFrame(columns=["arm", "gap", "gap_low", "gap_high"])
    gaps = pd.DataFrame({"arm": rows["arm"], "gap": rows["mean"] - optimum, "gap_low": rows["mean_low"] - optimum,
                         "gap_high": rows["mean_high"] - optimum})
    return optimum, gaps.reset_index(drop=True)


def optimum_lines(analysis: Analysis, dataset: str, info: dict) -> list[str]:
    """The paragraph on :func:`optimum_gaps` (no lines when the optimum is unknown)."""
    optimum, gaps = optimum_gaps(analysis, dataset, info)
    if optimum is None:
        return bits_lines(analysis, dataset) if info.get("language_model") else []
    parts = [f"`{r.arm}` {r.gap:+.4f} [{r.gap_low:+.4f}, {r.gap_high:+.4f}]"
             for r in gaps.itertuples() if pd.notna(r.gap)]
    return [f"Gap to the optimum: the generating process's own loss on these test examples is {optimum:.4f} "
            f"nats/token ({optimum / np.log(2):.4f} bits); each initializer's mean final test loss exceeds it by "
            f"(nats/token, {analysis.settings.level:.0%} CI as in the table): " + "; ".join(parts) + ".", ""]


def bits_lines(analysis: Analysis, dataset: str) -> list[str]:
    """A language model's mean final test loss per initializer in bits per token (per character for text)."""
    rows = _test_loss_rows(analysis, dataset)
    parts = [f"`{r.arm}` {r.mean / np.log(2):.4f} [{r.mean_low / np.log(2):.4f}, {r.mean_high / np.log(2):.4f}]"
             for r in rows.itertuples() if pd.notna(r.mean)]
    if not parts:
        return []
    return ["In bits per token (per character for text; the test loss over ln 2, "
            f"{analysis.settings.level:.0%} CI as in the table): " + "; ".join(parts) + ".", ""]


def divergence_lines(analysis: Analysis, dataset: str) -> list[str]:
    """A paragraph on the runs that diverged (none: no lines)."""
    rows = analysis.divergence[analysis.divergence["dataset"] == dataset]
    if rows.empty:
        return []
    parts = [f"`{r.arm}` {r.diverged} of {r.runs} (from epoch {r.first_epoch:g}, median {r.median_epoch:g})"
             for r in rows.itertuples()]
    return ["Diverged runs (a NaN or inf loss), counted in the `diverged` column with a Wilson CI: "
            + "; ".join(parts) + f". In every mean, interval, verdict and aggregate {scoring.RULE}, so an "
            "initializer's failures count against it.", ""]


def _peak_memory(meta: dict) -> str:
    text = f"{format_bytes(meta['peak_rss_bytes'])} resident (process peak)"
    if meta.get("device_peak_bytes"):
        text += f", {format_bytes(meta['device_peak_bytes'])} on the first device"
    if meta.get("processes", 1) > 1:
        text += f"; {meta['processes']} processes (figures of process 0)"
    return text


VERDICT_LEGEND = (
    "best: {direction} mean; equivalent: within {margin} of the best, whichever it is; worse: some initializer is "
    "significantly better; inconclusive: neither, more seeds needed ({level:.0%} simultaneous intervals over all "
    "pairs and step-down max-T tests, so the verdicts hold together)"
)


def legend(analysis: Analysis) -> str:
    scale, unit = _points(analysis.metric)
    return VERDICT_LEGEND.format(direction=_best_direction(analysis.metric),
                                 margin=f"{scale * analysis.margin:g}{unit}", level=analysis.settings.level)


def _best_direction(metric: str) -> str:
    """Which mean is best: ``highest`` (accuracy) or ``lowest`` (a loss)."""
    return "highest" if stats.higher_is_better(metric) else "lowest"


def console(analysis: Analysis, tasks: dict[str, dict]) -> str:
    """The tables printed by ``python -m bench``, one per dataset, and the verdicts' legend."""
    blocks = []
    for dataset, info in tasks.items():
        table = summary_table(analysis, dataset)
        keep = [c for c in table.columns if not c.startswith(("IQM", "median", "std"))]
        blocks.append(f"{dataset}: {info['model']}, {info['runs']} runs\n"
                      + table[keep].to_markdown(index=False, tablefmt="simple"))
    grid_lines = grid_report.console_lines(analysis.tuning, analysis.metric)
    grid_lines += transfer_report.console_lines(analysis.transfer)
    return "\n\n".join(blocks + [f"Verdicts: {legend(analysis)}."] + (["\n".join(grid_lines)] if grid_lines else []))


def _tuning_of(analysis: Analysis, dataset: str):
    """The grid analysis of the task on ``dataset`` (``tuning.TaskTuning``), None without a grid."""
    return next((item for (name, _), item in analysis.tuning.items() if name == dataset), None)


# ---------------------------------------------------------------- markdown


def render_markdown(meta: dict, analysis: Analysis, figures: dict[str, list[str]],
                    calibration: list[str] | None = None, shipped: dict | None = None) -> str:
    """``report.md``: the experiment and environment, then per dataset the tables and figures.

    Args:
      calibration: lines from ``bench calibrate`` on these runs, if it was run.
      shipped: the preset these runs are of, as shipped (:func:`describe_run`).
    """
    exp, env, s = meta["experiment"], meta["environment"], analysis.settings
    train = exp["train"]
    reference = f"`{analysis.baseline}`" if analysis.baseline else "the best of the others"
    scale, unit = _points(analysis.metric)
    header = {
        "experiment": f"`{exp['name']}`",
        "initializers": ", ".join(describe_arm(name, exp) for name in dict.fromkeys(
            values["initializer"] for values in arms_of(meta).values())),
        **({"grid": describe_grid(exp["grid"], len(meta["initializers"]))} if exp.get("grid") else {}),
        "seeds": (
            f"{exp['seeds']} per initializer, paired (seed i has the same data order and random stream for every "
            "initializer)"
            if exp.get("data_seeds", 1) == 1
            else f"{exp['seeds']} init seeds x {exp['data_seeds']} data orders per initializer, crossed (init seed i "
            "has the same initial random stream, data order d the same minibatch order, for every initializer "
            "and every other seed) and paired"
        ),
        "training": describe_training(train),
        "statistics": (
            f"at the last epoch, over seeds; means with {s.level:.0%} Student t CIs; IQM = 25% trimmed mean with "
            f"{s.method} bootstrap CI ({s.n_resamples:,} resamples, seed {s.seed}) "
            f"from {stats.IQM_MIN_SEEDS} seeds on, "
            "where the mean's interval has no test-set or data-order term; accuracies' intervals within [0, 1] "
            "(exact binomial at the effective number of examples where the test set is counted); "
            f"diverged runs counted (Wilson CI) and scored as untrained networks in every mean and test"
        ),
        "verdicts": (
            f"{'paired by seed' if analysis.paired else 'unpaired (Welch)'}; "
            + ("20% trimmed means of the paired differences (Yuen's standard errors); "
               if s.statistic == "trimmed" else "")
            + f"{s.level:.0%} simultaneous intervals of all "
            f"pairwise differences (single-step max-T, {s.draws:,} null draws, seed {s.seed}) and from them Hsu's "
            "multiple comparisons with the best, *worse* also by the step-down max-T test (Westfall & Young); "
            f"equivalence margin {scale * analysis.margin:g}{unit}; "
            "standard deviations never below the data's resolution (the step between distinct values, one test "
            "example for an accuracy: a tie on every seed is not certainty; † in the tables); "
            f"Δ, d_z and wins against {reference}. {legend(analysis)}"
        ),
        "test set": (
            "its sampling error is in the intervals of test metrics (per-example outcomes of every run, "
            "`outcomes.npz`: variance s²_seeds/n + s²_b/m, s²_b the examples' own component of a seeds x "
            "examples random-effects ANOVA, with its Satterthwaite degrees of freedom; "
            + ", ".join(f"{task} m = {m:,}" for task, m in analysis.test_examples.items())
            + ")"
            if analysis.test_examples
            else "intervals are over seeds only, conditional on the test set ("
            + ("`--fixed-test-set`" if s.fixed_test_set else "no per-example outcomes stored")
            + ")"
        ),
        **({"calibration": " ".join(calibration)} if calibration else {}),
        "runs": f"{meta['runs']:,}",
        "wall time": f"{meta['wall_s']:.1f} s (compile {meta['compile_s']:.1f} s, "
                     f"initialization {meta['init_s']:.1f} s)",
        **({"peak memory": _peak_memory(meta)} if "peak_rss_bytes" in meta else {}),
        "environment": (
            f"initjax {env['initjax']}, jax {env['jax']}, flax {env['flax']}, optax {env['optax']}, "
            f"Python {env['python']}; backend {env['backend']}, {env['devices']}"
        ),
        "git commit": env["git commit"],
        "date": env["date"],
        "command": f"`{meta['command']}`",
    }
    lines = [f"# initjax report: {exp['name']}", "", describe_run(exp, shipped), ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in header.items()]
    for dataset, info in meta["tasks"].items():
        lines += [
            "", f"## {dataset}: {info['model']}", "",
            f"Data: {info.get('data', 'n/a')}.", "",
            _throughput(info), "",
            summary_table(analysis, dataset).to_markdown(index=False), "",
            *divergence_lines(analysis, dataset),
            *optimum_lines(analysis, dataset, info),
            *sources_lines(analysis, dataset),
        ]
        if not has_finished_runs(analysis, dataset):
            lines += ["**Every run of this task diverged** (a NaN or inf loss): there is nothing to compare. "
                      "The diverged runs are the result; a lower learning rate or smaller initial weights may train.",
                      "", *[f"![{Path(f).stem}]({f})" for f in figures.get(dataset, [])]]
            continue
        item = _tuning_of(analysis, dataset)
        if item is not None:
            shown = [f for f in figures.get(dataset, []) if "-sensitivity-" in f]
            lines += grid_report.markdown(item, analysis.metric, analysis.settings, shown[0] if shown else None)
        lines += [
            f"### Comparisons with the best: {_title(analysis.metric)}", "",
            comparison_table(analysis, dataset).to_markdown(index=False), "",
            f"Intervals hold together at {analysis.settings.level:.0%} over all pairs (better > 0); "
            "\"to the best of the others\" is the interval of the difference to the best other initializer, "
            "whichever it is. p: step-down max-T adjusted (Westfall & Young). d_z: mean paired difference over its "
            "sd, exact noncentral-t CI. wins: share of seeds on which it beats the reference (ties half). †: the "
            "paired differences hardly varied over seeds (below the data's resolution), which then stands in for "
            "their spread. ‡: worse by the step-down test, which rejects more than the intervals show (its "
            "interval to the best may still touch 0).", "",
            "### Learning curves", "",
            curve_table(analysis, dataset).to_markdown(index=False), "",
            f"Threshold: {analysis.curves.loc[analysis.curves['dataset'] == dataset, 'threshold'].iloc[0]:.4f} "
            f"(95% of the best initializer's mean final {_title(analysis.metric)}).", "",
            "### How many seeds?", "",
            *[f"- {sentence}" for sentence in advice_sentences(analysis, dataset)],
        ]
        if figures.get(dataset):
            lines += ["", *[f"![{Path(f).stem}]({f})" for f in figures[dataset] if "-sensitivity-" not in f]]
    across = figures.get(ACROSS, [])
    lines += transfer_report.markdown(analysis.transfer, next((f for f in across if "-transfer-" in f), None))
    lines += across_lines(analysis, [f for f in across if "-transfer-" not in f])
    lines += ["", "Raw runs, one row per (dataset, model, arm, seed, epoch): [results.csv](results.csv).", ""]
    return "\n".join(lines)


ACROSS = "across-tasks"  # the figures' key in ``figures``


def across_lines(analysis: Analysis, figures: list[str]) -> list[str]:
    """The 'Across tasks' section: aggregates of normalized scores and the rank test (none with one task)."""
    if analysis.across.empty:
        return []
    level = f"{analysis.settings.level:.0%}"
    rows = analysis.across
    table = pd.DataFrame({
        "initializer": rows["arm"],
        f"IQM [{level} CI]": [_interval(*r) for r in rows[["iqm", "iqm_low", "iqm_high"]].to_numpy()],
        f"mean [{level} CI]": [_interval(*r) for r in rows[["mean", "mean_low", "mean_high"]].to_numpy()],
        f"optimality gap [{level} CI]": [_interval(*r) for r in rows[["gap", "gap_low", "gap_high"]].to_numpy()],
    })
    lines = ["", f"## Across tasks ({int(rows['tasks'].iloc[0])})", "",
             f"Final {_title(analysis.metric)} normalized per task (0 = untrained networks' mean, 1 = the task's best "
             f"initializer mean), pooled over tasks and seeds; {level} stratified bootstrap intervals (seeds resampled "
             "within each task; Agarwal et al. 2021). Optimality gap: mean shortfall below 1.", "",
             table.to_markdown(index=False), ""]
    if analysis.ranks:
        r = analysis.ranks
        ranked = sorted(zip(r["mean_rank"], r["names"]))
        lines += [f"Mean rank over {r['tasks']} tasks (1 = best): "
                  + ", ".join(f"`{n}` {m:.2f}" for m, n in ranked)
                  + f". Friedman statistic {r['statistic']:.2f}, {'exact' if r['exact'] else 'permutation'} "
                  f"p = {_p(r['p'])}; " + (
                      f"critical difference {r['cd']:.2f} (the exact null distribution of the mean ranks' range, "
                      "as Nemenyi's test uses its asymptotic one; Demšar 2006): mean ranks at least that far apart "
                      "differ at 5%." if r["cd"] is not None else
                      f"with {r['tasks']} tasks no two mean ranks can be far enough apart to differ at 5%, so no "
                      "critical difference is claimed."), ""]
    lines += [f"![{Path(f).stem}]({f})" for f in figures]
    return lines


# ---------------------------------------------------------------- LaTeX

_TEX_ESCAPE = {
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def tex_escape(text: str) -> str:
    """Escapes LaTeX's special characters in a plain string."""
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(text))


def render_latex(meta: dict, analysis: Analysis) -> str:
    """``report.tex``: one booktabs table per dataset, ready for ``\\input{}``.

    Needs ``\\usepackage{booktabs}`` in the paper. Columns: the verdict, the mean with
    its Student t CI, the simultaneous interval of the difference to the best of the
    others (Hsu's MCB), the IQM and the diverged runs; the caption explains the verdicts.
    """
    level = f"{analysis.settings.level:.0%}".replace("%", r"\%")
    scale, unit = _points(analysis.metric)
    unit_tex = " pp" if unit else ""
    parts = [
        f"% initjax report {tex_escape(meta['experiment']['name'])}: generated, do not edit. "
        "Needs \\usepackage{booktabs}."
    ]
    for dataset, info in meta["tasks"].items():
        ranked = _ranked(analysis, dataset)
        mcb = analysis.comparisons[analysis.comparisons["dataset"] == dataset].set_index("arm")
        digits = 2 if unit else 4
        optimum, gaps = optimum_gaps(analysis, dataset, info)
        gaps = gaps.set_index("arm")
        rows = []
        for _, r in ranked.iterrows():
            name = tex_escape(r["arm"])
            mean = f"{r['mean']:.3f}" if pd.notna(r["mean"]) else "n/a"
            mean = rf"\textbf{{{mean}}}" if r["verdict"] == "best" else mean
            ci = f"[{r['mean_low']:.3f}, {r['mean_high']:.3f}]" if pd.notna(r["mean_low"]) else ""
            to_best = (f"[{scale * mcb.at[r['arm'], 'to_best_low']:+.{digits}f}, "
                       f"{scale * mcb.at[r['arm'], 'to_best_high']:+.{digits}f}]"
                       if "to_best_low" in mcb and pd.notna(mcb.at[r["arm"], "to_best_low"]) else "")
            iqm = f"{r['iqm']:.3f} [{r['iqm_low']:.3f}, {r['iqm_high']:.3f}]" if pd.notna(r["iqm_low"]) else (
                f"{r['iqm']:.3f}" if pd.notna(r["iqm"]) else "n/a")
            gap = " & " + _tex_gap(gaps, r["arm"]) if optimum is not None else ""
            rows.append(f"{name} & {r['verdict']} & {mean} {ci} & {to_best} & {iqm}{gap} & "
                        f"{r['diverged']}/{r['runs']} \\\\")
        caption = (
            f"{tex_escape(dataset)}, {tex_escape(info['model'])}: final {tex_escape(_title(analysis.metric))} over "
            f"{meta['experiment']['seeds']} seeds: mean with {level} Student $t$ CI; "
            f"$\\Delta$ best: {level} simultaneous interval of the difference to the best of the others{unit_tex} "
            r"(Hsu's multiple comparisons with the best from max-$T$ intervals of all pairs, better $> 0$); "
            f"IQM with {level} {tex_escape(analysis.settings.method)} bootstrap CI from {stats.IQM_MIN_SEEDS} seeds on "
            "where the test set's sampling error is not counted. "
            f"Verdicts: best ({_best_direction(analysis.metric)} mean, in bold); "
            f"equivalent (within {scale * analysis.margin:g}{unit_tex} of the best); "
            r"worse (another initializer is significantly better); inconclusive (neither: more seeds needed). "
            r"The verdicts hold together at the stated level."
            + (f" Gap: mean final test loss minus the generating process's own loss on these test examples "
               f"({optimum:.4f} nats/token), with the mean's CI." if optimum is not None else "")
        )
        parts += [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            r"\begin{tabular}{llcccc" + ("c" if optimum is not None else "") + "}",
            r"\toprule",
            f"Initializer & Verdict & Mean [{level} CI] & $\\Delta$ best & IQM & "
            + ("Gap (nats/token) & " if optimum is not None else "") + "Diverged \\\\",
            r"\midrule",
            *rows,
            r"\bottomrule",
            r"\end{tabular}",
            f"\\caption{{{caption}}}",
            f"\\label{{tab:initjax-{tex_escape(meta['experiment']['name'])}-{tex_escape(dataset)}-{run_id(meta)}}}"
            .replace(r"\_", "-"),
            r"\end{table}",
            "",
        ]
    label = f"tab:initjax-{meta['experiment']['name']}-transfer-{run_id(meta)}".replace("_", "-")
    parts += transfer_report.latex(analysis.transfer, tex_escape, label)
    return "\n".join(parts)


def _tex_gap(gaps: pd.DataFrame, arm: str) -> str:
    """One initializer's gap to the optimum with its CI, from :func:`optimum_gaps` indexed by arm."""
    if arm not in gaps.index or pd.isna(gaps.at[arm, "gap"]):
        return "n/a"
    gap = gaps.loc[arm]
    return f"{gap['gap']:+.3f} [{gap['gap_low']:+.3f}, {gap['gap_high']:+.3f}]"


def run_id(meta: dict) -> str:
    """Six hex digits naming the experiment as run (its every setting): LaTeX labels of two runs of one preset
    with other seeds or settings differ, so both tables can go into one paper."""
    return hashlib.sha256(json.dumps(meta["experiment"], sort_keys=True, default=str).encode()).hexdigest()[:6]


# ---------------------------------------------------------------- files


def write(
    out_dir: str | Path,
    results: pd.DataFrame,
    meta: dict,
    formats: Sequence[str] = FORMATS,
    metric: str | None = None,
    baseline: str | None = None,
    paired: bool = True,
    margin: float | None = None,
    test_outcomes: dict[str, dict] | None = None,
    fixed_test_set: bool | None = None,
    early: Sequence[drawing.Drawing] = (),
    statistic: str | None = None,
    previous: str | Path | None = None,
    dropped: set[str] | None = None,
    measure_peak: bool = False,
    shipped: dict | None = None,
) -> tuple[Analysis, list[Path]]:
    """Writes the report files into ``out_dir``, each atomically.

    ``previous``: where the report this one replaces is (``out_dir`` itself, or, where ``out_dir`` is a staged copy
    that replaces it as a whole, ``bench.store.staged``, the folder it replaces): its calibration is read there,
    and the figures a markdown-only render links; ``dropped`` (with a staged copy) collects the figures of that
    folder that must not be carried over (nothing to show this time). ``measure_peak``: the run that trained these
    results writes them, so ``meta``'s peak memory is taken again once the statistics and figures are done (the
    report's own peak was left out: 642 MiB recorded against 902 MiB measured on a 2,048-run study).
    ``shipped``: the record of the preset these runs are of, as shipped, that the report's first line compares
    them with (:func:`describe_run`).

    ``run.json`` and ``results.csv`` (floats in full precision, so a re-rendered
    report is identical; plus ``results.parquet`` when pyarrow is installed) with ``csv``; ``report.md`` with ``md``;
    ``report.tex`` with ``tex``; figures under ``figures/`` with ``png``/``pdf``.
    ``test_outcomes``: per-example test outcomes for the statistics (``outcomes.npz`` is
    the runner's to write, this only reads them). ``early``: figures begun before (:func:`draw_early`); those
    this report draws alike are not drawn again.

    Raises:
      UserError: unknown format, metric or baseline.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"unknown report format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    settings = settings_of(meta, margin, fixed_test_set, statistic)
    metric = metric or ranked_metric(results, meta)
    check_options(results, metric, baseline, settings, paired)  # before any figure is drawn
    image_formats = tuple(f for f in ("png", "pdf") if f in formats)
    if image_formats:
        drawing.warm()  # the workers import matplotlib while the statistics are computed
        try:
            (out_dir / "figures").mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"cannot write figures to {out_dir / 'figures'}: {error.strerror}; "
                            "choose another folder or --format md,csv") from None
    started = []  # (figures, their drawing): of the runs alone, drawn while the statistics are computed, then of
    # the comparisons, then of the rest

    previous = Path(previous) if previous is not None else out_dir

    def draw(analysed: Compared | Analysis, kinds: tuple[str, ...]) -> None:
        shown = _figure_jobs(out_dir, results, analysed, meta, kinds, image_formats, previous, dropped)
        started.append((shown, drawing.draw(shown.jobs, image_formats, started=early if kinds == RUNS_FIGURES else ())))

    draw(Compared(metric, None, paired, settings), RUNS_FIGURES)
    analysis = analyse(results, metric, baseline, paired, settings,
                       None if settings.fixed_test_set else test_outcomes, reference_of(meta),
                       lambda compared: draw(compared, COMPARED_FIGURES),
                       transfer.families(meta.get("experiment", {}).get("tasks", [])))
    files = []
    if "csv" in formats:
        table = results.to_csv(index=False)
        meta = {**meta, "format": FORMAT_VERSION, "results_sha256": hashlib.sha256(table.encode()).hexdigest()}
        files.append(write_atomic(out_dir / "results.csv", table))
        files += _parquet(out_dir, results)
    draw(analysis, LATE_FIGURES)
    drawn = [being_drawn for _, being_drawn in started]
    figure_files = [path for being_drawn in drawn for path in being_drawn.paths()]  # saved before the peak is read
    if measure_peak:
        meta = {**meta, "peak_rss_bytes": max(int(meta.get("peak_rss_bytes", 0)), memory.peak_rss_bytes())}
    if "csv" in formats:
        files.append(write_json_verified(out_dir / "run.json", meta))
    links = {(dataset, kind): link for shown, _ in started for (dataset, kind), link in shown.links.items()}
    figures = {dataset: [links[dataset, kind] for kind in (*FIGURES, *ACROSS_FIGURES) if (dataset, kind) in links]
               for dataset in [*meta["tasks"], ACROSS]}
    texts = {}
    if "tex" in formats:
        texts["report.tex"] = render_latex(meta, analysis)
    if "md" in formats:
        calibration = calibration_lines(out_dir if (out_dir / "calibration.json").is_file() else previous, results,
                                        analysis)
        texts["report.md"] = render_markdown(meta, analysis, figures, calibration, shipped)
    files += figure_files  # the text is written once the figures it links are
    files += [write_atomic(out_dir / name, text) for name, text in texts.items()]
    return analysis, files


FIGURES = ("curves", "final", "forest", "wins", "sensitivity")


def draw_early(out_dir: str | Path, task_results: pd.DataFrame, task: str, task_meta: dict,
               settings: stats.Settings) -> drawing.Drawing | None:
    """Starts drawing the figures of a finished task's runs alone (curves, final distributions, win matrix) in the
    figure workers, while the next tasks train; :func:`write` takes them as ``early`` and draws again only those
    that differ from its own (another ranked metric once every task is in, say). None where figures are drawn in
    this process (that would hold up the training) or the folder cannot be written (:func:`write` says so).

    ``task_results``: the task's rows as the full table will hold them; ``task_meta``: its entry of
    ``meta["tasks"]``.
    """
    if drawing.default_workers() == 0:
        return None
    out_dir = Path(out_dir)
    try:
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    meta = {"tasks": {task: task_meta}}
    image_formats = tuple(f for f in ("png", "pdf") if f in FORMATS)
    shown = _figure_jobs(out_dir, task_results, Compared(ranked_metric(task_results, meta), None, True, settings),
                         meta, RUNS_FIGURES, image_formats)
    return drawing.draw(shown.jobs, image_formats)


def runs_of(results: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One dataset's rows, indexed from 0 (a figure is the same drawn from the task's table alone)."""
    return results[results["dataset"] == dataset].reset_index(drop=True)


def _has_content(kind: str, results: pd.DataFrame, analysis: Analysis, dataset: str) -> bool:
    """Whether a figure of ``kind`` would show anything: finished runs, two initializers to compare, intervals."""
    if kind == "curves":  # epoch 0 is drawn even when every run diverged later
        return bool((~results.loc[results["dataset"] == dataset, "diverged"].astype(bool)).any())
    if kind == "final":
        return finished_arms(results, analysis.metric, dataset) > 0
    if kind == "wins":
        return finished_arms(results, analysis.metric, dataset) >= 2
    if kind == "sensitivity":
        return _tuning_of(analysis, dataset) is not None
    rows = analysis.comparisons
    return bool(rows.loc[rows["dataset"] == dataset, "to_best_low"].notna().any())


RUNS_FIGURES = ("curves", "final", "wins")  # drawn from the runs alone, while the statistics are computed
COMPARED_FIGURES = ("forest",)  # drawn once the comparisons exist
ACROSS_FIGURES = ("profile", "ranks", "transfer")  # of every task together
LATE_FIGURES = ("sensitivity", *ACROSS_FIGURES)  # need the rest of the analysis


@dataclasses.dataclass
class _Shown:
    """Figures of some kinds: the jobs to draw them, and the files the markdown links by (dataset or ACROSS, kind)."""

    jobs: list
    links: dict[tuple[str, str], str]


def _figure_jobs(out_dir: Path, results: pd.DataFrame, analysis: Analysis | Compared, meta: dict,
                 kinds: tuple[str, ...], image_formats: tuple[str, ...], previous: Path | None = None,
                 dropped: set[str] | None = None) -> _Shown:
    """The figures of ``kinds`` to draw (none without an image format) and the files the markdown links:
    those drawn now, or with ``md`` alone, those an earlier render drew (in ``previous``). A figure with nothing to
    show this time has its earlier files removed (they are not of these runs), or listed in ``dropped``."""
    previous = out_dir if previous is None else previous
    metric = analysis.metric
    suffix = f".{image_formats[0]}" if image_formats else ".png"
    shown = _Shown([], {})

    def add(dataset: str, kind: str, has_content: bool, figure: Callable[[], tuple[str, tuple]],
            shows: str = metric) -> None:
        name = path_name(f"{dataset}-{kind}-{shows}")
        stem = out_dir / "figures" / name
        if not has_content:  # e.g. every run diverged: nothing to draw
            for fmt in ("png", "pdf"):
                drawing.with_format(stem, fmt).unlink(missing_ok=True)
                if dropped is not None:
                    dropped.add(str(drawing.with_format(Path("figures") / name, fmt)))
            return
        if image_formats:
            shown.jobs.append(drawing.Job(*figure(), stem))
        if image_formats or drawing.with_format(previous / "figures" / name, suffix).is_file():
            shown.links[dataset, kind] = str(drawing.with_format(Path("figures") / name, suffix))

    for dataset in meta["tasks"]:
        for kind in (k for k in FIGURES if k in kinds):
            add(dataset, kind, _has_content(kind, results, analysis, dataset),
                lambda kind=kind, dataset=dataset: _figure_of(kind, results, analysis, dataset))
    if "profile" in kinds and not analysis.across.empty:
        add(ACROSS, "profile", True,
            lambda: ("performance_profile", (aggregate.performance_profile(results, metric), metric)))
    if "ranks" in kinds and analysis.ranks is not None:
        add(ACROSS, "ranks", True, lambda: ("critical_difference", (analysis.ranks,)))
    if "transfer" in kinds:
        add(ACROSS, "transfer", bool(analysis.transfer), lambda: ("transfer", (analysis.transfer, transfer.METRIC)),
            transfer.METRIC)
    return shown


def _figure_of(kind: str, results: pd.DataFrame, analysis: Analysis, dataset: str) -> tuple[str, tuple]:
    """One figure of the report (a function of ``bench.reporting.figures`` and its arguments), by kind."""
    rows = runs_of(results, dataset)  # what the worker is sent: this dataset's runs
    if kind == "curves":
        return "learning_curves", (rows, dataset, analysis.metric, analysis.settings.level)
    if kind == "final":
        return "final_distribution", (rows, dataset, analysis.metric)
    if kind == "forest":
        return "forest", (analysis.comparisons, dataset, analysis.settings.level)
    if kind == "sensitivity":
        return "sensitivity", (_tuning_of(analysis, dataset), dataset, analysis.metric)
    return "win_matrix", (compare.win_matrix(rows, analysis.metric, dataset, analysis.paired), dataset,
                          analysis.metric, analysis.paired)


def reference_of(meta: dict) -> dict:
    """The recipe's values of the grid factors (learning rate, weight decay from ``run.json``; init scale 1: the
    initializers as drawn), where a grid's ranking verdict is checked."""
    train = meta.get("experiment", {}).get("train", {})
    return {"init_scale": 1.0, **{factor: train[factor] for factor in ("lr", "weight_decay") if factor in train}}


def ranked_metric(results: pd.DataFrame, meta: dict) -> str:
    """The metric a report ranks unless told: the test loss when every task is a language model (token accuracy
    ignores how much probability the right token got), else ``stats.default_metric``."""
    tasks = meta.get("tasks", {}).values()
    if tasks and all(info.get("language_model") for info in tasks) and "test_loss" in results.columns:
        return "test_loss"
    return stats.default_metric(results)


def settings_of(meta: dict, margin: float | None = None, fixed_test_set: bool | None = None,
                statistic: str | None = None) -> stats.Settings:
    """The statistics settings a run recorded in ``run.json`` (older runs lack some: defaults), with overrides."""
    fields = {f.name for f in dataclasses.fields(stats.Settings)}
    recorded = {k: v for k, v in meta.get("statistics", {}).items() if k in fields}
    overrides = {k: v for k, v in (("margin", margin), ("fixed_test_set", fixed_test_set), ("statistic", statistic))
                 if v is not None}
    return dataclasses.replace(stats.Settings(**recorded), **overrides)


def calibration_lines(out_dir: Path, results: pd.DataFrame, analysis: Analysis) -> list[str] | None:
    """The calibration summary of ``out_dir/calibration.json`` if it was made from these runs and settings."""
    from bench.analysis import calibrate

    return calibrate.summary_lines(out_dir, results, analysis)


def _parquet(out_dir: Path, results: pd.DataFrame) -> list[Path]:
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


def read_record(path: str | Path) -> dict:
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
    return record


def load(run_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """Reads ``results.csv`` and ``run.json`` of a finished run.

    Raises:
      UserError: a file is missing or unreadable, naming it.
    """
    run_dir = Path(run_dir)
    csv, meta = run_dir / "results.csv", run_dir / "run.json"
    for path in (csv, meta):
        if not path.is_file():
            raise UserError(f"{path} not found; give the folder of a finished `python -m bench run`")
    meta_dict = read_record(meta)
    try:
        results = read_floats_exactly(csv, pd.read_csv(csv))
    except (ValueError, OSError) as error:
        raise UserError(f"{csv} is damaged ({type(error).__name__}); rerun the experiment") from None
    if "arm" not in results and "initializer" in results:  # written before arms had their own column
        results.insert(results.columns.get_loc("initializer"), "arm", results["initializer"])
    missing = {"dataset", "model", "arm", "seed", "epoch", "diverged"} - set(results.columns)
    if missing:
        raise UserError(f"{csv} lacks the columns {sorted(missing)}; it is not an initjax results table")
    check_against_run(results, meta_dict, csv)
    if meta_dict["results_sha256"] != hashlib.sha256(csv.read_bytes()).hexdigest():
        raise UserError(f"{csv} was changed after the run wrote it (its checksum in run.json differs); "
                        "rerun the experiment (finished chunks are reused) or restore the file")
    results["diverged"] = results["diverged"].astype(bool)
    if "diverged_epoch" in results:  # integers with gaps read back as floats; keep them integers
        results["diverged_epoch"] = results["diverged_epoch"].astype("Int64")
    return results, meta_dict


def _row(keys, values) -> str:
    """``dataset=digits, seed=4, ...`` with numpy scalars as plain numbers."""
    return ", ".join(f"{k}={v.item() if hasattr(v, 'item') else v}" for k, v in zip(keys, values))


def check_against_run(results: pd.DataFrame, meta: dict, csv: Path) -> None:
    """Checks that ``results`` holds exactly the runs ``run.json`` describes: tasks, initializers, seeds, epochs.

    Every (task, initializer, seed[, data order]) must have one row per epoch ``0..E``
    and nothing else, so a truncated table (a final epoch missing) or an edited name
    (a phantom initializer with one run) is refused rather than reported.

    Raises:
      UserError: naming the first row that is missing or should not be there.
    """
    remedy = "rerun the experiment (finished chunks are reused) or restore the file"
    try:
        experiment = meta["experiment"]
        names, tasks = list(meta["initializers"]), list(meta["tasks"])
        seeds, orders = int(experiment["seeds"]), int(experiment.get("data_seeds", 1))
        epochs = int(experiment["train"]["epochs"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{csv.with_name('run.json')} lacks the experiment's tasks, initializers, seeds or epochs; "
                        f"{remedy}") from None
    for column, known, what in (("dataset", tasks, "task"), ("arm", names, "arm")):
        extra = sorted(set(results[column].astype(str)) - set(known))
        if extra:
            raise UserError(f"{csv} has the {what} {extra[0]!r}, which run.json does not list ({', '.join(known)}); "
                            f"{remedy}")
    keys = ["dataset", "arm", "seed"] + (["data_seed"] if orders > 1 else []) + ["epoch"]
    levels = [tasks, names, range(seeds)] + ([range(orders)] if orders > 1 else []) + [range(epochs + 1)]
    expected = pd.MultiIndex.from_product(levels, names=keys)
    try:
        got = pd.MultiIndex.from_frame(results[keys].astype({k: int for k in keys[2:]}))
    except (KeyError, ValueError, TypeError):
        raise UserError(f"{csv} lacks or damages the columns {', '.join(keys)}; {remedy}") from None
    if got.has_duplicates:
        raise UserError(f"{csv} has the row {_row(keys, got[got.duplicated()][0])} twice; {remedy}")
    missing, extra = expected.difference(got), got.difference(expected)
    if len(missing) or len(extra):
        row, problem = (missing[0], "lacks") if len(missing) else (extra[0], "has an unexpected")
        raise UserError(f"{csv} {problem} row {_row(keys, row)} ({len(got)} rows; run.json describes "
                        f"{len(expected)}); {remedy}")

