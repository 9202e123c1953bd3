"""``python -m bench status``: which units of a study (its tasks' chunks) are done, running or missing in the cache."""

from __future__ import annotations

import argparse
import shlex
import time

from bench.commands import fields, launching, run

NAME = "status"
HELP = "which chunks of a study are done, running (host, age) or missing in the cache, and what finishes them"
EXAMPLES = ("python -m bench status my_study.toml",
            "python -m bench status default --seeds 64")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``bench run`` (those that change the study matter; the others are taken and ignored, so that
    the command a study ran with works with ``status`` in place of ``run``)."""
    run.add_arguments(parser)


def main(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.experiments import presets, sharded

    experiment = presets.resolve(args.preset, args.assignments)
    if args.smoke:
        experiment = presets.smoke(experiment)
    experiment = fields.apply(experiment, args)
    statuses = sharded.status(experiment, data_dir=args.data_dir)
    owners = sharded.owners(experiment.name, statuses)
    now = time.time()
    for s in statuses:
        if s.n_chunks is None:
            print(f"{s.task}: not started (no process has trained it with these options; {s.folder})")
            continue
        running = "; ".join(f"chunk {c} on {h.host} (pid {h.pid}, for {_age(h.age(now))})"
                            for c, h in s.running.items())
        resumable = [c for c in s.missing if c in s.checkpointed]
        print(f"{s.task}: {len(s.done)} of {s.n_chunks} chunks done, {len(s.running)} running"
              + (f" ({running})" if running else "") + f", {len(s.missing)} missing"
              + (f" ({', '.join(map(str, s.missing))}" + (f"; {len(resumable)} resume from a checkpoint"
                                                            if resumable else "") + ")" if s.missing else ""))
    base = shlex.join(["python", "-m", "bench", "run", *launching.without_launcher(argv[1:])])
    missing = [(s.task, c) for s in statuses for c in s.missing]
    unstarted = [s.task for s in statuses if s.n_chunks is None]
    if not missing and not unstarted and not any(s.running for s in statuses):
        print(f"every chunk is done: {base} writes the report")
        return 0
    shards = sorted({owners[unit] for unit in missing if unit in owners}, key=lambda t: int(t.split("/")[0]))
    if shards:
        print("to finish: " + "; ".join(f"{base} --shard {shard}" for shard in shards)
              + (" (the chunks of shards not yet seen are theirs too)" if unstarted else ""))
    elif missing or unstarted:
        print(f"to finish: the shards again ({base} --shard I/N; each trains only what is missing), or {base} "
              "alone")
    if any(s.running for s in statuses):
        print("running chunks finish by themselves; one whose process stopped is taken over after its lease "
              "(10 min without a heartbeat)")
    print(f"then: {base} writes the report")
    return 0


def _age(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
