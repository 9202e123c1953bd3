"""How the runs of a chunk are batched inside its compiled programs, chosen per task by a measured rule.

Under ``vmap`` over models a dense layer becomes one batched matrix product, which is why the suite trains many
MLP or transformer runs faster than one at a time. Convolutions are different. XLA's CPU backend runs them far
below its speed inside a loop (the suite's ``lax.scan`` over an epoch's steps; ``bench.training.conv_lowering``
has the figures), a ``vmap`` over models makes them grouped convolutions, and JAX 0.10 cannot batch a
convolution's weight gradient under the suite's two nested vmaps once a chunk holds two seeds: its batching rule
(``_conv_general_dilated_batch_rule``) refuses a grouped convolution that already carries an output sharding,
which the first vmap gave it. Before this module a conv net trained only at one seed per chunk (its
initializers still vmapped as grouped convolutions); a chunk of two seeds or more raised that error.

The rule (:func:`choose`): a model without convolutions is vmapped as it is. A model's convolutions that the
patches express (no input dilation, no groups) are computed as products of patches
(``bench.training.conv_lowering``; :attr:`Batching.matmuls`). Its models are vmapped when a training step of
one model is light, and run one after the other inside the compiled program (``lax.map``, each as fast as
alone) when it is heavier than :data:`SEQUENTIAL_ABOVE_FLOPS` or has convolutions the patches cannot express
(transposed, depthwise). Measured on this project's 2-core CPU, 8 models a chunk, seconds per epoch (plain loop
of jitted steps / vmapped products / one after the other, products): a two-conv net on 8x8 digits, 13 MFLOP a
step, 0.155 / 0.067 / 0.092; 28x28 inputs, 8 and 16 channels, 61 MFLOP, 0.315 / 0.244 / 0.173; 32 and 64
channels batch 32, 0.83 GFLOP, 1.30 / 1.59 / 1.13; batch 128, 3.3 GFLOP, 3.42 / 3.95 / 2.24 (``python -m
bench perf --workloads digits-cnn,mnist-cnn`` and the docs' performance page have whole tables). The rule is the
same on every backend (the failure is JAX's tracing); on an accelerator, where XLA's convolutions are fast, the
products were not measured here.

``INITJAX_BATCHING`` overrides it, to measure one choice against another: ``vmap`` (everything as it is; fails
on a conv net, as above), ``matmuls`` (products, vmapped), ``sequential`` (XLA's convolutions, one model after
the other); runs trained under an override are cached apart (``bench.training.resume.code_key``).

The numbers: a model's step is the same computation each way up to the order of float32 sums
(``tests/training/test_batching.py`` holds the runs to their one-at-a-time results within float32 rounding).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import jax

from bench.training import conv_lowering

VMAP = "vmap"
SEQUENTIAL = "sequential"
MATMULS = "matmuls"
ENV = "INITJAX_BATCHING"
CHOICES = (VMAP, SEQUENTIAL, MATMULS)
SEQUENTIAL_ABOVE_FLOPS = 30e6  # a conv net's training step, per model, above which its models run one at a time


@dataclasses.dataclass(frozen=True)
class Batching:
    """How a chunk's models run in its programs.

    Attributes:
      sequential: one model after the other (``lax.map``) instead of all at once (``vmap``).
      matmuls: the models' convolutions computed as products of patches (``bench.training.conv_lowering``).
    """

    sequential: bool = False
    matmuls: bool = False

    def describe(self) -> str:
        """For the report's line on the chunks (empty for the plain vmap)."""
        parts = (["each chunk's models one after the other"] if self.sequential else []) + (
            ["convolutions as matrix products of patches"] if self.matmuls else [])
        return "; ".join(parts)


ALL_AT_ONCE = Batching()


def override() -> str | None:
    """``INITJAX_BATCHING`` when set to one of :data:`CHOICES` (anything else: ignored, None)."""
    value = os.environ.get(ENV, "").strip().lower()
    return value if value in CHOICES else None


def step_flops(forward: Callable, example_args: tuple, batch_size: int) -> float:
    """A training step's FLOPs for one model: 3 x its forward pass's (forward 1, backward 2), as XLA's cost
    analysis counts them on ``example_args`` (one example), times ``batch_size``."""
    return 3.0 * xla_flops(jax.jit(forward).lower(*example_args)) * batch_size


def xla_flops(stage) -> float:
    """The FLOPs XLA's cost analysis counts in a lowered or compiled program (0 where it counts none)."""
    analysis = stage.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float((analysis or {}).get("flops", 0.0))


def choose(forward: Callable, example_args: tuple, batch_size: int = 1) -> Batching:
    """How to batch the models whose one-model forward pass is ``forward(*example_args)`` on one example (traced
    and lowered, not run; ``example_args`` may be ``jax.ShapeDtypeStruct``), trained in minibatches of
    ``batch_size``. See the module docstring."""
    forced = override()
    if forced is not None:
        return Batching(sequential=forced == SEQUENTIAL, matmuls=forced == MATMULS)
    lowerable, others = conv_lowering.count(forward, *example_args)
    if lowerable + others == 0:
        return ALL_AT_ONCE
    heavy = step_flops(forward, example_args, batch_size) > SEQUENTIAL_ABOVE_FLOPS
    return Batching(sequential=others > 0 or heavy, matmuls=lowerable > 0)


def mapped(fn: Callable, in_axes: tuple, sequential: bool = False) -> Callable:
    """``fn`` over axis 0 of the arguments whose ``in_axes`` is 0, sharing those whose ``in_axes`` is None:
    ``jax.vmap(fn, in_axes)``, or, ``sequential``, the same function as a ``lax.map`` (one slice after the other
    inside the compiled program; the outputs stacked alike)."""
    if not sequential:
        return jax.vmap(fn, in_axes=in_axes)

    def one_after_the_other(*args):
        over = [arg for arg, axis in zip(args, in_axes) if axis == 0]

        def one(sliced):
            parts = iter(sliced)
            return fn(*[next(parts) if axis == 0 else arg for arg, axis in zip(args, in_axes)])

        return jax.lax.map(one, over)

    return one_after_the_other
