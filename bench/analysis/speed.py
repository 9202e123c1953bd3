"""How fast each initializer trains, with verdicts: epochs to a target (censored where a run never reaches it) and
the area under the learning curve.

**Time to target.** For a target on the ranked metric (by default :data:`FRACTION` of the task's best mean final
value: 95% of the best accuracy, the best loss / 0.95; or as :func:`parse_target` reads a user's: a level, another
share, another metric), each run's time is the first epoch (or fraction of one, with evaluations within epochs) at
or past it (``bench.analysis.stats.run_curves``). A run that never reaches it is censored at the end of training
``tau``. A run that diverged counts from its divergence on as an untrained network (``bench.analysis.scoring``): it
never reaches the target after diverging, so it is censored at ``tau`` too, not at its divergence (censoring it there
would treat the diverged run as one that might still get there, which favours the initializer that diverges).
Censoring is therefore administrative only, at one known time, and every run's *restricted* time ``min(T, tau)``
is observed. Per initializer:

- the share of runs reaching the target (Wilson interval);
- the Kaplan-Meier median time with its interval (``scipy.stats.ecdf``; "not reached" where fewer than half do);
- the restricted mean time to target, RMST = the mean of ``min(T, tau)`` = the area under the Kaplan-Meier curve
  up to ``tau``, with its Student t interval.

**Verdicts on speed.** The RMSTs are compared as the final metric is (``bench.analysis.verdicts``): simultaneous
max-T intervals of every pairwise difference, paired by seed where the runs share seeds, Hsu's comparisons with
the fastest after picking it, *equivalent* within :data:`SPEED_MARGIN` of the training length. Restricted times lie
on a lattice of epochs (and pile up at ``tau`` when many runs are censored): the standard deviations are floored at
the lattice's step, as for accuracies. Family-wise error, coverage and power are measured by simulation at 8, 16
and 32 seeds with 0%, 30% and 70% of runs censored (``tests/analysis/test_speed.py``). Intervals are over seeds,
conditional on the test set.

**The whole curve.** Each run's area under its learning curve (its mean height over the epochs) gets the same
simultaneous intervals and verdicts, in the metric's units with its margin.

References: Kaplan & Meier 1958, JASA 53(282); Royston & Parmar 2013, BMC Med. Res. Methodol. 13:152 (RMST);
Dahl et al. 2023, "Benchmarking neural network training algorithms" (AlgoPerf: time to a target).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bench.analysis import scoring, separation, stats, verdicts
from bench.analysis.columns import TASK, final_epoch, higher_is_better
from bench.analysis.compare import default_margin
from bench.errors import UserError

FRACTION = 0.95  # the default target: this fraction of the task's best mean final value
SPEED_MARGIN = 0.05  # "equivalent" speed: within this fraction of the training length (0.5 epoch of 10)
SLOWER = {"worse": "slower"}  # the verdicts' words for speed


@dataclasses.dataclass(frozen=True)
class TaskSpeed:
    """One task's speed analysis.

    Attributes:
      metric, target: the metric and the level a run must reach (at or above it; at or below for a loss).
      chosen: how the target was chosen, in words (:meth:`Target.words`).
      first, tau: the first and last epochs (a run not at the target by ``tau`` is censored there); with evaluations
        within epochs, times are in fractions of an epoch (``bench.training.results.evaluation_epochs``).
      margin: the equivalence margin of the restricted mean times, in epochs.
      runs: one row per run: ``arm, seed, time`` (first epoch at the target; NaN: never), ``reached``,
        ``restricted`` (``min(time, tau)``), ``auc`` (mean height of its curve, diverged epochs scored).
      arms: one row per initializer: ``runs, reached, reached_low, reached_high, median, median_low, median_high``
        (Kaplan-Meier; inf: not reached), ``rmst, rmst_low, rmst_high``, ``verdict`` (on speed) and ``to_best_low,
        to_best_high`` (the MCB interval of its RMST minus the fastest other's, in epochs: above 0 is slower).
      time_verdicts, auc_verdicts: ``bench.analysis.verdicts.verdicts``' tables of the restricted times (lower is
        better) and of the areas (the metric's direction; with each area's mean and its Student t interval,
        ``mean_low, mean_high``).
      separations: per pair whose curves' simultaneous bands separate somewhere, where
        (``bench.analysis.separation.separations``); None for unpaired runs or more than
        ``separation.MAX_ARMS`` initializers.
    """

    metric: str
    target: float
    chosen: str
    first: float
    tau: float
    margin: float
    runs: pd.DataFrame
    arms: pd.DataFrame
    time_verdicts: pd.DataFrame
    auc_verdicts: pd.DataFrame
    separations: pd.DataFrame | None = None


@dataclasses.dataclass(frozen=True)
class Target:
    """The level a run must reach: ``value`` itself, or with ``fraction`` that share of the task's best mean final
    value (a loss: the best divided by it); on ``metric`` (None: the metric the report ranks)."""

    value: float = FRACTION
    fraction: bool = True
    metric: str | None = None

    def words(self) -> str:
        """``95% of the best mean final`` (a loss: ``..., the best divided by 0.95``), or ``given``."""
        if not self.fraction:
            return "given"
        loss = self.metric is not None and not higher_is_better(self.metric)
        return f"{self.value:.0%} of the best mean final" + (f", the best divided by {self.value:g}" if loss else "")


DEFAULT_TARGET = Target()


def parse_target(spec: str | None, flag: str = "speed target") -> Target:
    """A :class:`Target` from ``0.9`` (the level), ``90%`` (of the best mean final) or ``test_loss=0.3`` /
    ``test_accuracy=90%`` (another metric); None: :data:`DEFAULT_TARGET`.

    Raises:
      UserError: naming ``flag``, on anything else.
    """
    if spec is None:
        return DEFAULT_TARGET
    metric, _, level = str(spec).strip().rpartition("=")
    fraction = level.strip().endswith("%")
    try:
        value = float(level.strip().removesuffix("%")) / (100 if fraction else 1)
    except ValueError:
        value = np.nan
    if not np.isfinite(value) or fraction and not 0 < value <= 1 or metric.strip() == "" and "=" in str(spec):
        raise UserError(f"{flag} {spec!r} is not a level (0.9), a share of the best mean final (90%, above 0 and at "
                        "most 100%) or either for a metric (test_loss=0.3)")
    return Target(value, fraction, metric.strip() or None)


def targets(results: pd.DataFrame, metric: str, target: Target = DEFAULT_TARGET) -> dict[tuple, float]:
    """Per task ``(dataset, model)``: the level of ``target`` on ``metric``; for a share, of the best initializer's
    mean final value with diverged runs scored (``bench.analysis.scoring``)."""
    out = {}
    for key, task in results.groupby(TASK, sort=False):
        if not target.fraction:
            out[key] = target.value
            continue
        final = final_epoch(task)
        means = scoring.scored_values(final, metric, scoring.diverged_score(task, metric)).groupby(
            final["arm"], sort=False).mean()
        best = means.max() if higher_is_better(metric) else means.min()
        out[key] = best * target.value if higher_is_better(metric) else best / target.value
    return out


def kaplan_meier(time: np.ndarray, reached: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """``(median, low, high)`` of the time to target by Kaplan-Meier (``scipy.stats.ecdf`` of right-censored data,
    its log-log Greenwood band): the first time the curve of runs not yet at the target falls to one half or below,
    and the first times its band's lower and upper curves do (as lifelines computes it); inf where it does not.

    Args:
      time: `(runs,)` each run's time, or its censoring time where ``reached`` is False.
    """
    time, reached = np.asarray(time, np.float64), np.asarray(reached, bool)
    if not reached.any():
        return (np.inf, np.inf, np.inf)
    survival = scipy_stats.ecdf(scipy_stats.CensoredData(uncensored=time[reached], right=time[~reached])).sf
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # the band is undefined where the curve reaches 0 or 1
        band = survival.confidence_interval(level, method="log-log")
    at = survival.probabilities

    def first(curve: np.ndarray) -> float:
        below = np.flatnonzero(np.where(np.isnan(curve), at, curve) <= 0.5)
        return float(survival.quantiles[below[0]]) if below.size else np.inf

    return first(at), first(band.low.probabilities), first(band.high.probabilities)


def task_speed(task: pd.DataFrame, metric: str, target: float, score: float, settings: stats.Settings,
               paired: bool = True, margin: float | None = None, chosen: str = "given") -> TaskSpeed | None:
    """The :class:`TaskSpeed` of one task's rows (every epoch); None with fewer than two epochs.

    Args:
      score: a diverged run's value from its divergence on (``bench.analysis.scoring.diverged_score``).
      margin: the metric's equivalence margin, for the areas' verdicts (None: ``compare.default_margin``).
      chosen: how the target was chosen, in words (:meth:`Target.words`).
    """
    first, tau = task["epoch"].min(), task["epoch"].max()
    if tau <= first:
        return None
    if "data_seed" in task and task["data_seed"].nunique() > 1:  # crossed data orders: each init seed's mean curve
        scored = task.assign(**{metric: scoring.scored_values(task, metric, score)})
        task = scored.groupby([*TASK, "arm", "seed", "epoch"], sort=False, as_index=False).agg(
            **{metric: (metric, "mean"), "diverged": ("diverged", "max")}).assign(diverged=False)
    curves = stats.run_curves(task, metric, target, score)
    names = list(dict.fromkeys(task["arm"]))
    apart = _separations(task, metric, score, names, settings) if paired and len(names) <= separation.MAX_ARMS \
        else None
    reached = curves["epochs_to_threshold"].notna()
    runs = pd.DataFrame({"arm": curves["arm"], "seed": curves["seed"], "time": curves["epochs_to_threshold"],
                         "reached": reached, "restricted": curves["epochs_to_threshold"].fillna(tau).clip(upper=tau),
                         "auc": curves["auc"]})
    matrix = {column: runs.pivot_table(index="seed", columns="arm", values=column, aggfunc="mean")
              .reindex(columns=names).to_numpy(np.float64) for column in ("restricted", "auc")}
    speed_margin = SPEED_MARGIN * (tau - first)
    rng = stats.group_rng(settings.seed, *task[TASK].iloc[0], metric, "speed")
    times = verdicts.verdicts(matrix["restricted"], names, False, speed_margin, settings.level, rng,
                              settings.draws, paired)
    areas = verdicts.verdicts(matrix["auc"], names, higher_is_better(metric),
                              default_margin(metric) if margin is None else margin, settings.level, rng,
                              settings.draws, paired)
    spans = {arm: stats.t_interval(matrix["auc"][:, i][np.isfinite(matrix["auc"][:, i])], settings.level)
             for i, arm in enumerate(names)}
    areas = areas.assign(mean_low=areas["arm"].map(lambda a: spans[a][0]),
                         mean_high=areas["arm"].map(lambda a: spans[a][1]))
    rows = []
    by_arm = times.set_index("arm")
    for arm in names:
        mine = runs[runs["arm"] == arm]
        n, hits = len(mine), int(mine["reached"].sum())
        low, high = stats.wilson_ci(hits, n, settings.level)
        median = kaplan_meier(mine["restricted"].to_numpy(), mine["reached"].to_numpy(), settings.level)
        rmst_low, rmst_high = stats.t_interval(mine["restricted"].to_numpy(np.float64), settings.level)
        verdict = str(by_arm.at[arm, "verdict"]) if arm in by_arm.index else "no runs"
        rows.append({"arm": arm, "runs": n, "reached": hits / n if n else np.nan, "reached_low": low,
                     "reached_high": high, "median": median[0], "median_low": median[1], "median_high": median[2],
                     "rmst": float(mine["restricted"].mean()), "rmst_low": rmst_low, "rmst_high": rmst_high,
                     "verdict": SLOWER.get(verdict, verdict),
                     "to_best_low": -by_arm.at[arm, "to_best_high"] if arm in by_arm.index else np.nan,
                     "to_best_high": -by_arm.at[arm, "to_best_low"] if arm in by_arm.index else np.nan})
    arms = pd.DataFrame(rows).sort_values(["rmst", "reached"], ascending=[True, False], kind="stable")
    return TaskSpeed(metric, float(target), chosen, first, tau, speed_margin, runs, arms.reset_index(drop=True),
                     times, areas, apart)


def _separations(task: pd.DataFrame, metric: str, score: float, names: list[str],
                 settings: stats.Settings) -> pd.DataFrame:
    """``bench.analysis.separation.separations`` of one task's curves (diverged epochs scored), seeds paired."""
    scored = task.assign(**{metric: scoring.scored_values(task, metric, score)})
    table = scored.pivot_table(index=["arm", "seed"], columns="epoch", values=metric, aggfunc="mean", dropna=False)
    seeds = sorted(set(task["seed"]))
    table = table.reindex(pd.MultiIndex.from_product([names, seeds], names=["arm", "seed"]))
    curves = table.to_numpy(np.float64).reshape(len(names), len(seeds), table.shape[1])
    rng = stats.group_rng(settings.seed, *task[TASK].iloc[0], metric, "separation")
    return separation.separations(curves, names, table.columns.to_numpy(np.float64), higher_is_better(metric),
                                  settings.level, rng, settings.draws)


def analyse(results: pd.DataFrame, metric: str, settings: stats.Settings, paired: bool = True,
            margin: float | None = None, target: Target = DEFAULT_TARGET) -> dict[tuple, TaskSpeed]:
    """Per task ``(dataset, model)``: its :class:`TaskSpeed` on ``target.metric`` (None: ``metric``, the one the
    report ranks; ``margin`` is for it, another metric's areas get their default). Left out: tasks of one epoch, with
    no finished run, or, for a share of the best, whose best mean is below 0 (a score of runs trained elsewhere: a
    share of it is no target).

    Raises:
      UserError: a target metric the results lack.
    """
    if target.metric is not None and target.metric not in stats.metric_columns(results):
        raise UserError(f"the speed target's metric {target.metric!r} is not in the results; they have "
                        f"{', '.join(stats.metric_columns(results))}")
    if target.metric is not None and target.metric != metric:
        metric, margin = target.metric, None
    target = dataclasses.replace(target, metric=metric)
    goals = targets(results, metric, target)
    scores = scoring.task_scores(results, metric)
    out = {}
    for key, task in results.groupby(TASK, sort=False):
        if not np.isfinite(goals[key]) or target.fraction and goals[key] < 0:
            continue
        speed = task_speed(task, metric, goals[key], scores[key], settings, paired, margin, target.words())
        if speed is not None:
            out[key] = speed
    return out
