"""Reports: statistics of a finished run rendered as terminal tables, markdown, LaTeX and figures.

A report is rendered from two files only, ``results.csv`` (the tidy runs) and
``run.json`` (the experiment, environment and timings), so ``python -m bench report
DIR`` can re-render it with other options without training anything.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bench import compare, stats
from bench.errors import UserError
from bench.memory import format_bytes
from bench.store import write_atomic

FORMATS = ("md", "tex", "png", "pdf", "csv")
FORMAT_VERSION = 1  # of run.json + results.csv; bump when their meaning changes
DELTAS = {"accuracy": (0.005, 0.01), "loss": (0.01, 0.05)}  # differences the power advice is given for
TIE_MARK = "≈"


@dataclasses.dataclass
class Analysis:
    """Everything a report shows, computed once from the results table.

    Attributes:
      metric: the metric ranked, compared and tested (e.g. ``test_accuracy``).
      summary: ``stats.summarize`` of every metric shown.
      comparisons: ``compare.compare`` against the baseline.
      ties: ``compare.tied_with_best``.
      curves: ``stats.summarize_curves`` of ``metric``.
      power: ``compare.power_advice`` of ``metric``.
      baseline: the baseline name given, or None for the best per task.
      paired: whether runs were compared as seed-matched pairs.
      divergence: ``stats.divergence``: when the diverged runs diverged.
    """

    metric: str
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    ties: pd.DataFrame
    curves: pd.DataFrame
    power: pd.DataFrame
    baseline: str | None
    paired: bool
    settings: stats.Settings
    divergence: pd.DataFrame


def analyse(
    results: pd.DataFrame,
    metric: str = "test_accuracy",
    baseline: str | None = None,
    paired: bool = True,
    settings: stats.Settings = stats.Settings(),
) -> Analysis:
    """Computes every statistic of the report.

    Raises:
      UserError: unknown metric or baseline.
    """
    metrics = [c for c in results.columns if c.endswith(("_accuracy", "_loss"))]
    if metric not in metrics:
        raise UserError(f"unknown metric {metric!r}; the results have {', '.join(metrics)}")
    if baseline is not None and baseline not in set(results["initializer"]):
        raise UserError(f"baseline {baseline!r} is not among the initializers {sorted(set(results['initializer']))}")
    shown = list(dict.fromkeys([metric, "test_accuracy", "test_loss"]))
    summary = stats.summarize(results, [m for m in shown if m in metrics], settings)
    kind = "accuracy" if metric.endswith("accuracy") else "loss"
    comparisons = compare.compare(results, metric, baseline, "baseline", paired, settings=settings)
    versus_best = comparisons if baseline is None else None  # the default baseline is the best: no second pass
    return Analysis(
        metric=metric,
        summary=summary,
        comparisons=comparisons,
        ties=compare.tied_with_best(results, metric, paired, settings=settings, versus_best=versus_best),
        curves=stats.summarize_curves(results, summary, metric, settings=settings),
        power=compare.power_advice(results, metric, DELTAS[kind], paired),
        baseline=baseline,
        paired=paired,
        settings=settings,
        divergence=stats.divergence(results),
    )


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
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def git_commit() -> str:
    """The commit of the working tree this package runs from, with ``+dirty`` if changed."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5
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
    """Summary rows of ``analysis.metric`` for a dataset, best first, with the tie flags."""
    rows = analysis.summary[(analysis.summary["dataset"] == dataset) & (analysis.summary["metric"] == analysis.metric)]
    rows = rows.sort_values("mean", ascending=not stats.higher_is_better(analysis.metric), na_position="last")
    ties = analysis.ties[analysis.ties["dataset"] == dataset].set_index("initializer")["tied"]
    return rows.assign(tied=rows["initializer"].map(ties).fillna(False).astype(bool))


def summary_table(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """Per initializer, best first: mean and IQM of the ranked metric with CIs, the loss, divergence."""
    level = f"{analysis.settings.level:.0%}"
    ranked = _ranked(analysis, dataset)
    others = analysis.summary[analysis.summary["dataset"] == dataset].set_index(["initializer", "metric"])
    metric = analysis.metric
    second = "test_loss" if metric != "test_loss" else "test_accuracy"
    table = {
        "rank": range(1, len(ranked) + 1),
        "initializer": [f"{n} {TIE_MARK}" if t else n for n, t in zip(ranked["initializer"], ranked["tied"])],
        f"{_title(metric)} mean [{level} CI]": [_interval(r["mean"], r["mean_low"], r["mean_high"]) for _, r in ranked.iterrows()],
        f"IQM [{level} CI]": [_interval(r["iqm"], r["iqm_low"], r["iqm_high"]) for _, r in ranked.iterrows()],
        "median": [f"{v:.3f}" if pd.notna(v) else "n/a" for v in ranked["median"]],
        "std": [f"{v:.4f}" if pd.notna(v) else "n/a" for v in ranked["std"]],
    }
    if second in set(analysis.summary["metric"]):
        table[f"{_title(second)} mean [{level} CI]"] = [
            _interval(*others.loc[(n, second), ["mean", "mean_low", "mean_high"]]) for n in ranked["initializer"]
        ]
    table["diverged"] = [
        f"{d}/{r}" + (f" [{lo:.0%}, {hi:.0%}]" if d else "")
        for d, r, lo, hi in zip(ranked["diverged"], ranked["runs"], ranked["diverged_low"], ranked["diverged_high"])
    ]
    return pd.DataFrame(table)


def significance_table(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """Each initializer against the baseline: difference, raw and Holm p, Hedges' g, P(a > b)."""
    rows = analysis.comparisons[analysis.comparisons["dataset"] == dataset]
    rank_test, t_test = ("Wilcoxon", "paired t") if analysis.paired else ("Mann-Whitney", "Welch t")
    return pd.DataFrame(
        {
            "initializer": rows["a"],
            "vs": rows["b"],
            "n": rows["n"],
            "Δ mean": [f"{d:+.4f}" for d in rows["diff"]],
            f"p {rank_test}": [_p(p) for p in rows["p_rank"]],
            f"p {rank_test} (Holm)": [_p(p) + (" *" if s else "") for p, s in zip(rows["p_rank_holm"], rows["significant"])],
            f"p {t_test} (Holm)": [_p(p) for p in rows["p_t_holm"]],
            "Hedges' g [CI]": [_interval(g, lo, hi, 2) for g, lo, hi in zip(rows["g"], rows["g_low"], rows["g_high"])],
            "P(a better) [CI]": [_interval(a, lo, hi, 2) for a, lo, hi in zip(rows["a12"], rows["a12_low"], rows["a12_high"])],
        }
    )


def curve_table(analysis: Analysis, dataset: str) -> pd.DataFrame:
    """Learning-curve statistics: area under the curve, best epoch, epochs to the threshold."""
    rows = analysis.curves[analysis.curves["dataset"] == dataset]
    rows = rows.sort_values("auc", ascending=not stats.higher_is_better(analysis.metric))
    return pd.DataFrame(
        {
            "initializer": rows["initializer"],
            "AUC (mean over epochs) [CI]": [_interval(a, lo, hi) for a, lo, hi in zip(rows["auc"], rows["auc_low"], rows["auc_high"])],
            "best (mean)": [f"{v:.3f}" for v in rows["best"]],
            "best epoch (median)": [f"{v:g}" for v in rows["best_epoch"]],
            "epochs to threshold (median)": [f"{v:g}" if pd.notna(v) else "never" for v in rows["epochs_to_threshold"]],
            "runs reaching it": [f"{v:.0%}" for v in rows["reached"]],
        }
    )


def power_sentences(analysis: Analysis, dataset: str) -> list[str]:
    """'To detect a 0.5 pp difference ... you need ~N seeds' for each difference of interest."""
    rows = analysis.power[analysis.power["dataset"] == dataset]
    accuracy = analysis.metric.endswith("accuracy")
    test = "paired t test" if analysis.paired else "Welch t test"
    out = []
    for _, r in rows.iterrows():
        size = f"{r['delta'] * 100:g} pp" if accuracy else f"{r['delta']:g}"
        if pd.isna(r["seeds"]):
            out.append(f"Too few seeds to estimate the spread needed for a {size} difference.")
            continue
        out.append(
            f"To detect a {size} difference in {_title(analysis.metric)} with 80% power ({test}, alpha 0.05) you need "
            f"~{int(r['seeds'])} seeds per initializer (observed sd of {'paired differences' if analysis.paired else 'runs'}: {r['sd']:.4f})."
        )
    return out


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


def divergence_lines(analysis: Analysis, dataset: str) -> list[str]:
    """A paragraph on the runs that diverged (none: no lines)."""
    rows = analysis.divergence[analysis.divergence["dataset"] == dataset]
    if rows.empty:
        return []
    parts = [f"`{r.initializer}` {r.diverged} of {r.runs} (from epoch {r.first_epoch:g}, median {r.median_epoch:g})"
             for r in rows.itertuples()]
    return ["Diverged runs (NaN or inf loss; left out of means, CIs and tests, counted in the `diverged` column "
            "with a Wilson CI): " + "; ".join(parts) + ".", ""]


def _peak_memory(meta: dict) -> str:
    text = f"{format_bytes(meta['peak_rss_bytes'])} resident (process peak)"
    if meta.get("device_peak_bytes"):
        text += f", {format_bytes(meta['device_peak_bytes'])} on the first device"
    if meta.get("processes", 1) > 1:
        text += f"; {meta['processes']} processes (figures of process 0)"
    return text


def console(analysis: Analysis, tasks: dict[str, dict]) -> str:
    """The tables printed by ``python -m bench``, one per dataset."""
    blocks = []
    for dataset, info in tasks.items():
        table = summary_table(analysis, dataset)
        keep = [c for c in table.columns if not c.startswith(("IQM", "median", "std"))]
        blocks.append(
            f"{dataset}: {info['model']}, {info['runs']} runs ({TIE_MARK} = tied with the best)\n"
            + table[keep].to_markdown(index=False, tablefmt="simple")
        )
    return "\n\n".join(blocks)


# ---------------------------------------------------------------- markdown


def render_markdown(meta: dict, analysis: Analysis, figures: dict[str, list[str]]) -> str:
    """``report.md``: the experiment and environment, then per dataset the tables and figures."""
    exp, env, s = meta["experiment"], meta["environment"], analysis.settings
    train = exp["train"]
    baseline = analysis.baseline or "the best initializer by mean"
    header = {
        "preset": f"`{exp['name']}`",
        "initializers": ", ".join(f"`{name}`" for name in meta["initializers"]),
        "seeds": f"{exp['seeds']} per initializer, paired (seed i has the same data order and random stream for every initializer)",
        "training": f"{train['optimizer']}, lr {train['lr']:g}, batch {train['batch_size']}, {train['epochs']} epochs",
        "statistics": (
            f"at the last epoch, over seeds; {s.level:.0%} {s.method} bootstrap CIs ({s.n_resamples:,} resamples, seed {s.seed}); "
            f"IQM = 25% trimmed mean; diverged runs counted (Wilson CI), not averaged"
        ),
        "tests": (
            f"{'Wilcoxon signed-rank and paired t (seed-matched)' if analysis.paired else 'Mann-Whitney U and Welch t'} vs {baseline}, "
            f"Holm-corrected per dataset; {TIE_MARK} = not significantly different from the best (Holm p >= 0.05)"
        ),
        "runs": f"{meta['runs']:,}",
        "wall time": f"{meta['wall_s']:.1f} s (compile {meta['compile_s']:.1f} s, initialization {meta['init_s']:.1f} s)",
        **({"peak memory": _peak_memory(meta)} if "peak_rss_bytes" in meta else {}),
        "environment": (
            f"initjax {env['initjax']}, jax {env['jax']}, flax {env['flax']}, optax {env['optax']}, "
            f"Python {env['python']}; backend {env['backend']}, {env['devices']}"
        ),
        "git commit": env["git commit"],
        "date": env["date"],
        "command": f"`{meta['command']}`",
    }
    lines = [f"# initjax report: {exp['name']}", "", exp["description"], ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in header.items()]
    for dataset, info in meta["tasks"].items():
        lines += [
            "", f"## {dataset}: {info['model']}", "",
            f"Data: {info.get('data', 'n/a')}.", "",
            _throughput(info), "",
            summary_table(analysis, dataset).to_markdown(index=False), "",
            *divergence_lines(analysis, dataset),
            f"### Significance: {_title(analysis.metric)} (* = Holm-adjusted p < 0.05)", "",
            significance_table(analysis, dataset).to_markdown(index=False), "",
            "### Learning curves", "",
            curve_table(analysis, dataset).to_markdown(index=False), "",
            f"Threshold: {analysis.curves.loc[analysis.curves['dataset'] == dataset, 'threshold'].iloc[0]:.4f} "
            f"(95% of the best initializer's mean final {_title(analysis.metric)}).", "",
            "### How many seeds?", "",
            *[f"- {sentence}" for sentence in power_sentences(analysis, dataset)],
        ]
        if figures.get(dataset):
            lines += ["", *[f"![{Path(f).stem}]({f})" for f in figures[dataset]]]
    lines += ["", "Raw runs, one row per (dataset, model, initializer, seed, epoch): [results.csv](results.csv).", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- LaTeX

_TEX_ESCAPE = {"_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
               "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def tex_escape(text: str) -> str:
    """Escapes LaTeX's special characters in a plain string."""
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(text))


def render_latex(meta: dict, analysis: Analysis) -> str:
    """``report.tex``: one booktabs table per dataset, ready for ``\\input{}``.

    Needs ``\\usepackage{booktabs}`` in the paper. The best mean is bold; initializers
    tied with it (Holm-adjusted p >= 0.05) are marked with a dagger.
    """
    level = f"{analysis.settings.level:.0%}".replace("%", r"\%")
    parts = [f"% initjax report {tex_escape(meta['experiment']['name'])}: generated, do not edit. Needs \\usepackage{{booktabs}}."]
    for dataset, info in meta["tasks"].items():
        ranked = _ranked(analysis, dataset)
        rows = []
        for i, (_, r) in enumerate(ranked.iterrows()):
            name = tex_escape(r["initializer"]) + (r"$^\dagger$" if r["tied"] and i > 0 else "")
            mean = f"{r['mean']:.3f}" if pd.notna(r["mean"]) else "n/a"
            mean = rf"\textbf{{{mean}}}" if i == 0 else mean
            ci = f"[{r['mean_low']:.3f}, {r['mean_high']:.3f}]" if pd.notna(r["mean_low"]) else ""
            iqm = f"{r['iqm']:.3f} [{r['iqm_low']:.3f}, {r['iqm_high']:.3f}]" if pd.notna(r["iqm_low"]) else "n/a"
            rows.append(f"{name} & {mean} {ci} & {iqm} & {r['diverged']}/{r['runs']} \\\\")
        caption = (
            f"{tex_escape(dataset)}, {tex_escape(info['model'])}: final {tex_escape(_title(analysis.metric))} over "
            f"{meta['experiment']['seeds']} seeds, mean and IQM with {level} {tex_escape(analysis.settings.method)} bootstrap CIs. "
            r"Best mean in bold; $^\dagger$ not significantly different from the best (Holm-corrected "
            + ("Wilcoxon signed-rank" if analysis.paired else "Mann-Whitney U")
            + r", $p \geq 0.05$)."
        )
        parts += [
            r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{lccc}", r"\toprule",
            f"Initializer & Mean [{level} CI] & IQM [{level} CI] & Diverged \\\\", r"\midrule",
            *rows, r"\bottomrule", r"\end{tabular}", f"\\caption{{{caption}}}",
            f"\\label{{tab:initjax-{tex_escape(meta['experiment']['name'])}-{tex_escape(dataset)}}}".replace(r"\_", "-"),
            r"\end{table}", "",
        ]
    return "\n".join(parts)


# ---------------------------------------------------------------- files


def write(
    out_dir: str | Path,
    results: pd.DataFrame,
    meta: dict,
    formats: Sequence[str] = FORMATS,
    metric: str = "test_accuracy",
    baseline: str | None = None,
    paired: bool = True,
) -> tuple[Analysis, list[Path]]:
    """Writes the report files into ``out_dir``, each atomically.

    ``run.json`` and ``results.csv`` (floats in full precision, so a re-rendered
    report is identical; plus ``results.parquet`` when pyarrow is installed) with ``csv``; ``report.md`` with ``md``;
    ``report.tex`` with ``tex``; figures under ``figures/`` with ``png``/``pdf``.

    Raises:
      UserError: unknown format, metric or baseline.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"unknown report format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    settings = stats.Settings(**{k: meta["statistics"][k] for k in ("level", "method", "n_resamples", "seed")})
    analysis = analyse(results, metric, baseline, paired, settings)
    files = []
    if "csv" in formats:
        files.append(write_atomic(out_dir / "results.csv", results.to_csv(index=False)))
        files.append(write_atomic(out_dir / "run.json", json.dumps(meta, indent=1, default=str)))
        files += _parquet(out_dir, results)
    figures = {}
    image_formats = tuple(f for f in ("png", "pdf") if f in formats)
    if image_formats:
        from bench import figures as fig

        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
        for dataset in meta["tasks"]:
            names = []
            for kind, draw in (("curves", fig.learning_curves), ("final", fig.final_distribution),
                               ("improvement", fig.improvement_matrix)):
                stem = out_dir / "figures" / f"{dataset}-{kind}-{metric}"
                written = fig.save(draw(results, dataset, metric), stem, image_formats)
                files += written
                names.append(str(written[0].relative_to(out_dir)))
            figures[dataset] = names
    if "tex" in formats:
        files.append(write_atomic(out_dir / "report.tex", render_latex(meta, analysis)))
    if "md" in formats:
        files.append(write_atomic(out_dir / "report.md", render_markdown(meta, analysis, figures)))
    return analysis, files


def _parquet(out_dir: Path, results: pd.DataFrame) -> list[Path]:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return []
    import io

    buffer = io.BytesIO()
    results.to_parquet(buffer, index=False)
    return [write_atomic(out_dir / "results.parquet", buffer.getvalue())]


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
    try:
        meta_dict = json.loads(meta.read_text())
    except (ValueError, OSError) as error:
        raise UserError(f"{meta} is damaged ({type(error).__name__}: {error}); rerun the experiment") from None
    version = meta_dict.get("format", 1) if isinstance(meta_dict, dict) else None
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(f"{meta} has results format {version!r}; this initjax reads format <= {FORMAT_VERSION}: upgrade initjax")
    try:
        results = pd.read_csv(csv)
    except (ValueError, OSError) as error:
        raise UserError(f"{csv} is damaged ({type(error).__name__}); rerun the experiment") from None
    missing = {"dataset", "model", "initializer", "seed", "epoch", "diverged"} - set(results.columns)
    if missing:
        raise UserError(f"{csv} lacks the columns {sorted(missing)}; it is not an initjax results table")
    results["diverged"] = results["diverged"].astype(bool)
    if "diverged_epoch" in results:  # integers with gaps read back as floats; keep them integers
        results["diverged_epoch"] = results["diverged_epoch"].astype("Int64")
    return results, meta_dict

