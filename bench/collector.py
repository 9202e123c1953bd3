"""Python's garbage collector in the suite's own processes: ``python -m bench`` and its figure workers.

Python collects its oldest objects (the modules of JAX, flax, scipy, pandas and matplotlib, millions of them)
whenever the heap has grown by a quarter, and these processes grow it by imports that leave no garbage. Measured
on the default preset (2-core EPYC, 2026-12-03): the command's process made 6 full collections, 0.73-0.83 s of
its 13-19 s, that freed nothing, and 765 young and 69 middle ones, 0.2 s more; each of the two figure workers
spent 0.29-0.33 s collecting while it drew. With :data:`THRESHOLDS` the process made no full collection and 47
young and 4 middle ones (0.19 s in all), each worker 0.07-0.11 s; the results and figures are the same bytes.
The young collections still free the short-lived cycles (tracing's) as they come.

A library user's process keeps its own settings: only the command line and the workers call
:func:`collect_rarely`.
"""

from __future__ import annotations

import gc

THRESHOLDS = (10_000, 10, 50)
"""``gc.set_threshold``'s (the defaults: 700, 10, 10): a young collection per 10,000 allocations more than frees,
a middle one per 10 young ones, a full one once 50 middle ones have passed (5 million allocations) and the
heap has grown by a quarter since the last."""


def collect_rarely() -> None:
    """Sets :data:`THRESHOLDS` for this process."""
    gc.set_threshold(*THRESHOLDS)
