"""The one exception type for mistakes a user can fix, and its most common messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input: the CLI prints the message as one line and exits with status 2.

    The message says what is wrong and what to do about it.
    """


class Interrupted(Exception):
    """Ctrl-C during a run: the message says what was saved and how to resume (exit status 130)."""


def unknown(kind: str, name: str, known: Iterable[str]) -> UserError:
    """``unknown dataset 'digts'; did you mean digits? known: synthetic, digits``."""
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return UserError(f"unknown {kind} {name!r}; {hint}known: {', '.join(known)}")


def in_python_terms(message: str) -> str:
    """A CLI message said to a Python caller: ``--data-dir`` becomes ``data_dir=``, ``--set`` an experiment field."""
    import re

    message = message.replace("pass --data-dir / set INITJAX_DATA_DIR", "pass data_dir= / set INITJAX_DATA_DIR")
    return re.sub(r"(?<![\w-])--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_") + "=", message)
