"""Benchmarks are skipped unless timing is on: `pytest tests/benchmarks --benchmark-enable`."""

import pytest


def pytest_collection_modifyitems(config, items):
    if config.getoption("benchmark_enable", default=False) or not config.getoption("benchmark_disable", default=True):
        return
    skip = pytest.mark.skip(reason="benchmarks time only with --benchmark-enable (see docs/performance.md)")
    for item in items:
        if "benchmarks" in str(item.fspath):
            item.add_marker(skip)
