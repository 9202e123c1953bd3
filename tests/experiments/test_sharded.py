"""A study split into shards (``--shard I/N``, ``bench.experiments.sharded``), each a process of its own, merged into
the report: byte for byte the uninterrupted run's results (the same tables in its report), whatever ran twice, was
killed, or ran through submitit's local executor; ``bench status`` says what is done and missing; a shard of other
settings is refused at the merge.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import built_once
from tests.training.test_resume import KILLER

pytestmark = pytest.mark.slow  # processes of their own: the second CI step

REPO = Path(__file__).resolve().parents[2]
# 2 tasks x 3 chunks of 1 seed x 2 initializers, 1 epoch (--smoke), a checkpoint after every epoch
STUDY = ["default", "--smoke", "--seeds", "3", "--initializers", "he_normal,orthogonal", "--chunk", "1",
         "--checkpoint-every", "0", "--no-progress", "--format", "md,csv"]


def _env(cache: Path) -> dict:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO), "INITJAX_CACHE": str(cache)}


def _bench(cache: Path, *args, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, env=_env(cache), capture_output=True,
                          text=True, timeout=600)
    assert not check or proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _shard(cache: Path, shard: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench", "run", *STUDY, "--shard", shard], cwd=REPO,
                            env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """The report folder of the study run at once by one process, with a cache of its own."""
    folder = built_once(tmp_path_factory, "sharded-whole",
                        lambda folder: _bench(folder / "cache", "run", *STUDY, "--out", str(folder / "report")))
    return folder / "report"


@pytest.fixture(scope="module")
def uninterrupted(whole) -> bytes:
    """``results.csv`` of the study run at once by one process."""
    return (whole / "results.csv").read_bytes()


def _tables(report: Path) -> list[str]:
    """Every table row of the report's task sections (the header's, with times and the command, left out)."""
    return [line for line in (report / "report.md").read_text().split("\n## ", 1)[1].splitlines()
            if line.startswith("|")]


def _no_leftovers(cache: Path) -> None:
    assert not list(cache.rglob("*.claim")) and not list(cache.rglob("*.tmp"))
    assert not list(cache.rglob("*.checkpoint.npz"))


def test_three_shards_merge_to_the_uninterrupted_run_and_status_follows(tmp_path, uninterrupted, whole):
    """Shard 0 alone, then status (the others' chunks missing); then shards 1 and 2 at once with shard 1 twice more
    (two processes given one shard never train a chunk twice at once, nor corrupt it); status; the merge trains
    nothing and writes results.csv byte for byte as one process did."""
    cache = tmp_path / "cache"
    first = _bench(cache, "run", *STUDY, "--shard", "0/3")
    assert "shard 0/3 done" in first.stderr
    status = _bench(cache, "status", *STUDY).stdout
    assert "synthetic: 1 of 3 chunks done, 0 running, 2 missing (1, 2)" in status, status
    assert "digits: 1 of 3 chunks done, 0 running, 2 missing" in status, status
    assert "to finish: the shards again" in status
    procs = [_shard(cache, shard) for shard in ("1/3", "2/3", "1/3")]
    done = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in done), done
    _no_leftovers(cache)
    status = _bench(cache, "status", *STUDY).stdout
    assert "synthetic: 3 of 3 chunks done" in status and "every chunk is done" in status, status
    merged = _bench(cache, "run", *STUDY, "--out", str(tmp_path / "report"))
    assert "synthetic: loaded 3 of 3 finished chunk(s)" in merged.stderr, merged.stderr
    assert (tmp_path / "report" / "results.csv").read_bytes() == uninterrupted
    assert _tables(tmp_path / "report") == _tables(whole)  # the same report: summaries, verdicts, intervals


def test_a_killed_shard_rerun_loses_nothing(tmp_path, uninterrupted):
    """Shard 0/2 SIGKILLed right after its first finished chunk (its claims left behind, its process gone): rerun
    at once it takes them over and finishes; with shard 1/2, the merge equals the uninterrupted run."""
    cache = tmp_path / "cache"
    killed = subprocess.run([sys.executable, "-c", KILLER, "bench.training.resume", "TaskStore.save_finished",
                             "after", "1", "1", "run", *STUDY, "--shard", "0/2"], cwd=REPO, env=_env(cache),
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert list(cache.rglob("*.claim"))  # the dead process's
    _bench(cache, "run", *STUDY, "--shard", "0/2")
    _bench(cache, "run", *STUDY, "--shard", "1/2")
    _no_leftovers(cache)
    _bench(cache, "run", *STUDY, "--out", str(tmp_path / "report"))
    assert (tmp_path / "report" / "results.csv").read_bytes() == uninterrupted


def test_a_shard_of_other_settings_is_refused_at_the_merge(tmp_path):
    """Shard 1/2 given another learning rate: its chunks are another study's; the merge, which would have to train
    them again, names it in one line and writes nothing."""
    cache = tmp_path / "cache"
    _bench(cache, "run", *STUDY, "--shard", "0/2")
    _bench(cache, "run", *STUDY, "--lr", "0.01", "--shard", "1/2")
    merge = _bench(cache, "run", *STUDY, "--out", str(tmp_path / "report"), check=False)
    assert merge.returncode == 2, merge.stderr[-2000:]
    message = merge.stderr.strip().splitlines()[-1]
    assert "shard 1/2 (on" in message and "ran task 'synthetic' with other code or settings" in message
    assert "--lr 0.01" in message and not (tmp_path / "report" / "results.csv").exists()


def test_the_submitit_launcher_runs_the_shards_and_merges(tmp_path, uninterrupted):
    """``--launcher submitit --array 3`` on a machine without SLURM: submitit's local executor runs the three shards
    as processes of their own, the launcher waits and writes the report."""
    pytest.importorskip("submitit", reason="submitit is not installed (pip install -e '.[cluster]')")
    cache = tmp_path / "cache"
    launched = _bench(cache, "run", *STUDY, "--launcher", "submitit", "--array", "3", "--out",
                      str(tmp_path / "report"))
    assert "submitted 3 shards" in launched.stderr
    assert (tmp_path / "report" / "results.csv").read_bytes() == uninterrupted
    records = sorted(p.name for p in (cache / "shards").rglob("shard-*.json"))
    assert records == ["shard-0-of-3.json", "shard-1-of-3.json", "shard-2-of-3.json"]
    _no_leftovers(cache)
