"""Each task's summary: its heading, data and cost, and per initializer, best first, the verdict with the mean and
IQM of the ranked metric, the loss and the diverged runs; the table printed after a run; the task's booktabs table
in ``report.tex``."""

from __future__ import annotations

import pandas as pd

from bench.analysis import stats
from bench.reporting.analysed import Analysis, ranked
from bench.reporting.describe import throughput
from bench.reporting.section import Section, View
from bench.reporting.sections.optimum import optimum_gaps
from bench.reporting.text import best_direction, interval, points, tex_escape, title


def summary_table(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """Per initializer, best first: verdict, mean and IQM of the ranked metric with CIs, the loss, divergence."""
    level = f"{analysis.settings.level:.0%}"
    rows = ranked(analysis, dataset)
    others = analysis.summary[analysis.summary["dataset"] == dataset].set_index(["arm", "metric"])
    metric = analysis.metric
    shown = list(dict.fromkeys(analysis.summary["metric"]))
    second = "test_loss" if metric != "test_loss" else next((m for m in shown if m != metric), metric)
    table = {
        "rank": range(1, len(rows) + 1),
        "initializer": rows["arm"],
        "verdict": rows["verdict"],
        f"{title(metric)} mean [{level} CI]": [
            interval(r["mean"], r["mean_low"], r["mean_high"]) for _, r in rows.iterrows()
        ],
        f"IQM [{level} CI]": [interval(r["iqm"], r["iqm_low"], r["iqm_high"]) for _, r in rows.iterrows()],
        "median": [f"{v:.3f}" if pd.notna(v) else "n/a" for v in rows["median"]],
        "std": [f"{v:.4f}" if pd.notna(v) else "n/a" for v in rows["std"]],
    }
    if second in set(analysis.summary["metric"]):
        table[f"{title(second)} mean [{level} CI]"] = [
            interval(*others.loc[(n, second), ["mean", "mean_low", "mean_high"]]) for n in rows["arm"]
        ]
    table["diverged"] = [
        f"{d}/{r}" + (f" [{lo:.0%}, {hi:.0%}]" if d else "")
        for d, r, lo, hi in zip(rows["diverged"], rows["runs"], rows["diverged_low"],
                                   rows["diverged_high"])
    ]
    return pd.DataFrame(table)


def markdown(view: View) -> list[str]:
    return ["", f"## {view.task}: {view.info.model}", "",
            f"Data: {view.info.data}.", "",
            f"{view.info.runs} runs." if view.record.external else throughput(view.info), "",
            summary_table(view.analysis, view.task).to_markdown(index=False), ""]


def console(view: View) -> str:
    """The summary without the IQM, median and sd columns."""
    table = summary_table(view.analysis, view.task)
    keep = [c for c in table.columns if not c.startswith(("IQM", "median", "std"))]
    return (f"{view.task}: {view.info.model}, {view.info.runs} runs\n"
            + table[keep].to_markdown(index=False, tablefmt="simple"))


def _tex_gap(gaps: pd.DataFrame, arm: str) -> str:
    """One initializer's gap to the optimum with its CI, from ``optimum_gaps`` indexed by arm."""
    if arm not in gaps.index or pd.isna(gaps.at[arm, "gap"]):
        return "n/a"
    gap = gaps.loc[arm]
    return f"{gap['gap']:+.3f} [{gap['gap_low']:+.3f}, {gap['gap_high']:+.3f}]"


def _tex_rows(view: View, scale: float, digits: int, gaps: pd.DataFrame | None) -> list[str]:
    analysis, dataset = view.analysis, view.task
    mcb = analysis.comparisons[analysis.comparisons["dataset"] == dataset].set_index("arm")
    rows = []
    for _, r in ranked(analysis, dataset).iterrows():
        name = tex_escape(r["arm"])
        mean = f"{r['mean']:.3f}" if pd.notna(r["mean"]) else "n/a"
        mean = rf"\textbf{{{mean}}}" if r["verdict"] == "best" else mean
        ci = f"[{r['mean_low']:.3f}, {r['mean_high']:.3f}]" if pd.notna(r["mean_low"]) else ""
        to_best = (f"[{scale * mcb.at[r['arm'], 'to_best_low']:+.{digits}f}, "
                   f"{scale * mcb.at[r['arm'], 'to_best_high']:+.{digits}f}]"
                   if "to_best_low" in mcb and pd.notna(mcb.at[r["arm"], "to_best_low"]) else "")
        iqm = f"{r['iqm']:.3f} [{r['iqm_low']:.3f}, {r['iqm_high']:.3f}]" if pd.notna(r["iqm_low"]) else (
            f"{r['iqm']:.3f}" if pd.notna(r["iqm"]) else "n/a")
        gap = " & " + _tex_gap(gaps, r["arm"]) if gaps is not None else ""
        rows.append(f"{name} & {r['verdict']} & {mean} {ci} & {to_best} & {iqm}{gap} & "
                    f"{r['diverged']}/{r['runs']} \\\\")
    return rows


def latex(view: View) -> list[str]:
    """One booktabs table, ready for ``\\input{}`` (needs ``\\usepackage{booktabs}``): the verdict, the mean with
    its Student t CI, the simultaneous interval of the difference to the best of the others (Hsu's MCB), the IQM
    and the diverged runs; the caption explains the verdicts.

    Written as lines rather than by ``pandas.io.formats.style.Styler.to_latex``: every cell is already a formatted
    string (an interval, a bold best, escaped names), which the Styler would only join, and it needs jinja2, which
    the core install does not have."""
    analysis, dataset, info, record = view.analysis, view.task, view.info, view.record
    level = f"{analysis.settings.level:.0%}".replace("%", r"\%")
    scale, unit = points(analysis.metric)
    unit_tex = " pp" if unit else ""
    optimum, gaps = optimum_gaps(analysis, dataset, info)
    rows = _tex_rows(view, scale, 2 if unit else 4, gaps.set_index("arm") if optimum is not None else None)
    caption = (
        f"{tex_escape(dataset)}, {tex_escape(info.model)}: final {tex_escape(title(analysis.metric))} over "
        f"{record.experiment['seeds']} seeds: mean with {level} Student $t$ CI; "
        f"$\\Delta$ best: {level} simultaneous interval of the difference to the best of the others"
        + (" in percentage points (the mean is a fraction)" if unit else "") + " "
        r"(Hsu's multiple comparisons with the best from max-$T$ intervals of all pairs, better $> 0$); "
        f"IQM with {level} {tex_escape(analysis.settings.method)} bootstrap CI from {stats.IQM_MIN_SEEDS} seeds on "
        "where the test set's sampling error is not counted. "
        f"Verdicts: best ({best_direction(analysis.metric)} mean, in bold); "
        f"equivalent (within {scale * analysis.margin:g}{unit_tex} of the best); "
        r"worse (another initializer is significantly better); inconclusive (neither: more seeds needed). "
        r"The verdicts hold together at the stated level."
        + (f" Gap: mean final test loss minus the generating process's own loss on these test examples "
           f"({optimum:.4f} nats/token), with the mean's CI." if optimum is not None else "")
    )
    return [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{llcccc" + ("c" if optimum is not None else "") + "}",
        r"\toprule",
        f"Initializer & Verdict & Mean [{level} CI] & $\\Delta$ best{' (pp)' if unit else ''} & IQM & "
        + ("Gap (nats/token) & " if optimum is not None else "") + "Diverged \\\\",
        r"\midrule",
        *rows,
        r"\bottomrule",
        r"\end{tabular}",
        f"\\caption{{{caption}}}",
        f"\\label{{tab:initjax-{tex_escape(record.name)}-{tex_escape(dataset)}-{record.run_id()}}}"
        .replace(r"\_", "-"),
        r"\end{table}",
        "",
    ]


SECTION = Section("summary", "task", markdown=markdown, latex=latex, console=console)
