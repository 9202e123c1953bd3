"""``python -m bench report``: re-render the report of a finished run, without training."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from bench.commands.arguments import add_format, add_speed_target, existing_folder, floating

NAME = "report"
HELP = "re-render the report of a finished run, without training"
EXAMPLES = ("python -m bench report reports/default --format md,tex",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="folder with results.csv and run.json")
    parser.add_argument(
        "--out", help="write the report to this folder instead of DIR (never over a report there unless --force)"
    )
    parser.add_argument("--force", dest="overwrite", action="store_true",
                        help="with --out: overwrite the report found there")
    add_format(parser)
    parser.add_argument(
        "--metric",
        help="metric to rank and test (default test_accuracy; test_r2 for regression; test_loss for language models)",
    )
    parser.add_argument(
        "--baseline",
        help="reference of the difference columns (default: the best by mean; verdicts are always about the best)",
    )
    parser.add_argument(
        "--margin",
        type=floating,
        help="equivalence margin in the metric's units (default: the run's, 0.5 pp of accuracy)",
    )
    parser.add_argument(
        "--unpaired", action="store_true", help="runs not matched by seed: Welch differences instead of paired ones"
    )
    parser.add_argument(
        "--fixed-test-set",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="intervals conditional on the test set (default: the run's choice)",
    )
    parser.add_argument(
        "--statistic",
        choices=("mean", "trimmed"),
        help="what the comparisons estimate of each paired difference: mean (default: the run's), or "
        "trimmed (20%% trimmed means, robust to a few stuck runs; discounts up to 20%% of failures)",
    )

    add_speed_target(parser)

def main(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.analysis import outcomes
    from bench.experiments import presets
    from bench.experiments.runner import publish, refuse_overwrite
    from bench.reporting import render, report
    from bench.reporting.files import load
    from bench.store import exclusive, staged

    out = args.out or args.dir
    with contextlib.ExitStack() as held:
        held.enter_context(exclusive(existing_folder(args.dir)))
        results, record = load(args.dir)
        if args.speed_target:  # kept in run.json: the next render keeps it
            record = record.replace(statistics={**record.statistics, "speed_target": args.speed_target})
        test_outcomes = outcomes.load(args.dir, results)
        options = dict(
            formats=args.format,
            metric=args.metric,
            baseline=args.baseline,
            paired=not args.unpaired and record.paired(),
            margin=args.margin,
            fixed_test_set=args.fixed_test_set,
            statistic=args.statistic,
        )
        if Path(out).resolve() == Path(args.dir).resolve():  # re-rendered in place: its outcomes.npz stays as is
            with staged(out) as stage:
                analysis, files = report.write(
                    stage.path,
                    results,
                    record,
                    test_outcomes=test_outcomes,
                    previous=out,
                    dropped=stage.dropped,
                    shipped=None if record.external else presets.shipped(record.name),
                    **options,
                )
            files = [stage.final(path) for path in files]
        else:
            held.enter_context(exclusive(out))
            refuse_overwrite(out, args.overwrite)
            analysis, files = publish(
                out, results, record, test_outcomes, runs_changed=True, calibration_from=args.dir, **options
            )
    print(render.console(record, analysis))
    print(f"\nwrote {len(files)} files to {out}")
    return 0
