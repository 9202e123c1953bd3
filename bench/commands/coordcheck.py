"""``python -m bench coordcheck``: width and depth parameterizations: do activations and updates keep their size
as the model widens (``--widths``) or deepens (``--depths``)."""

from __future__ import annotations

import argparse
import shlex

from bench.commands.arguments import floating, integer, names, widths

NAME = "coordcheck"
HELP = ("width and depth parameterizations: do activations and updates keep their size as the model widens (SP, "
        "NTK, muP) or deepens (--depths: muP, Depth-muP, CompleteP)")
EXAMPLES = ("python -m bench coordcheck --parameterizations sp,mup --model mlp",
            "python -m bench coordcheck --depths 2,4,8,16,32 --model resmlp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--parameterizations", type=names,
        help="comma-separated (default sp,ntk,mup; with --depths mup,depth_mup,completep)",
    )
    parser.add_argument("--model", help="mlp, resmlp or transformer (pre-LN, 4 heads; default mlp, with --depths "
                                        "resmlp)")
    parser.add_argument(
        "--widths", type=widths, help="hidden widths (default 64,128,...,2048; the transformer's 32,64,...,512)"
    )
    parser.add_argument("--depths", type=widths,
                        help="residual blocks, e.g. 2,4,8,16,32: a check over depth at one width (--base-width), the "
                             "narrowest depth the base depth")
    parser.add_argument("--base-width", type=integer,
                        help="width where they all agree (default: the narrowest; with --depths the width, default "
                             "64, the transformer's 32)")
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
    parser.add_argument("--out", help="folder (default reports/coordcheck[-depth][-resmlp|-transformer]-<optimizer>)")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.errors import UserError
    from bench.store import exclusive
    from bench.studies import coordcheck

    over_depth = args.depths is not None
    if over_depth and args.widths is not None:
        raise UserError("give --widths (a check over width) or --depths (over depth), not both")
    model = args.model or ("resmlp" if over_depth else "mlp")
    transformer = model == "transformer"
    parameterizations = args.parameterizations or (["mup", "depth_mup", "completep"] if over_depth
                                                   else ["sp", "ntk", "mup"])
    if over_depth:
        sizes, base_width = args.depths, args.base_width or (32 if transformer else 64)
    else:
        sizes = args.widths or list(coordcheck.TRANSFORMER_WIDTHS if transformer else coordcheck.WIDTHS)
        base_width = args.base_width or min(sizes)
    dataset = args.dataset or (coordcheck.TRANSFORMER_DATA if transformer else "digits")
    setup = coordcheck.setup_from(
        dataset=dataset,
        depth=args.depth,
        optimizer=args.optimizer,
        lr=args.lr,
        base_width=base_width,
        steps=args.steps,
        seeds=args.seeds,
        parameterizations=parameterizations,
        widths=sizes,
        data_dir=args.data_dir,
        model=model,
        sweep="depth" if over_depth else "width",
    )
    kind = ("-depth" if over_depth else "") + (f"-{model}" if model != "mlp" else "")
    out = args.out or f"reports/coordcheck{kind}-{args.optimizer.split('(')[0]}"
    with exclusive(out):
        table = coordcheck.run(setup, parameterizations, sizes)
        files = coordcheck.write(setup, table, out, shlex.join(["python", "-m", "bench", *argv]))
    print(coordcheck.summary(table).to_markdown(floatfmt=".2f"))
    print(f"\nwrote {len(files)} files to {out}")
    return 0
