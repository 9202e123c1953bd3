"""``mlp``: a fully connected network, the Keras notebooks' model."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax.nn import initializers as jinit

from bench.models.kind import ModelKind
from bench.models.layers import OPTIONS, PARAMETERIZATION_OPTIONS, Hidden, check_common_options, extras, head


class MLP(nn.Module):
    """A fully connected network: ``Dense -> [norm] -> activation -> [dropout]`` per hidden width, then ``Dense``.

    Attributes:
      hidden: widths of the hidden layers, e.g. ``(64, 64)``.
      n_outputs: width of the last layer: 1 for a sigmoid output, the number of
        classes for softmax.
      activation: name in :data:`ACTIVATIONS`, applied after each hidden layer.
      output_activation: ``"sigmoid"`` or ``"softmax"``, recorded here and applied by the loss;
        ``"linear"`` for regression (the loss is then named by the task).
      kernel_init: initializer of every kernel, `(in, out)`.
      bias_init: initializer of every bias (zeros, as in Keras and Flax).
      norm, dropout: as in :class:`Hidden`.
      parameterization, base_width: the width parameterization its runs are trained under and the
        width at which it is the base model (``bench.training.parameterized``); None: none.

    Shapes: `(batch, *input_shape)` -> logits `(batch, n_outputs)`; ``train`` switches
    dropout on and BatchNorm to batch statistics.
    """

    hidden: Sequence[int]
    n_outputs: int
    activation: str = "relu"
    output_activation: str = "softmax"
    kernel_init: Callable = jinit.lecun_normal()
    bias_init: Callable = jinit.zeros
    norm: str | None = None
    dropout: float = 0.0
    parameterization: str | None = None
    base_width: int | None = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = x.reshape(x.shape[0], -1)  # images are flattened, as by Keras' Flatten
        for width in self.hidden:
            x = nn.Dense(width, kernel_init=self.kernel_init, bias_init=self.bias_init)(x)
            x = Hidden(self.activation, self.norm, self.dropout)(x, train)
        return nn.Dense(self.n_outputs, kernel_init=self.kernel_init, bias_init=self.bias_init)(x)


def check(options: Mapping) -> None:
    check_common_options("mlp", options, [*OPTIONS, *PARAMETERIZATION_OPTIONS])


def build(input_shape: Sequence[int], n_classes: int, hidden: Sequence[int], activation: str,
          n_targets: int | None, options: Mapping) -> MLP:
    return MLP(hidden=tuple(int(w) for w in hidden), activation=activation, **head(n_classes, n_targets), **options)


def describe(model: MLP, input_shape: Sequence[int]) -> str:
    widths = "-".join(str(w) for w in (int(np.prod(input_shape)), *model.hidden, model.n_outputs))
    return f"MLP {widths} {model.activation}{extras(model)}"


KIND = ModelKind("mlp", "fully connected: hidden widths, activation; sigmoid or softmax output",
                 {**OPTIONS, **PARAMETERIZATION_OPTIONS}, check, build, (MLP,), describe)
