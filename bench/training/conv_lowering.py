"""Convolutions computed as matrix products of image patches (im2col), in any model, by rewriting its traced
forward pass.

XLA's CPU backend runs convolutions inside a loop (the suite's ``lax.scan`` over an epoch's steps) far below its
speed out of one: the Flax MNIST CNN's training step took 111 ms jitted alone and 800-830 ms as the body of a
scan, even a scan of one step (measured on this project's 2-core CPU). A ``vmap`` over models makes them grouped
convolutions, and the suite's two nested vmaps cannot batch a convolution's gradient at all
(``bench.training.batching``). The same convolution as a product of the input's patches with the kernel
flattened (:func:`conv_as_matmul`: strided slices and one matrix product, no convolution left) is one matrix
product, which a ``vmap`` turns into a batched one: the same step 72 ms per step inside the scan.

:func:`lowered` wraps a function: it traces it to a jaxpr and evaluates that jaxpr with each
``conv_general_dilated`` the patches can express (no input dilation, no feature or batch groups) replaced by
:func:`conv_as_matmul`; everything else is bound as traced, and jit calls inside are followed. Gradients are
taken through the rewritten function (the patches' transpose is a padding-and-add), so training and evaluation
see the same arithmetic. The products sum in another order than XLA's convolution: results agree with it to
float32 rounding, not bit for bit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator

import jax
import jax.extend.core as jcore
import numpy as np
from jax import lax

CONV = "conv_general_dilated"
CALLS = ("pjit", "jit", "closed_call")  # primitives whose inner jaxpr is evaluated (and rewritten) in place


def expressible(params: dict) -> bool:
    """Whether a ``conv_general_dilated`` with these parameters is a product of patches (:func:`conv_as_matmul`)."""
    return (params["feature_group_count"] == 1 and params["batch_group_count"] == 1
            and all(d == 1 for d in params["lhs_dilation"]))


def conv_as_matmul(lhs, rhs, *, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                   feature_group_count, batch_group_count, precision=None, preferred_element_type=None,
                   out_sharding=None):
    """``lax.conv_general_dilated`` with these arguments (:func:`expressible` ones) as patches x kernel.

    The input goes channels-last and padded; each offset of the window is one strided slice of it, the slices
    stacked after the channels make the patches `(batch, *out_spatial, in_features x window)` (input feature
    first, then the window, as the kernel's ``(out, in, *window)`` flattens), and one product contracts them
    with the kernel. Slices and a product, no convolution: XLA's CPU backend runs both at its best speed inside a
    loop and out of it, where its convolutions (and ``lax.conv_general_dilated_patches``, itself a convolution)
    are fast only out of loops.
    """
    del lhs_dilation, feature_group_count, batch_group_count, out_sharding  # all 1 (expressible); no sharding
    numbers = dimension_numbers
    n_spatial = len(numbers.lhs_spec) - 2
    x = jax.numpy.transpose(lhs, (numbers.lhs_spec[0], *numbers.lhs_spec[2:], numbers.lhs_spec[1]))
    x = lax.pad(x, jax.numpy.zeros((), x.dtype), ((0, 0, 0), *((lo, hi, 0) for lo, hi in padding), (0, 0, 0)))
    window = tuple(rhs.shape[d] for d in numbers.rhs_spec[2:])
    out_sizes = [(x.shape[1 + k] - (window[k] - 1) * rhs_dilation[k] - 1) // window_strides[k] + 1
                 for k in range(n_spatial)]
    pieces = []
    for offsets in itertools.product(*(range(w) for w in window)):
        start = (0, *(o * d for o, d in zip(offsets, rhs_dilation)), 0)
        limit = (x.shape[0], *(s + (n - 1) * stride + 1 for s, n, stride in zip(start[1:-1], out_sizes,
                                                                                 window_strides)), x.shape[-1])
        pieces.append(lax.slice(x, start, limit, (1, *window_strides, 1)))
    patches = jax.numpy.stack(pieces, axis=-1).reshape(*pieces[0].shape[:-1], -1)
    kernel = jax.numpy.transpose(rhs, numbers.rhs_spec)  # (out, in, *window)
    kernel = kernel.reshape(kernel.shape[0], -1)
    out = lax.dot_general(patches, kernel, (((patches.ndim - 1,), (1,)), ((), ())), precision=precision,
                          preferred_element_type=preferred_element_type)  # (batch, *out_spatial, out)
    out = jax.numpy.transpose(out, (0, n_spatial + 1, *range(1, n_spatial + 1)))  # (batch, out, *out_spatial)
    return jax.numpy.transpose(out, np.argsort(numbers.out_spec))


def convolutions(jaxpr: jcore.Jaxpr) -> Iterator[jcore.JaxprEqn]:
    """Every ``conv_general_dilated`` equation in ``jaxpr`` and the jaxprs inside it."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == CONV:
            yield eqn
        for value in eqn.params.values():
            for inner in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(inner, jcore.ClosedJaxpr):
                    yield from convolutions(inner.jaxpr)
                elif isinstance(inner, jcore.Jaxpr):
                    yield from convolutions(inner)


def _evaluate(jaxpr: jcore.Jaxpr, consts, args) -> list:
    """``jaxpr`` evaluated on ``args``, its expressible convolutions as :func:`conv_as_matmul` (calls followed)."""
    env = {}

    def read(var):
        return var.val if isinstance(var, jcore.Literal) else env[var]

    for var, value in zip(jaxpr.constvars, consts):
        env[var] = value
    for var, value in zip(jaxpr.invars, args):
        env[var] = value
    for eqn in jaxpr.eqns:
        values = [read(var) for var in eqn.invars]
        name = eqn.primitive.name
        if name == CONV and expressible(eqn.params):
            outs = [conv_as_matmul(*values, **eqn.params)]
        elif name in CALLS and isinstance(eqn.params.get("jaxpr"), jcore.ClosedJaxpr):
            inner = eqn.params["jaxpr"]
            outs = _evaluate(inner.jaxpr, inner.consts, values)
        else:  # as jax.core.eval_jaxpr binds it
            with eqn.ctx.manager:
                outs = eqn.primitive.bind(*values, **eqn.primitive.get_bind_params(eqn.params))
            outs = outs if eqn.primitive.multiple_results else [outs]
        for var, value in zip(eqn.outvars, outs):
            env[var] = value
    return [read(var) for var in jaxpr.outvars]


def lowered(fn: Callable) -> Callable:
    """``fn`` with its convolutions computed as matrix products (see the module docstring); the same outputs up to
    float32 rounding. ``fn`` takes and returns pytrees of arrays (a Flax ``apply`` does)."""

    def with_matmuls(*args):
        closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
        outs = _evaluate(closed.jaxpr, closed.consts, jax.tree.leaves(args))
        return jax.tree.unflatten(jax.tree.structure(shapes), outs)

    return with_matmuls


def count(fn: Callable, *example_args) -> tuple[int, int]:
    """``(convolutions the patches express, others)`` in ``fn``'s trace on ``example_args`` (may be
    ``jax.ShapeDtypeStruct``)."""
    found = list(convolutions(jax.make_jaxpr(fn)(*example_args).jaxpr))
    lowerable = int(np.sum([expressible(eqn.params) for eqn in found])) if found else 0
    return lowerable, len(found) - lowerable


def patch_bytes(fn: Callable, *example_args) -> int:
    """Bytes of the patch matrices :func:`conv_as_matmul` builds for the expressible convolutions of ``fn``'s trace
    on ``example_args``: `(batch, *out_spatial, in_features x window)` each, the output's elements times the
    kernel's, over its output features squared."""
    total = 0
    for eqn in convolutions(jax.make_jaxpr(fn)(*example_args).jaxpr):
        if expressible(eqn.params):
            out, kernel = eqn.outvars[0].aval, eqn.invars[1].aval
            features = out.shape[eqn.params["dimension_numbers"].out_spec[1]]
            total += math.prod(out.shape) * math.prod(kernel.shape) // features**2 * np.dtype(out.dtype).itemsize
    return total
