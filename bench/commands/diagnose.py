"""``python -m bench diagnose``: signal propagation at initialization: variances per layer, Jacobian."""

from __future__ import annotations

import argparse
import shlex

from bench.commands.arguments import default_out, integer, names, specs, widths
from bench.errors import UserError

NAME = "diagnose"
HELP = "signal propagation at initialization: variances per layer, Jacobian"
EXAMPLES = ("python -m bench diagnose default --initializers he_normal,glorot_uniform",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", nargs="?", default="default",
                        help="preset name (`bench list` shows them) or experiment file (.toml)")
    parser.add_argument("--initializers", type=specs, help="comma-separated specs (default: the preset's)")
    parser.add_argument("--datasets", type=names, help="comma-separated dataset names")
    parser.add_argument("--model", help="model of every task")
    parser.add_argument("--hidden", type=widths, help="hidden widths, e.g. 256,256,256")
    parser.add_argument("--activation", help="hidden activation")
    parser.add_argument("--seeds", type=integer, default=8, help="networks per initializer (default 8)")
    parser.add_argument(
        "--steps",
        type=integer,
        default=32,
        help="transformers: optimizer steps traced after initialization (default 32; at most an epoch)",
    )
    parser.add_argument("--data-dir", help="folder of dataset files or tfds data_dir")
    parser.add_argument("--out", help="folder (default: runs/<preset>/diagnostics)")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    from bench import store
    from bench.experiments import presets
    from bench.store import exclusive
    from bench.studies import diagnose

    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    experiment = presets.resolve(args.preset).override(
        initializers=args.initializers,
        datasets=args.datasets,
        model=args.model,
        hidden=args.hidden,
        activation=args.activation,
    )
    out = args.out or default_out(store.path_name(experiment.name), "diagnostics")
    with exclusive(out):
        result = diagnose.diagnose(experiment, args.seeds, args.data_dir, args.steps)
        files = diagnose.write(result, out, experiment, shlex.join(["python", "-m", "bench", *argv]))
    print(diagnose.summary(result).to_markdown(index=False, floatfmt=".3g"))
    print(f"\nwrote {len(files)} files to {out}")
    return 0
