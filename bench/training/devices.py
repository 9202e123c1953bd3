"""Where the runs go: a 1-D mesh over this process's devices, and several processes.

Within a process, the seeds of a chunk are sharded over every local device (a
1-D ``jax.sharding.Mesh`` with axis ``"models"``): parameter and optimizer leaves
`(n_inits, seeds_per_chunk, ...)` are split on their seed axis, the data is
replicated. Runs never talk to each other, so the compiled program has no
collectives and a run gives the same numbers whichever device trains it.

Across processes (``--distributed``: one process per host, started by the user
or the cluster's launcher), each process trains its own chunks (chunk ``c`` goes
to process ``c mod n_processes``) and :func:`gather` brings every chunk's
records to all processes; process 0 writes the report.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bench.errors import UserError, option

AXIS = "models"


def local_mesh() -> Mesh:
    """A 1-D mesh over this process's devices."""
    return Mesh(np.array(jax.local_devices()), (AXIS,))


def seed_sharding(mesh: Mesh, seed_axis: int) -> NamedSharding:
    """Splits axis ``seed_axis`` over the mesh and replicates the others."""
    return NamedSharding(mesh, PartitionSpec(*([None] * seed_axis), AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def initialize_distributed(environ=os.environ) -> None:
    """``jax.distributed.initialize()`` with what the environment says.

    On SLURM, Open MPI, Kubernetes (JobSet) or a Cloud TPU pod, JAX finds the
    coordinator, process count and id itself. Elsewhere set
    ``JAX_COORDINATOR_ADDRESS=host:port`` (process 0's host), ``JAX_NUM_PROCESSES``
    and ``JAX_PROCESS_ID`` in every process.

    Raises:
      UserError: the environment does not say how to reach the coordinator.
    """
    kwargs = {}
    for name, arg in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        if name in environ:
            try:
                kwargs[arg] = int(environ[name])
            except ValueError:
                raise UserError(f"{name} must be an integer, got {environ[name]!r}") from None
    try:
        jax.distributed.initialize(**kwargs)
    except (ValueError, TypeError, RuntimeError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(f"{option('distributed', True)} could not start ({first_line}): "
                        "set JAX_COORDINATOR_ADDRESS=host:port, "
                        "JAX_NUM_PROCESSES and JAX_PROCESS_ID, or launch under SLURM/Open MPI/a TPU pod") from None


def is_main_process() -> bool:
    return jax.process_index() == 0


def my_chunks(n_chunks: int) -> list[int]:
    """Chunk indices this process trains (round robin)."""
    return list(range(jax.process_index(), n_chunks, jax.process_count()))


def gather(local: np.ndarray) -> np.ndarray:
    """Stacks every process's `(k, ...)` array into `(n_chunks, ...)`, in chunk order.

    Process ``p`` holds chunks ``p, p + P, ...`` (see :func:`my_chunks`); every
    process holds the same number of chunks (the plan makes ``n_chunks`` a
    multiple of the process count).
    """
    if jax.process_count() == 1:
        return local
    stacked = np.asarray(multihost_utils.process_allgather(local))  # (P, k, ...)
    return stacked.swapaxes(0, 1).reshape(-1, *local.shape[1:])
