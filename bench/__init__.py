"""The initjax benchmark suite: ``python -m bench``, or ``bench.run(...)`` in a notebook."""

from bench.runner import run, run_experiment

__all__ = ["run", "run_experiment"]
