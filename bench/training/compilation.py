"""Compiling the suite's programs once: per process (by their HLO) and across processes (JAX's persistent cache).

A task's programs are lowered (traced) for its shapes and compiled by :func:`compile_programs`.
Two tasks whose programs lower to the same HLO (the same model, optimizer and shapes: e.g. one
network on two datasets of one shape) share one executable in the process: the executables are
kept by a fingerprint of the lowered module, its donation, output shardings, XLA options, and its
arguments' trees and types and its results' tree (a module leaves out the arguments it does not
read: the evaluation of two states whose optimizer states differ lowers to one module, and so do
the initializations of two training sets of other sizes).

Across processes, :func:`use_persistent_cache` turns on JAX's persistent compilation cache
(https://docs.jax.dev/en/latest/persistent_compilation_cache.html) in the user cache directory,
for every program however quickly it compiled, so a second ``python -m bench`` loads its
executables instead of compiling them. JAX keys each entry by the module, the compile options, the
backend, the device kind and the JAX and jaxlib versions, so an entry never serves another
program. Programs with host callbacks cannot be cached by JAX; the suite's programs have none.
The entries are kept by :class:`bench.training.program_store.ProgramStore` in place of JAX's own store: each
carries a SHA-256 of its bytes, verified before JAX deserializes it (a damaged entry made every later run die
with SIGSEGV or SIGILL and no message; now it is compiled again), is written whole, and the folder's size bound
is kept by a sweep now and then, not by listing the folder at every write under a lock, as JAX's store does.
"""

from __future__ import annotations

import concurrent.futures as futures
import hashlib
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import jax

OFF = ("0", "off", "false", "no")
CACHE_MAX_BYTES = 2 * 2**30  # the least recently used entries beyond this are evicted (program_store.sweep)
_MEMO_SIZE = 32
_memo: OrderedDict[str, Callable] = OrderedDict()
_ours: str | None = None  # the folder this module set last (the user's own setting is left alone)
_unknown_options: set[str] = set()  # XLA options this jaxlib does not have (found by compiling)


def cache_folder(root: str | Path) -> Path | None:
    """Where the persistent cache lives: the folder ``initjax`` in ``$JAX_COMPILATION_CACHE_DIR`` when the user set
    one, else ``root / "xla"``; None when ``$INITJAX_COMPILE_CACHE`` says off (``0``, ``off``, ``false``, ``no``).

    The suite's entries cannot sit beside a plain JAX process's: they carry checksums
    (:class:`~bench.training.program_store.ProgramStore`), which JAX alone cannot read (it warned and compiled
    again)."""
    if os.environ.get("INITJAX_COMPILE_CACHE", "").strip().lower() in OFF:
        return None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"]).expanduser() / "initjax"
    return Path(root) / "xla"


def use_persistent_cache(root: str | Path) -> Path | None:
    """Turns JAX's persistent compilation cache on in :func:`cache_folder` (``root``: the suite's cache root).

    Every program is cached, whatever its compile time or size. Idempotent; a new folder
    takes effect at once (JAX's cache is reset, so a process that compiled before keeps
    nothing stale). Does nothing when the cache is off, or on with another folder by the user's
    own ``jax.config`` setting, or with a JAX without the hook that puts the suite's store in place of its own
    (programs are then compiled in each process: the same numbers, more time).

    Returns:
      The folder in use, or None.
    """
    global _ours
    folder = cache_folder(root)
    if folder is None:
        return None
    current = jax.config.jax_compilation_cache_dir
    if current and current != _ours and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(current)  # the user's own choice, made in Python
    if current == _ours == str(folder):
        return folder
    from jax.experimental.compilation_cache import compilation_cache

    if not _use_program_store():
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    compilation_cache.reset_cache()  # JAX decides once per process whether to use it: decide again
    _ours = str(folder)
    return folder


def _use_program_store() -> bool:
    """Makes JAX keep its persistent cache in a :class:`~bench.training.program_store.ProgramStore` (once per
    process); False for a JAX without the hook this uses."""
    from jax._src import compilation_cache as internals

    make = getattr(internals, "get_file_cache", None)
    if make is None:
        return False
    if getattr(make, "ours", False):
        return True

    def program_store(path):
        from bench.training.program_store import ProgramStore

        made = ProgramStore(path, CACHE_MAX_BYTES)
        verifying = getattr(internals, "VerificationCache", None)  # JAX's own check of a cache's contents, if asked
        if verifying is not None and jax.config.jax_compilation_cache_check_contents:
            made = verifying(made)
        return made, path

    program_store.ours = True
    internals.get_file_cache = program_store
    return True


def compile_with(lowered, options: dict):
    """``lowered.compile`` with the XLA ``options`` this jaxlib has: an option it does not know (a newer one, or one
    since removed) is left out, remembered, and the program compiled without it, not failed; an option's value it
    cannot take still fails.

    The suite's options change how long XLA compiles or how fast a program runs, never its numbers (a test compares
    the bits), so a program compiled without one is the same program.
    """
    while True:
        known = {name: value for name, value in options.items() if name not in _unknown_options}
        try:
            return lowered.compile(compiler_options=known or None)
        except jax.errors.JaxRuntimeError as error:
            unknown = re.search(r"No such compile option: '([^']+)'", str(error))
            if unknown is None or unknown.group(1) not in known:
                raise
            _unknown_options.add(unknown.group(1))


def compile_programs(*programs: tuple) -> tuple[list[Callable], float]:
    """Each ``(fn, args, donate, out_shardings[, compiler_options])`` jitted, lowered and compiled for ``args``
    (``compiler_options``: XLA options of that program, e.g. its optimization level); the ones compiled before in
    this process are reused.

    XLA compiles one program at a time, in a thread of its own, while this thread traces and lowers the next
    ones: tracing is Python, one core, and XLA's compilation leaves part of the other idle, so the two overlap
    (the default preset's compilation per task: 4.4-4.6 s instead of 5.1-5.3 s on a slow 2-core day, alternated
    runs). Programs are not compiled side by side: that saved 0.5 s of the default preset's 6 s of cold
    compilation and raised the peak memory by 165 MiB, past the chunk plan's estimate.

    Returns:
      ``(executables, seconds)``: in the order given; the seconds spent lowering and compiling (or loading
      from the persistent cache; about 0 for programs reused in-process).
    """
    start = time.perf_counter()
    keys, compiling = [], {}
    compiler = futures.ThreadPoolExecutor(1, thread_name_prefix="xla-compile")
    try:
        for fn, args, donate, out_shardings, *rest in programs:
            low = jax.jit(fn, donate_argnums=donate, out_shardings=out_shardings).lower(*args)
            options = dict(rest[0]) if rest else {}
            # the arguments' trees and types too: a module leaves out the arguments it does not read
            arguments = [str(aval) for aval in jax.tree.leaves(low.in_avals)]
            signature = (f"{donate}|{out_shardings}|{sorted(options.items())}|{jax.devices()}|"
                         f"{low.in_tree}|{arguments}|{low.out_tree}|")
            key = hashlib.sha256(signature.encode() + low.as_text().encode()).hexdigest()
            keys.append(key)
            if key not in _memo and key not in compiling:
                compiling[key] = compiler.submit(compile_with, low, options)
        compiled = {key: being_compiled.result() for key, being_compiled in compiling.items()}
    finally:  # an error or Ctrl-C does not wait for the programs not yet compiled
        compiler.shutdown(wait=False, cancel_futures=True)
    for key in keys:
        if key in compiled:
            _memo[key] = compiled[key]
        _memo.move_to_end(key)
    executables = [_memo[key] for key in keys]
    while len(_memo) > _MEMO_SIZE:
        _memo.popitem(last=False)
    return executables, time.perf_counter() - start
