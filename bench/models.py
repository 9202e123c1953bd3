"""Flax models whose kernel initializer is a parameter.

Models return logits; the output activation (``sigmoid`` for one output unit,
``softmax`` otherwise) is named on the model and applied inside the loss
(``bench.train.loss_and_accuracy``), where it is numerically stable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
from jax.nn import initializers as jinit

from bench.errors import UserError, unknown

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


class MLP(nn.Module):
    """A fully connected network: ``Dense -> activation`` per hidden width, then ``Dense``.

    Attributes:
      hidden: widths of the hidden layers, e.g. ``(64, 64)``.
      n_outputs: width of the last layer: 1 for a sigmoid output, the number of
        classes for softmax.
      activation: name in :data:`ACTIVATIONS`, applied after each hidden layer.
      output_activation: ``"sigmoid"`` or ``"softmax"``; recorded here, applied by the loss.
      kernel_init: initializer of every kernel, `(in, out)`.
      bias_init: initializer of every bias (zeros, as in Keras and Flax).

    Shapes: `(..., n_features)` -> logits `(..., n_outputs)`.
    """

    hidden: Sequence[int]
    n_outputs: int
    activation: str = "relu"
    output_activation: str = "softmax"
    kernel_init: Callable = jinit.lecun_normal()
    bias_init: Callable = jinit.zeros

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(nn.Dense(width, kernel_init=self.kernel_init, bias_init=self.bias_init)(x))
        return nn.Dense(self.n_outputs, kernel_init=self.kernel_init, bias_init=self.bias_init)(x)


def mlp_for(n_features: int, n_classes: int, hidden: Sequence[int], activation: str = "relu") -> MLP:
    """An MLP shaped for a classification task.

    Binary tasks get one sigmoid output unit (as in Keras' ``Dense(1, 'sigmoid')``),
    others a softmax over ``n_classes``.

    Raises:
      UserError: unknown activation or non-positive width.
    """
    if activation not in ACTIVATIONS:
        raise unknown("activation", activation, ACTIVATIONS)
    if any(int(w) < 1 for w in hidden):
        raise UserError(f"hidden widths must be >= 1, got {tuple(hidden)}")
    binary = n_classes == 2
    return MLP(
        hidden=tuple(int(w) for w in hidden),
        n_outputs=1 if binary else n_classes,
        activation=activation,
        output_activation="sigmoid" if binary else "softmax",
    )


def describe(model: MLP, n_features: int) -> str:
    """A short name for results tables: ``"MLP 20-64-64-1 relu"``."""
    widths = "-".join(str(w) for w in (n_features, *model.hidden, model.n_outputs))
    return f"MLP {widths} {model.activation}"


MODELS = {"mlp": (mlp_for, "fully connected: hidden widths, activation; sigmoid or softmax output")}
