"""A task's speed: epochs to a target with censored runs (Kaplan-Meier, RMST and their verdicts) and the area under
the learning curve with its verdicts (``bench.analysis.speed``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import separation, speed
from bench.reporting.analysed import Analysis, has_finished_runs
from bench.reporting.record import RunRecord
from bench.reporting.section import Figure, Section, View
from bench.reporting.text import interval, points, tex_escape, title


def compute(results: pd.DataFrame, analysis: Analysis, record: RunRecord) -> dict[str, speed.TaskSpeed]:
    """Task name -> its :class:`bench.analysis.speed.TaskSpeed` (none for runs of one epoch)."""
    if not record.has_curves():
        return {}
    found = speed.analyse(results, analysis.metric, analysis.settings, analysis.paired, analysis.settings.margin,
                          speed.parse_target(record.statistics.get("speed_target")))
    return {key[0]: item for key, item in found.items()}


def _item(view: View) -> speed.TaskSpeed | None:
    return view.analysis.sections.get("speed", {}).get(view.task)


def _epochs(value: float) -> str:
    return "never" if not np.isfinite(value) else f"{value:g}"


def _median(row) -> str:
    if not np.isfinite(row["median"]):
        return "not reached"
    high = "∞" if not np.isfinite(row["median_high"]) else f"{row['median_high']:g}"
    return f"{row['median']:g} [{_epochs(row['median_low'])}, {high}]"


def time_table(item: speed.TaskSpeed, level: float) -> pd.DataFrame:
    """One row per initializer, fastest first: verdict, share reaching the target, Kaplan-Meier median, RMST and
    the MCB interval to the fastest other (epochs; above 0: slower)."""
    a = item.arms
    return pd.DataFrame({
        "initializer": a["arm"], "verdict": a["verdict"],
        f"reached [{level:.0%} CI]": [f"{r:.0%} [{lo:.0%}, {hi:.0%}]" for r, lo, hi in
                                     zip(a["reached"], a["reached_low"], a["reached_high"])],
        f"median epochs [{level:.0%} CI]": [_median(row) for _, row in a.iterrows()],
        f"RMST epochs [{level:.0%} CI]": [interval(m, lo, hi, digits=2) for m, lo, hi in
                                         zip(a["rmst"], a["rmst_low"], a["rmst_high"])],
        "to the fastest of the others [sim. CI]": [f"[{lo:+.2f}, {hi:+.2f}]" if np.isfinite(lo) else "n/a"
                                                   for lo, hi in zip(a["to_best_low"], a["to_best_high"])],
    })


def auc_table(item: speed.TaskSpeed, level: float) -> pd.DataFrame:
    """One row per initializer, best first: the area's verdict, mean with its interval and the MCB interval to the
    best other."""
    v = item.auc_verdicts
    scale, unit = points(item.metric)
    return pd.DataFrame({
        "initializer": v["arm"], "verdict": v["verdict"],
        f"mean height [{level:.0%} CI]": [interval(m, lo, hi) for m, lo, hi in
                                          zip(v["mean"], v["mean_low"], v["mean_high"])],
        "to the best of the others [sim. CI]": [f"[{scale * lo:+.2f}, {scale * hi:+.2f}]{unit}"
                                                if np.isfinite(lo) else "n/a"
                                                for lo, hi in zip(v["to_best_low"], v["to_best_high"])],
    })


def separation_table(item: speed.TaskSpeed) -> pd.DataFrame:
    """One row per pair whose curves' simultaneous bands separate somewhere: which is ahead, the first and last
    epochs of separation, whether at the end, and the largest gap with its band."""
    s = item.separations
    scale, unit = points(item.metric)
    return pd.DataFrame({
        "ahead": s["ahead"], "behind": s["behind"], "first epoch apart": [f"{v:g}" for v in s["first"]],
        "last epoch apart": [f"{v:g}" for v in s["last"]],
        "apart at the end": ["yes" if v else "no" for v in s["at_end"]],
        "largest gap [sim. band]": [f"{scale * g:+.2f}{unit} [{scale * lo:+.2f}, {scale * hi:+.2f}] at {at:g}"
                                    for g, lo, hi, at in zip(s["largest"], s["low"], s["high"], s["at"])],
    })


def _separation_lines(item: speed.TaskSpeed, level: float) -> list[str]:
    if item.separations is None:
        why = (f"more than {separation.MAX_ARMS} initializers ({len(item.arms)})" if len(item.arms) >
               separation.MAX_ARMS else "runs not paired by seed")
        return [f"No bands of the curves' differences: {why}.", ""]
    s = item.separations
    words = (f"Every pair's difference of {title(item.metric)} at every evaluation (epochs {item.first:g}.."
             f"{item.tau:g}) has a band, all of them holding together with probability {level:.0%} (max-T over "
             f"pairs and evaluations, paired by seed: ±{s.attrs['c']:.2f} standard errors); a pair is apart where "
             "its band excludes 0. Apart early and not at the end: faster early, equal late; a pair listed both ways: "
             "the curves cross.")
    if s.attrs.get("undecided"):
        words += (f" {s.attrs['undecided']} pair-evaluation(s) apart or not within the Monte Carlo error of that "
                  "critical value are not called apart (Gandy 2009): where it is apart, a band excludes 0 at the "
                  "upper end of the critical value's Monte Carlo interval too.")
    if s.empty:
        return [f"No two curves are apart at any evaluation. {words}", ""]
    return [separation_table(item).to_markdown(index=False), "", words, ""]


def _said(item: speed.TaskSpeed) -> str:
    return f"{title(item.metric)} {item.target:.4g} ({item.chosen})"


def markdown(view: View) -> list[str]:
    item = _item(view)
    if item is None:
        return []
    level = view.analysis.settings.level
    paired = "paired by seed" if view.analysis.paired else "unpaired (Welch)"
    return [
        f"### Speed: epochs to {_said(item)}", "",
        time_table(item, level).to_markdown(index=False), "",
        f"Each run's time is its first epoch at or past the target; a run that never gets there by epoch {item.tau:g} "
        f"(the end of training) is censored there, and so is one that diverged (it never gets there after "
        f"diverging). Median: Kaplan-Meier's with its {level:.0%} interval (not reached: fewer than half the runs "
        f"got there). RMST: the restricted mean time, the mean of min(time, {item.tau:g}) epochs, which is the area "
        f"under the Kaplan-Meier curve to epoch {item.tau:g}. Verdicts compare the RMSTs as the final metric is "
        f"compared ({level:.0%} simultaneous max-T intervals, {paired}, the fastest picked from the same runs; "
        f"*equivalent* within {item.margin:g} epochs, {speed.SPEED_MARGIN:.0%} of training; *slower*: another "
        "initializer is significantly faster); intervals over seeds, conditional on the test set.", "",
        *view.image("time_to_target"), "",
        f"### Area under the learning curve: {title(item.metric)}", "",
        auc_table(item, level).to_markdown(index=False), "",
        f"Each run's mean {title(item.metric)} over epochs {item.first:g}..{item.tau:g} (diverged epochs scored as an "
        "untrained network): a curve that gets there sooner has more area. Verdicts as above, in the metric's "
        "units with its margin.", "",
        f"### Where the curves separate: {title(item.metric)}", "",
        *_separation_lines(item, level),
    ]


def _tex_table(table: pd.DataFrame, caption: str, align: str) -> list[str]:
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{caption}}}",
             rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(tex_escape(c) for c in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(tex_escape(str(v)) for v in row) + r" \\" for row in table.itertuples(index=False)]
    return lines + [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]


def latex(view: View) -> list[str]:
    item = _item(view)
    if item is None:
        return []
    level = view.analysis.settings.level
    task = tex_escape(view.task)
    lines = _tex_table(time_table(item, level),
                       rf"{task}: epochs to {tex_escape(_said(item))}, censored at epoch {item.tau:g}; RMST: "
                       "restricted mean time, verdicts from simultaneous max-T intervals.", "l l r r r r")
    lines += _tex_table(auc_table(item, level),
                        rf"{task}: area under the {tex_escape(title(item.metric))} curve (its mean height over epochs "
                        rf"{item.first:g}--{item.tau:g}), verdicts from simultaneous max-T intervals.", "l l r r")
    if item.separations is not None and not item.separations.empty:
        lines += _tex_table(separation_table(item),
                            rf"{task}: " + tex_escape(f"where the {title(item.metric)} curves separate: the epochs "
                                                      f"where the simultaneous {level:.0%} band of the pair's "
                                                      "difference excludes 0."),
                            "l l r r l r")
    return lines


def console(view: View) -> str | None:
    item = _item(view)
    if item is None:
        return None
    table = time_table(item, view.analysis.settings.level)
    keep = [c for c in table.columns if not c.startswith("to the fastest")]
    return (f"{view.task}: epochs to {_said(item)}; RMST: mean epochs, a run that never gets there counted as "
            f"{item.tau:g}; best: the fastest, slower: another is significantly faster, equivalent: within "
            f"{item.margin:g} epochs\n" + table[keep].to_markdown(index=False, tablefmt="simple"))


def _figure(results, analysis, task):
    item = analysis.sections["speed"][task]
    return "time_to_target", (item.runs, task, item.metric, item.target, item.first, item.tau,
                              analysis.settings.level)


SECTION = Section(
    "speed", "task", markdown=markdown, latex=latex, console=console, compute=compute,
    figures=(Figure("time_to_target", "late", _figure,
                    lambda results, analysis, task: task in analysis.sections.get("speed", {}), inline=True,
                    caption=("share of runs at the target by each epoch (Kaplan-Meier: censored runs at the end of "
                             "training), with {level} Wilson bands at each epoch over seeds.")),),
    when=lambda view: has_finished_runs(view.analysis, view.task),
)
