"""A kind of built-in model, as the registry (``bench.models.MODELS``) knows it: its name, what it is, its options
and their checks, how it is built for a task, and how a results table names it.

A new built-in model is one module exporting a :class:`ModelKind` plus one line in ``bench/models/__init__.py``'s
list of kinds (CONTRIBUTING.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """A built-in model.

    Attributes:
      name: what experiments call it (``model = "mlp"``).
      summary: one line for ``python -m bench list``.
      options: option -> what it does (``model_args`` of a task).
      check: ``check(options)`` raises ``bench.errors.UserError`` in one line on an option it does not have or a
        bad value, before anything is built (options that depend on the widths are checked by ``build``).
      build: ``build(input_shape, n_classes, hidden, activation, n_targets, options) -> nn.Module`` for a task
        (``n_targets``: regression outputs, else None), after :attr:`check`; checks the shapes, raising
        ``bench.errors.UserError`` in one line.
      modules: the Flax module classes it builds (:attr:`describe` names their instances).
      describe: ``describe(model, input_shape) -> str``, the layout a results table shows (``MLP 64-32-10 relu``).
    """

    name: str
    summary: str
    options: Mapping[str, str]
    check: Callable[[Mapping], None]
    build: Callable[[Sequence[int], int, Sequence[int], str, int | None, Mapping], nn.Module]
    modules: tuple[type, ...]
    describe: Callable[[nn.Module, Sequence[int]], str]
