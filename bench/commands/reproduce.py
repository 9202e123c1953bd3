"""``python -m bench reproduce``: run a classic paper's experiment and check its claims with confidence intervals."""

from __future__ import annotations

import argparse
import shlex

from bench.commands.arguments import add_format, default_out

NAME = "reproduce"
HELP = "run a classic paper's preset and check its claims with CIs"
EXAMPLES = ("python -m bench reproduce glorot2010 --smoke",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        help="a folder of bench/reproductions: glorot2010, he2015-depth, saxe2013, schoenholz2017, "
        "postln-init, mup-transfer",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny form, to check that it runs")
    parser.add_argument("--data-dir", help="folder of dataset files or tfds data_dir")
    parser.add_argument("--out", help="folder (default: runs/<name>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--fresh", action="store_true", help="retrain instead of resuming finished chunks")
    parser.add_argument(
        "--from-results",
        action="store_true",
        help="check the claims on the runs already in --out (its results.csv and run.json), "
        "training nothing: the statistics and claims of this version on the committed runs",
    )
    add_format(parser, "; of the report of the runs (the reproduction's own figures are always drawn)")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    from bench import reproductions
    from bench.experiments.runner import rerender, run_experiment
    from bench.reproductions.reproduction import reproduce

    reproduction = reproductions.get(args.name)
    out = args.out or default_out(f"{args.name}{'-smoke' if args.smoke else ''}")
    command = shlex.join(["python", "-m", "bench", *argv])

    def run(experiment, folder):
        if args.from_results:
            return rerender(folder, experiment.name, args.format)
        return run_experiment(experiment, folder, progress=not args.no_progress, command=command,
                              data_dir=args.data_dir, fresh=args.fresh, formats=args.format)

    findings, files = reproduce(reproduction, out, run, command, args.data_dir, args.smoke)
    for finding in findings:
        print(f"{'HELD' if finding.held else 'NOT HELD'}: {finding.claim}\n  {finding.measured}")
    print(f"\n{sum(f.held for f in findings)} of {len(findings)} claims held; {files[-1]}")
    return 0
