"""Replaying a jaxpr: binding its equations again, one by one, into the computation being traced.

The rewrites of the initialization program (``bench.training.dedupe``, ``bench.training.hashes``) trace a function
to a jaxpr (https://docs.jax.dev/en/latest/jaxpr.html), then bind its equations again, each as the rewrite
decides, so that the rewritten program is traced in place of the function. Nested ``jit`` calls that carry no
sharding, layout or compiler option of their own are inlined on the way (XLA inlines every call anyway), so a
rewrite sees the equations inside them (``jax.random``'s functions are such calls).
"""

from __future__ import annotations

from collections.abc import Callable

from jax.extend import core


def replay(jaxpr: core.Jaxpr, consts, args, bind_one: Callable[[core.JaxprEqn, list], list]) -> list:
    """Binds ``jaxpr``'s equations on ``args`` in order, each by ``bind_one(eqn, inputs) -> outputs`` (a list),
    the nested ``jit`` calls :func:`inlinable` inlined.

    Returns:
      The values of ``jaxpr``'s outputs.
    """
    env = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))

    def read(atom):
        return atom.val if isinstance(atom, core.Literal) else env[atom]

    for eqn in jaxpr.eqns:
        ins = [read(atom) for atom in eqn.invars]
        if inlinable(eqn):
            inner = eqn.params["jaxpr"]
            outs = replay(inner.jaxpr, inner.consts, ins, bind_one)
        else:
            outs = bind_one(eqn, ins)
        env.update(zip(eqn.outvars, outs))
    return [read(atom) for atom in jaxpr.outvars]


def bind(eqn: core.JaxprEqn, ins: list) -> list:
    """The equation's primitive bound on ``ins`` with its parameters (in its context): its outputs, a list."""
    with eqn.ctx.manager:
        outs = eqn.primitive.bind(*ins, **eqn.primitive.get_bind_params(eqn.params))
    return list(outs) if eqn.primitive.multiple_results else [outs]


def inlinable(eqn: core.JaxprEqn) -> bool:
    """A nested ``jit`` with no sharding, layout or compiler option of its own: inlining it changes nothing
    (XLA inlines every call), and its equations can then be rewritten with those outside it."""
    params = eqn.params
    if eqn.primitive.name != "jit" or "jaxpr" not in params:
        return False
    shardings = (*params.get("in_shardings", ()), *params.get("out_shardings", ()))
    layouts = (*params.get("in_layouts", ()), *params.get("out_layouts", ()))
    return (all(type(s).__name__ == "UnspecifiedValue" for s in shardings) and all(x is None for x in layouts)
            and not params.get("compiler_options_kvs"))
