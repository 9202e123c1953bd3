"""Shared set-up: tests run on the CPU, whatever accelerator the machine has, and keep the suite's cache
(finished chunks and checkpoints, ``bench.training.resume.cache_root``) in each test's own folder, never the user's;
JAX's persistent compilation cache in one folder of the session's, shared by its pytest-xdist workers (a program one
worker compiled, the other loads)."""

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["INITJAX_CACHE"] = tempfile.mkdtemp(prefix="initjax-cache-")  # subprocesses inherit it
# compiled programs are shared by the whole session (tests that count compilations subtract the cache's hits)
_run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")  # the same in every worker of one session
if _run.isalnum():
    _xla = Path(tempfile.gettempdir()) / f"initjax-xla-{_run}"
    _xla.mkdir(exist_ok=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(_xla)
else:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="initjax-xla-")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """``tmp_path / "progress"`` is the test's cache, where the report folder's progress used to be."""
    monkeypatch.setenv("INITJAX_CACHE", str(tmp_path / "progress"))


# The longest tests first, so that two workers end together instead of one finishing the longest test alone
# (measured on 2 cores: a sixth of the run had one core idle at the end). The slow-marked tests take seconds to
# minutes each; among them these few take the longest.
LONGEST = ("test_ctrl_c_at_any_moment", "test_lm_init_smoke", "test_rerun_of_a_finished_run",
           "test_a_changed_config_is_a_new_run", "test_two_processes_give_the_one_process_results")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        if any(item.name.startswith(name) for name in LONGEST):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)  # stable: each group keeps the files' order
