"""Tracing a function so that each distinct operation is computed once (common subexpression elimination).

The arms of one seed share its random stream (common random numbers, ``bench.training.train``): every
arm that redraws a kernel draws it from the same key, so glorot_normal, he_normal and lecun_normal
all call ``jax.random.truncated_normal(key, -2, 2, shape)`` and scale the same draw, and the uniform and
normal draws of the other arms start from the same ``random_bits(key, shape)``. XLA does not merge
those repeats: on CPU each Threefry hash is a ``while`` loop (JAX's rolled lowering), and XLA's CSE does
not merge loops whose bodies are separate copies, so the default preset's initialization program held 26
hash loops where 9 are distinct (measured on its synthetic task: 1.75 s to compile as is, 1.3 s deduplicated).

:func:`deduplicated` traces the function to a jaxpr, inlines the nested ``jit`` calls that carry no sharding
of their own (``jax.random``'s functions are such calls) and replays it, binding an equation whose primitive,
parameters and input values it has already bound once only once. No effectful operation is merged. The values
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
    env = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))

    def read(atom):
        return atom.val if isinstance(atom, core.Literal) else env[atom]

    for eqn in jaxpr.eqns:
        ins = [read(atom) for atom in eqn.invars]
        if inlinable(eqn):
            inner = eqn.params["jaxpr"]
            outs = _replay(inner.jaxpr, inner.consts, ins, bound)
        else:
            key = _key(eqn, ins)
            if key is not None and key in bound:
                outs = bound[key][0]
            else:
                with eqn.ctx.manager:
                    outs = eqn.primitive.bind(*ins, **eqn.primitive.get_bind_params(eqn.params))
                outs = list(outs) if eqn.primitive.multiple_results else [outs]
                if key is not None:
                    bound[key] = (outs, ins)  # the inputs are kept alive: the key holds their ids
        env.update(zip(eqn.outvars, outs))
    return [read(atom) for atom in jaxpr.outvars]


def inlinable(eqn) -> bool:
    """A nested ``jit`` with no sharding, layout or compiler option of its own: inlining it changes nothing
    (XLA inlines every call), and its equations can then be shared with those outside it."""
    params = eqn.params
    if eqn.primitive.name != "jit" or "jaxpr" not in params:
        return False
    shardings = (*params.get("in_shardings", ()), *params.get("out_shardings", ()))
    layouts = (*params.get("in_layouts", ()), *params.get("out_layouts", ()))
    return (all(type(s).__name__ == "UnspecifiedValue" for s in shardings) and all(x is None for x in layouts)
            and not params.get("compiler_options_kvs"))


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
