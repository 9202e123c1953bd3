"""Spec strings: how a user names an initializer, with or without arguments.

A spec is a registered name, optionally called with literal arguments, or a
``module:function`` path to user code::

    "he_normal"
    "normal(stddev=0.1)"
    "variance_scaling(scale=2.0, mode='fan_in', distribution='normal')"
    "my_package.inits:scaled_normal(scale=3)"

Arguments must be Python literals (numbers, strings, tuples, ...); they are read with
:func:`ast.literal_eval`, so a spec can never run code.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
from typing import Any

_SPEC = re.compile(
    r"""^\s*
    (?P<name>[A-Za-z_][\w.]*(?::[A-Za-z_]\w*)?)   # name, or module.path:function
    \s*(?:\((?P<args>.*)\))?\s*$""",
    re.VERBOSE | re.DOTALL,
)


@dataclasses.dataclass(frozen=True)
class Spec:
    """A parsed spec string.

    Attributes:
      name: registered name, or ``module:function`` path.
      args: positional literal arguments.
      kwargs: keyword literal arguments, as sorted ``(key, value)`` pairs.
      called: written with parentheses. ``module:f()`` calls a user builder with its
        defaults, while ``module:f`` names the initializer itself.
    """

    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    called: bool = False

    @property
    def is_import_path(self) -> bool:
        return ":" in self.name

    def __str__(self) -> str:
        """The canonical spelling: no spaces, keywords sorted, `repr` of each value."""
        if not self.args and not self.kwargs:
            return f"{self.name}()" if self.called and self.is_import_path else self.name
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"{self.name}({', '.join(parts)})"


def parse_spec(text: str) -> Spec:
    """Parses ``name`` or ``name(literal args)`` into a :class:`Spec`.

    Raises:
      ValueError: the text is not of that form, with the reason in one line.
    """
    if not isinstance(text, str):
        raise ValueError(f"initializer spec must be a string, got {type(text).__name__}")
    match = _SPEC.match(text)
    if match is None:
        raise ValueError(
            f"malformed initializer spec {text!r}: expected NAME, NAME(key=value, ...) "
            "or module:function"
        )
    name, inner = match.group("name"), match.group("args")
    if inner is None or not inner.strip():
        return Spec(name, called=inner is not None)
    if len(inner) > MAX_ARGS_LENGTH:
        raise ValueError(f"initializer spec {text[:40]!r}... has {len(inner):,} characters of arguments; "
                         f"at most {MAX_ARGS_LENGTH:,} are read")
    try:
        call = ast.parse(f"f({inner})", mode="eval").body
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        raise ValueError(
            f"malformed initializer spec {text!r}: arguments must look like "
            "(key=value, ...) with Python literal values"
        ) from None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):  # "f(1)(2)": a call of a call
        raise ValueError(f"malformed initializer spec {text!r}: one argument list only")
    args = tuple(_literal(node, text) for node in call.args)
    kwargs = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ValueError(f"malformed initializer spec {text!r}: '**' is not allowed")
        kwargs[keyword.arg] = _literal(keyword.value, text)
    return Spec(name, args, tuple(sorted(kwargs.items())), called=True)


MAX_ARGS_LENGTH = 10_000


def _literal(node: ast.expr, text: str) -> Any:
    if isinstance(node, ast.Starred):
        raise ValueError(f"malformed initializer spec {text!r}: '*' is not allowed")
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        try:
            shown = repr(ast.unparse(node))[:60]
        except RecursionError:
            shown = "an argument"
        raise ValueError(
            f"malformed initializer spec {text[:80]!r}: {shown} is not a literal (quote strings: mode='fan_in')"
        ) from None
    if not _finite(value):  # 1e309 reads as inf: an initializer that draws inf makes every run diverge
        raise ValueError(f"initializer spec {text[:80]!r}: {ast.unparse(node)[:40]} is not a finite number")
    return value


def _finite(value: Any) -> bool:
    """Whether every number in a literal (a number, or nested in tuples, lists and dicts) is finite."""
    if isinstance(value, (int, bool)) or value is None or isinstance(value, (str, bytes)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, complex):
        return math.isfinite(value.real) and math.isfinite(value.imag)
    if isinstance(value, dict):
        return all(_finite(k) and _finite(v) for k, v in value.items())
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(_finite(v) for v in value)
    return True


def split_specs(text: str) -> list[str]:
    """Splits a comma-separated list of specs, keeping commas inside brackets or quotes.

    >>> split_specs("he_normal, normal(stddev=0.1), variance_scaling(scale=2.0, mode='fan_in')")
    ['he_normal', 'normal(stddev=0.1)', "variance_scaling(scale=2.0, mode='fan_in')"]

    Raises:
      ValueError: brackets or quotes do not balance, or an item is empty.
    """
    items, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ')' in {text!r}")
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if quote or depth:
        raise ValueError(f"unclosed {'quote' if quote else 'bracket'} in {text!r}")
    items.append(text[start:])
    items = [item.strip() for item in items]
    if any(not item for item in items):
        raise ValueError(f"empty item in list {text!r}: remove the extra comma")
    return items
