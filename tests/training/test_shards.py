"""The deal of a study's units to its shards (``bench.training.shards``): every unit to exactly one shard, the same
deal in every process, balanced by estimated work across tasks of different costs."""

import pytest

from bench.commands.launching import shard_argv
from bench.training.shards import Dealer, Shard


def _deal(count, tasks):
    dealer = Dealer(count)
    return [dealer.deal(n, cost) for n, cost in tasks]


def test_every_unit_goes_to_one_shard_the_same_in_every_process():
    tasks = [(5, 1.0), (3, 10.0), (7, 2.5)]
    dealt = _deal(4, tasks)
    assert dealt == _deal(4, tasks)
    owned = []
    for s in range(4):
        dealer = Dealer(4)
        mine = dealer.mine(Shard(s, 4))
        owned.append([(t, c) for t, (n, cost) in enumerate(tasks) for c in mine(n, cost)])
    units = sorted(u for share in owned for u in share)
    assert units == sorted((t, c) for t, (n, _) in enumerate(tasks) for c in range(n))  # each once


def test_the_work_is_balanced_across_tasks_of_different_costs():
    """Within the largest unit's cost of the mean: 8 cheap units then 4 units 10x the cost, over 4 shards."""
    tasks = [(8, 1.0), (4, 10.0)]
    loads = [0.0] * 4
    for (_, cost), shards in zip(tasks, _deal(4, tasks)):
        for s in shards:
            loads[s] += cost
    assert max(loads) - min(loads) <= 10.0 and sum(loads) == 48.0
    assert _deal(3, [(1, 5.0)]) == [[0]] and _deal(1, [(3, 1.0)]) == [[0, 0, 0]]


def test_a_jobs_command_is_the_submitters_less_the_launchers_options():
    argv = ["run", "study.toml", "--seeds", "8", "--launcher", "submitit", "--array=4", "--slurm-partition", "gpu",
            "--no-wait", "--timeout-min", "30"]
    assert shard_argv(argv, 2, 4) == ["run", "study.toml", "--seeds", "8", "--shard", "2/4", "--no-progress"]


def test_an_experiment_files_launcher_table_fills_what_the_command_line_leaves(tmp_path):
    from bench import cli
    from bench.commands.launching import from_file
    from bench.errors import UserError
    from bench.experiments import experiment_file, presets

    text = experiment_file.dump(presets.get("default"))
    study = tmp_path / "study.toml"
    study.write_text(text + '\n[launcher]\nkind = "submitit"\narray = 8\nslurm_partition = "gpu"\nwait = false\n')
    table = experiment_file.launcher_of(study)
    argv = ["run", str(study), "--array", "4"]
    args = cli.build_parser().parse_args(argv)
    from_file(args, argv, table)
    assert (args.launcher, args.array, args.slurm_partition, args.wait) == ("submitit", 4, "gpu", False)
    assert experiment_file.load(study).name == presets.get("default").name  # the table is not the experiment's
    study.write_text(text + '\n[launcher]\narray = "eight"\n')
    with pytest.raises(UserError, match="launcher.array must be an integer"):
        experiment_file.load(study)
