"""Run numbers: how a task's runs cross init seeds with data orders, packed and unpacked here only.

A task trains ``seeds x data_orders`` runs of each arm. Run ``r`` crosses init seed ``r // K`` with data order
``r % K`` (``K = data_orders``); with one data order (the default) run ``s`` is seed ``s``, and its data order
comes from that seed too (``bench.training.seeding.run_keys``). The trainer keys and checkpoints runs by number;
the results table says each run's ``seed`` and, where orders are crossed, its ``data_seed``
(``bench.analysis.crossed``).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RunIndex:
    """Run numbers of a task whose init seeds each meet ``data_orders`` data orders.

    The methods take run numbers, seeds and orders as Python ints, numpy or JAX arrays (inside a compiled program
    too).
    """

    data_orders: int = 1

    def numbers(self, seeds: int) -> list[int]:
        """Every run number of ``seeds`` init seeds, init seed-major: ``[0, ..., seeds * data_orders - 1]``."""
        return list(range(seeds * self.data_orders))

    def pack(self, init_seed, data_order):
        """The run number of an init seed and a data order."""
        return init_seed * self.data_orders + data_order

    def init_seed(self, runs):
        """The init seed of each run: ``r // data_orders``."""
        return runs // self.data_orders

    def data_order(self, runs):
        """The data order of each run: ``r % data_orders`` (0 with one data order)."""
        return runs % self.data_orders
