"""The one exception type for mistakes a user can fix, and its most common messages.

A message names an option by its field path or Python argument (``train.lr``, ``chunk``) through :func:`option`;
a Python caller reads that name (``train.lr``, ``chunk=4``), and the command line reads the flag that sets it
(``--lr``, ``--chunk 4``): only ``bench.cli`` knows the flags (:meth:`UserError.worded`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable

_OPEN, _CLOSE = "\u27e6", "\u27e7"
_OPTION = re.compile(f"{_OPEN}([^{_CLOSE}=]*)(?:=([^{_CLOSE}]*))?{_CLOSE}")


def option(name: str, value: object = None) -> str:
    """An option named in a message: ``name`` is a field path (``train.lr``, ``tasks.*.hidden``) or an argument of
    ``bench.run`` (``chunk``, ``fresh``); ``value``, when given, is the value to give it (``option("fresh", True)``
    reads ``fresh=True`` in Python, ``--fresh`` on the command line)."""
    return f"{_OPEN}{name}{'' if value is None else f'={value}'}{_CLOSE}"


def in_python_terms(name: str, value: str | None) -> str:
    """``train.lr``, ``chunk=4``, ``fresh=True``; a task field (``tasks.*.hidden``) by its own name."""
    name = name.removeprefix("tasks.*.")
    return name if value is None else f"{name}={value}"


class Worded(Exception):
    """An exception whose message names options through :func:`option`: ``str(error)`` names them in Python terms;
    ``f"{error}"`` keeps them marked, so a message wrapped in another (``UserError(f"data {name}: {error}")``)
    still names flags on the command line."""

    def worded(self, name_of: Callable[[str, str | None], str]) -> str:
        """The message with each :func:`option` named by ``name_of(name, value)`` (value None when not given)."""
        return _OPTION.sub(lambda m: name_of(m.group(1), m.group(2)), str(self.args[0]) if self.args else "")

    def __str__(self) -> str:
        return self.worded(in_python_terms)

    def __format__(self, spec: str) -> str:
        return format(str(self.args[0]) if self.args else "", spec)


class UserError(Worded):
    """Bad input: the CLI prints the message as one line and exits with status 2.

    The message says what is wrong and what to do about it.
    """


class Interrupted(Worded):
    """Ctrl-C during a run: the message says what was saved and how to resume (exit status 130)."""


def unknown(kind: str, name: str, known: Iterable[str]) -> UserError:
    """``unknown dataset 'digts'; did you mean digits? known: synthetic, digits``."""
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return UserError(f"unknown {kind} {name!r}; {hint}known: {', '.join(known)}")
