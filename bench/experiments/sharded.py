"""A study split over independent processes: shard I/N trains its units into the shared cache, the run without a
shard merges them into the report, ``bench status`` says what is done, running or missing.

``python -m bench run STUDY --shard I/N`` (:func:`run_shard`) trains the chunks that ``bench.training.shards``
deals to shard ``I`` into the cache folder (``$INITJAX_CACHE``: on a filesystem every machine shares), claiming
each first (``bench.training.claims``), and writes no report. It leaves a record in
``<cache>/shards/<study>/shard-I-of-N.json`` (checksummed, rewritten atomically): its host and command, and per
task the key its numbers were computed under and the chunks dealt to it. The run without ``--shard``
(``runner.run_experiment``) loads every finished chunk, trains any that are missing, and writes the report: the
same file a single machine writes (a chunk's numbers do not depend on who trained it). Before training a missing
chunk it reads the records (:func:`check_records`): a shard that ran a task under another key (other code, versions
or settings) is refused in one line naming it, since its work cannot be merged and would silently be redone.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path

import jax

from bench.data import limits
from bench.errors import UserError, option
from bench.experiments import presets
from bench.experiments.spec import Experiment
from bench.experiments.tasks import task_data, task_key, task_model
from bench.store import path_name, read_json_verified, write_json_verified
from bench.training import claims, resume
from bench.training.runs import RunIndex
from bench.training.shards import Dealer, Shard
from bench.training.train import train_task

RECORDS = "shards"  # under the cache root: one folder per study


def records_folder(study: str) -> Path:
    """``<cache>/shards/<study>``: the records of a study's shards."""
    return resume.cache_root() / RECORDS / path_name(study)


def record_path(study: str, shard: Shard) -> Path:
    return records_folder(study) / f"shard-{shard.index}-of-{shard.count}.json"


@dataclasses.dataclass(frozen=True)
class TaskShare:
    """What a shard did of one task: its key, the chunks dealt to it, and of those the ones it trained, found
    finished, and left to a process that held them."""

    task: str
    key: str
    owned: list[int]
    trained: list[int]
    found: list[int]
    elsewhere: dict


def run_shard(experiment: Experiment, shard: Shard, *, command: str = "", progress: bool = True, data_dir=None,
              download: bool = False, chunk: int | None = None, max_memory: int | None = None,
              checkpoint_every: float = 60.0, lease: float = claims.LEASE_S) -> list[TaskShare]:
    """Trains shard ``shard`` of ``experiment`` into the cache (module docstring); returns what it did per task.

    Raises:
      UserError: an invalid experiment or shard, missing data, an unwritable cache.
      Interrupted: Ctrl-C; what finished is kept, the rerun goes on.
    """
    if not 0 <= shard.index < shard.count:
        raise UserError(f"{option('shard')} {shard}: give I/N with 0 <= I < N")
    if jax.process_count() > 1:
        raise UserError(f"{option('shard')} splits a study into independent processes; this one is one of "
                        f"{jax.process_count()} of a distributed program ({option('distributed', True)}): give one or "
                        "the other")
    initializers = presets.validate(experiment)
    runs = RunIndex(experiment.data_seeds).numbers(experiment.seeds)
    tuned = len(experiment.grid.cells()) > 1
    dealer = Dealer(shard.count)
    path = record_path(experiment.name, shard)
    record = {"study": experiment.name, "shard": str(shard), "host": socket.gethostname(), "pid": os.getpid(),
              "command": command, "started": time.time(), "state": "running", "tasks": {}}
    shares = []
    for task in experiment.tasks:
        with limits.budget(max_memory):
            data = task_data(task, data_dir, download, tuned=tuned)
        model, loss = task_model(task, data)
        key = task_key(experiment, task, data)
        store = resume.TaskStore(resume.cache_root(), task.name, key, checkpoint_every, lease)
        work = train_task(data, model, initializers, runs, experiment.train, experiment.seed, progress, chunk,
                          max_memory, keep_params=False, store=store, data_seeds=experiment.data_seeds, loss=loss,
                          grid=experiment.grid, shard=dealer.mine(shard))
        owned = sorted([*work.trained, *work.found, *work.elsewhere])
        shares.append(TaskShare(task.name, store.key, owned, work.trained, work.found, dict(work.elsewhere)))
        record["tasks"][task.name] = {"key": store.key, "chunks": owned, "of": work.plan.n_chunks}
        write_json_verified(path, record)
    write_json_verified(path, {**record, "state": "done", "finished": time.time()})
    return shares


def shard_records(study: str) -> list[tuple[Path, dict]]:
    """Every shard record of ``study``, checked (a damaged one is refused in one line naming it)."""
    folder = records_folder(study)
    out = []
    for path in sorted(folder.glob("shard-*-of-*.json")) if folder.is_dir() else ():
        body = read_json_verified(path, "delete it (its shard is then not checked at the merge) or rerun that shard")
        out.append((path, body))
    return out


def check_records(study: str, task: str, key: str, missing: list[int] | None) -> None:
    """Before the merge trains a task's ``missing`` chunks (None: the task was never started under ``key``):
    refuses a shard that ran this task under another key, naming it.

    Raises:
      UserError: that shard, its host and command, and what to do.
    """
    if missing == []:
        return
    for path, body in shard_records(study):
        ran = body.get("tasks", {}).get(task, {})
        if ran and ran.get("key") != key:
            raise UserError(f"shard {body.get('shard')} (on {body.get('host')}: {body.get('command') or '?'}) ran "
                            f"task {task!r} with other code or settings (key {ran.get('key')}, this run's {key}), so "
                            "its chunks cannot be merged; rerun it with this commit and these options, or delete "
                            f"{path} to train them here")


@dataclasses.dataclass(frozen=True)
class TaskStatus:
    """One task of a study in the cache: its key and folder, the chunk count (None: no process started it under
    this key), and its chunks done, running (chunk -> claims.Holder), resumable from a checkpoint, and missing."""

    task: str
    key: str
    folder: Path
    n_chunks: int | None
    done: list[int]
    running: dict
    checkpointed: list[int]
    missing: list[int]


def status(experiment: Experiment, data_dir=None, download: bool = False,
           lease: float = claims.LEASE_S) -> list[TaskStatus]:
    """Every task's :class:`TaskStatus` (loads each task's data, as its key needs; trains nothing)."""
    presets.validate(experiment)
    tuned = len(experiment.grid.cells()) > 1
    out = []
    for task in experiment.tasks:
        data = task_data(task, data_dir, download, tuned=tuned)
        key = task_key(experiment, task, data)
        folder = resume.task_folder(resume.cache_root(), task.name, key)
        n_chunks = resume.planned_chunks(folder)
        done, checkpointed = resume.chunks_in(folder), resume.chunks_in(folder, checkpoints=True)
        held = {int(name[6:10]): h for name, h in claims.claims_in(folder).items() if not h.stale(lease)}
        running = {c: h for c, h in held.items() if c not in done}
        missing = [c for c in range(n_chunks or 0) if c not in done and c not in running]
        out.append(TaskStatus(task.name, resume.task_key(key), folder, n_chunks, done, running,
                              [c for c in checkpointed if c not in done], missing))
    return out


def owners(study: str, statuses: list[TaskStatus]) -> dict[tuple[str, int], str]:
    """``(task, chunk) -> "I/N"``: the shard a missing chunk was dealt to, from the records of shards that reached
    its task under its key."""
    out = {}
    keys = {s.task: s.key for s in statuses}
    for _, body in shard_records(study):
        for task, ran in body.get("tasks", {}).items():
            if keys.get(task) == ran.get("key"):
                for c in ran.get("chunks", []):
                    out[(task, int(c))] = str(body.get("shard"))
    return out
