"""The initializer notebook's whole job (initialization, compilation, training, evaluation), timed by initjax
and by the torch peer (``bench.studies.peers``), each in a fresh process, with cold and warm compilation caches:
what a researcher waits for, not one step's throughput (``bench.studies.perf``)."""

from __future__ import annotations

import time

import pandas as pd

import initjax
from bench import models

NOTEBOOK = "notebook job: synthetic MLP 20-64-64-1, Adam 1e-3, batch 32, 10 epochs, 8 initializers x 32 seeds"


def notebook_job(n_seeds: int = 32, epochs: int = 10) -> dict:
    """initjax's side of the notebook job (``bench.studies.peers.notebook_job`` is torch's): the default preset's
    synthetic task, 8 initializers x ``n_seeds`` seeds trained by ``bench.training.train.train_task``, evaluated on
    the training and test splits after every epoch.

    Returns:
      ``init_s``, ``compile_s`` (lowering and compiling, or loading from the persistent cache), ``train_s``
      (training and evaluation), ``total_s`` (the call, whole), ``runs``, ``test_accuracy`` `(n_inits, n_seeds)`.
    """
    from bench.data import datasets
    from bench.studies import peers
    from bench.training.train import TrainConfig, train_task

    dataset = datasets.load("synthetic")
    model = models.mlp_for(dataset.n_features, dataset.n_classes, (64, 64))
    start = time.perf_counter()
    result = train_task(dataset, model, {name: initjax.get(name) for name in peers.INITIALIZERS}, range(n_seeds),
                        TrainConfig("adam", 1e-3, 32, epochs), progress=False, keep_params=False)
    total_s = time.perf_counter() - start
    final = result.frame[result.frame.epoch == epochs]
    accuracy = final.pivot(index="arm", columns="seed", values="test_accuracy").loc[list(peers.INITIALIZERS)]
    return {"init_s": result.init_s, "compile_s": result.compile_s, "train_s": result.train_s, "total_s": total_s,
            "runs": len(final), "test_accuracy": accuracy.to_numpy()}


_JOB = """
import json, sys, time
start = time.perf_counter()
peer, n_seeds = sys.argv[1], int(sys.argv[2])
if peer == "torch":
    from bench.data import datasets
    from bench.studies import peers
    import torch
    arrays = peers.as_arrays(datasets.load("synthetic"))
    ready = time.perf_counter()
    result = peers.notebook_job(*arrays, n_seeds=n_seeds)
else:
    from bench.studies import notebook_job
    ready = time.perf_counter()
    result = notebook_job.notebook_job(n_seeds)
result["imports_s"] = ready - start
result["mean_test_accuracy"] = float(result.pop("test_accuracy")[1:].mean())  # the 7 non-zero initializers
print("JOB " + json.dumps(result))
"""


def notebook_jobs(rounds: int = 2, n_seeds: int = 32, log=None) -> pd.DataFrame:
    """The notebook job, whole, by initjax and by torch.func + torch.compile, each in a fresh process.

    Per round and peer: ``cold`` with empty compilation caches (initjax's persistent XLA cache, TorchInductor's
    FX-graph and kernel caches: fresh folders), then ``warm`` with the caches the cold process filled (what a
    second run on the machine finds). The peers alternate within a round, so both see the same machine load.

    Returns:
      One row per (round, peer, caches): the job's ``total_s`` (init + compile + train + evaluate, imports
      excluded), its parts, ``imports_s``, ``process_s`` (the process, interpreter and imports included) and the
      mean final test accuracy of the 7 non-zero initializers (the two should learn alike).
    """
    import json
    import os
    import subprocess
    import sys
    import tempfile

    from bench.studies import peers

    names = {"initjax": "initjax", "torch": "torch.func + torch.compile"}
    chosen = [p for p in names if p == "initjax" or peers.available()]
    rows = []
    for r in range(rounds):
        held = {p: tempfile.TemporaryDirectory(prefix=f"initjax-peer-{p}-") for p in chosen}  # removed after the round
        folders = {p: folder.name for p, folder in held.items()}
        for caches in ("cold", "warm"):
            for peer in chosen:
                env = {**os.environ, "INITJAX_CACHE": folders[peer], "TORCHINDUCTOR_CACHE_DIR": folders[peer]}
                env.pop("JAX_COMPILATION_CACHE_DIR", None)
                if log is not None:
                    log(f"round {r + 1}/{rounds}: {names[peer]}, {caches} caches")
                start = time.perf_counter()
                proc = subprocess.run([sys.executable, "-c", _JOB, peer, str(n_seeds)], capture_output=True, text=True,
                                      env=env, check=True)
                process_s = time.perf_counter() - start
                line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("JOB "))
                rows.append({"round": r + 1, "peer": names[peer], "caches": caches, **json.loads(line[4:]),
                             "process_s": process_s})
        for folder in held.values():
            folder.cleanup()
    return pd.DataFrame(rows)


def notebook_summary(jobs: pd.DataFrame) -> pd.DataFrame:
    """Best ``total_s`` and ``process_s`` per (caches, peer) over rounds, and initjax's ratio to the peer."""
    best = jobs.groupby(["caches", "peer"], sort=False)[["total_s", "process_s", "runs"]].min().reset_index()
    mine = best[best.peer == "initjax"].set_index("caches")
    best["initjax / this"] = best.apply(lambda row: mine.loc[row.caches, "total_s"] / row.total_s, axis=1)
    return best
