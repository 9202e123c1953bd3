"""What merging a study of many shards costs: a simulated cache of N finished units (chunks) of one task, each a
chunk file as the trainer writes it, then the merge's reading of them (listed, read and verified, as
``bench.training.train`` loads finished chunks) and ``bench status``'s listing, timed.

    python tools/merge_cost.py --units 1000 --arms 8 --epochs 10 --test 10000

The sizes default to an 8-initializer study on MNIST's 10,000 test examples, one seed a unit. Prints the bytes
written and the seconds of each step (the docs' clusters guide quotes it with the machine named).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.training import claims, memory, resume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--arms", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--test", type=int, default=10_000)
    parser.add_argument("--folder", help="the cache (default: a temporary folder)")
    args = parser.parse_args()
    root = Path(args.folder or tempfile.mkdtemp(prefix="initjax-merge-cost-"))
    config = {"simulated": "merge cost", "units": args.units}
    store = resume.TaskStore(root, "task", config)
    store.plan(memory.ChunkPlan(1, args.units, args.arms, 0, 0, "simulated"), args.units)
    rng = np.random.default_rng(0)
    sums = rng.random((args.epochs + 1, 3, 2, args.arms, 1))
    finite = np.ones((args.epochs + 1, args.arms, 1), bool)
    outcomes = (rng.random((args.arms, 1, args.test)).astype(np.float32),
                (rng.random((args.arms, 1, args.test)) > 0.1).astype(np.float32))
    start = time.perf_counter()
    for c in range(args.units):
        store.save_finished(c, sums, finite, 1.0, args.epochs, outcomes)
    written = time.perf_counter() - start
    size = sum(p.stat().st_size for p in store.folder.glob("chunk-*.npz"))
    shapes = {"sums": sums.shape, "finite": finite.shape}
    start = time.perf_counter()
    reader = resume.TaskStore(root, "task", config)
    for c in range(args.units):
        reader.finished(c, shapes)
    read = time.perf_counter() - start
    start = time.perf_counter()
    listed = len(list(store.folder.glob("chunk-[0-9][0-9][0-9][0-9].npz"))), claims.claims_in(store.folder)
    status = time.perf_counter() - start
    print(f"{args.units} units of {args.arms} arms x {args.epochs} epochs x {args.test:,} test examples: "
          f"{size / 1e6:.0f} MB in {root}")
    print(f"write {written:.1f} s, merge's read and verify {read:.1f} s ({read / args.units * 1e3:.1f} ms a unit), "
          f"status's listing {status:.2f} s ({listed[0]} files)")


if __name__ == "__main__":
    main()
