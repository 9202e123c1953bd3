"""Deterministic and structured per-tensor initializers: identity, delta-orthogonal, ZerO, sparse.

All follow ``init(key, shape, dtype) -> Array`` with the kernel conventions of
``initjax.registry`` (input axis ``-2``, output axis ``-1``, the rest receptive
field, Flax ``HWIO`` for convolutions). For a convolution kernel the structured
matrix sits at the centre tap and every other tap is 0 (a "delta" kernel), so a
convolution starts as a 1x1 linear map of its input.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit

from initjax import initializers as extra

Initializer = jinit.Initializer


def _delta(matrix: jnp.ndarray, shape) -> jnp.ndarray:
    """Places an `(in, out)` matrix at the centre tap of a kernel of ``shape`` (2-D: the matrix itself)."""
    if len(shape) == 2:
        return matrix
    kernel = jnp.zeros(shape, matrix.dtype)
    centre = tuple(s // 2 for s in shape[:-2])
    return kernel.at[centre].set(matrix)


def identity(gain: float = 1.0) -> Initializer:
    """``gain`` x the (rectangular) identity `(in, out)`: unit ``i`` passes input ``i`` on.

    More outputs than inputs leave the extra outputs at 0; fewer drop the extra inputs.
    """

    def init(key, shape, dtype=jnp.float32):
        del key
        return _delta(gain * jnp.eye(shape[-2], shape[-1], dtype=dtype), shape)

    return init


def delta_orthogonal(scale: float = 1.0) -> Initializer:
    """Delta-orthogonal (Xiao et al. 2018): an orthogonal `(in, out)` matrix at the centre tap, 0 elsewhere.

    Requires ``in <= out`` for convolutions (as ``jax.nn.initializers.delta_orthogonal``,
    used for 3-5-D kernels); 2-D kernels get a plain (semi-)orthogonal matrix, so
    a model with convolutions and dense layers can use it throughout.
    """
    conv = jinit.delta_orthogonal(scale)
    dense = extra.orthogonal(scale)

    def init(key, shape, dtype=jnp.float32):
        return dense(key, shape, dtype) if len(shape) == 2 else conv(key, shape, dtype)

    return init


def hadamard(order: int) -> jnp.ndarray:
    """The Sylvester Hadamard matrix of size ``2**order`` (entries +-1)."""
    h = jnp.ones((1, 1))
    for _ in range(order):
        h = jnp.block([[h, h], [h, -h]])
    return h


def zero_hadamard() -> Initializer:
    """ZerO (Zhao et al. 2021, Algorithm 1): deterministic, from identities and a Hadamard matrix.

    For a layer mapping ``P_in`` to ``P_out`` units: ``P_out == P_in``: the identity;
    ``P_out < P_in``: the partial identity (output ``i`` = input ``i``);
    ``P_out > P_in``: ``c I* H_m I*`` with ``m = ceil(log2 P_out)``, ``H_m`` the
    Hadamard matrix of size ``2**m``, ``c = 2**(-(m-1)/2)`` and ``I*`` partial
    identities (so the first ``P_in`` rows and ``P_out`` columns of ``c H_m``).
    The same matrix whatever the key: every seed starts from the same network.
    """

    def init(key, shape, dtype=jnp.float32):
        del key
        n_in, n_out = shape[-2], shape[-1]
        if n_out <= n_in:
            matrix = jnp.eye(n_in, n_out, dtype=dtype)
        else:
            m = math.ceil(math.log2(n_out))
            matrix = (2.0 ** (-(m - 1) / 2) * hadamard(m)[:n_in, :n_out]).astype(dtype)
        return _delta(matrix, shape)

    return init


def sparse(k: int = 15, stddev: float = 1.0) -> Initializer:
    """Sparse init (Martens 2010): each output unit gets ``k`` non-zero incoming weights ~ N(0, stddev^2).

    The ``k`` inputs of each unit are drawn without replacement from its fan-in
    (all inputs if the fan-in is smaller); the rest are 0.
    """
    if k < 1:
        raise ValueError(f"sparse needs k >= 1 non-zero weights per unit, got {k}")

    def init(key, shape, dtype=jnp.float32):
        fan_in, n_out = math.prod(shape[:-1]), shape[-1]
        pick, values = jax.random.split(key)
        ranks = jnp.argsort(jnp.argsort(jax.random.uniform(pick, (fan_in, n_out)), axis=0), axis=0)
        weights = stddev * jax.random.normal(values, (fan_in, n_out), dtype)
        return jnp.where(ranks < k, weights, 0).astype(dtype).reshape(shape)

    return init
