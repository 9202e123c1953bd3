"""``python -m bench run``: train a preset or an experiment file and write its report."""

from __future__ import annotations

import argparse
import shlex

from bench.commands.arguments import floating, integer, names, specs, widths
from bench.errors import UserError

NAME = "run"
HELP = "run a preset (default: 'default') or an experiment file, write its report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "preset",
        nargs="?",
        default="default",
        help="preset name (`bench list` shows them) or an experiment file study.toml (`bench show`)",
    )
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any field of the experiment, e.g. --set train.lr=0.01 --set tasks.0.model=resmlp "
        "(TOML values; before the short options below)",
    )
    parser.add_argument(
        "--seeds", type=integer, help="seeds per initializer, 1 to 100,000 (default: the preset's; 32 in default)"
    )
    parser.add_argument(
        "--data-seeds",
        type=integer,
        help="data orders crossed with every seed (default 1: seed i fixes both); the report splits the spread",
    )
    parser.add_argument(
        "--initializers",
        type=specs,
        help="comma-separated specs: he_normal,normal(stddev=0.1),my_module:my_init (an initializer), "
        "my_module:builder(k=v) or my_module:builder() (called to build one; module:function runs that code) "
        "(default: the preset's; 8 Keras initializers in default)",
    )
    parser.add_argument(
        "--datasets",
        type=names,
        help="comma-separated dataset names, `bench list` shows them "
        "(default: the preset's; synthetic,digits in default)",
    )
    parser.add_argument(
        "--epochs", type=integer, help="passes over the training set (default: the preset's; 10 in default)"
    )
    parser.add_argument(
        "--lr",
        help="learning rate, > 0 (default: the preset's; 1e-3 in default); several make a grid "
        'trained in one program and tuned per initializer: 1e-3,1e-2,1e-1 or "logspace(1e-4, 1e-1, 7)"',
    )
    parser.add_argument(
        "--weight-decay", help="weight decay, >= 0; several values (or linspace(...)) make a grid factor"
    )
    parser.add_argument("--momentum", help="grid of momentum values in [0, 1): SGD's momentum, Adam's b1")
    parser.add_argument(
        "--init-scale",
        help="grid of multipliers of the initial kernels, e.g. 0.5,1,2 "
        "(--set grid.init_scale_on=PATTERN for other parameters)",
    )
    parser.add_argument(
        "--optimizer",
        help="sgd, momentum, nesterov, adam, adamw, lion, rmsprop, with optax keyword "
        "arguments: adamw(b2=0.95) (default: the preset's; adam in default)",
    )
    parser.add_argument(
        "--batch-size",
        type=integer,
        help="minibatch size; a partial last batch is kept (default: the preset's; 32 in default)",
    )
    parser.add_argument("--experiment-seed", type=integer, help="root of all random keys, 0 to 2**32-1 (default 0)")
    parser.add_argument(
        "--model",
        help="model of every task: mlp, resmlp, lenet, convnet, `bench list` (default: the preset's; mlp in default)",
    )
    parser.add_argument(
        "--hidden",
        type=widths,
        help="hidden widths, e.g. 300,100; resmlp: one equal width per block (default: the preset's; 64,64 in default)",
    )
    parser.add_argument(
        "--activation", help="hidden activation, `bench list` shows them (default: the preset's; relu in default)"
    )
    parser.add_argument("--out", help="report folder (default: reports/<preset>)")
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


def main(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.reporting import drawing

    drawing.warm()  # the figure workers import matplotlib while this process imports JAX and trains
    from bench import store
    from bench.experiments import presets
    from bench.experiments.runner import run_experiment
    from bench.reporting import render
    from bench.training import devices, memory

    if args.distributed:
        devices.initialize_distributed()
    max_memory = None if args.max_memory is None else memory.parse_bytes(args.max_memory)
    if not args.checkpoint_every >= 0:
        raise UserError(f"--checkpoint-every must be >= 0 seconds, got {args.checkpoint_every}")
    experiment = presets.resolve(args.preset, args.assignments)
    if args.smoke:  # first, so that explicit options (--epochs 3 --smoke) still apply
        experiment = presets.smoke(experiment)
    experiment = experiment.override(
        seeds=args.seeds,
        initializers=args.initializers,
        datasets=args.datasets,
        epochs=args.epochs,
        lr=args.lr,
        weight_decay=args.weight_decay,
        momentum=args.momentum,
        init_scale=args.init_scale,
        optimizer=args.optimizer,
        batch_size=args.batch_size,
        seed=args.experiment_seed,
        model=args.model,
        hidden=args.hidden,
        activation=args.activation,
        data_seeds=args.data_seeds,
    )
    out = args.out or f"reports/{store.path_name(experiment.name)}"
    command = shlex.join(["python", "-m", "bench", *argv])
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
