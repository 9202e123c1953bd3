"""The speed plumbing behind one switch: jaxpr rewrites and XLA options that make the same numbers sooner.

Each piece gives the numbers the plain program gives: bit for bit for every initializer's draws and the training
(``tests/training/test_speedups.py`` trains the built-in models both ways, LSUV among the arms), and to float32
rounding for a whole-network scheme whose computation on the draws XLA may fuse otherwise (MetaInit's steps, the
data-dependent init's forward pass: ``tests/training/test_dedupe.py``). Each saves compile or run time on CPU:

- :func:`seed_body`: a seed's initialization traced with repeated draws computed once (``bench.training.dedupe``)
  and its independent hashes batched (``bench.training.hashes``);
- :func:`split_start`: the initial state's one-value leaves made on the host, not compiled
  (``bench.training.fills``);
- :func:`options`: XLA options per program (below).

``INITJAX_PLAIN=1`` in the environment turns them all off: the programs are then plain ``jax.jit`` of plain
``vmap``/``scan`` code. A JAX release that breaks a rewrite (they read jaxprs through ``jax.extend.core``) then
costs speed, not correctness: set it and the suite runs as JAX wrote it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax

from bench.training import dedupe, fills, hashes

SWITCH = "INITJAX_PLAIN"


def enabled() -> bool:
    """Whether the rewrites and options are on (``INITJAX_PLAIN`` unset, empty or 0)."""
    return os.environ.get(SWITCH, "").strip() in ("", "0")


def seed_body(one_seed: Callable) -> Callable:
    """A seed's initialization, deduplicated and with its hashes batched (as is when the switch is off)."""
    return hashes.batched_hashes(dedupe.deduplicated(one_seed)) if enabled() else one_seed


def split_start(fn: Callable, *args) -> fills.Split:
    """``fn``'s outputs split into those a program computes and the one-value fills made on the host
    (``fills.split``); when the switch is off, every output computed."""
    if enabled():
        return fills.split(fn, *args)
    shapes = jax.eval_shape(fn, *args)
    return fills.Split(lambda *arguments: jax.tree.leaves(fn(*arguments)), (None,) * len(jax.tree.leaves(shapes)),
                       shapes)


def options(chosen: dict) -> dict:
    """The XLA options of a program when the switch is on, none when it is off."""
    return dict(chosen) if enabled() else {}


INTEGER_PROGRAM_OPTIONS = {"xla_backend_optimization_level": 0}
"""XLA options of the programs that compute integers only (the run keys; the epoch orders: hashes and a sort),
whose results no optimization level can change: LLVM's ``-O0`` compiles them in 40-60% of the time (the default
preset's orders 0.81 s -> 0.32 s, its run keys 0.45 s -> 0.26 s), and they run once a chunk or an epoch (the orders
slower by 0.4 s an epoch at 60,000 examples x 32 seeds, where an epoch trains for minutes)."""

QUICK_COMPILE_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
"""XLA options of the epoch orders' program (integers: hashes and a sort), which runs once an epoch, not once a step:
XLA's CPU backend emits its fused loops as its earlier emitters did, without the MLIR fusion emitters, and compiles
them in 30-50% less time (the default preset's orders at ``-O0`` 0.19 -> 0.09 s) with the same bits, and they run
as fast (orders of 60,000 examples x 32 seeds: 0.91 s either way). Not for the initialization: it saved 0.2-0.8 s
of its compilation, but changed the last bits of a BatchNorm conv net's LSUV draws, and so its training
(``tests/training/test_speedups.py``); nor for the training program: its steps ran 12% slower so, and its numbers
changed in a model with tanh."""

TRAINING_PROGRAM_OPTIONS = {"xla_cpu_copy_insertion_use_region_analysis": True}
"""XLA options of the training program: copy insertion analyses the scan's body region by region and leaves out
the copies of the parameters it made every step (the default preset's digits MLP: an epoch of a chunk 0.060 ->
0.055 s; the schemes preset's residual MLP 0.186 -> 0.173 s), the same bits (a test compares them)."""
