"""Chunks, memory plan, devices and processes: none of them changes a run's numbers."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

import initjax
from bench import models
from bench.data import datasets
from bench.errors import UserError
from bench.training import memory
from bench.training.programs import make_train_epoch
from bench.training.step import RunState
from bench.training.train import OPTIMIZERS, TrainConfig, train_task
from tests.helpers import built_once

REPO = Path(__file__).resolve().parents[2]
NUMERIC = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"]


def _bench(*args, env=None, cwd=REPO):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return out


def _results(folder) -> pd.DataFrame:
    return pd.read_csv(Path(folder) / "results.csv")


# ---------------------------------------------------------------- memory plan


def test_parse_bytes():
    assert memory.parse_bytes("4G") == 4 * 2**30
    assert memory.parse_bytes("512M") == 512 * 2**20
    assert memory.parse_bytes("1.5GB") == int(1.5 * 2**30)
    assert memory.parse_bytes("2gib") == 2 * 2**30
    assert memory.parse_bytes("1000") == 1000
    for bad in ["", "4X", "-1G", "0", "G", "four"]:
        with pytest.raises(UserError, match="memory size"):
            memory.parse_bytes(bad)


FP = memory.Footprint(params=1000, state=2000, train=5000, eval=3000)  # step = 5000, state + step = 7000


def test_plan_by_budget_spreads_seeds_evenly():
    # budget for (budget - resident) / (8 x 7000) = 3 seeds per chunk -> 10 seeds as 4 chunks of 3 (2 padded)
    resident = 10_000 - memory.RUNTIME_BYTES
    plan = memory.plan(FP, n_inits=8, n_seeds=10, resident=resident, budget=10_000 + 3 * 8 * 7000 + 100, on_cpu=False)
    assert (plan.seeds_per_chunk, plan.n_chunks, plan.models_per_chunk) == (3, 4, 24)
    assert plan.estimate == 10_000 + 3 * 8 * 7000 <= plan.budget
    groups = plan.seed_groups(list(range(10)))
    assert groups == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 9, 9]]
    assert memory.real_seeds(groups)[-1] == [True, False, False]


def test_plan_on_cpu_keeps_the_training_set_in_cache():
    fp = memory.Footprint(params=1, state=2, train=memory.CPU_CACHE_BYTES // 40, eval=10)  # 40 models fit
    plan = memory.plan(fp, n_inits=8, n_seeds=32, resident=0, budget=2**40, on_cpu=True)
    assert plan.seeds_per_chunk == 4 and plan.n_chunks == 8 and "cache" in plan.reason  # 32 seeds, room for 5: 8 x 4
    everything = memory.plan(fp, n_inits=8, n_seeds=32, resident=0, budget=2**40, on_cpu=False)
    assert (everything.seeds_per_chunk, everything.n_chunks) == (32, 1)


def test_plan_respects_devices_processes_and_the_users_chunk():
    plan = memory.plan(FP, n_inits=2, n_seeds=10, resident=0, budget=2**40, on_cpu=False, n_devices=4, n_processes=2)
    assert plan.seeds_per_chunk % 4 == 0 and plan.n_chunks % 2 == 0
    assert plan.seeds_per_chunk * plan.n_chunks >= 10
    user = memory.plan(FP, n_inits=2, n_seeds=10, resident=0, budget=2**40, on_cpu=True, chunk=3)
    assert (user.seeds_per_chunk, user.n_chunks, user.reason) == (3, 4, "--chunk 3")
    assert memory.plan(FP, n_inits=2, n_seeds=2, resident=0, budget=2**40, on_cpu=True, chunk=50).seeds_per_chunk == 2


def test_plan_refuses_what_cannot_fit_with_a_clear_message():
    with pytest.raises(UserError, match="one chunk of 1 seed.*more than the memory budget.*max_memory"):
        memory.plan(FP, n_inits=8, n_seeds=4, resident=-memory.RUNTIME_BYTES, budget=8 * 7000 - 1, on_cpu=False)
    with pytest.raises(UserError, match="chunk=4 needs"):
        memory.plan(FP, n_inits=8, n_seeds=4, resident=-memory.RUNTIME_BYTES, budget=2 * 8 * 7000, on_cpu=False,
                    chunk=4)
    with pytest.raises(UserError, match="chunk must be >= 1"):
        memory.plan(FP, n_inits=8, n_seeds=4, resident=0, budget=2**40, on_cpu=False, chunk=0)


def test_plan_with_two_lanes_shares_the_budget_between_them():
    resident = 10_000 - memory.RUNTIME_BYTES
    budget = 10_000 + 6 * 8 * 7000 + 100  # 6 seeds' worth: 3 a chunk when two chunks are held at once
    two = memory.plan(FP, n_inits=8, n_seeds=10, resident=resident, budget=budget, on_cpu=False, lanes=2)
    assert (two.seeds_per_chunk, two.n_chunks, two.lanes) == (3, 4, 2)
    assert two.estimate == 10_000 + 2 * 3 * 8 * 7000 <= budget and two.reason.endswith("; 2 chunks at a time")
    one = memory.plan(FP, n_inits=8, n_seeds=10, resident=resident, budget=budget, on_cpu=False)
    assert (one.seeds_per_chunk, one.lanes, one.estimate) == (5, 1, 10_000 + 5 * 8 * 7000)
    # a task that is one chunk has one lane, and its estimate counts one chunk
    alone = memory.plan(FP, n_inits=8, n_seeds=2, resident=resident, budget=budget, on_cpu=False, lanes=2)
    assert (alone.n_chunks, alone.lanes, alone.estimate) == (1, 1, 10_000 + 2 * 8 * 7000)
    # two of the smallest chunks do not fit, one does: one lane rather than an error
    tight = memory.plan(FP, n_inits=8, n_seeds=4, resident=resident, budget=10_000 + 8 * 7000, on_cpu=False, lanes=2)
    assert (tight.seeds_per_chunk, tight.n_chunks, tight.lanes) == (1, 4, 1)
    # the user's chunk: two at a time if both fit, else one at a time, else the error
    user = memory.plan(FP, n_inits=8, n_seeds=4, resident=resident, budget=10_000 + 3 * 8 * 7000, on_cpu=False,
                       chunk=2, lanes=2)
    assert (user.seeds_per_chunk, user.lanes, user.reason) == (2, 1, "--chunk 2")
    user = memory.plan(FP, n_inits=8, n_seeds=4, resident=resident, budget=10_000 + 4 * 8 * 7000, on_cpu=False,
                       chunk=2, lanes=2)
    assert (user.lanes, user.estimate, user.reason) == (2, 10_000 + 4 * 8 * 7000, "--chunk 2; 2 chunks at a time")


@pytest.mark.parametrize(("hidden", "optimizer", "n_features"), [((64, 64), "adam", 20), ((300, 100), "sgd", 784)])
def test_footprint_bounds_what_xla_reserves(hidden, optimizer, n_features):
    """The estimate from shapes is an upper bound of XLA's own figure for a chunk's epoch, and not a loose one."""
    model = models.mlp_for(n_features, 10, hidden)
    opt = OPTIMIZERS[optimizer](0.01)
    fp = memory.footprint(model, (n_features,), opt, 32, 2048)
    n_inits, n_seeds, n = 8, 2, 256
    x = jax.ShapeDtypeStruct((n, n_features), np.float32)
    y = jax.ShapeDtypeStruct((n,), np.int32)
    params = jax.eval_shape(lambda: jax.vmap(jax.vmap(lambda k: model.init(k, np.zeros((1, n_features)))["params"]))(
        jax.random.split(jax.random.key(0), (n_inits, n_seeds))))
    opt_state = jax.eval_shape(jax.vmap(jax.vmap(opt.init)), params)
    keys = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), n_seeds))
    epoch = jax.ShapeDtypeStruct((), np.int32)
    compiled = jax.jit(make_train_epoch(model, opt, 32), donate_argnums=(0,)).lower(
        RunState(params, opt_state, {}), keys, epoch, x, y).compile()
    stats = compiled.memory_analysis()
    data = n * n_features * 4 + n * 4
    xla = (
        stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes - stats.alias_size_in_bytes
    )
    ours = n_inits * n_seeds * (fp.state + fp.train) + data
    assert xla <= ours <= 4 * xla, (xla, ours)
    assert fp.params == memory.tree_bytes(params) // (n_inits * n_seeds)


def test_a_planned_chunk_stays_under_its_budget_as_measured():
    """Train 128 runs planned for a tight budget in a fresh process: the plan splits them into chunks, and the
    measured peak RSS stays under the planner's estimate (which stays under the budget), and not far under it:
    the estimate is checked against reality, not against itself."""
    code = textwrap.dedent("""
        import json, resource, sys
        import initjax
        from bench.data import datasets
        from bench.training import memory
        from bench import models
        from bench.training.train import TrainConfig, train_task
        data = datasets.load("digits")
        model = models.mlp_for(data.n_features, data.n_classes, (512, 512))
        budget = memory.current_rss_bytes() + memory.RUNTIME_BYTES + 400 * 2**20
        result = train_task(data, model, {n: initjax.get(n) for n in ("he_normal", "glorot_normal")}, range(64),
                            TrainConfig("adam", 1e-3, 32, 1), progress=False, max_memory=budget, keep_params=False)
        print(json.dumps({"budget": budget, "peak": memory.peak_rss_bytes(), "chunks": result.plan.n_chunks,
                          "estimate": result.plan.estimate}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["chunks"] > 1, got  # the plan binds
    assert got["peak"] <= got["estimate"] <= got["budget"], got
    assert got["estimate"] < 1.5 * got["peak"], got  # an upper bound, not a loose one


def test_too_small_memory_budget_is_one_line_from_the_cli(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "default", "--smoke", "--max-memory", "1M",
                           "--out", str(tmp_path / "out")],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "more than the memory budget 1.0 MiB" in proc.stderr, proc.stderr


# ---------------------------------------------------------------- chunks, devices, processes


@pytest.fixture(scope="module")
def small_digits():
    return datasets.load("digits").subset(300, 100)


def test_chunks_do_not_change_the_runs(small_digits):
    """5 seeds in chunks of 2 (the last padded with a repeated seed) equal 5 seeds in one chunk."""
    model = models.mlp_for(small_digits.n_features, small_digits.n_classes, (16,))
    inits = {n: initjax.get(n) for n in ["he_normal", "orthogonal"]}
    config = TrainConfig(optimizer="adam", lr=3e-3, batch_size=32, epochs=2)
    whole = train_task(small_digits, model, inits, range(5), config, progress=False, chunk=5)
    chunked = train_task(small_digits, model, inits, range(5), config, progress=False, chunk=2)
    assert (whole.plan.n_chunks, chunked.plan.n_chunks) == (1, 3)
    assert len(chunked.frame) == len(whole.frame) == 2 * 5 * 3
    pd.testing.assert_frame_equal(chunked.frame.drop(columns=NUMERIC[:2] + NUMERIC[4:]),
                                  whole.frame.drop(columns=NUMERIC[:2] + NUMERIC[4:]))
    metrics = ["train_loss", "train_accuracy", "test_loss", "test_accuracy"]
    np.testing.assert_allclose(chunked.frame[metrics], whole.frame[metrics], rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(chunked.params), jax.tree.leaves(whole.params)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_chunks_trained_two_at_a_time_equal_the_chunks_one_at_a_time(small_digits, monkeypatch):
    """The same 3 chunks (orthogonal's QR included) trained in two lanes and in one: bit-equal frames, parameters
    and test outcomes, the lanes' share of the wall time recorded."""
    model = models.mlp_for(small_digits.n_features, small_digits.n_classes, (16,))
    inits = {n: initjax.get(n) for n in ["he_normal", "orthogonal"]}
    config = TrainConfig(optimizer="adam", lr=3e-3, batch_size=32, epochs=2)
    two = train_task(small_digits, model, inits, range(5), config, progress=False, chunk=2)
    monkeypatch.setattr(memory, "CPU_LANES", 1)
    one = train_task(small_digits, model, inits, range(5), config, progress=False, chunk=2)
    assert (two.plan.lanes, one.plan.lanes, two.plan.n_chunks) == (2, 1, 3)
    assert two.plan.estimate > one.plan.estimate  # two chunks held at once
    pd.testing.assert_frame_equal(two.frame, one.frame, check_exact=True)
    for a, b in zip(jax.tree.leaves((two.params, two.outcomes)), jax.tree.leaves((one.params, one.outcomes))):
        np.testing.assert_array_equal(a, b)
    assert two.trained_seed_epochs == one.trained_seed_epochs == 2 * 5 * 2  # 2 inits x 5 seeds (not the padding) x 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NO_FIGURES = ["--format", "md,csv"]  # half of a small run's CPU; the figures are not what is tested here


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory):
    out = built_once(tmp_path_factory, "scale-one-device", lambda out: _finish(
        _bench("run", "default", "--smoke", "--seeds", "4", "--out", str(out), "--no-progress", *NO_FIGURES)))
    return _results(out)


def _assert_same_results(got: pd.DataFrame, want: pd.DataFrame):
    assert got.shape == want.shape
    numeric = [c for c in NUMERIC if c in want]
    pd.testing.assert_frame_equal(got.drop(columns=numeric), want.drop(columns=numeric))
    np.testing.assert_allclose(got[numeric], want[numeric], rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # a subprocess run or several: the second CI step
def test_four_devices_give_the_one_device_results(one_device_run, tmp_path):
    flags = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    out = _finish(_bench("run", "default", "--smoke", "--seeds", "4", "--out", str(tmp_path), "--no-progress",
                         *NO_FIGURES, env=flags))
    assert "4 x cpu" in (tmp_path / "report.md").read_text(), out
    _assert_same_results(_results(tmp_path), one_device_run)


@pytest.mark.slow  # a subprocess run or several: the second CI step
def test_two_processes_give_the_one_process_results(one_device_run, tmp_path):
    """Two processes over loopback (jax.distributed, gloo): each trains and keeps its chunks, process 0 reports."""
    port = _free_port()
    procs = [
        _bench("run", "default", "--smoke", "--seeds", "4", "--distributed", "--no-progress", *NO_FIGURES,
               "--out", str(tmp_path / f"p{pid}"),
               env={"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2",
                    "JAX_PROCESS_ID": str(pid), "INITJAX_CACHE": str(tmp_path / f"p{pid}")})  # a cache per host
        for pid in (0, 1)
    ]
    for proc in procs:
        _finish(proc)
    assert not (tmp_path / "p1" / "results.csv").exists() and not (tmp_path / "p1" / "report.md").exists()
    assert sorted(p.name for p in (tmp_path / "p1").rglob("chunk-*.npz")) == ["chunk-0001.npz"] * 2  # its chunks
    assert sorted(p.name for p in (tmp_path / "p0").rglob("chunk-*.npz")) == ["chunk-0000.npz"] * 2
    assert '"processes": 2' in (tmp_path / "p0" / "run.json").read_text()
    _assert_same_results(_results(tmp_path / "p0"), one_device_run)


def test_distributed_without_a_coordinator_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--smoke", "--distributed"], cwd=REPO,
                          capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}.items()
                               if not k.startswith(("JAX_COORDINATOR", "SLURM", "OMPI"))})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--distributed could not start" in proc.stderr and "JAX_COORDINATOR_ADDRESS" in proc.stderr


def test_peak_memory_of_a_child_process_is_its_own():
    """ru_maxrss survives exec on Linux: a child of a large parent would report the parent's peak."""
    big = np.ones(400 * 2**20 // 8)  # the parent grows by 400 MiB
    code = "from bench.training import memory; print(memory.peak_rss_bytes())"
    child = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               cwd=Path(__file__).resolve().parents[2]).stdout)
    assert child < memory.peak_rss_bytes() - 300 * 2**20 and big[-1] == 1.0


def test_plan_on_cpu_pads_the_least_work_into_its_rounds_of_chunks():
    """Two lanes: a task takes its rounds of chunks times a chunk's models. Room for 6 seeds of 32: 8 chunks of 4
    (4 rounds of 4 seeds, none padded), not 6 of 6 (3 rounds of 6: 36 seeds); nor chunks below half the room."""
    def plan(n_seeds, room, lanes=2, n_devices=1):
        fp = memory.Footprint(params=1, state=2, train=memory.CPU_CACHE_BYTES // (8 * room), eval=10)
        chosen = memory.plan(fp, n_inits=8, n_seeds=n_seeds, resident=0, budget=2**40, on_cpu=True, lanes=lanes,
                             n_devices=n_devices)
        return chosen.seeds_per_chunk, chosen.n_chunks

    assert plan(32, 6) == (4, 8)
    assert plan(10, 4) == (3, 4)  # 2 rounds of 3 (12 seeds), not 10 rounds of 1, nor 2 rounds of 4 (16)
    assert plan(10, 4, lanes=1) == (2, 5)  # one lane: no seed padded (3 chunks of 4 would pad 2)
    assert plan(9, 4, lanes=1, n_devices=2) == (2, 5)  # multiples of 2 seeds: 10 seeds, not 3 chunks of 4 (12)
    assert plan(2, 8) == (2, 1)  # nothing padded in the fewest chunks: they stand
