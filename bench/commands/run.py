"""``python -m bench run``: train a preset or an experiment file and write its report."""

from __future__ import annotations

import argparse
import shlex
import sys

from bench.commands import fields, launching
from bench.commands.arguments import add_assignments, add_format, add_speed_target, default_out, floating, integer
from bench.errors import UserError

NAME = "run"
HELP = "run a preset (default: 'default') or an experiment file, write its report"
EXAMPLES = (
    "python -m bench run",
    "python -m bench run mnist-mlp --seeds 16 --out reports/mnist-16",
    "python -m bench run my_study.toml --smoke",
    "python -m bench run my_study.toml --shard 3/8",
    "python -m bench run my_study.toml --launcher submitit --array 8 --slurm-partition gpu --gpus-per-node 1",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "preset",
        nargs="?",
        default="default",
        help="preset name (`bench list` shows them) or an experiment file study.toml (`bench show`)",
    )
    add_assignments(
        parser,
        "set any field of the experiment, e.g. --set train.lr=0.01 --set tasks.0.model=resmlp "
        "(TOML values; before the short options below, each of which sets one field: bench.commands.fields)",
    )
    fields.add_to(parser)
    parser.add_argument("--out", help="report folder (default: runs/<preset>; the committed examples: reports/)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny form: 2 seeds, 1 epoch, 512 training examples (explicit options still apply)",
    )
    parser.add_argument(
        "--data-dir", help="folder of dataset files or tfds data_dir (default $INITJAX_DATA_DIR, else data/)"
    )
    parser.add_argument(
        "--download", action="store_true", help="let tfds download and prepare missing datasets (needs the tf extra)"
    )
    parser.add_argument(
        "--baseline",
        help="reference of the difference columns (default: the best by mean; verdicts are always about the best)",
    )
    parser.add_argument(
        "--margin", type=floating, help="equivalence margin in the metric's units (default 0.005 = 0.5 pp of accuracy)"
    )
    parser.add_argument(
        "--fixed-test-set",
        action="store_true",
        help="intervals over seeds only, conditional on this test set (default: count its sampling error)",
    )
    add_speed_target(parser)
    add_format(parser, "; md,csv: no figures; results.csv and run.json are always written")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--chunk", type=integer, help="seeds trained at once, with every initializer (default: from memory)"
    )
    parser.add_argument("--max-memory", help="memory budget, e.g. 4G (default: 80%% of the memory available)")
    parser.add_argument("--fresh", action="store_true", help="forget finished chunks of this experiment and start over")
    parser.add_argument(
        "--checkpoint-every",
        type=floating,
        default=60.0,
        help="seconds between checkpoints of a chunk in progress (default 60; 0: every epoch)",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="one process per host: jax.distributed.initialize() from the environment; process 0 writes",
    )
    launching.add_arguments(parser)


def main(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.reporting import drawing, image_formats

    if image_formats(args.format):
        drawing.warm()  # the figure workers import matplotlib while this process imports JAX and trains
    from bench import store
    from bench.experiments import experiment_file, presets
    from bench.experiments.runner import run_experiment
    from bench.reporting import render
    from bench.training import devices, memory

    if args.distributed:
        devices.initialize_distributed()
    max_memory = None if args.max_memory is None else memory.parse_bytes(args.max_memory)
    if not args.checkpoint_every >= 0:
        raise UserError(f"--checkpoint-every must be >= 0 seconds, got {args.checkpoint_every}")
    experiment = presets.resolve(args.preset, args.assignments)
    if presets.is_experiment_file(args.preset) and args.shard is None:
        launching.from_file(args, argv, experiment_file.launcher_of(args.preset))
    if args.smoke:  # first, so that explicit options (--epochs 3 --smoke) still apply
        experiment = presets.smoke(experiment)
    experiment = fields.apply(experiment, args)
    out = args.out or default_out(store.path_name(experiment.name))
    command = shlex.join(["python", "-m", "bench", *argv])
    if args.shard is not None or args.launcher:
        if args.distributed:
            raise UserError("--shard and --launcher split a study into independent processes; --distributed runs "
                            "one program over several hosts: give one or the other")
        if args.shard is not None and args.launcher:
            raise UserError("--launcher submits every shard itself; give --shard to run one shard by hand, not both")
    if args.shard is not None:
        return _shard(experiment, args, command, max_memory)
    if args.launcher and not _finished(experiment, args):
        from bench.experiments import sharded

        jobs = launching.submit(args, argv, sharded.records_folder(experiment.name) / "submitit")
        print(f"submitted {len(jobs)} shards as job {jobs[0].job_id.split('_')[0]} "
              f"({jobs[0].paths.folder})", file=sys.stderr)
        if not args.wait:
            print(f"when they finish: python -m bench status {args.preset}; then python -m bench run "
                  f"{args.preset} (the same options, without --launcher) writes the report", file=sys.stderr)
            return 0
        launching.wait(jobs)
    outcome = run_experiment(
        experiment,
        out,
        progress=not args.no_progress,
        command=command,
        baseline=args.baseline,
        data_dir=args.data_dir,
        download=args.download,
        chunk=args.chunk,
        max_memory=max_memory,
        fresh=args.fresh,
        checkpoint_every=args.checkpoint_every,
        margin=args.margin,
        fixed_test_set=args.fixed_test_set,
        speed_target=args.speed_target,
        formats=args.format,
    )
    if not devices.is_main_process():
        return 0
    print()
    print(render.console(outcome.record, outcome.analysis))
    print(
        f"\n{outcome.record.runs} runs in {outcome.record.wall_s:.1f} s "
        f"(compile {outcome.record.compile_s:.1f} s); report: {outcome.files[-1]}"
    )
    return 0


def _shard(experiment, args: argparse.Namespace, command: str, max_memory: int | None) -> int:
    """``--shard I/N``: trains the shard into the cache (``bench.experiments.sharded``) and says what it did."""
    from bench.experiments import sharded
    from bench.training.shards import Shard

    shard = Shard.parse(args.shard)
    shares = sharded.run_shard(experiment, shard, command=command, progress=not args.no_progress,
                               data_dir=args.data_dir, download=args.download, chunk=args.chunk,
                               max_memory=max_memory, checkpoint_every=args.checkpoint_every)
    for share in shares:
        left = "".join(f"; chunk {c} left to pid {h.pid} on {h.host}" for c, h in share.elsewhere.items())
        print(f"{share.task}: chunks {_listed(share.owned)} of this shard; trained {_listed(share.trained)}, "
              f"found finished {_listed(share.found)}{left}", file=sys.stderr)
    print(f"shard {shard} done: python -m bench status {args.preset} says what the others did; once all are done, "
          f"python -m bench run {args.preset} (the same options, without --shard) writes the report", file=sys.stderr)
    return 0


def _listed(chunks) -> str:
    return ", ".join(map(str, chunks)) or "none"


def _finished(experiment, args: argparse.Namespace) -> bool:
    """Whether every chunk of the study is finished in the cache (then the launcher submits nothing: the run merges)."""
    from bench.experiments import sharded

    statuses = sharded.status(experiment, data_dir=args.data_dir, download=args.download)
    return all(s.n_chunks is not None and not s.missing and not s.running for s in statuses)
