"""``python -m bench analyze``: the suite's report of runs trained elsewhere (a CSV, parquet or JSON-lines table)."""

from __future__ import annotations

import argparse
import shlex
import sys

from bench.commands.arguments import add_format, add_speed_target, floating, setting

NAME = "analyze"
HELP = "the report of runs trained elsewhere, from a table of one row per run (or per run and epoch)"
EXAMPLES = ("python -m bench analyze runs.csv --arm init --seed seed --metric test_accuracy --out runs/mine",
            "python -m bench analyze runs.parquet --arm init --seed seed --metric bleu --higher-is-better "
            "--margin 0.5 --task dataset --epoch epoch --paired --out runs/bleu",
            "python -m bench analyze sweep.csv --arm init --seed seed --metric test_accuracy --factor lr "
            "--validation val_accuracy --reference lr=0.001 --paired --out runs/sweep",
            "python -m bench analyze logs/ --layout '{arm}/seed{seed}' --arm arm --seed seed --epoch step "
            "--metric test/accuracy --out runs/tb")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", help="a .csv, .parquet or .jsonl file (one row per run, or per run and epoch), or a "
                                     "TensorBoard log folder (with --layout)")
    parser.add_argument("--layout", help="a TensorBoard folder's run folders, with {field} where a value stands: "
                                         "'{arm}/seed{seed}' (then --arm arm --seed seed --epoch step)")
    parser.add_argument("--arm", required=True, help="the column naming each run's arm (initializer)")
    parser.add_argument("--seed", required=True, help="the column of each run's seed")
    parser.add_argument("--metric", required=True,
                        help="the column compared (a name ending _accuracy, _r2 or _loss says which way is better)")
    parser.add_argument("--task", help="the column of each run's task (default: one task)")
    parser.add_argument("--epoch", help="the column of each row's epoch (default: one row per run)")
    parser.add_argument("--model", help="the column of each task's model (default: the file's stem)")
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument("--higher-is-better", dest="higher_is_better", action="store_true", default=None,
                           help="the metric is better higher (needed where its name does not say)")
    direction.add_argument("--lower-is-better", dest="higher_is_better", action="store_false",
                           help="the metric is better lower")
    parser.add_argument("--outcomes",
                        help="per-example test outcomes: a table of one row per run and example, with the runs' "
                             "arm, seed (and task) columns, example, correct (0/1) and optionally loss; or an .npz "
                             "of arrays correct (arms, seeds, examples), arms, seeds, optionally loss (several "
                             "tasks: TASK/correct, TASK/loss). The metric must be test_accuracy; the intervals then "
                             "count the test set's sampling error")
    parser.add_argument("--factor", action="append", default=[], metavar="COL[=FACTOR]",
                        help="a hyperparameter grid's column (repeatable): a learning rate, weight decay, momentum or "
                             "init scale, named so (lr, learning_rate, wd, beta1, gain...) or said (lr_used=lr); each "
                             "arm at each value is an arm, tuned on --validation")
    parser.add_argument("--validation",
                        help="the column of the metric on a validation split: a grid's cells are chosen on it and "
                             "reported on --metric (without it, no arm is tuned)")
    parser.add_argument("--reference", action="append", default=[], type=setting, metavar="FACTOR=VALUE",
                        help="the recipe's value of a grid factor (lr=0.001): the report checks whether the ranking "
                             "there holds once every arm is tuned")
    parser.add_argument("--paired", action="store_true",
                        help="seed i is a common random number of every arm (same data order and stream): compare "
                             "runs of one seed pairwise (default: unpaired, Welch differences)")
    parser.add_argument("--nan-diverged", action="store_true",
                        help="a NaN or infinite metric is a diverged run, scored as the worst (default: refused)")
    parser.add_argument("--margin", type=floating,
                        help="equivalence margin in the metric's units (default 0.005 for an accuracy, 0.01 for a "
                             "loss; needed for other metrics)")
    add_speed_target(parser)
    parser.add_argument("--out", required=True, help="folder to write the report to")
    parser.add_argument("--force", dest="overwrite", action="store_true", help="overwrite a report in --out")
    add_format(parser)


def main(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.experiments.external import analyze
    from bench.reporting import render

    outcome = analyze(args.runs, arm=args.arm, seed=args.seed, metric=args.metric, task=args.task, epoch=args.epoch,
                      model=args.model, higher_is_better=args.higher_is_better, paired=args.paired,
                      nan_diverged=args.nan_diverged, margin=args.margin, out=args.out, overwrite=args.overwrite,
                      formats=args.format, outcomes=args.outcomes, layout=args.layout, factors=args.factor,
                      validation=args.validation, reference=dict(args.reference), speed_target=args.speed_target,
                      command=shlex.join(["python", "-m", "bench", *argv]))
    print(render.console(outcome.record, outcome.analysis))
    print(f"\nwrote {len(outcome.files)} files to {args.out}", file=sys.stderr)
    return 0
