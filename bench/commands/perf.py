"""``python -m bench perf``: time the vmapped trainer against a Python loop, per-seed scans and the torch peer."""

from __future__ import annotations

import argparse
import sys

from bench.commands.arguments import integer, names
from bench.errors import Interrupted, UserError

NAME = "perf"
HELP = "time the vmapped trainer against a Python loop and per-seed scans"
EXAMPLES = ("python -m bench perf --workloads digits-cnn,mnist --models 1,8,32 --no-grid --no-frameworks "
            "--no-notebook",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models",
        type=names,
        default=["1", "8", "32", "128", "256"],
        help="comma-separated model counts (multiples of 8: 8 initializers x n/8 seeds)",
    )
    parser.add_argument(
        "--workloads",
        type=names,
        default=["synthetic", "mnist", "transformer", "digits-cnn", "mnist-cnn"],
        help="synthetic, mnist, transformer, digits-cnn, mnist-cnn (default all; synthetic-nnx, mnist-nnx, "
             "synthetic-equinox, mnist-equinox: the MLPs in Flax NNX and Equinox); the conv nets are timed at model "
             "counts up to 32, and the suite's program also with XLA's convolutions one model after the other "
             "(sequential)",
    )
    parser.add_argument(
        "--no-frameworks",
        action="store_true",
        help="skip the timing of the synthetic and MNIST MLPs written in Flax NNX and Equinox against linen's "
             "(alternated, 8 and 32 models)",
    )
    parser.add_argument(
        "--no-grid",
        action="store_true",
        help="skip the grid's timing (8 initializers x 4 lr x 8 seeds against 8 x 32 seeds)",
    )
    parser.add_argument(
        "--no-notebook",
        action="store_true",
        help="skip the notebook job (256 runs whole, each peer in fresh processes, cold and warm caches)",
    )
    parser.add_argument("--rounds", type=integer, default=2, help="rounds of the notebook job (default 2)")


def main(args: argparse.Namespace, argv: list[str]) -> int:
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
        print(
            grid.assign(
                seconds=grid["seconds"].map("{:.3f}".format),
                seed_epochs_per_s=grid["seed_epochs_per_s"].map("{:,.0f}".format),
                ratio=grid["ratio"].map("{:.2f}x".format),
            ).to_markdown(index=False)
        )
    if not args.no_frameworks:
        print("timing the MLPs in Flax NNX and Equinox against linen, alternated", file=sys.stderr)
        print(_frameworks_table(perf.measure_frameworks()))
    if not args.no_notebook:
        _notebook(args.rounds)
    return 0


def _notebook(rounds: int) -> None:
    """``bench perf``'s last table: the notebook job, whole, by initjax and by the torch peer."""
    from bench.studies import notebook_job, peers

    if rounds < 1:
        raise UserError(f"--rounds must be >= 1, got {rounds}")
    print(f"timing the {notebook_job.NOTEBOOK}; peer: {peers.describe()}", file=sys.stderr)
    jobs = notebook_job.notebook_jobs(rounds, log=lambda text: print(text, file=sys.stderr, flush=True))
    summary = notebook_job.notebook_summary(jobs)
    print(
        f"\n{notebook_job.NOTEBOOK}; whole job (init + compile + train + evaluate, imports excluded), "
        f"best of {rounds} fresh processes\n"
    )
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
        hidden = ["workload"] + (
            [] if perf.WORKLOADS[name].kind == "transformer" or "tokens_per_s" not in group else ["tokens_per_s"]
        )
        lines += [
            "",
            f"{perf.WORKLOADS[name].name}, {perf.WORKLOADS[name].n_examples} examples per epoch",
            group.drop(columns=hidden).to_markdown(
                index=False, tablefmt="simple", floatfmt=".3g", disable_numparse=True
            ),
        ]
    return "\n".join(lines)


def _frameworks_table(table) -> str:
    """The frameworks' timings as markdown: the median ratio to linen over rounds and its 95% interval."""
    return "\nthe same MLP in each framework, the suite's program (run-epochs/s; median ratio to linen over " \
        "alternated rounds, 95% bootstrap interval)\n\n" + table.assign(
            linen=table["linen_seed_epochs_per_s"].map("{:,.0f}".format),
            ratio=[f"{r:.2f}x [{lo:.2f}, {hi:.2f}]" for r, lo, hi in zip(table.ratio, table.low, table.high)],
        )[["workload", "models", "framework", "linen", "ratio"]].to_markdown(index=False)
