"""Tracing a function so that its independent Threefry hashes are computed by one hash each (horizontal batching).

Every key derivation and every draw of ``jax.random`` is a Threefry-2x32 hash (Salmon et al. 2011, "Parallel
random numbers: as easy as 1, 2, 3"), and on CPU JAX lowers each hash to its own ``while`` loop (its rolled
lowering), which XLA compiles and runs one by one. An initialization draws many small tensors from keys derived
in a few steps (the seed's key, a key per arm, a key per parameter, the draw), so its program held a loop per
parameter and per step: the default preset's synthetic task (8 initializers x 3 kernels, deduplicated by
``bench.training.dedupe``) 8 hash loops besides the seeds' map. The hash is elementwise: the
hashes of one tensor and of another, concatenated, are one hash of the concatenation. So :func:`batched_hashes`

1. traces ``fn`` to a jaxpr with the nested ``jit`` calls inlined and the key operations on Threefry keys
   (``random_bits``, ``random_fold_in``, ``random_split``) replaced by their own implementation
   (``jax.extend.random.threefry_prng_impl``: the functions JAX lowers them with), so the hashes are visible;
2. drops what no output needs (dead code: the model's own draws that every arm replaces);
3. numbers each equation by its *depth*, the most hashes on a path from the inputs to it, and binds depth
   after depth: the operations of a depth, then every hash of that depth as one hash of the concatenated
   operands, sliced back. The hashes of one depth never feed each other, so the order is a valid one.

The values are those of ``fn`` bit for bit (the same hash of the same counts and keys; tested on every registered
initializer). Measured on a 2-core EPYC on a slow day, min of alternated rounds: the default preset's synthetic
task (8 initializers x 32 seeds, MLP 20-64-64-1) holds 4 hash loops instead of 9 and compiles in 1.7-2.2 s instead
of 2.3-2.7 s, traced in the same time; the ``lm-init`` preset's transformer (9 schemes, 4 blocks) holds 5 instead of
143 and compiles in 13.1 s instead of 14.3 s, traced in 0.5-1 s more. A batched hash holds at most
:data:`MAX_BATCHED` numbers, so the batching costs a few MiB of memory whatever the model (a batched hash holds
its keys broadcast to its counts); a larger hash stays alone. The hashes of a function with effects (callbacks)
are not batched, nor those inside control flow (a scheme's ``scan``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.extend.random as jax_random
import jax.numpy as jnp
from jax.extend import core

from bench.training import replay

MAX_BATCHED = 1 << 18  # numbers in a batched hash at most (its 4 operands: 4 MiB); a larger hash stays alone
_KEY_OPERATIONS = ("random_bits", "random_fold_in", "random_split")
_THREEFRY = jax_random.threefry_prng_impl
_traced: dict = {}  # (key operation, parameters, input types) -> the jaxpr of its implementation
_TRACED_MAX = 4096


def batched_hashes(fn: Callable) -> Callable:
    """``fn`` with the Threefry hashes of each depth computed as one: the same outputs, fewer hash loops.

    Args:
      fn: a function of arrays (pytrees of arrays) to arrays, traceable by ``jax.make_jaxpr``.

    Returns:
      A function with ``fn``'s signature and outputs, for use inside a traced computation (``jax.jit``,
      ``lax.map``).
    """

    def batched(*args):
        flat_args = jax.tree.leaves(args)
        closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
        opened = jax.make_jaxpr(lambda *xs: _replay_opened(closed.jaxpr, closed.consts, xs))(*flat_args)
        if any(eqn.effects for eqn in opened.jaxpr.eqns):
            flat = _replay_opened(closed.jaxpr, closed.consts, flat_args)
        else:
            flat = _bind_by_depth(opened.jaxpr, opened.consts, flat_args)
        return jax.tree.unflatten(jax.tree.structure(shapes), flat)

    return batched


def _replay_opened(jaxpr: core.Jaxpr, consts, args) -> list:
    """Binds ``jaxpr`` on ``args`` with its nested ``jit`` calls inlined and its key operations on Threefry keys
    bound as their implementation (inlined too)."""

    def opened(eqn, ins):
        inner = _implementation_jaxpr(eqn, ins)
        return replay.bind(eqn, ins) if inner is None else replay.replay(inner.jaxpr, inner.consts, ins, opened)

    return replay.replay(jaxpr, consts, args, opened)


def _implementation_jaxpr(eqn, ins):
    """The jaxpr of :func:`_implementation` on inputs of the types of ``ins`` (traced, so the nested jit calls of
    JAX's implementation are inlined too; kept by types, as a model's parameters repeat a few shapes); None for any
    equation that is not a key operation on Threefry keys."""
    if eqn.primitive.name not in _KEY_OPERATIONS or str(jax.random.key_impl(ins[0])) != _THREEFRY.name:
        return None
    types = tuple((jnp.shape(x), jnp.result_type(x)) for x in ins)
    key = (eqn.primitive.name, tuple(sorted(eqn.params.items())), types)
    if key not in _traced:
        if len(_traced) >= _TRACED_MAX:
            _traced.clear()
        _traced[key] = jax.make_jaxpr(_implementation(eqn))(*ins)
    return _traced[key]


def _implementation(eqn) -> Callable:
    """The function JAX lowers a key operation on Threefry keys with."""
    name = eqn.primitive.name
    if name == "random_bits":
        bit_width, shape = eqn.params["bit_width"], eqn.params["shape"]
        return lambda keys: _over_keys(keys.ndim, lambda k: _THREEFRY.random_bits(k, bit_width, shape))(
            jax.random.key_data(keys))
    if name == "random_split":
        shape = eqn.params["shape"]
        return lambda keys: _wrap(_over_keys(keys.ndim, lambda k: _THREEFRY.split(k, shape))(jax.random.key_data(keys)))

    def fold_in(keys, messages):  # broadcast against each other, as jax.random.fold_in's
        shape = jnp.broadcast_shapes(keys.shape, jnp.shape(messages))
        data = jnp.broadcast_to(jax.random.key_data(keys), (*shape, *_THREEFRY.key_shape))
        return _wrap(_over_keys(len(shape), _THREEFRY.fold_in)(data, jnp.broadcast_to(messages, shape)))

    return fold_in


def _wrap(data):
    return jax.random.wrap_key_data(data, impl=_THREEFRY.name)


def _over_keys(ndim: int, fn: Callable) -> Callable:
    """``fn`` of one key's data mapped over ``ndim`` leading axes (as JAX maps a key operation over a key array)."""
    for _ in range(ndim):
        fn = jax.vmap(fn)
    return fn


def _live(jaxpr: core.Jaxpr) -> list:
    """The equations some output needs, in their order."""
    needed = {atom for atom in jaxpr.outvars if not isinstance(atom, core.Literal)}
    kept = []
    for eqn in reversed(jaxpr.eqns):
        if any(var in needed for var in eqn.outvars):
            kept.append(eqn)
            needed.update(atom for atom in eqn.invars if not isinstance(atom, core.Literal))
    return kept[::-1]


def _is_hash(eqn) -> bool:
    return eqn.primitive is jax_random.threefry2x32_p


def _bind_by_depth(jaxpr: core.Jaxpr, consts, args) -> list:
    """Binds the live equations of a flat, effect-free ``jaxpr`` depth after depth, each depth's hashes as one."""
    env = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))

    def read(atom):
        return atom.val if isinstance(atom, core.Literal) else env[atom]

    eqns, depth_of = _live(jaxpr), {}
    depths = []
    for eqn in eqns:
        depth = max((depth_of[atom] for atom in eqn.invars if not isinstance(atom, core.Literal) and atom in depth_of),
                    default=0)
        depths.append(depth)
        depth_of.update((var, depth + _is_hash(eqn)) for var in eqn.outvars)
    for depth in range(max(depths, default=-1) + 1):
        hashes = []
        for eqn, at in zip(eqns, depths):
            if at != depth:
                continue
            if _is_hash(eqn) and math.prod(eqn.outvars[0].aval.shape) < MAX_BATCHED:
                hashes.append(eqn)
            else:
                env.update(zip(eqn.outvars, replay.bind(eqn, [read(atom) for atom in eqn.invars])))
        for group in _groups(hashes):
            if len(group) == 1:
                env.update(zip(group[0].outvars, replay.bind(group[0], [read(atom) for atom in group[0].invars])))
            else:
                env.update(_one_hash(group, read))
    return [read(atom) for atom in jaxpr.outvars]


def _groups(hashes: list) -> list[list]:
    """The hash equations of one depth in runs of at most :data:`MAX_BATCHED` numbers in all."""
    groups, size = [], MAX_BATCHED
    for eqn in hashes:
        n = math.prod(eqn.outvars[0].aval.shape)
        if size + n > MAX_BATCHED:
            groups.append([])
            size = 0
        groups[-1].append(eqn)
        size += n
    return groups


def _one_hash(hashes: list, read: Callable) -> dict:
    """The outputs of several hash equations, computed as one hash of their operands broadcast and concatenated."""
    shapes = [eqn.outvars[0].aval.shape for eqn in hashes]
    operands = [jnp.concatenate([jnp.broadcast_to(read(eqn.invars[i]), shape).ravel()
                                 for eqn, shape in zip(hashes, shapes)]) for i in range(4)]
    with hashes[0].ctx.manager:
        first, second = jax_random.threefry2x32_p.bind(*operands)
    outs, start = {}, 0
    for eqn, shape in zip(hashes, shapes):
        size = math.prod(shape)
        outs[eqn.outvars[0]] = first[start:start + size].reshape(shape)
        outs[eqn.outvars[1]] = second[start:start + size].reshape(shape)
        start += size
    return outs
