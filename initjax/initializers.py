"""Initializers that ``jax.nn.initializers`` does not have under these names.

Each builder returns a closure following the JAX contract
``init(key, shape, dtype=float32) -> Array``. The fan of a kernel is computed as in
``jax.nn.initializers.variance_scaling``: the input axis is ``-2``, the output axis
``-1`` and the rest is the receptive field, so a Flax ``Dense`` kernel ``(in, out)``
and a Flax ``Conv`` kernel ``HWIO`` both get ``fan_in = H*W*I``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit

Initializer = jinit.Initializer


def random_normal(mean: float = 0.0, stddev: float = 0.05) -> Initializer:
    """Keras ``RandomNormal``: an untruncated ``N(mean, stddev^2)``.

    Keras' default ``stddev=0.05`` is the "random" initializer of the classic
    Keras initializer-comparison notebooks; it ignores the layer's fan.
    """

    def init(key, shape, dtype=jnp.float32):
        return mean + stddev * jax.random.normal(key, shape, dtype)

    return init


def random_uniform(minval: float = -0.05, maxval: float = 0.05) -> Initializer:
    """Keras ``RandomUniform``: ``U[minval, maxval)``, symmetric by default.

    Unlike ``jax.nn.initializers.uniform(scale)``, which draws from ``U[0, scale)``.
    """
    if not maxval > minval:
        raise ValueError(f"random_uniform needs maxval > minval, got [{minval}, {maxval})")

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, minval, maxval)

    return init


def variance_scaling(
    scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal"
) -> Initializer:
    """``jax.nn.initializers.variance_scaling`` with Keras' defaults (= LeCun normal).

    ``Var[w] = scale / fan`` for every distribution: the truncated normal is rescaled
    by ``1/0.8796`` so its variance after truncation at two standard deviations is
    the target. ``distribution='normal'`` is untruncated.

    Raises:
      ValueError: unknown ``mode`` or ``distribution``, or ``scale <= 0``.
    """
    modes = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
    distributions = ("truncated_normal", "normal", "uniform")
    if mode not in modes:
        raise ValueError(f"variance_scaling mode must be one of {modes}, got {mode!r}")
    if distribution not in distributions:
        raise ValueError(
            f"variance_scaling distribution must be one of {distributions}, got {distribution!r}"
        )
    if not scale > 0:
        raise ValueError(f"variance_scaling scale must be > 0, got {scale}")
    return jinit.variance_scaling(scale, mode, distribution)


def torch_kaiming_normal(mode: str = "fan_in", gain: float = math.sqrt(2.0)) -> Initializer:
    """PyTorch ``kaiming_normal_``: untruncated ``N(0, gain^2 / fan)``.

    The default gain ``sqrt(2)`` is PyTorch's for ReLU (``a=0``). jax's and Keras'
    ``he_normal`` instead draw a truncated normal of the same variance.

    References: He et al. 2015, arXiv:1502.01852.
    """
    return variance_scaling(gain**2, mode, "normal")


def torch_xavier_normal(gain: float = 1.0) -> Initializer:
    """PyTorch ``xavier_normal_``: untruncated ``N(0, gain^2 * 2 / (fan_in + fan_out))``.

    References: Glorot & Bengio 2010, AISTATS.
    """
    return variance_scaling(gain**2, "fan_avg", "normal")


def torch_default() -> Initializer:
    """PyTorch's default for ``nn.Linear`` and ``nn.ConvNd`` weights.

    ``kaiming_uniform_(a=sqrt(5))``, which is ``U[-1/sqrt(fan_in), 1/sqrt(fan_in)]``,
    i.e. ``Var[w] = 1 / (3 fan_in)``: a third of LeCun's variance.
    """
    return jinit.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def orthogonal(scale: float = 1.0, column_axis: int = -1) -> Initializer:
    """``jax.nn.initializers.orthogonal``, also for 16-bit floats.

    The kernel is reshaped to a `(prod(other axes), shape[column_axis])` matrix whose
    columns (or rows, if it is wide) are orthonormal, times ``scale``. jax's QR has
    no bfloat16/float16 kernel on CPU, so those dtypes are drawn in float32 and cast.

    References: Saxe et al. 2013, arXiv:1312.6120.
    """
    base = jinit.orthogonal(scale, column_axis)

    def init(key, shape, dtype=jnp.float32):
        compute = dtype if jnp.dtype(dtype).itemsize >= 4 else jnp.float32
        return base(key, shape, compute).astype(dtype)

    return init
