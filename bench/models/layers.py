"""What the built-in models share: activations by name, the hidden layer's ``norm -> activation -> dropout``,
the output head a task needs, and the options every kind of model may take.

Models return logits; the output activation (``sigmoid`` for one output unit, ``softmax`` otherwise) is named on
the model and applied inside the loss (``bench.models.losses``), where it is numerically stable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp

from bench.errors import UserError, unknown
from bench.models import parameterization_options
from initjax import parameterization as param

ACTIVATIONS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "gelu": nn.gelu,
    "elu": nn.elu,
    "selu": nn.selu,
    "leaky_relu": nn.leaky_relu,
    "linear": lambda x: x,
}
OUTPUT_ACTIVATIONS = ("sigmoid", "softmax")


NORMS = {"layer": "LayerNorm after each hidden Dense, before its activation",
         "batch": "BatchNorm after each hidden Dense or Conv, before its activation (running statistics, "
                  "momentum 0.9, are the run's model state)"}


class Hidden(nn.Module):
    """What follows a hidden layer's linear map: ``norm -> activation -> dropout``.

    Attributes:
      activation: name in :data:`ACTIVATIONS`.
      norm: None, ``"layer"`` or ``"batch"`` (:data:`NORMS`).
      dropout: rate of dropout after the activation (0: none), active only in training.
    """

    activation: str
    norm: str | None = None
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if self.norm == "layer":
            x = nn.LayerNorm()(x)
        elif self.norm == "batch":
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = ACTIVATIONS[self.activation](x)
        return nn.Dropout(self.dropout, deterministic=not train)(x) if self.dropout > 0 else x


def head(n_classes: int, n_targets: int | None = None) -> dict:
    """Binary tasks get one sigmoid unit (Keras' ``Dense(1, 'sigmoid')``), others a softmax; regression
    ``n_targets`` linear units."""
    if n_targets is not None:
        return {"n_outputs": n_targets, "output_activation": "linear"}
    binary = n_classes == 2
    return {"n_outputs": 1 if binary else n_classes, "output_activation": "sigmoid" if binary else "softmax"}


OPTIONS = {"norm": "None, layer or batch (NORMS)", "dropout": "rate in [0, 1) after hidden activations"}
_DEPTH = ", ".join(parameterization_options.DEPTH_PARAMETERIZATIONS)
PARAMETERIZATION_OPTIONS = {
    "parameterization": f"{', '.join(param.PARAMETERIZATIONS)}, completep(alpha=A) or mup(attention=A): how init "
                        f"and learning rates scale with width (and depth) (bench.training.parameterized; needs "
                        f"base_width, and base_depth for {_DEPTH})",
    "base_width": "the width at which the model is its own base model (every parameterization agrees there)",
    "base_depth": f"{_DEPTH} only (resmlp, transformer): the number of blocks at which branches are not scaled"}
PARAMETERIZATION_NAMES = {name: p.title or name for name, p in param.PARAMETERIZATIONS.items()}


def check_common_options(kind: str, options: Mapping, allowed: Sequence[str], listed: Sequence[str] | None = None
                         ) -> None:
    """Raises UserError on an option of ``kind`` outside ``allowed`` (naming ``listed``, by default ``allowed``), a
    bad ``norm`` or ``dropout``, or a bad parameterization (``bench.models.parameterization_options``)."""
    for key in options:
        if key not in allowed:
            raise UserError(f"model {kind!r} has no option {key!r} (its options: {', '.join(listed or allowed)})")
    parameterization_options.check(kind, options)
    if options.get("norm") not in (None, *NORMS):
        raise unknown("norm", options["norm"], NORMS)
    dropout = options.get("dropout", 0.0)
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise UserError(f"dropout must be a rate in [0, 1), got {dropout!r}")


def parameterized(model) -> str:
    """`` muP (base width 64)``: a built-in model's width parameterization, if it has one (and its base depth)."""
    name = getattr(model, "parameterization", None)
    if name is None:
        return ""
    depth = f", base depth {model.base_depth}" if getattr(model, "base_depth", None) is not None else ""
    return f" {param.get(name).title or name} (base width {model.base_width}{depth})"


def extras(model) -> str:
    """`` batchnorm dropout 0.1``: the options a built-in model has beyond the plain layout."""
    return (f" {model.norm}norm" if model.norm else "") + (f" dropout {model.dropout:g}" if model.dropout else "")
