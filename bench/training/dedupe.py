"""Tracing a function so that each distinct operation is computed once (common subexpression elimination).

The arms of one seed share its random stream (common random numbers, ``bench.training.train``): every
arm that redraws a kernel draws it from the same key, so glorot_normal, he_normal and lecun_normal
all call ``jax.random.truncated_normal(key, -2, 2, shape)`` and scale the same draw, and the uniform and
normal draws of the other arms start from the same ``random_bits(key, shape)``. XLA does not merge
those repeats: on CPU each Threefry hash is a ``while`` loop (JAX's rolled lowering), and XLA's CSE does
not merge loops whose bodies are separate copies, so the default preset's initialization program held 26
hash loops where 9 are distinct (measured on its synthetic task: 1.75 s to compile as is, 1.3 s deduplicated).

:func:`deduplicated` traces the function to a jaxpr, inlines the nested ``jit`` calls that carry no sharding
of their own (``jax.random``'s functions are such calls) and replays it (``bench.training.replay``), binding an
equation whose primitive, parameters and input values it has already bound once only once. No effectful
operation is merged. The values
are those of the function: the same operations on the same inputs. The draws of every registered initializer
are bit for bit the same (tested); a scheme that computes on them (LSUV's forward passes, MetaInit's gradient
steps) can differ in the last bit of a few entries (measured: MetaInit, 1 unit in the last place in 3% of one
kernel), since XLA fuses a value shared by several arms otherwise than each arm's own copy.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jax.extend import core

from bench.training import replay

# primitives whose result is not a function of their inputs (XLA's stateful generator): never merged
NOT_PURE = frozenset({"rng_uniform"})


def deduplicated(fn: Callable) -> Callable:
    """``fn`` with every operation that repeats one before it (same primitive, parameters and inputs) not
    computed again: the same outputs, a smaller program.

    Args:
      fn: a function of arrays (pytrees of arrays) to arrays, traceable by ``jax.make_jaxpr``.

    Returns:
      A function with ``fn``'s signature and outputs, for use inside a traced computation (``jax.jit``,
      ``lax.map``): called eagerly it binds each operation one by one.
    """

    def once_each(*args):
        closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
        flat = _replay(closed.jaxpr, closed.consts, jax.tree.leaves(args), {})
        return jax.tree.unflatten(jax.tree.structure(shapes), flat)

    return once_each


def _replay(jaxpr: core.Jaxpr, consts, args, bound: dict) -> list:
    """Binds ``jaxpr``'s equations on ``args``, reusing the outputs of an equation already in ``bound``."""

    def once(eqn, ins):
        key = _key(eqn, ins)
        if key is not None and key in bound:
            return bound[key][0]
        outs = replay.bind(eqn, ins)
        if key is not None:
            bound[key] = (outs, ins)  # the inputs are kept alive: the key holds their ids
        return outs

    return replay.replay(jaxpr, consts, args, once)


def _key(eqn, ins) -> tuple | None:
    """What makes two equations compute the same values: primitive, parameters, and each input (a literal by
    its value and type, any other by the identity of the value bound to it); None for an equation never
    merged (effects, a stateful primitive, or parameters that cannot be hashed)."""
    if eqn.effects or eqn.primitive.name in NOT_PURE:
        return None
    inputs = tuple(_literal(atom) if isinstance(atom, core.Literal) else id(value)
                   for atom, value in zip(eqn.invars, ins))
    key = (eqn.primitive, inputs, tuple(sorted(eqn.params.items())))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _literal(atom) -> tuple:
    """A literal input by its type and value (a numpy value by its bytes: its ``repr`` costs 0.1 ms)."""
    value = atom.val
    if isinstance(value, (np.ndarray, np.generic)):
        return "literal", str(atom.aval), value.dtype.str, value.shape, value.tobytes()
    return "literal", str(atom.aval), repr(value)
