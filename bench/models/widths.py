"""What the adapters of other model libraries share (``nnx_model``, ``equinox_model``): a constructor's input and
output widths filled in from the data, and the call named in messages and results tables."""

from __future__ import annotations

import inspect
from collections.abc import Sequence


def fill(spec, args: dict, input_fields: Sequence[str], output_fields: Sequence[str], input_shape: Sequence[int],
         n_outputs: int | None) -> dict:
    """``args`` with the first input-width argument ``spec`` takes and ``args`` leaves out set to the examples' last
    axis, and likewise the first output-width one to ``n_outputs`` (a class's ``__init__`` is read, as NNX's metaclass
    hides it from ``inspect.signature`` of the class)."""
    accepted = inspect.signature(spec.__init__ if isinstance(spec, type) else spec).parameters
    for fields, value in ((input_fields, input_shape[-1] if input_shape else None), (output_fields, n_outputs)):
        name = next((f for f in fields if f in accepted and f not in args), None)
        if name is not None and value is not None:
            args[name] = int(value)
    return args


def call(args: dict) -> str:
    """``din=64, dout=10``: the keyword arguments of a constructor call."""
    return ", ".join(f"{k}={v!r}" for k, v in args.items())
