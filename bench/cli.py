"""``python -m bench``: run a preset, list what exists.

With no arguments it runs the ``default`` preset. User mistakes end with one line on
stderr and exit status 2; an interrupt with status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from bench import interrupts
from bench.errors import Interrupted, UserError
from bench.reporting import FORMATS


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str):
        raise UserError(f"{message} (see `python -m {self.prog.split()[0]} --help`)")


def one_line(text: str) -> str:
    """``text`` with every non-printable character (newlines a user typed, tabs, ...) escaped: one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _widths(text: str) -> list[int]:
    try:
        return [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _specs(text: str) -> list[str]:
    from initjax.spec import split_specs

    try:
        return split_specs(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bench", description="Compare weight initializers over many seeds, with confidence intervals."
    )
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    run = commands.add_parser("run", help="run a preset (default: 'default') or an experiment file, write its report")
    run.add_argument("preset", nargs="?", default="default",
                     help="preset name (`bench list` shows them) or an experiment file study.toml (`bench show`)")
    run.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                     help="set any field of the experiment, e.g. --set train.lr=0.01 --set tasks.0.model=resmlp "
                     "(TOML values; before the short options below)")
    run.add_argument(
        "--seeds", type=_int, help="seeds per initializer, 1 to 100,000 (default: the preset's; 32 in default)"
    )
    run.add_argument("--data-seeds", type=_int,
                     help="data orders crossed with every seed (default 1: seed i fixes both); the report splits "
                     "the spread")
    run.add_argument(
        "--initializers", type=_specs,
        help="comma-separated specs: he_normal,normal(stddev=0.1),my_module:my_init (an initializer), "
        "my_module:builder(k=v) or my_module:builder() (called to build one; module:function runs that code) "
        "(default: the preset's; 8 Keras initializers in default)",
    )
    run.add_argument("--datasets", type=_names, help="comma-separated dataset names, `bench list` shows them "
                     "(default: the preset's; synthetic,digits in default)")
    run.add_argument("--epochs", type=_int, help="passes over the training set (default: the preset's; 10 in default)")
    run.add_argument("--lr", help="learning rate, > 0 (default: the preset's; 1e-3 in default); several make a grid "
                     "trained in one program and tuned per initializer: 1e-3,1e-2,1e-1 or \"logspace(1e-4, 1e-1, 7)\"")
    run.add_argument("--weight-decay", help="weight decay, >= 0; several values (or linspace(...)) make a grid factor")
    run.add_argument("--momentum", help="grid of momentum values in [0, 1): SGD's momentum, Adam's b1")
    run.add_argument("--init-scale", help="grid of multipliers of the initial kernels, e.g. 0.5,1,2 "
                     "(--set grid.init_scale_on=PATTERN for other parameters)")
    run.add_argument("--optimizer", help="sgd, momentum, nesterov, adam, adamw, lion, rmsprop, with optax keyword "
                     "arguments: adamw(b2=0.95) (default: the preset's; adam in default)")
    run.add_argument("--batch-size", type=_int, help="minibatch size; a partial last batch is kept (default: the "
                     "preset's; 32 in default)")
    run.add_argument("--experiment-seed", type=_int, help="root of all random keys, 0 to 2**32-1 (default 0)")
    run.add_argument("--model", help="model of every task: mlp, resmlp, lenet, convnet, `bench list` (default: "
                     "the preset's; mlp in default)")
    run.add_argument("--hidden", type=_widths, help="hidden widths, e.g. 300,100; resmlp: one equal width per block "
                     "(default: the preset's; 64,64 in default)")
    run.add_argument("--activation", help="hidden activation, `bench list` shows them (default: the preset's; relu "
                     "in default)")
    run.add_argument("--out", help="report folder (default: reports/<preset>)")
    run.add_argument(
        "--smoke",
        action="store_true",
        help="tiny form: 2 seeds, 1 epoch, 512 training examples (explicit options still apply)",
    )
    run.add_argument(
        "--data-dir", help="folder of dataset files or tfds data_dir (default $INITJAX_DATA_DIR, else data/)"
    )
    run.add_argument(
        "--download", action="store_true", help="let tfds download and prepare missing datasets (needs the tf extra)"
    )
    run.add_argument(
        "--baseline",
        help="reference of the difference columns (default: the best by mean; verdicts are always about the best)",
    )
    run.add_argument(
        "--margin", type=_float, help="equivalence margin in the metric's units (default 0.005 = 0.5 pp of accuracy)"
    )
    run.add_argument("--fixed-test-set", action="store_true",
                     help="intervals over seeds only, conditional on this test set (default: count its sampling error)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--chunk", type=_int, help="seeds trained at once, with every initializer (default: from memory)")
    run.add_argument("--max-memory", help="memory budget, e.g. 4G (default: 80%% of the memory available)")
    run.add_argument("--fresh", action="store_true", help="forget finished chunks of this experiment and start over")
    run.add_argument("--checkpoint-every", type=_float, default=60.0,
                     help="seconds between checkpoints of a chunk in progress (default 60; 0: every epoch)")
    run.add_argument("--distributed", action="store_true",
                     help="one process per host: jax.distributed.initialize() from the environment; process 0 writes")
    rep = commands.add_parser("report", help="re-render the report of a finished run, without training")
    rep.add_argument("dir", help="folder with results.csv and run.json")
    rep.add_argument("--out", help="write the report to this folder instead of DIR (never over a report there "
                     "unless --force)")
    rep.add_argument("--force", action="store_true", help="with --out: overwrite the report found there")
    rep.add_argument("--format", type=_names, default=list(FORMATS), help=f"comma-separated, of {','.join(FORMATS)}")
    rep.add_argument("--metric", help="metric to rank and test (default test_accuracy; test_r2 for regression; "
                                      "test_loss for language models)")
    rep.add_argument(
        "--baseline",
        help="reference of the difference columns (default: the best by mean; verdicts are always about the best)",
    )
    rep.add_argument(
        "--margin",
        type=_float,
        help="equivalence margin in the metric's units (default: the run's, 0.5 pp of accuracy)",
    )
    rep.add_argument(
        "--unpaired", action="store_true", help="runs not matched by seed: Welch differences instead of paired ones"
    )
    rep.add_argument("--fixed-test-set", action=argparse.BooleanOptionalAction, default=None,
                     help="intervals conditional on the test set (default: the run's choice)")
    rep.add_argument("--statistic", choices=("mean", "trimmed"),
                     help="what the comparisons estimate of each paired difference: mean (default: the run's), or "
                          "trimmed (20%% trimmed means, robust to a few stuck runs; discounts up to 20%% of failures)")
    cal = commands.add_parser(
        "calibrate", help="measure the report's error rates, coverage and power by resampling its runs"
    )
    cal.add_argument("dir", help="folder with results.csv and run.json")
    cal.add_argument("--seeds", type=_widths, default=[8, 16, 32], help="seed counts simulated (default 8,16,32)")
    cal.add_argument("--reps", type=_int, default=200, help="resamples per scenario and seed count (default 200)")
    cal.add_argument(
        "--shift", type=_float, help="handicap of the worse initializer in the shift scenario (default: 2 x margin)"
    )
    cal.add_argument("--metric", help="metric (default: the report's; test_accuracy, test_r2 for regression, "
                                      "test_loss for language models)")
    cal.add_argument("--unpaired", action="store_true", help="calibrate the unpaired procedure")
    cal.add_argument("--statistic", choices=("mean", "trimmed"),
                     help="calibrate the comparisons of this statistic (default: the report's)")
    perf = commands.add_parser("perf", help="time the vmapped trainer against a Python loop and per-seed scans")
    perf.add_argument("--models", type=_names, default=["1", "8", "32", "128", "256"],
                      help="comma-separated model counts (multiples of 8: 8 initializers x n/8 seeds)")
    perf.add_argument("--workloads", type=_names, default=["synthetic", "mnist", "transformer"],
                      help="synthetic, mnist, transformer (default all)")
    perf.add_argument("--no-grid", action="store_true",
                      help="skip the grid's timing (8 initializers x 4 lr x 8 seeds against 8 x 32 seeds)")
    perf.add_argument("--no-notebook", action="store_true",
                      help="skip the notebook job (256 runs whole, each peer in fresh processes, cold and warm caches)")
    perf.add_argument("--rounds", type=_int, default=2, help="rounds of the notebook job (default 2)")
    diag = commands.add_parser("diagnose", help="signal propagation at initialization: variances per layer, Jacobian")
    diag.add_argument("preset", nargs="?", default="default", help="preset name (`bench list` shows them)")
    diag.add_argument("--initializers", type=_specs, help="comma-separated specs (default: the preset's)")
    diag.add_argument("--datasets", type=_names, help="comma-separated dataset names")
    diag.add_argument("--model", help="model of every task")
    diag.add_argument("--hidden", type=_widths, help="hidden widths, e.g. 256,256,256")
    diag.add_argument("--activation", help="hidden activation")
    diag.add_argument("--seeds", type=_int, default=8, help="networks per initializer (default 8)")
    diag.add_argument("--steps", type=_int, default=32,
                      help="transformers: optimizer steps traced after initialization (default 32; at most an epoch)")
    diag.add_argument("--data-dir", help="folder of dataset files or tfds data_dir")
    diag.add_argument("--out", help="folder (default: reports/<preset>/diagnostics)")
    coord = commands.add_parser("coordcheck", help="width parameterizations: do activations and updates keep "
                                "their size as the model widens (SP, NTK, muP)")
    coord.add_argument("--parameterizations", type=_names, default=["sp", "ntk", "mup"],
                       help="comma-separated (default sp,ntk,mup)")
    coord.add_argument("--model", default="mlp", help="mlp or transformer (pre-LN, 4 heads; default mlp)")
    coord.add_argument("--widths", type=_widths,
                       help="hidden widths (default 64,128,...,2048; the transformer's 32,64,...,512)")
    coord.add_argument("--base-width", type=_int, help="width where they all agree (default: the narrowest)")
    coord.add_argument("--dataset", help="classification dataset (default digits); a token language for the "
                       "transformer (default markov(vocab=16, order=2, context=16, ...))")
    coord.add_argument("--depth", type=_int, default=2, help="hidden layers or blocks (default 2)")
    coord.add_argument("--optimizer", default="adam", help="optimizer spec (default adam)")
    coord.add_argument("--lr", type=_float, default=1e-2, help="learning rate (default 1e-2)")
    coord.add_argument("--steps", type=_int, default=5, help="optimizer steps after init (default 5)")
    coord.add_argument("--seeds", type=_int, default=3, help="networks per width (default 3)")
    coord.add_argument("--data-dir", help="folder of dataset files or tfds data_dir")
    coord.add_argument("--out", help="folder (default reports/coordcheck[-transformer]-<optimizer>)")
    rep2 = commands.add_parser("reproduce", help="run a classic paper's preset and check its claims with CIs")
    rep2.add_argument("name", help="glorot2010, he2015-depth, saxe2013, schoenholz2017, postln-init or mup-transfer")
    rep2.add_argument("--smoke", action="store_true", help="tiny form, to check that it runs")
    rep2.add_argument("--data-dir", help="folder of dataset files or tfds data_dir")
    rep2.add_argument("--out", help="folder (default: reports/<name>)")
    rep2.add_argument("--no-progress", action="store_true", help="no progress bars")
    rep2.add_argument("--fresh", action="store_true", help="retrain instead of resuming finished chunks")
    rep2.add_argument("--from-results", action="store_true",
                      help="check the claims on the runs already in --out (its results.csv and run.json), "
                           "training nothing: the statistics and claims of this version on the committed runs")
    commands.add_parser("list", help="presets, initializers, datasets, models, optimizers")
    show = commands.add_parser("show", help="print a preset as an experiment file (TOML) to copy and edit")
    show.add_argument("preset", help="preset name or experiment file")
    show.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                      help="set a field first, as with run")
    return parser


def exit_quickly(code: int) -> NoReturn:
    """Ends ``python -m bench`` with ``code`` once :func:`main` has returned, without the interpreter's teardown.

    Deallocating the modules of jax, flax, scipy and pandas one by one takes 0.6 s at the end of
    every command, and frees nothing the OS would not free at once. Everything is written by
    then (each file atomically, and closed); the figure workers are stopped first, so their
    semaphores are released, and the output streams flushed. A multi-process JAX run exits the
    usual way: its exit handler shuts the distributed runtime down together with the other processes.
    """
    jax = sys.modules.get("jax")
    if jax is not None and jax.distributed.is_initialized():
        sys.exit(code)
    if "bench.reporting.drawing" in sys.modules:
        sys.modules["bench.reporting.drawing"].stop()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe (`python -m bench | head`): Python's own status for it
        code = code or 120
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
            argv = ["run", *argv]  # `python -m bench --seeds 4` runs the default preset
        args = build_parser().parse_args(argv)
        if args.command == "list":
            print(listing())
            return 0
        if args.command == "show":
            from bench.experiments import experiment_file, presets

            if not args.assignments and not presets.is_experiment_file(args.preset):
                print(presets.preset_file(args.preset).read_text(), end="")  # the shipped file itself
            else:
                print(experiment_file.dump(presets.resolve(args.preset, args.assignments)), end="")
            return 0
        if args.command == "report":
            return _report(args)
        if args.command == "calibrate":
            return _calibrate(args, argv)
        if args.command == "perf":
            return _perf(args)
        if args.command == "diagnose":
            return _diagnose(args, argv)
        if args.command == "reproduce":
            return _reproduce(args, argv)
        if args.command == "coordcheck":
            return _coordcheck(args, argv)
        return _run(args, argv)
    except UserError as error:
        print(f"bench: error: {one_line(str(error))}", file=sys.stderr)
        return 2
    except Interrupted as interrupted:
        interrupts.handled()
        print(f"bench: {interrupted}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        interrupts.handled()
        print("bench: interrupted; files already written are whole (each is written atomically), "
              "rerun the command to finish", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, argv: list[str]) -> int:
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
        seeds=args.seeds, initializers=args.initializers, datasets=args.datasets, epochs=args.epochs,
        lr=args.lr, weight_decay=args.weight_decay, momentum=args.momentum, init_scale=args.init_scale,
        optimizer=args.optimizer, batch_size=args.batch_size, seed=args.experiment_seed,
        model=args.model, hidden=args.hidden, activation=args.activation, data_seeds=args.data_seeds,
    )
    out = args.out or f"reports/{store.path_name(experiment.name)}"
    command = shlex.join(["python", "-m", "bench", *argv])
    outcome = run_experiment(
        experiment, out, progress=not args.no_progress, command=command, baseline=args.baseline,
        data_dir=args.data_dir, download=args.download, chunk=args.chunk, max_memory=max_memory,
        fresh=args.fresh, checkpoint_every=args.checkpoint_every, margin=args.margin,
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


def _diagnose(args: argparse.Namespace, argv: list[str]) -> int:
    from bench import store
    from bench.experiments import presets
    from bench.store import exclusive
    from bench.studies import diagnose

    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    experiment = presets.get(args.preset).override(
        initializers=args.initializers, datasets=args.datasets, model=args.model, hidden=args.hidden,
        activation=args.activation)
    out = args.out or f"reports/{store.path_name(experiment.name)}/diagnostics"
    with exclusive(out):
        result = diagnose.diagnose(experiment, args.seeds, args.data_dir, args.steps)
        files = diagnose.write(result, out, experiment, shlex.join(["python", "-m", "bench", *argv]))
    print(diagnose.summary(result).to_markdown(index=False, floatfmt=".3g"))
    print(f"\nwrote {len(files)} files to {out}")
    return 0


def _coordcheck(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.store import exclusive
    from bench.studies import coordcheck

    transformer = args.model == "transformer"
    widths = args.widths or list(coordcheck.TRANSFORMER_WIDTHS if transformer else coordcheck.WIDTHS)
    dataset = args.dataset or (coordcheck.TRANSFORMER_DATA if transformer else "digits")
    setup = coordcheck.setup_from(dataset=dataset, depth=args.depth, optimizer=args.optimizer, lr=args.lr,
                                  base_width=args.base_width or min(widths), steps=args.steps, seeds=args.seeds,
                                  parameterizations=args.parameterizations, widths=widths,
                                  data_dir=args.data_dir, model=args.model)
    kind = "-transformer" if transformer else ""
    out = args.out or f"reports/coordcheck{kind}-{args.optimizer.split('(')[0]}"
    with exclusive(out):
        table = coordcheck.run(setup, args.parameterizations, widths)
        files = coordcheck.write(setup, table, out, shlex.join(["python", "-m", "bench", *argv]))
    print(coordcheck.summary(table).to_markdown(floatfmt=".2f"))
    print(f"\nwrote {len(files)} files to {out}")
    return 0


def _reproduce(args: argparse.Namespace, argv: list[str]) -> int:
    from bench import reproduce
    from bench.errors import unknown
    from bench.experiments.runner import rerender, run_experiment

    if args.name not in reproduce.REPRODUCTIONS:
        raise unknown("reproduction", args.name, reproduce.REPRODUCTIONS)
    out = args.out or f"reports/{args.name}{'-smoke' if args.smoke else ''}"
    command = shlex.join(["python", "-m", "bench", *argv])

    def run(experiment, folder):
        if args.from_results:
            return rerender(folder, experiment.name)
        return run_experiment(experiment, folder, progress=not args.no_progress, command=command,
                              data_dir=args.data_dir, fresh=args.fresh)

    findings, files = reproduce.reproduce(args.name, out, run, command, args.data_dir, args.smoke)
    for finding in findings:
        print(f"{'HELD' if finding.held else 'NOT HELD'}: {finding.claim}\n  {finding.measured}")
    print(f"\n{sum(f.held for f in findings)} of {len(findings)} claims held; {files[-1]}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from bench.analysis import outcomes
    from bench.experiments import presets
    from bench.experiments.runner import publish, refuse_overwrite
    from bench.reporting import render, report
    from bench.reporting.files import load
    from bench.store import exclusive, staged

    out = args.out or args.dir
    with contextlib.ExitStack() as held:
        held.enter_context(exclusive(_existing(args.dir)))
        results, record = load(args.dir)
        test_outcomes = outcomes.load(args.dir, results)
        options = dict(formats=args.format, metric=args.metric, baseline=args.baseline, paired=not args.unpaired,
                       margin=args.margin, fixed_test_set=args.fixed_test_set, statistic=args.statistic)
        if Path(out).resolve() == Path(args.dir).resolve():  # re-rendered in place: its outcomes.npz stays as is
            with staged(out) as stage:
                analysis, files = report.write(stage.path, results, record, test_outcomes=test_outcomes,
                                               previous=out, dropped=stage.dropped,
                                               shipped=presets.shipped(record.name), **options)
            files = [stage.final(path) for path in files]
        else:
            held.enter_context(exclusive(out))
            refuse_overwrite(out, args.force)
            analysis, files = publish(out, results, record, test_outcomes, runs_changed=True, calibration_from=args.dir,
                                      **options)
    print(render.console(record, analysis))
    print(f"\nwrote {len(files)} files to {out}")
    return 0


def _calibrate(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.store import exclusive

    if not 10 <= args.reps <= 100_000:
        raise UserError(f"--reps must be from 10 to 100,000, got {args.reps:,}")
    if not args.seeds or min(args.seeds) < 3 or max(args.seeds) > 4096 or len(args.seeds) > 32:
        raise UserError(f"--seeds must be at most 32 counts from 3 to 4,096, got {args.seeds[:8]}")
    if args.shift is not None and not args.shift > 0:
        raise UserError(f"--shift must be > 0, got {args.shift}")
    with exclusive(_existing(args.dir)):
        return _calibrate_held(args, argv)


def _existing(folder: str) -> str:
    """``folder`` if it is a folder (so that taking its lock creates nothing), else a one-line UserError."""
    from pathlib import Path

    if not Path(folder).is_dir():
        raise UserError(f"{folder} is not a folder of results; give the --out of a finished run")
    return folder


def _calibrate_held(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.analysis import calibrate, stats
    from bench.experiments import presets
    from bench.reporting import report
    from bench.reporting.analysed import ranked_metric, settings_of
    from bench.reporting.files import load

    results, record = load(args.dir)
    settings = settings_of(record, statistic=args.statistic)
    paired = not args.unpaired
    metrics = stats.metric_columns(results)
    args.metric = args.metric or ranked_metric(results, record.tasks)
    if args.metric not in metrics:
        raise UserError(f"unknown metric {args.metric!r}; the results have {', '.join(metrics)}")
    table = calibrate.calibrate(results, args.metric, args.seeds, args.reps, args.shift, settings, paired)
    key = calibrate.fingerprint(args.metric, settings, paired)
    calibrate.save(args.dir, table, key, shlex.join(["python", "-m", "bench", *argv]),
                   calibrate.measured_runs(results, args.metric))
    print(table.drop(columns=["model"]).to_markdown(index=False, tablefmt="simple", floatfmt=".3f"))
    for dataset, cells in table.groupby("dataset", sort=False):
        print(f"\n{calibrate.describe(cells, dataset)}")
    if args.metric == ranked_metric(results, record.tasks) and paired and settings == settings_of(record):
        # the report's own metric and procedure
        from bench.analysis import outcomes

        report.write(args.dir, results, record, ["md"], args.metric, None, paired, None,
                     outcomes.load(args.dir, results), shipped=presets.shipped(record.name))
        print(f"\nwrote {args.dir}/{calibrate.FILE} and the calibration line of {args.dir}/report.md")
    else:
        print(f"\nwrote {args.dir}/{calibrate.FILE}")
    return 0


def _perf(args: argparse.Namespace) -> int:
    from bench.studies import perf

    unknown_workloads = [w for w in args.workloads if w not in perf.WORKLOADS]
    if unknown_workloads:
        raise UserError(f"unknown workload {unknown_workloads[0]!r}; known: {', '.join(perf.WORKLOADS)}")
    try:
        sizes = [int(m) for m in args.models]
    except ValueError:
        raise UserError(f"--models must be integers, got {','.join(args.models)}") from None
    if min(sizes) < 1 or max(sizes) > 65_536:
        raise UserError(f"--models must be from 1 to 65,536, got {','.join(args.models)}")
    peak = perf.matmul_peak()
    print(f"measured float32 matmul peak {peak:,.0f} GFLOP/s", file=sys.stderr)
    rows: list[dict] = []
    try:
        perf.measure(args.workloads, sizes, rows=rows, log=lambda text: print(text, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        if rows:
            print(_perf_table(rows, peak))
        raise Interrupted(f"interrupted; {len(rows)} measurement(s) finished" + (" (above)" if rows else "")) from None
    print(_perf_table(rows, peak))
    if not args.no_grid:
        print("timing the grid: 8 initializers x 4 lr x 8 seeds against 8 x 32 seeds, alternated", file=sys.stderr)
        grid = perf.measure_grid()
        print(f"\n{perf.WORKLOADS['synthetic'].name}: a grid against as many seeds (run-epochs/s, best of 3 x 3)\n")
        print(grid.assign(seconds=grid["seconds"].map("{:.3f}".format),
                          seed_epochs_per_s=grid["seed_epochs_per_s"].map("{:,.0f}".format),
                          ratio=grid["ratio"].map("{:.2f}x".format)).to_markdown(index=False))
    if not args.no_notebook:
        _notebook(args.rounds)
    return 0


def _notebook(rounds: int) -> None:
    """``bench perf``'s last table: the notebook job, whole, by initjax and by the torch peer."""
    from bench.studies import peers, perf

    if rounds < 1:
        raise UserError(f"--rounds must be >= 1, got {rounds}")
    print(f"timing the {perf.NOTEBOOK}; peer: {peers.describe()}", file=sys.stderr)
    jobs = perf.notebook_jobs(rounds, log=lambda text: print(text, file=sys.stderr, flush=True))
    summary = perf.notebook_summary(jobs)
    print(f"\n{perf.NOTEBOOK}; whole job (init + compile + train + evaluate, imports excluded), best of {rounds} "
          "fresh processes\n")
    print(summary.to_markdown(index=False, floatfmt=".2f"))


def _perf_table(rows: list[dict], peak: float) -> str:
    """The throughput tables of ``bench perf``, one per workload."""
    import jax
    import pandas as pd

    from bench.studies import perf

    table = pd.DataFrame(rows)
    table["share of peak"] = [f"{g / peak:.0%}" for g in table["gflops"]]
    for column in [c for c in ("seed_epochs_per_s", "gflops", "tokens_per_s") if c in table]:
        table[column] = [f"{v:,.0f}" if v >= 100 else f"{v:.3g}" for v in table[column]]
    device = jax.devices()[0]
    lines = [f"{jax.default_backend()} ({device.device_kind}); measured float32 matmul peak {peak:,.0f} GFLOP/s"]
    for name, group in table.groupby("workload", sort=False):
        hidden = ["workload"] + ([] if perf.WORKLOADS[name].kind == "transformer" or "tokens_per_s" not in group
                                 else ["tokens_per_s"])
        lines += ["", f"{perf.WORKLOADS[name].name}, {perf.WORKLOADS[name].n_examples} examples per epoch",
                  group.drop(columns=hidden).to_markdown(index=False, tablefmt="simple", floatfmt=".3g",
                                                            disable_numparse=True)]
    return "\n".join(lines)


def listing() -> str:
    """What ``python -m bench list`` prints."""
    import initjax
    from bench import models
    from bench.data import datasets, sequences, text
    from bench.experiments import presets
    from bench.training import recipes

    lines = ["presets:"]
    for name in presets.names():
        exp = presets.get(name)
        lines.append(f"  {name:<22} {exp.description}")
    lines.append("initializers (spec strings take arguments: normal(stddev=0.1)):")
    for name, entry in initjax.REGISTRY.items():
        flag = {True: " [truncated]", False: "", None: ""}[entry.truncated]
        lines.append(f"  {name:<22} {entry.summary}{flag if entry.alias_of is None else ''}")
    lines.append("datasets:")
    lines += [f"  {name:<22} {summary}" for name, (_, summary) in datasets.LOADERS.items()]
    lines.append("sequence generators (data = \"markov(vocab=32, order=2)\"; model transformer):")
    lines += [f"  {name:<22} {summary}" for name, (_, summary) in sequences.GENERATORS.items()]
    lines.append("text, character by character (data = \"tiny_shakespeare\"; model transformer):")
    lines += [f"  {name:<22} {summary}" for name, (_, summary) in text.TEXTS.items()]
    lines.append("models:")
    lines += [f"  {name:<22} {kind.summary}" for name, kind in models.MODELS.items()]
    lines.append(f"activations (--activation): {', '.join(models.ACTIVATIONS)}")
    lines.append(f"optimizers: {', '.join(recipes.OPTIMIZERS)}")
    return "\n".join(lines)
