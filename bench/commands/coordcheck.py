"""``python -m bench coordcheck``: width parameterizations: do activations and updates keep their size as the
model widens."""

from __future__ import annotations

import argparse
import shlex

from bench.commands.arguments import floating, integer, names, widths

NAME = "coordcheck"
HELP = "width parameterizations: do activations and updates keep their size as the model widens (SP, NTK, muP)"
EXAMPLES = ("python -m bench coordcheck --parameterizations sp,mup --model mlp",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--parameterizations", type=names, default=["sp", "ntk", "mup"], help="comma-separated (default sp,ntk,mup)"
    )
    parser.add_argument("--model", default="mlp", help="mlp or transformer (pre-LN, 4 heads; default mlp)")
    parser.add_argument(
        "--widths", type=widths, help="hidden widths (default 64,128,...,2048; the transformer's 32,64,...,512)"
    )
    parser.add_argument("--base-width", type=integer, help="width where they all agree (default: the narrowest)")
    parser.add_argument(
        "--dataset",
        help="classification dataset (default digits); a token language for the "
        "transformer (default markov(vocab=16, order=2, context=16, ...))",
    )
    parser.add_argument("--depth", type=integer, default=2, help="hidden layers or blocks (default 2)")
    parser.add_argument("--optimizer", default="adam", help="optimizer spec (default adam)")
    parser.add_argument("--lr", type=floating, default=1e-2, help="learning rate (default 1e-2)")
    parser.add_argument("--steps", type=integer, default=5, help="optimizer steps after init (default 5)")
    parser.add_argument("--seeds", type=integer, default=3, help="networks per width (default 3)")
    parser.add_argument("--data-dir", help="folder of dataset files or tfds data_dir")
    parser.add_argument("--out", help="folder (default reports/coordcheck[-transformer]-<optimizer>)")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.store import exclusive
    from bench.studies import coordcheck

    transformer = args.model == "transformer"
    widths = args.widths or list(coordcheck.TRANSFORMER_WIDTHS if transformer else coordcheck.WIDTHS)
    dataset = args.dataset or (coordcheck.TRANSFORMER_DATA if transformer else "digits")
    setup = coordcheck.setup_from(
        dataset=dataset,
        depth=args.depth,
        optimizer=args.optimizer,
        lr=args.lr,
        base_width=args.base_width or min(widths),
        steps=args.steps,
        seeds=args.seeds,
        parameterizations=args.parameterizations,
        widths=widths,
        data_dir=args.data_dir,
        model=args.model,
    )
    kind = "-transformer" if transformer else ""
    out = args.out or f"reports/coordcheck{kind}-{args.optimizer.split('(')[0]}"
    with exclusive(out):
        table = coordcheck.run(setup, args.parameterizations, widths)
        files = coordcheck.write(setup, table, out, shlex.join(["python", "-m", "bench", *argv]))
    print(coordcheck.summary(table).to_markdown(floatfmt=".2f"))
    print(f"\nwrote {len(files)} files to {out}")
    return 0
