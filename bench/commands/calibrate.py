"""``python -m bench calibrate``: measure the report's error rates, coverage and power by resampling its runs."""

from __future__ import annotations

import argparse
import shlex

from bench.commands.arguments import existing_folder, floating, integer, widths
from bench.errors import UserError

NAME = "calibrate"
HELP = "measure the report's error rates, coverage and power by resampling its runs"
EXAMPLES = ("python -m bench calibrate reports/default --reps 500",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="folder with results.csv and run.json")
    parser.add_argument("--seeds", type=widths, default=[8, 16, 32], help="seed counts simulated (default 8,16,32)")
    parser.add_argument("--reps", type=integer, default=200, help="resamples per scenario and seed count (default 200)")
    parser.add_argument(
        "--shift", type=floating, help="handicap of the worse initializer in the shift scenario (default: 2 x margin)"
    )
    parser.add_argument(
        "--metric",
        help="metric (default: the report's; test_accuracy, test_r2 for regression, test_loss for language models)",
    )
    parser.add_argument("--unpaired", action="store_true", help="calibrate the unpaired procedure")
    parser.add_argument(
        "--statistic",
        choices=("mean", "trimmed"),
        help="calibrate the comparisons of this statistic (default: the report's)",
    )


def main(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.store import exclusive

    if not 10 <= args.reps <= 100_000:
        raise UserError(f"--reps must be from 10 to 100,000, got {args.reps:,}")
    if not args.seeds or min(args.seeds) < 3 or max(args.seeds) > 4096 or len(args.seeds) > 32:
        raise UserError(f"--seeds must be at most 32 counts from 3 to 4,096, got {args.seeds[:8]}")
    if args.shift is not None and not args.shift > 0:
        raise UserError(f"--shift must be > 0, got {args.shift}")
    with exclusive(existing_folder(args.dir)):
        return _calibrate_held(args, argv)


def _calibrate_held(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.analysis import calibrate, stats
    from bench.experiments import presets
    from bench.reporting import report
    from bench.reporting.analysed import ranked_metric, settings_of
    from bench.reporting.files import load

    results, record = load(args.dir)
    settings = settings_of(record, statistic=args.statistic)
    paired = not args.unpaired and record.paired()  # runs trained elsewhere: as their report pairs them
    metrics = stats.metric_columns(results)
    args.metric = args.metric or ranked_metric(results, record.tasks)
    if args.metric not in metrics:
        raise UserError(f"unknown metric {args.metric!r}; the results have {', '.join(metrics)}")
    table = calibrate.calibrate(results, args.metric, args.seeds, args.reps, args.shift, settings, paired)
    key = calibrate.fingerprint(args.metric, settings, paired)
    calibrate.save(
        args.dir,
        table,
        key,
        shlex.join(["python", "-m", "bench", *argv]),
        calibrate.measured_runs(results, args.metric),
    )
    print(table.drop(columns=["model"]).to_markdown(index=False, tablefmt="simple", floatfmt=".3f"))
    for dataset, cells in table.groupby("dataset", sort=False):
        print(f"\n{calibrate.describe(cells, dataset)}")
    if args.metric == ranked_metric(results, record.tasks) and paired == record.paired() and \
            settings == settings_of(record):
        # the report's own metric and procedure
        from bench.analysis import outcomes

        report.write(
            args.dir,
            results,
            record,
            ["md"],
            args.metric,
            None,
            paired,
            None,
            outcomes.load(args.dir, results),
            shipped=None if record.external else presets.shipped(record.name),
        )
        print(f"\nwrote {args.dir}/{calibrate.FILE} and the calibration line of {args.dir}/report.md")
    else:
        print(f"\nwrote {args.dir}/{calibrate.FILE}")
    return 0
