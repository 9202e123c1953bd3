"""``bench run STUDY --launcher submitit --array N``: the study's N shards submitted as one job array through
submitit (SLURM where ``sbatch`` is found, else submitit's local executor, the same code path on one machine), then
waited for and merged into the report by the run that submitted them.

Each job runs ``python -m bench run ... --shard I/N`` in a process of its own (the command line that submitted it,
less the launcher's options), so a job is exactly what a user would type into a SLURM script or a Kubernetes
indexed job (``docs/guides/clusters.md``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench.errors import UserError, option

LAUNCHER_OPTIONS = {"--launcher": True, "--array": True, "--slurm-partition": True, "--timeout-min": True,
                    "--gpus-per-node": True, "--cpus-per-task": True, "--mem-gb": True, "--no-wait": False}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The launcher's options of ``bench run``."""
    group = parser.add_argument_group("cluster (a study split into shards: docs/guides/clusters.md)")
    group.add_argument("--shard", metavar="I/N",
                       help="train shard I of N (0 <= I < N) of the study into the shared cache "
                            "($INITJAX_CACHE) and write no report; the run without --shard merges")
    group.add_argument("--launcher", choices=("submitit",),
                       help="submit the study's --array shards as one job array through submitit (SLURM, else "
                            "its local executor), wait, and write the report")
    group.add_argument("--array", type=int, metavar="N", help="how many shards --launcher submits")
    group.add_argument("--slurm-partition", help="the SLURM partition of the jobs")
    group.add_argument("--timeout-min", type=int, default=24 * 60, help="each job's time limit (default 1440)")
    group.add_argument("--gpus-per-node", type=int, help="GPUs of each job")
    group.add_argument("--cpus-per-task", type=int, help="CPU cores of each job")
    group.add_argument("--mem-gb", type=int, help="memory of each job, in GB")
    group.add_argument("--no-wait", dest="wait", action="store_false",
                       help="submit and return; the run without --launcher writes the report once the jobs are done")


def from_file(args: argparse.Namespace, argv: list[str], table: dict) -> None:
    """Fills the launcher's options the command line left unset from an experiment file's ``[launcher]`` table
    (``experiment_file.launcher_of``); the command line wins."""
    given = {token.split("=", 1)[0] for token in argv}
    for key, value in table.items():
        flag = "--launcher" if key == "kind" else "--no-wait" if key == "wait" else "--" + key.replace("_", "-")
        if flag in given:
            continue
        if key == "kind":
            args.launcher = value
        elif key == "wait":
            args.wait = bool(value)
        else:
            setattr(args, key, value)


def shard_argv(argv: list[str], index: int, count: int) -> list[str]:
    """``argv`` less the launcher's options, with ``--shard I/N`` and without progress bars: one job's command."""
    return [*without_launcher(argv), "--shard", f"{index}/{count}", "--no-progress"]


def without_launcher(argv: list[str]) -> list[str]:
    """``argv`` less the launcher's options and ``--shard``: the study's own command line."""
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        name = token.split("=", 1)[0]
        if name in LAUNCHER_OPTIONS or name == "--shard":
            skip = (LAUNCHER_OPTIONS.get(name, True)) and "=" not in token
            continue
        out.append(token)
    return out


def run_command(argv: list[str]) -> str:
    """One job: ``python -m bench ARGV`` in a process of its own; its output, or an error with its last lines."""
    done = subprocess.run([sys.executable, "-m", "bench", *argv], capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"python -m bench {' '.join(argv)} exited {done.returncode}: {tail[0]}")
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def submit(args: argparse.Namespace, argv: list[str], logs: Path) -> list:
    """Submits the ``args.array`` shards as one job array; returns the submitit jobs.

    Raises:
      UserError: submitit missing, or no ``--array``.
    """
    if not args.array or args.array < 1:
        raise UserError(f"{option('launcher')} needs {option('array')} N, the number of shards (jobs) to submit")
    try:
        import submitit
    except ImportError:
        raise UserError("the submitit launcher needs submitit: pip install -e '.[cluster]'") from None
    executor = submitit.AutoExecutor(folder=str(logs))
    parameters = {"timeout_min": args.timeout_min, "name": "initjax"}
    parameters.update({k: v for k, v in (("gpus_per_node", args.gpus_per_node), ("cpus_per_task", args.cpus_per_task),
                                          ("mem_gb", args.mem_gb), ("slurm_partition", args.slurm_partition))
                       if v is not None})
    if executor.cluster != "slurm":
        parameters.pop("slurm_partition", None)
    executor.update_parameters(**parameters)
    commands = [shard_argv(argv, i, args.array) for i in range(args.array)]
    return executor.map_array(run_command, commands)


def wait(jobs: list) -> None:
    """Waits for every job; a failed one is refused in one line naming it and its log.

    Raises:
      UserError: the first job that failed.
    """
    for i, job in enumerate(jobs):
        try:
            job.result()
        except Exception as error:  # submitit's FailedJobError or the job's own error  # noqa: BLE001
            last = str(error).strip().splitlines()
            message = next((line for line in reversed(last) if "exited" in line), last[-1] if last else "failed")
            raise UserError(f"shard {i}/{len(jobs)} (job {job.job_id}) failed: {message.strip()}; its log: "
                            f"{job.paths.stderr}; rerun that shard (--shard {i}/{len(jobs)}) or the launcher "
                            "(finished chunks are kept)") from None
