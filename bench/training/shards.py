"""A study cut into shards that independent processes train (``python -m bench run STUDY --shard I/N``).

A study's work units are its tasks' chunks (``bench.training.memory``: every arm of a group of seeds). Shard
``I`` of ``N`` trains a deterministic share of them into the shared cache folder and writes no report; the run
without ``--shard`` afterwards finds every unit finished and only writes the report, the same as one machine's.

The share: units are dealt in the study's order (task by task, chunk by chunk) each to the shard with the least
estimated work so far (ties: the lowest index), a unit's work being ``parameters x training examples x epochs x
models in its chunk``. Every shard deals the same way from the same plans: a task's chunk plan is made once, by
the first process to reach the task, and read by all the others (``resume.TaskStore.plan``), so shards on
machines of other memory still agree. Two processes given the same shard, or a shard rerun while it still runs,
never train one chunk at once: each chunk is claimed first (``bench.training.claims``).
"""

from __future__ import annotations

import dataclasses
import re

from bench.errors import UserError, option


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``), as ``--shard I/N`` names it."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/8"`` -> ``Shard(2, 8)``; a job array's index from 0 (SLURM's ``$SLURM_ARRAY_TASK_ID``).

        Raises:
          UserError: not ``I/N`` with ``0 <= I < N``.
        """
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not match or not int(match.group(1)) < int(match.group(2)):
            raise UserError(f"{option('shard')} {text!r}: give I/N with 0 <= I < N (shard 0/4 to 3/4 of four, as a "
                            "job array numbers its tasks from 0)")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class Dealer:
    """Deals a study's units to its shards, task after task (module docstring); one per study run, its loads
    carried from one task to the next."""

    def __init__(self, count: int):
        self.loads = [0.0] * count

    def deal(self, n_units: int, cost: float) -> list[int]:
        """The shard of each of a task's ``n_units`` units, each of estimated work ``cost``."""
        out = []
        for _ in range(n_units):
            shard = min(range(len(self.loads)), key=lambda s: (self.loads[s], s))
            self.loads[shard] += cost
            out.append(shard)
        return out

    def mine(self, shard: Shard):
        """``train_task``'s ``shard``: the chunks of a task that ``shard`` trains."""
        def chunks(n_units: int, cost: float) -> list[int]:
            return [c for c, s in enumerate(self.deal(n_units, cost)) if s == shard.index]

        return chunks
