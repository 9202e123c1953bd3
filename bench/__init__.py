"""The initjax benchmark suite: ``python -m bench``, or ``bench.run(...)`` in a notebook.

>>> import bench
>>> sorted(bench.__all__)[:3]
['Arm', 'Experiment', 'Outcome']
"""

from bench import data
from bench.experiments.presets import Arm, Experiment, Task
from bench.experiments.runner import Outcome, run, run_experiment
from bench.training.train import TrainConfig

__all__ = ["Arm", "Experiment", "Outcome", "Task", "TrainConfig", "data", "run", "run_experiment"]
