"""Outputs of a program that hold one value throughout, made on the host instead of compiled.

A task's initialization program returns the whole training state: the drawn kernels and, beside them, leaves
that hold one value throughout: zero biases, the optimizer's zero moments and step count, BatchNorm's unit
running variances. XLA on CPU compiles each such output as a kernel of its own, a broadcast or a copy (the
default preset's synthetic task: 18 of the 55 kernels of its initialization program; measured alternately on a
2-core EPYC, the program compiled in 1.10-1.36 s with them, 0.97-1.10 s without, 1.9-2.3 and 1.6-1.9 CPU-s).
A learning rate held by the optimizer state is such a leaf too, so a program does not depend on its value.

:func:`split` traces a function to a jaxpr (https://docs.jax.dev/en/latest/jaxpr.html) and finds the outputs
whose value it can prove is one value everywhere: a literal or constant of equal elements, broadcast, reshaped,
transposed, copied, converted to a type that holds it exactly, concatenated or stacked with its equals, stacked
by a loop (``lax.scan``, ``lax.map``) from a body where it is such a value, or passed out of a nested ``jit``.
Anything else is left to the program. :func:`assemble` puts the program's outputs and the fills, each a
``numpy.full`` placed like the program's outputs, back into the function's pytree: the same values, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.extend import core

# one value in, the same value out (in another shape)
SAME_VALUE = frozenset({"broadcast_in_dim", "reshape", "squeeze", "expand_dims", "transpose", "copy", "copy_p",
                        "rev"})


class Split(NamedTuple):
    """A function split into its computed outputs and its fills.

    Attributes:
      computed: a function of the original arguments returning the list of the outputs that are not fills, in
        the order of the flattened outputs (to be jitted).
      fills: one per flattened output: its value (a 0-d numpy array of the output's type) or None (computed).
      shapes: the function's outputs as ``jax.ShapeDtypeStruct`` (a pytree).
    """

    computed: Callable
    fills: tuple
    shapes: Any


def split(fn: Callable, *args) -> Split:
    """``fn`` (of arrays to a pytree of arrays) traced on ``args``, its outputs sorted into computed and fills."""
    closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
    values = _Values(closed.jaxpr, dict(zip(closed.jaxpr.constvars, (_one_value(c) for c in closed.consts))))
    fills = tuple(values.of(atom) for atom in closed.jaxpr.outvars)
    evaluate = core.jaxpr_as_fun(closed)

    def computed(*arguments):
        outputs = evaluate(*jax.tree.leaves(arguments))
        return [output for output, fill in zip(outputs, fills) if fill is None]

    return Split(computed, fills, shapes)


def assemble(parts: Split, computed: list, sharding: jax.sharding.Sharding | None = None):
    """The function's outputs (``parts.shapes``' pytree) from the program's ``computed`` outputs and the fills,
    each put on the devices with ``sharding`` (None: the default device)."""
    outputs = iter(computed)
    leaves = [next(outputs) if fill is None else jax.device_put(np.full(shape.shape, fill, shape.dtype), sharding)
              for fill, shape in zip(parts.fills, jax.tree.leaves(parts.shapes))]
    return jax.tree.unflatten(jax.tree.structure(parts.shapes), leaves)


class _Values:
    """The one value each variable of a jaxpr is known to hold throughout (None: not known), found lazily."""

    def __init__(self, jaxpr: core.Jaxpr, known: dict):
        self.producers = {var: (eqn, i) for eqn in jaxpr.eqns for i, var in enumerate(eqn.outvars)}
        self.known = known  # the inputs' values (None for an argument: it could be anything)

    def of(self, atom) -> np.ndarray | None:
        if isinstance(atom, core.Literal):
            return _one_value(atom.val, atom.aval.dtype)
        if atom not in self.known:
            if atom not in self.producers:  # an argument
                return None
            eqn, i = self.producers[atom]
            self.known[atom] = _output_value(eqn, i, self.of)
        return self.known[atom]


def _output_value(eqn: core.JaxprEqn, i: int, of: Callable) -> np.ndarray | None:
    """The one value output ``i`` of ``eqn`` holds throughout, where the primitive keeps one (``of``: the
    values of the equation's inputs), else None."""
    name = eqn.primitive.name
    if name in SAME_VALUE:
        return of(eqn.invars[0])
    if name == "convert_element_type":
        return _converted(of(eqn.invars[0]), eqn.params["new_dtype"])
    if name in ("concatenate", "stack"):
        values = [of(atom) for atom in eqn.invars]
        first = values[0]
        return first if all(v is not None and _same_bits(v, first) for v in values) else None
    if name == "jit" and "jaxpr" in eqn.params:
        inner = eqn.params["jaxpr"]
        known = dict(zip(inner.jaxpr.constvars, (_one_value(c) for c in inner.consts)))
        known.update((var, _Lazy(of, atom)) for var, atom in zip(inner.jaxpr.invars, eqn.invars))
        return _Values(inner.jaxpr, _Resolved(known)).of(inner.jaxpr.outvars[i])
    if name == "scan" and i >= eqn.params["num_carry"]:  # stacked per step (ys): one value if each step's is
        body, n_consts = eqn.params["jaxpr"], eqn.params["num_consts"]
        known = dict(zip(body.jaxpr.constvars, (_one_value(c) for c in body.consts)))
        known.update((var, _Lazy(of, atom)) for var, atom in zip(body.jaxpr.invars[:n_consts], eqn.invars))
        known.update((var, None) for var in body.jaxpr.invars[n_consts:])  # the carry and the step's slices
        return _Values(body.jaxpr, _Resolved(known)).of(body.jaxpr.outvars[i])
    return None


class _Lazy:
    """An outer variable's value, looked up only if the inner jaxpr's output depends on it."""

    def __init__(self, of: Callable, atom):
        self.of, self.atom = of, atom


class _Resolved(dict):
    """A dict of values whose :class:`_Lazy` entries are looked up when first read."""

    def __getitem__(self, var):
        value = super().__getitem__(var)
        if isinstance(value, _Lazy):
            value = value.of(value.atom)
            self[var] = value
        return value


def _one_value(value, dtype=None) -> np.ndarray | None:
    """``value`` (a scalar or array) as a 0-d array of ``dtype`` when all its elements are the same bits, else
    None (empty, or not a numpy-convertible value: a key, a tracer)."""
    try:
        array = np.asarray(value) if dtype is None else np.asarray(value, dtype)
    except (TypeError, ValueError):
        return None
    if array.size == 0 or array.dtype == object:
        return None
    flat = array.reshape(-1)
    first = flat[:1].copy()
    return first.reshape(()) if _same_bits(flat, first) else None


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Every element of ``a`` has the bits of ``b`` (one element; same type): 0.0 and -0.0 differ, a NaN is itself."""
    if a.dtype != b.dtype:
        return False
    width = a.dtype.itemsize
    return bool((a.reshape(-1).view(np.uint8).reshape(-1, width) == b.reshape(-1).view(np.uint8)[:width]).all())


def _converted(value: np.ndarray | None, dtype) -> np.ndarray | None:
    """``value`` converted to ``dtype`` where the conversion is exact (converting back gives the same bits: 0 and 1
    are, 0.1 to float16 is not), so numpy's conversion and XLA's agree; else None."""
    if value is None:
        return None
    try:
        with np.errstate(all="ignore"):
            converted = value.astype(np.dtype(dtype))
            back = converted.astype(value.dtype)
    except (TypeError, ValueError):
        return None
    return converted if _same_bits(back, value) else None
