"""The random keys of each run: its initial draw and its data order, derived from the experiment seed, the task's
name and the run number alone (``bench.training.runs.RunIndex``), so a run is the same whatever the other runs."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Sequence

import jax
import numpy as np

from bench.training import speedups
from bench.training.runs import RunIndex


def run_keys(experiment_seed: int, dataset: str, seeds: Sequence[int], data_seeds: int = 1):
    """Initialization and data-order keys of each run, shared by all initializers.

    Args:
      seeds: run numbers. With ``data_seeds == 1`` run ``s`` is seed ``s``: its init and
        data-order keys both come from ``s``. With ``data_seeds = K > 1`` run ``r``
        crosses init seed ``r // K`` with data-order seed ``r % K``: the init key is
        that of init seed ``r // K`` (as with ``K = 1``) and the data-order key comes
        from ``r % K`` alone, so every init seed sees the same ``K`` data orders
        (``bench.analysis.crossed``).

    Returns:
      ``(init_keys, data_keys)``, each a key array of shape `(n_runs,)`.
    """
    derive = _derive_keys(speedups.enabled())
    return derive(experiment_seed, name_hash(dataset), name_hash(f"{dataset}/data-order"),
                  np.asarray(seeds, np.uint32), data_seeds)


def name_hash(name: str) -> np.uint32:
    """A name as a key's 31-bit fold-in value (CRC-32)."""
    return np.uint32(zlib.crc32(name.encode()) & 0x7FFFFFFF)


@functools.cache
def _derive_keys(fast: bool) -> Callable:
    """:func:`run_keys` as one compiled program (op by op, its few folds compiled as many programs), with the
    integer programs' XLA options when the speed-ups are on (``bench.training.speedups``)."""
    options = speedups.INTEGER_PROGRAM_OPTIONS if fast else {}
    return jax.jit(_keys, static_argnums=(0, 4), compiler_options=options)


def _keys(experiment_seed: int, dataset_hash, orders_hash, runs, data_seeds: int):
    crossed = RunIndex(data_seeds)
    base = jax.random.fold_in(jax.random.key(experiment_seed), dataset_hash)
    seed_keys = jax.vmap(lambda s: jax.random.fold_in(base, s))(crossed.init_seed(runs))
    init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(seed_keys)
    if data_seeds == 1:
        return init_keys, jax.vmap(lambda k: jax.random.fold_in(k, 1))(seed_keys)
    orders = jax.random.fold_in(jax.random.key(experiment_seed), orders_hash)
    return init_keys, jax.vmap(lambda d: jax.random.fold_in(jax.random.fold_in(orders, d), 1))(
        crossed.data_order(runs))
