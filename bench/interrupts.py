"""Ctrl-C, heard at any moment and never lost.

Python raises ``KeyboardInterrupt`` between any two bytecodes of the main thread, also inside an import (which
then aborted the process: jaxlib's extension cannot unwind it, or printed a traceback) and inside a
garbage-collection callback (JAX's, whose exception Python ignores: the run went on and exited 0, 3 times in 11).
So ``python -m bench`` only marks a Ctrl-C until the command starts (:func:`listen_quietly`), then raises it
(:func:`listen`), but not inside an import or a finalizer, and, until the command says it has handled it
(:func:`handled`: what is saved and how to resume, said once), raises it again every :data:`AGAIN_S` seconds, so
one deferred or swallowed is raised where it can be.
"""

from __future__ import annotations

import _thread
import signal
import threading

_seen: list[int] = []
_handled = threading.Event()
AGAIN_S = 0.25
UNSAFE = ("__del__", "_xla_gc_callback")  # finalizers and callbacks whose exceptions Python ignores


def listen_quietly() -> None:
    """Until :func:`listen`: a Ctrl-C is only marked (:func:`seen`)."""
    signal.signal(signal.SIGINT, lambda signum, frame: _seen.append(signum))


def listen() -> None:
    """From now on a Ctrl-C raises ``KeyboardInterrupt`` in the main thread, again every :data:`AGAIN_S` seconds until
    :func:`handled`."""
    signal.signal(signal.SIGINT, _raise)


def _raise(signum, frame) -> None:
    _seen.append(signum)
    if len(_seen) == 1:
        threading.Thread(target=_again, daemon=True, name="interrupt").start()
    if not _handled.is_set() and _safe(frame):
        raise KeyboardInterrupt


def _safe(frame) -> bool:
    """Whether an exception raised in ``frame`` reaches the command: not inside an import or a finalizer."""
    if frame is not None and frame.f_code.co_name in UNSAFE:
        return False
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return False
        frame = frame.f_back
    return True


def _again() -> None:
    while not _handled.wait(AGAIN_S):
        _thread.interrupt_main()  # the handler above, in the main thread, at its next bytecode


def handled() -> None:
    """The command has said what the interruption saved: no more ``KeyboardInterrupt``."""
    _handled.set()


def seen() -> bool:
    """Whether Ctrl-C was pressed."""
    return bool(_seen)
