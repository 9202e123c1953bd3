"""Diagnostic studies that train or trace networks outside an experiment's report: the early-training diagnostics
(``diagnose``: signal propagation, gradients and the first steps), the coordinate check of a parameterization
(``coordcheck``), the first steps of a language model (``early_steps``), and the speed study against the peers a
user would pick instead (``perf``, with the torch peer in ``peers``).

They sit above ``bench.experiments`` (whose tasks, data and models they reuse) and below the commands; the layers
are checked by ``lint-imports`` (``pyproject.toml``).
"""
