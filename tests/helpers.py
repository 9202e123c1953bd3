"""What the tests share: XLA compilations while a function runs, equations of a primitive in a jaxpr, the sequential
test of the rates the simulations of the statistics measure, and folders built once per session."""

import fcntl
import os
import shutil
from pathlib import Path

import jax

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


def count_compiles(fn) -> int:
    """Number of XLA compilations while ``fn`` runs (requests less those the persistent cache served)."""
    from jax import monitoring

    events = []

    def listener(event, *args, **kwargs):
        if event in (BACKEND_COMPILE_EVENT, CACHE_HIT_EVENT):
            events.append(event)

    monitoring.register_event_duration_secs_listener(listener)
    monitoring.register_event_listener(listener)
    try:
        fn()
    finally:
        monitoring.unregister_event_duration_listener(listener)
        monitoring.unregister_event_listener(listener)
    return events.count(BACKEND_COMPILE_EVENT) - events.count(CACHE_HIT_EVENT)


def count_primitive(jaxpr, name: str) -> int:
    """Equations of primitive ``name`` in ``jaxpr`` and every jaxpr nested in it."""
    total = 0
    for eqn in jaxpr.eqns:
        total += eqn.primitive.name == name
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            total += count_primitive(sub, name)
    return total


class Sequential:
    """Wald's sequential probability ratio test (Wald 1945, Ann. Math. Stat. 16(2)) that each of several event
    rates measured by simulation is at most ``nominal`` (a test's 5% error, or 5% missed coverage) against at
    least ``doubled`` it: trials are drawn until every rate is called within or one beyond.

    Each rate's log likelihood ratio ``e log(p1/p0) + (t - e) log((1 - p1)/(1 - p0))`` after ``e`` events in
    ``t`` trials is compared with ``log((1 - risk)/risk)`` (beyond) and ``log(risk/(1 - risk))`` (within), so a
    rate at ``nominal`` is called beyond, and one at twice it within, each with probability about ``risk`` (1e-4,
    as a fixed 1,000 trials with the bound 0.065 gave the doubled rate; the nominal one failed that with
    probability 0.015). It stops early: about 300 trials at a rate of 3%, 550 at 5%, against 1,000 fixed. Past
    ``cap`` trials (a rate near 7%, where the ratio drifts slowest) the rate is called within where it is at most
    the midpoint of ``nominal`` and ``doubled``. ``beyond`` other than twice ``nominal`` tests a power: a miss rate
    of at most 0.2 against at least 0.3 is a power of at least 0.8 against at most 0.7.
    """

    def __init__(self, streams: int, nominal: float = 0.05, risk: float = 1e-4, cap: int = 4000,
                 beyond: float | None = None):
        import math

        self.nominal, self.doubled, self.cap = nominal, beyond or 2 * nominal, cap
        self.event = math.log(self.doubled / nominal)
        self.non_event = math.log((1 - self.doubled) / (1 - nominal))
        self.upper, self.lower = math.log((1 - risk) / risk), math.log(risk / (1 - risk))
        self.events, self.trials = [0] * streams, 0

    def add(self, *events: bool) -> None:
        """One trial: whether each rate's event happened."""
        self.trials += 1
        self.events = [count + bool(e) for count, e in zip(self.events, events, strict=True)]

    def ratios(self) -> list[float]:
        return [e * self.event + (self.trials - e) * self.non_event for e in self.events]

    @property
    def decided(self) -> bool:
        """Every rate called within, one called beyond, or the cap reached."""
        ratios = self.ratios()
        return self.trials >= self.cap or any(r >= self.upper for r in ratios) or all(r <= self.lower
                                                                                       for r in ratios)

    @property
    def within(self) -> bool:
        """Whether every rate is called within ``nominal`` (at the cap: at most the midpoint)."""
        ratios = self.ratios()
        if any(r >= self.upper for r in ratios):
            return False
        if all(r <= self.lower for r in ratios):
            return True
        return all(e / self.trials <= (self.nominal + self.doubled) / 2 for e in self.events)

    def rates(self) -> list[float]:
        return [e / max(self.trials, 1) for e in self.events]

    def __repr__(self) -> str:
        shown = ", ".join(f"{r:.4f}" for r in self.rates())
        return f"Sequential(rates=[{shown}] over {self.trials} trials, within={self.within})"

    def run(self, trial, block: int = 25) -> "Sequential":
        """Calls ``trial()`` (a tuple of each rate's event) until :attr:`decided`, checking every ``block`` trials."""
        while not self.decided:
            for _ in range(block):
                self.add(*trial())
        return self


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder ``name`` of the test session, filled by ``build(folder)`` once: under pytest-xdist the first worker
    to ask builds it while any other that asks waits on a lock, then every worker reads the same folder (a small run
    that each of three workers trained for itself, 10-20 s each). Tests must not change it: copy it first."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's own folder, shared by its workers (a new one each session)
    folder = base / f"built-{name}"
    with open(base / f"built-{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (folder / ".built").exists():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                build(folder)
                (folder / ".built").touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder


def computed_once(tmp_path_factory, name: str, compute) -> tuple[object, Path]:
    """``compute(folder)`` once per test session (:func:`built_once`), its value pickled for every worker to read:
    for a fixture whose tests pytest-xdist spreads over workers, each of which computed it. Returns the value and
    the folder (what ``compute`` wrote there besides; tests must not change it)."""
    import pickle

    folder = built_once(tmp_path_factory, name, lambda folder: (folder / "value.pickle").write_bytes(
        pickle.dumps(compute(folder))))
    return pickle.loads((folder / "value.pickle").read_bytes()), folder
