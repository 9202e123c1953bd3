"""The report's head: the title, what was run (against the preset as shipped), and the table of the experiment,
its statistics, its cost and its environment; in LaTeX, the generated file's first comment."""

from __future__ import annotations

from bench.analysis import monte_carlo, stats
from bench.reporting.describe import (
    describe_arm,
    describe_grid,
    describe_run,
    describe_training,
    peak_memory,
)
from bench.reporting.record import RunRecord
from bench.reporting.section import FIGURES_MACRO, Section, View
from bench.reporting.text import legend, points, tex_escape
from bench.training.grid import format_value


def _seeds(exp: dict) -> str:
    if exp.get("data_seeds", 1) == 1:
        return (f"{exp['seeds']} per initializer, paired (seed i has the same data order and random stream for every "
                "initializer)")
    return (f"{exp['seeds']} init seeds x {exp['data_seeds']} data orders per initializer, crossed (init seed i "
            "has the same initial random stream, data order d the same minibatch order, for every initializer "
            "and every other seed) and paired")


def _external_seeds(exp: dict) -> str:
    source = exp["source"]
    values = ", ".join(map(str, source["seeds"][:8])) + (", ..." if len(source["seeds"]) > 8 else "")
    if source["paired"]:
        return (f"{exp['seeds']} per arm ({values}), paired: the user said seed i is a common random number of "
                "every arm")
    counts = source.get("runs_per_arm")
    if counts:  # each arm its own runs
        return (", ".join(f"{n} `{arm}`" for arm, n in counts.items()) + f" (seeds {values}), unpaired (Welch "
                "differences, each pair at its own degrees of freedom: the seeds were not said to be shared)")
    return f"{exp['seeds']} per arm ({values}), unpaired (Welch differences: the seeds were not said to be shared)"


def _source(exp: dict) -> str:
    source = exp["source"]
    named = ", ".join([f"{role} `{source[role]}`" for role in ("arm", "seed", "metric", "validation", "task", "model",
                                                               "epoch") if source.get(role)]
                      + [f"{factor} `{column}`" for column, factor in source.get("factors", {}).items()])
    return f"trained elsewhere; read from `{source['file']}` ({named})"


def _external_grid(exp: dict) -> str:
    """``lr 0.001, 0.01, 0.1, crossed with every arm (the recipe's: lr 0.01)``."""
    factors = "; ".join(f"{k.replace('_', ' ')} {', '.join(format_value(v) for v in values)}"
                        for k, values in exp["grid"].items())
    reference = exp["source"].get("reference") or {}
    said = (" (the recipe's: " + ", ".join(f"{k.replace('_', ' ')} {format_value(v)}" for k, v in reference.items())
            + ")") if reference else ""
    return f"{factors}, crossed with every arm{said}"


def _statistics(s: stats.Settings) -> str:
    return (f"at the last epoch, over seeds; means with {s.level:.0%} Student t CIs; IQM = 25% trimmed mean with "
            f"{s.method} bootstrap CI ({s.n_resamples:,} resamples, seed {s.seed}) "
            f"from {stats.IQM_MIN_SEEDS} seeds on, "
            "where the mean's interval has no test-set or data-order term; accuracies' intervals within [0, 1] "
            "(exact binomial at the effective number of examples where the test set is counted); "
            f"diverged runs counted (Wilson CI) and scored as untrained networks in every mean and test")


def _verdicts(view: View) -> str:
    analysis, s = view.analysis, view.analysis.settings
    reference = f"`{analysis.baseline}`" if analysis.baseline else "the best of the others"
    scale, unit = points(analysis.metric)
    return (f"{'paired by seed' if analysis.paired else 'unpaired (Welch)'}; "
            + ("20% trimmed means of the paired differences (Yuen's standard errors); "
               if s.statistic == "trimmed" else "")
            + f"{s.level:.0%} simultaneous intervals of all "
            f"pairwise differences (single-step max-T, {s.draws:,} null draws, seed {s.seed}; "
            f"up to {monte_carlo.EXTENDED * s.draws:,} where a verdict is within their Monte Carlo error, and one "
            "still there is not made: § in the tables) and from them Hsu's "
            "multiple comparisons with the best, *worse* also by the step-down max-T test (Westfall & Young); "
            f"equivalence margin {scale * analysis.margin:g}{unit}; "
            "standard deviations never below the data's resolution (the step between distinct values, one test "
            "example for an accuracy: a tie on every seed is not certainty; † in the tables); "
            f"Δ, d_z and wins against {reference}. {legend(analysis.metric, analysis.margin, s.level)}")


def _test_set(view: View) -> str:
    analysis = view.analysis
    if analysis.test_examples:
        return ("its sampling error is in the intervals of test metrics (per-example outcomes of every run, "
                "`outcomes.npz`: variance s²_seeds/n + s²_b/m, s²_b the examples' own component of a seeds x "
                "examples random-effects ANOVA, with its Satterthwaite degrees of freedom; "
                + ", ".join(f"{task} m = {m:,}" for task, m in analysis.test_examples.items()) + ")")
    return ("intervals are over seeds only, conditional on the test set ("
            + ("`--fixed-test-set`" if analysis.settings.fixed_test_set else "no per-example outcomes stored") + ")")


def wall_time(record: RunRecord) -> str:
    """``"12.3 s (compile 4.5 s, initialization 0.1 s, first evaluation 0.6 s)"``; a record from before the draws
    were timed apart says ``initialization and first evaluation``."""
    first = (f"initialization and first evaluation {record.init_s:.1f} s" if record.draw_s is None else
             f"initialization {record.draw_s:.1f} s, first evaluation {record.init_s - record.draw_s:.1f} s")
    return f"{record.wall_s:.1f} s (compile {record.compile_s:.1f} s, {first})"


def header_rows(view: View) -> dict[str, str]:
    """The header table: field -> value."""
    record = view.record
    exp, env = record.experiment, record.environment
    initializers = dict.fromkeys(values["initializer"] for values in record.arms_of().values())
    if record.external:
        return {"experiment": f"`{exp['name']}`", "arms": ", ".join(f"`{name}`" for name in initializers),
                **({"grid": _external_grid(exp)} if exp.get("grid") else {}),
                "seeds": _external_seeds(exp), "runs": _source(exp), "statistics": _statistics(view.analysis.settings),
                "verdicts": _verdicts(view), "test set": _test_set(view),
                **({"calibration": " ".join(view.calibration)} if view.calibration else {}),
                "environment": (f"initjax {env['initjax']}, Python {env['python']} (the analysis; the runs' own is "
                                "not known)"),
                "date": env["date"], "command": f"`{record.command}`"}
    return {
        "experiment": f"`{exp['name']}`",
        "initializers": ", ".join(describe_arm(name, exp) for name in initializers),
        **({"grid": describe_grid(exp["grid"], len(record.initializers))} if exp.get("grid") else {}),
        "seeds": _seeds(exp),
        "training": describe_training(exp["train"]),
        "statistics": _statistics(view.analysis.settings),
        "verdicts": _verdicts(view),
        "test set": _test_set(view),
        **({"calibration": " ".join(view.calibration)} if view.calibration else {}),
        "runs": f"{record.runs:,}",
        "wall time": wall_time(record),
        **({"peak memory": peak_memory(record)} if record.peak_rss_bytes is not None else {}),
        "environment": (
            f"initjax {env['initjax']}, jax {env['jax']}, flax {env['flax']}, optax {env['optax']}, "
            f"Python {env['python']}; backend {env['backend']}, {env['devices']}"
        ),
        "git commit": env["git commit"],
        "date": env["date"],
        "command": f"`{record.command}`",
    }


def markdown(view: View) -> list[str]:
    exp = view.record.experiment
    lines = [f"# initjax report: {exp['name']}", "", describe_run(exp, view.shipped), ""]
    return lines + ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in header_rows(view).items()]


def latex(view: View) -> list[str]:
    return [f"% initjax report {tex_escape(view.record.name)}: generated, do not edit. "
            "Needs \\usepackage{booktabs} and \\usepackage{graphicx}.",
            f"% The figures are read from {FIGURES_MACRO}, figures/ unless the paper defines it before \\input, e.g.",
            f"% \\newcommand{{{FIGURES_MACRO}}}{{reports/{tex_escape(view.record.name)}/figures/}}",
            f"\\providecommand{{{FIGURES_MACRO}}}{{figures/}}"]


SECTION = Section("header", "run", markdown=markdown, latex=latex)
