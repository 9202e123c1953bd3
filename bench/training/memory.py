"""How many runs to train at once: memory estimates from shapes, and the chunk plan.

The runs of a task are trained in *chunks* of seeds: a chunk trains every
initializer for ``seeds_per_chunk`` seeds (``n_inits x seeds_per_chunk`` models,
sharing each seed's minibatches), all epochs, then the next chunk starts. The same
compiled programs serve every chunk (the last one is padded with repeated seeds
whose results are dropped), so chunking costs no compilation.

The chunk is picked from shapes alone, before anything is compiled:

* on CPU, the largest chunk whose training working set (:attr:`Footprint.train`)
  stays within :data:`CPU_CACHE_BYTES`, because the batched step slows down once its
  parameters fall out of cache (measured on a 2-core Xeon: MNIST MLP 124 GFLOP/s
  at 8-16 models, 82 at 512; on a 2-core EPYC, 2 MiB of L2 a core, the default preset's
  digits MLP trained 940 run-epochs/s in chunks of 24-32 models and 810 in chunks of 88,
  its synthetic MLP 2,300-2,500 at 32-48 and 2,270 at 128);
* on every device, the largest chunk whose estimated peak stays within the memory
  budget (``--max-memory``; default 80% of the memory available now).

``--chunk`` overrides the choice. On a CPU, :data:`CPU_LANES` chunks train side by side
(``bench.training.train``), so the budget is shared between them: a vmapped step of small
models leaves cores idle between its small operations (the default preset's digits MLP, 32
models a chunk, kept 1.4 of 2 cores busy), and a second chunk fills them (an epoch of 8 such
chunks 0.22 s one after another, 0.13 s two at a time; MNIST MLP, 2 chunks of 32: 1.28 vs 1.00 s).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import resource
import sys

import jax
import jax.numpy as jnp
import optax

from bench.data.limits import available_bytes  # noqa: F401 (re-exported: memory.available_bytes)
from bench.errors import UserError, option
from bench.training import conv_lowering, step
from bench.training.batching import ALL_AT_ONCE, Batching

CPU_CACHE_BYTES = 12 * 2**20
EVAL_BYTES = 64 * 2**20  # one model's evaluation chunk may hold this much, or its training step's working set
CPU_LANES = 2  # chunks trained at once on a CPU (see the module docstring)
# Working memory of the compiler and runtime on top of arrays (XLA compiling the programs,
# thread stacks): measured ~150 MiB on CPU for the MNIST MLP; counted into every estimate.
# XLA's CPU thread pool has a thread per core, each with its stack and malloc arena: on a
# 16-core machine the peak went 13 MiB over a flat 256 MiB, hence a share per core.
RUNTIME_BYTES = 256 * 2**20 + 4 * 2**20 * len(os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else
                                              range(os.cpu_count() or 1))
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str) -> int:
    """``"4G"``, ``"512M"``, ``"1.5GB"``, ``"4GiB"`` or a plain byte count -> bytes."""
    match = re.fullmatch(r"\s*([0-9]{0,20}\.?[0-9]{1,20})\s*([KMGT]?)(i?B)?\s*", str(text), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"cannot read memory size {str(text)[:40]!r}: write e.g. 4G, 512M or 1.5GB")
    size = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if size > 2**60:
        raise UserError(f"memory size {str(text)[:40]!r} is more than an exbibyte; write e.g. 4G, 512M or 1.5GB")
    return int(size)


def format_bytes(n: float) -> str:
    """``1536 * 2**20`` -> ``"1.5 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def tree_bytes(tree) -> int:
    """Bytes of every array (or ShapeDtypeStruct) leaf of a pytree."""
    return sum(math.prod(leaf.shape) * jnp.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(tree))


@dataclasses.dataclass(frozen=True)
class Footprint:
    """Memory of one run (one model), from shapes.

    Attributes:
      params: bytes of its parameters.
      state: parameters, optimizer state and model state (BatchNorm statistics), held for the whole training.
      train: working set of one training step: state in and out, gradients, and what the forward pass keeps for
        the backward pass on a minibatch (:func:`kept_per_example`), twice (those values and their gradients),
        and, for convolutions computed as products of patches, the patches' gradient.
      eval: working set of one evaluation chunk of :attr:`eval_chunk` examples.
      n_params: number of parameters (not bytes).
      eval_chunk: examples evaluated at once (:func:`evaluation_chunk`).
      eval_bound: memory made :attr:`eval_chunk` smaller than the evaluation batch asked for.
    """

    params: int
    state: int
    train: int
    eval: int
    n_params: int = 0
    eval_chunk: int = 2048
    eval_bound: bool = False

    @property
    def step(self) -> int:
        """Peak of a model while its chunk trains or evaluates."""
        return max(self.train, self.eval)


def evaluation_chunk(per_example: int, train: int, batch_size: int, eval_batch_size: int) -> int:
    """Examples one model evaluates at once: ``eval_batch_size``, fewer where that would hold more than the
    training step's working set ``train`` or :data:`EVAL_BYTES`, whichever is larger (never fewer than a
    minibatch): an evaluation never needs more memory than training. The Flax MNIST CNN, its convolutions as
    products of patches, keeps 446 KiB an example: 2,048 at once were 0.9 GiB, three times its training step."""
    affordable = max(train, EVAL_BYTES) // max(per_example, 1)
    return int(max(1, min(eval_batch_size, max(batch_size, affordable))))


def kept_per_example(forward: step.Forward, params, model_state, input_shape) -> int:
    """Bytes the training-mode forward pass of ``forward`` keeps for its backward pass, per example: the residuals
    of ``jax.vjp`` (every activation, mask and patch matrix the gradient reads), counted by ``jax.eval_shape`` on
    minibatches of two and one, whose difference leaves out what does not grow with the batch (the parameters)."""
    key = jax.random.key(0) if forward.stochastic else None

    def residuals(n):
        x = jax.ShapeDtypeStruct((n, *input_shape), jnp.float32)

        def kept(p, state, x):
            return jax.vjp(lambda p: forward.train(p, state, x, key)[0], p)[1]
        return tree_bytes(jax.eval_shape(kept, params, model_state, x))

    return max(0, residuals(2) - residuals(1))


def footprint(model, input_shape, optimizer: optax.GradientTransformation, batch_size: int,
              eval_batch_size: int, matmuls: bool = False) -> Footprint:
    """Estimates :class:`Footprint` with ``jax.eval_shape`` (nothing is computed); ``matmuls``: the model's
    convolutions computed as products of patches (``bench.training.batching``), whose patches are kept too."""
    sample = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    forward = step.forward_of(model, input_shape, matmuls)
    params, model_state = jax.eval_shape(lambda x: forward.init(jax.random.key(0), x), sample)
    opt_state = jax.eval_shape(optimizer.init, params)

    def outputs(p, collections, x):
        return model.apply({"params": p, **collections}, x, capture_intermediates=True, mutable=["intermediates"],
                           **forward.mode_kwargs(False))

    _, intermediates = jax.eval_shape(outputs, params, model_state, sample)
    per_example = max(tree_bytes(intermediates), kept_per_example(forward, params, model_state, input_shape))
    per_example += math.prod(input_shape) * 4
    # the backward pass of a product of patches materializes the patches' gradient too (then pads and adds it)
    convolutions = dataclasses.replace(forward, matmuls=False)  # traced as written: its convolutions counted
    patches = conv_lowering.patch_bytes(convolutions, params, model_state, sample) if matmuls else 0
    p, state = tree_bytes(params), tree_bytes(params) + tree_bytes(opt_state) + tree_bytes(model_state)
    n_params = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))
    train = 2 * state + p + (2 * per_example + patches) * batch_size
    eval_chunk = evaluation_chunk(per_example, train, batch_size, eval_batch_size)
    return Footprint(p, state, train=train, eval=per_example * eval_chunk, n_params=n_params, eval_chunk=eval_chunk,
                     eval_bound=eval_chunk < eval_batch_size)


def device_memory_bytes(device) -> int | None:
    """Memory of an accelerator (None on CPU, whose memory is the host's)."""
    if device.platform == "cpu":
        return None
    stats = device.memory_stats() or {}
    return stats.get("bytes_limit")


def current_rss_bytes() -> int:
    """Resident memory of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far.

    Linux's ``VmHWM`` where there is one: ``ru_maxrss`` survives ``exec``, so a process
    started from a large parent (a test runner, a notebook) would report the parent's
    peak as its own. Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def device_peak_bytes(device) -> int | None:
    """Peak memory in use on an accelerator, where the runtime reports it."""
    if device.platform == "cpu":
        return None
    return (device.memory_stats() or {}).get("peak_bytes_in_use")


@dataclasses.dataclass(frozen=True)
class ChunkPlan:
    """Seeds per chunk and what that is expected to cost.

    Attributes:
      seeds_per_chunk: seeds of one chunk (a multiple of the local device count).
      n_chunks: chunks over all processes (a multiple of the process count).
      n_inits: initializers, trained together within a chunk.
      estimate: predicted peak bytes (host memory on CPU, device memory elsewhere).
      budget: the memory budget the plan respects.
      reason: how the chunk was chosen, for the report.
      lanes: chunks trained at once (each its own thread); the estimate counts them all.
      batching: how each chunk's models are batched in its programs (``bench.training.batching``).
    """

    seeds_per_chunk: int
    n_chunks: int
    n_inits: int
    estimate: int
    budget: int
    reason: str
    lanes: int = 1
    batching: Batching = ALL_AT_ONCE

    @property
    def models_per_chunk(self) -> int:
        return self.seeds_per_chunk * self.n_inits

    def seed_groups(self, seeds: list[int]) -> list[list[int]]:
        """Seeds of each chunk; the last chunks repeat seeds to keep one shape (:func:`real_seeds` drops them)."""
        padded = list(seeds) + [seeds[-1]] * (self.n_chunks * self.seeds_per_chunk - len(seeds))
        return [padded[i * self.seeds_per_chunk:(i + 1) * self.seeds_per_chunk] for i in range(self.n_chunks)]


def real_seeds(groups: list[list[int]]) -> list[list[bool]]:
    """Marks, per chunk, the seeds seen for the first time (the rest are padding)."""
    seen, marks = set(), []
    for group in groups:
        marks.append([s not in seen and not seen.add(s) for s in group])
    return marks


def fewest_chunks(limit: int, n_seeds: int, n_devices: int, n_processes: int) -> tuple[int, int]:
    """``(seeds per chunk, chunks)``: the fewest chunks of at most ``limit`` seeds (a multiple of ``n_devices``),
    evened out to pad the least, their number a multiple of ``n_processes``."""
    limit = max(n_devices, limit // n_devices * n_devices)
    per_chunk = -(-n_seeds // -(-n_seeds // limit))
    per_chunk = -(-per_chunk // n_devices) * n_devices
    n_chunks = -(-n_seeds // per_chunk)
    return per_chunk, -(-n_chunks // n_processes) * n_processes


def least_work_chunks(limit: int, n_seeds: int, n_devices: int, n_processes: int, lanes: int) -> tuple[int, int]:
    """``(seeds per chunk, chunks)`` for a CPU where the fewest chunks would pad seeds.

    Its cores are busy with any chunk (two side by side where ``lanes`` is 2), so a task takes about its rounds of
    chunks times the models of one: of the chunks of ``limit / 2`` to ``limit`` seeds (a multiple of
    ``n_devices``; smaller ones use the cores less well), the one whose rounds hold the fewest seeds, padding
    included; the largest of those. The default preset's 32 seeds with room for 6: 8 chunks of 4 (4 rounds of 4
    seeds), not 6 chunks of 6 (3 rounds of 6, 4 seeds padded).
    """
    limit = min(max(n_devices, limit // n_devices * n_devices), -(-n_seeds // n_devices) * n_devices)
    least = max(n_devices, -(-limit // 2 // n_devices) * n_devices)
    best = None
    for per_chunk in range(least, limit + 1, n_devices):
        n_chunks = -(-n_seeds // per_chunk)
        n_chunks = -(-n_chunks // n_processes) * n_processes
        at_once = max(1, min(lanes, n_chunks // n_processes)) * n_processes
        work = -(-n_chunks // at_once) * per_chunk
        if best is None or work <= best[0]:
            best = (work, per_chunk, n_chunks)
    return best[1:]


def plan(fp: Footprint, n_inits: int, n_seeds: int, resident: int, budget: int, on_cpu: bool,
         n_devices: int = 1, n_processes: int = 1, chunk: int | None = None, lanes: int = 1,
         batching: Batching = ALL_AT_ONCE) -> ChunkPlan:
    """Chooses the seeds per chunk, and how many chunks train at once.

    Args:
      fp: footprint of one model.
      n_inits, n_seeds: the task's runs.
      resident: bytes held whatever the chunk (the process, the data, kept results);
        :data:`RUNTIME_BYTES` is added to it.
      budget: bytes the estimated peak must stay within.
      on_cpu: apply the cache limit :data:`CPU_CACHE_BYTES`; where the fewest chunks would pad seeds, pick those
        that least work fills (on an accelerator: the fewest chunks).
      n_devices: local devices the seeds of a chunk are sharded over.
      n_processes: processes the chunks are shared between.
      chunk: seeds per chunk asked for by the user (rounded up to a multiple of ``n_devices``).
      lanes: chunks wanted side by side; fewer when there are fewer chunks, one when even the
        smallest chunks do not fit the budget twice over.
      batching: how a chunk's models run (``bench.training.batching``): vmapped, each chunk's step holds every
        model's activations at once; one after the other, one model's at a time (and the CPU cache target,
        which keeps a vmapped step's working set in cache, does not apply).

    Raises:
      UserError: even one seed per device does not fit in ``budget``.
    """
    sequential = batching.sequential

    def estimate(seeds_per_chunk, side_by_side):
        models = seeds_per_chunk * n_inits
        return RUNTIME_BYTES + resident + side_by_side * (models * fp.state + (1 if sequential else models) * fp.step)

    def spread(limit):
        return fewest_chunks(limit, n_seeds, n_devices, n_processes)

    smallest = n_devices
    if estimate(smallest, lanes) > budget:
        lanes = 1  # not even two of the smallest chunks fit: one at a time
    if estimate(smallest, 1) > budget:
        needs = format_bytes(estimate(smallest, 1))
        raise UserError(
            f"one chunk of {smallest} seed(s) x {n_inits} initializers needs about {needs}, "
            f"more than the memory budget {format_bytes(budget)}: raise {option('max_memory')}, "
            "or run fewer initializers, "
            f"a smaller model or a smaller {option('train.batch_size')}")
    if chunk is not None:
        if chunk < 1:
            raise UserError(f"{option('chunk')} must be >= 1 seed, got {chunk}")
        per_chunk, n_chunks = spread(-(-min(chunk, n_seeds) // n_devices) * n_devices)
        side_by_side = min(lanes, n_chunks // n_processes)
        if estimate(per_chunk, side_by_side) > budget:
            if estimate(per_chunk, 1) > budget:
                raise UserError(f"{option('chunk', chunk)} needs about {format_bytes(estimate(per_chunk, 1))}, "
                                f"more than the memory budget {format_bytes(budget)}: use a smaller "
                                f"{option('chunk')} or raise {option('max_memory')}")
            side_by_side = 1
        reason = f"--chunk {chunk}"
    else:
        free = budget - resident - RUNTIME_BYTES
        limit = max(smallest, (free - lanes * fp.step) // (lanes * n_inits * fp.state) if sequential
                    else free // (lanes * n_inits * (fp.state + fp.step)))
        reason = f"memory budget {format_bytes(budget)}"
        if on_cpu and not sequential:
            cache_limit = max(smallest, CPU_CACHE_BYTES // (n_inits * fp.train))
            if cache_limit < limit:
                limit, reason = cache_limit, f"CPU cache target {format_bytes(CPU_CACHE_BYTES)}"
        per_chunk, n_chunks = spread(limit)
        if on_cpu and per_chunk * n_chunks > n_seeds:  # the fewest chunks pad seeds: the least work instead
            per_chunk, n_chunks = least_work_chunks(limit, n_seeds, n_devices, n_processes, lanes)
        side_by_side = min(lanes, n_chunks // n_processes)
    if side_by_side > 1:
        reason += f"; {side_by_side} chunks at a time"
    if batching.describe():
        reason += f"; {batching.describe()} (bench.training.batching)"
    if fp.eval_bound:
        reason += f"; evaluated {fp.eval_chunk} examples at a time (bench.training.memory.evaluation_chunk)"
    return ChunkPlan(per_chunk, n_chunks, n_inits, estimate(per_chunk, side_by_side), budget, reason, side_by_side,
                     batching)
