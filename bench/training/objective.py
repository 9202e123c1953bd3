"""A task's loss: the one given, or a built-in model's head (``output_activation``), as ``bench.models.losses``
names it."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp

from bench.errors import UserError
from bench.models import losses


def loss_and_accuracy(logits: jnp.ndarray, labels: jnp.ndarray, output_activation: str):
    """Per-example loss and correctness of a built-in model's head (``bench.models.losses``).

    Args:
      logits: `(batch, 1)` for ``"sigmoid"``, `(batch, n_classes)` for ``"softmax"``.
      labels: `(batch,)` integer classes.
      output_activation: ``"sigmoid"`` (binary cross-entropy) or ``"softmax"``
        (categorical cross-entropy), both computed from logits.

    Returns:
      ``(loss, correct)``, each `(batch,)` float32.
    """
    return model_loss(output_activation)(logits, labels)


def model_loss(loss) -> Callable:
    """``loss(outputs, labels) -> (loss, correct)`` for a loss spec, or a built-in model's ``output_activation``."""
    return losses.get(loss_spec(None, loss))


def loss_spec(model: nn.Module | None, loss=None):
    """The task's loss: ``loss`` when given, else the built-in model's head (``output_activation``),
    with ``"sigmoid"``/``"softmax"`` said as the ``bench.models.losses`` names.

    Raises:
      UserError: neither a loss nor a model head.
    """
    loss = getattr(model, "output_activation", None) if loss is None else loss
    if loss in ("sigmoid", "softmax"):
        return f"{loss}_cross_entropy"
    if loss is None:
        raise UserError("this model names no loss (no output_activation field): give the task a loss, e.g. "
                        "softmax_cross_entropy")
    return loss
