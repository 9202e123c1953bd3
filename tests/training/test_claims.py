"""Claims on chunks (``bench.training.claims``): one holder at a time, a live holder kept, a stale one (its lease
run out, or its process gone from this host) taken over by exactly one of the processes that try, released only by
its holder; and a manifest made once however many processes start a task at once (``bench.store.create_atomic``)."""

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench import store
from bench.training import claims


def test_one_holder_at_a_time_and_only_the_holder_releases(tmp_path):
    token = claims.try_claim(tmp_path, "chunk-0001")
    assert isinstance(token, str)
    other = claims.try_claim(tmp_path, "chunk-0001")  # this process again, as another would: held, live
    assert isinstance(other, claims.Holder) and other.pid == os.getpid() and other.token == token
    claims.release(tmp_path, "chunk-0001", "not-the-token")
    assert (tmp_path / "chunk-0001.claim").exists()
    claims.release(tmp_path, "chunk-0001", token)
    assert not (tmp_path / "chunk-0001.claim").exists()
    assert isinstance(claims.try_claim(tmp_path, "chunk-0001"), str)


def test_a_claim_of_a_process_gone_from_this_host_is_taken_over_at_once(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(gone.stdout)
    (tmp_path / "chunk-0002.claim").write_text(json.dumps({"host": socket.gethostname(), "pid": pid,
                                                             "since": time.time(), "token": "old"}))
    token = claims.try_claim(tmp_path, "chunk-0002")
    assert isinstance(token, str) and claims.holder(tmp_path / "chunk-0002.claim").token == token


def test_a_claim_from_another_host_is_kept_until_its_lease_runs_out(tmp_path):
    path = tmp_path / "chunk-0003.claim"
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "since": time.time(), "token": "theirs"}))
    held = claims.try_claim(tmp_path, "chunk-0003", lease=60)
    assert isinstance(held, claims.Holder) and held.host == "elsewhere"
    old = time.time() - 120
    os.utime(path, (old, old))  # no heartbeat for two minutes
    assert isinstance(claims.try_claim(tmp_path, "chunk-0003", lease=60), str)


def test_of_many_taking_over_a_stale_claim_exactly_one_gets_it(tmp_path):
    path = tmp_path / "chunk-0004.claim"
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "since": 0.0, "token": "theirs"}))
    os.utime(path, (0, 0))
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: claims.try_claim(tmp_path, "chunk-0004", lease=60), range(8)))
    winners = [g for g in got if isinstance(g, str)]
    assert len(winners) == 1 and claims.holder(path).token == winners[0]
    assert not [p for p in tmp_path.iterdir() if p.name != "chunk-0004.claim"]  # no temp or stale file left


def test_a_held_claim_is_touched_while_held_and_released_on_close(tmp_path):
    held = claims.Held(tmp_path, lease=0.4)
    assert held.take("chunk-0005") is None
    path = tmp_path / "chunk-0005.claim"
    os.utime(path, (0, 0))
    time.sleep(0.35)  # the heartbeat touches it every lease / 4
    assert time.time() - path.stat().st_mtime < 0.3
    assert claims.claims_in(tmp_path)["chunk-0005"].pid == os.getpid()
    held.close()
    assert not path.exists() and claims.claims_in(tmp_path) == {}


def test_a_file_is_created_once_however_many_create_it_at_once(tmp_path):
    path = tmp_path / "manifest.json"
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda i: store.create_atomic(path, f"plan {i}"), range(8)))
    assert made.count(True) == 1 and path.read_text() == f"plan {made.index(True)}"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_only_a_dead_writers_temp_files_are_cleared(tmp_path):
    """A shard writing beside this process keeps its temp file; one of a writer that is gone is cleared."""
    folder = tmp_path / "task"
    folder.mkdir()
    live = folder / f".chunk-0000.npz.w{os.getpid()}-{store._host()}.abc.tmp"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = folder / f".chunk-0001.npz.w{int(gone.stdout)}-{store._host()}.abc.tmp"
    for path in (live, dead):
        path.write_bytes(b"partial")
    store.recover(folder)
    assert live.exists() and not dead.exists()


@pytest.mark.parametrize("text", ["3/3", "1", "-1/2", "a/b", "2/0"])
def test_a_bad_shard_is_one_line(text):
    from bench.errors import UserError
    from bench.training.shards import Shard

    with pytest.raises(UserError, match="give I/N with 0 <= I < N"):
        Shard.parse(text)
