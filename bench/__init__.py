"""The initjax benchmark suite: ``python -m bench``, or ``bench.run(...)`` in a notebook.

The names below are imported when first used (PEP 562), so ``python -m bench --help`` starts
without loading JAX, pandas or matplotlib.

>>> import bench
>>> sorted(bench.__all__)[:3]
['Arm', 'Experiment', 'Outcome']
>>> bench.run is bench.experiments.runner.run
True
"""

import importlib

_WHERE = {
    "Arm": "bench.experiments.spec",
    "Experiment": "bench.experiments.spec",
    "Task": "bench.experiments.spec",
    "Outcome": "bench.experiments.runner",
    "run": "bench.experiments.runner",
    "run_experiment": "bench.experiments.runner",
    "TrainConfig": "bench.training.train",
    "analyze": "bench.experiments.external",
    "analyze_scores": "bench.experiments.external",
}

__all__ = ["Arm", "Experiment", "Outcome", "Task", "TrainConfig", "analyze", "analyze_scores", "data", "run",
           "run_experiment"]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    if name in ("data", "experiments", "training", "analysis", "reporting", "models"):
        return importlib.import_module(f"bench.{name}")
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
