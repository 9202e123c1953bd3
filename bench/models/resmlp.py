"""``resmlp``: a residual MLP of pre-activation blocks with Fixup's scalar biases and multipliers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax.nn import initializers as jinit

from bench.errors import UserError
from bench.models.kind import ModelKind
from bench.models.layers import ACTIVATIONS, PARAMETERIZATION_OPTIONS, check_common_options, head


class ResidualBlock(nn.Module):
    """``h + scale * branch_out(act(branch_in(act(h) + b0) + b1) + b2) + b3``: a pre-activation residual block.

    The scalar biases ``b0..b3`` (init 0) and multiplier ``scale`` (init 1) are
    Fixup's (Zhang et al. 2019); at their initial values the block is a plain
    residual block, whatever the init scheme. The branch layers have no bias.
    """

    width: int
    activation: str
    kernel_init: Callable

    @nn.compact
    def __call__(self, h: jnp.ndarray) -> jnp.ndarray:
        act = ACTIVATIONS[self.activation]

        def bias(name):
            return self.param(name, jinit.zeros, ())

        z = nn.Dense(self.width, use_bias=False, kernel_init=self.kernel_init, name="branch_in")(act(h) + bias("b0"))
        z = nn.Dense(self.width, use_bias=False, kernel_init=self.kernel_init, name="branch_out")(
            act(z + bias("b1")) + bias("b2"))
        return h + self.param("scale", jinit.ones, ()) * z + bias("b3")


class ResMLP(nn.Module):
    """A residual MLP: ``stem`` Dense to ``width``, ``depth`` residual blocks, activation, ``head`` Dense.

    Attributes:
      width: units of every block.
      depth: number of residual blocks (each has two Dense layers).
      n_outputs, activation, output_activation, kernel_init, bias_init, parameterization, base_width:
        as in :class:`MLP`.
      base_depth: under ``depth_mup``, the depth at which branches are not scaled.

    Shapes: `(batch, *input_shape)` -> logits `(batch, n_outputs)`.
    """

    width: int
    depth: int
    n_outputs: int
    activation: str = "relu"
    output_activation: str = "softmax"
    kernel_init: Callable = jinit.lecun_normal()
    bias_init: Callable = jinit.zeros
    parameterization: str | None = None
    base_width: int | None = None
    base_depth: int | None = None

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        h = nn.Dense(self.width, kernel_init=self.kernel_init, bias_init=self.bias_init, name="stem")(
            x.reshape(x.shape[0], -1))
        for i in range(self.depth):
            h = ResidualBlock(self.width, self.activation, self.kernel_init, name=f"block_{i}")(h)
        h = ACTIVATIONS[self.activation](h)
        return nn.Dense(self.n_outputs, kernel_init=self.kernel_init, bias_init=self.bias_init, name="head")(h)


def check(options: Mapping) -> None:
    check_common_options("resmlp", options, [*PARAMETERIZATION_OPTIONS, "dropout"], list(PARAMETERIZATION_OPTIONS))
    if options.get("dropout", 0.0):
        raise UserError("model 'resmlp' has no dropout option; use mlp, lenet or convnet")


def build(input_shape: Sequence[int], n_classes: int, hidden: Sequence[int], activation: str,
          n_targets: int | None, options: Mapping) -> ResMLP:
    if not hidden or len(set(hidden)) != 1:
        raise UserError(
            f"resmlp needs equal hidden widths, one per residual block, e.g. (64,) * 8; got {tuple(hidden)}"
        )
    return ResMLP(int(hidden[0]), len(hidden), activation=activation, **head(n_classes, n_targets),
                  **{k: v for k, v in options.items() if k in PARAMETERIZATION_OPTIONS})


def describe(model: ResMLP, input_shape: Sequence[int]) -> str:
    inputs = int(np.prod(input_shape))
    return f"ResMLP {inputs}-{model.width}x{model.depth} blocks-{model.n_outputs} {model.activation}"


KIND = ModelKind(
    "resmlp",
    "residual MLP: stem, one 2-layer pre-activation block per hidden entry (equal widths), head; Fixup-ready",
    dict(PARAMETERIZATION_OPTIONS), check, build, (ResMLP,), describe)
