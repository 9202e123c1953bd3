"""``lenet`` and ``convnet``: small convolutional networks of ``[Conv -> norm -> activation] x k -> pool`` blocks."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp
from jax.nn import initializers as jinit

from bench.errors import UserError
from bench.models.kind import ModelKind
from bench.models.layers import OPTIONS, Hidden, check_common_options, extras, head


class ConvNet(nn.Module):
    """A small convolutional network: ``[Conv -> [norm] -> activation] x k -> pool`` blocks, then dense layers.

    ``lenet`` (28x28 inputs): Conv 6@5x5 (same) -> pool -> Conv 16@5x5 (valid) -> pool ->
    Dense 120 -> Dense 84 -> logits, the LeNet-5 layout with ReLU and max pooling.
    ``convnet`` (32x32x3 inputs): 2 x Conv 32@3x3 -> pool -> 2 x Conv 64@3x3 -> pool ->
    Dense 256 -> logits.

    Conv kernels are `HWIO`, so ``kernel_init`` sees ``fan_in = H * W * I``.

    References: LeCun et al. 1998, Proc. IEEE 86(11).

    Attributes:
      blocks: per block, the ``(features, kernel size, padding)`` of its convolutions.
      dense: widths of the dense layers after the last block.
      n_outputs, activation, output_activation, kernel_init, bias_init, norm, dropout: as in
        :class:`MLP` (dropout after the dense layers only).
    """

    blocks: Sequence[Sequence[tuple[int, int, str]]]
    dense: Sequence[int]
    n_outputs: int
    activation: str = "relu"
    output_activation: str = "softmax"
    kernel_init: Callable = jinit.lecun_normal()
    bias_init: Callable = jinit.zeros
    norm: str | None = None
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        for block in self.blocks:
            for features, size, padding in block:
                conv = nn.Conv(
                    features, (size, size), padding=padding, kernel_init=self.kernel_init, bias_init=self.bias_init
                )
                x = Hidden(self.activation, self.norm)(conv(x), train)  # no dropout on feature maps
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        for width in self.dense:
            x = nn.Dense(width, kernel_init=self.kernel_init, bias_init=self.bias_init)(x)
            x = Hidden(self.activation, self.norm, self.dropout)(x, train)
        return nn.Dense(self.n_outputs, kernel_init=self.kernel_init, bias_init=self.bias_init)(x)


CONV_LAYOUTS = {
    "lenet": (((6, 5, "SAME"),), ((16, 5, "VALID"),)),
    "convnet": (((32, 3, "SAME"), (32, 3, "SAME")), ((64, 3, "SAME"), (64, 3, "SAME"))),
}
CONV_DENSE = {"lenet": (120, 84), "convnet": (256,)}


def check(kind: str, options: Mapping) -> None:
    check_common_options(kind, options, list(OPTIONS))


def build(kind: str, input_shape: Sequence[int], n_classes: int, hidden: Sequence[int], activation: str,
          n_targets: int | None, options: Mapping) -> ConvNet:
    if len(input_shape) != 3:
        raise UserError(f"model {kind!r} needs image inputs (H, W, C), the dataset has {tuple(input_shape)}; use mlp")
    return ConvNet(CONV_LAYOUTS[kind], tuple(hidden) or CONV_DENSE[kind], activation=activation,
                   **head(n_classes, n_targets), **options)


def describe(model: ConvNet, input_shape: Sequence[int]) -> str:
    convs = "-".join(str(f) for block in model.blocks for f, _, _ in block)
    dense = "-".join(str(w) for w in (*model.dense, model.n_outputs))
    return f"ConvNet {'x'.join(map(str, input_shape))} conv {convs} dense {dense} {model.activation}{extras(model)}"


KINDS = (
    ModelKind("lenet", "LeNet-5 style for 28x28: conv 6@5x5, pool, conv 16@5x5, pool, dense 120-84", dict(OPTIONS),
              functools.partial(check, "lenet"), functools.partial(build, "lenet"), (ConvNet,), describe),
    ModelKind("convnet", "small CIFAR conv net: 2 x conv 32@3x3, pool, 2 x conv 64@3x3, pool, dense 256",
              dict(OPTIONS), functools.partial(check, "convnet"), functools.partial(build, "convnet"), (ConvNet,),
              describe),
)
