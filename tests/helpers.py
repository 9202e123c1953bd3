"""Measures the tests share: XLA compilations while a function runs, equations of a primitive in a jaxpr."""

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
