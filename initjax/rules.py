"""Initializers applied by parameter path: a rule set initializes any Flax model's params.

A rule set is an ordered list of ``(pattern, initializer)``. Every parameter is named by
its path in the params tree, joined with ``/`` (``Dense_0/kernel``, ``head/bias``,
``blocks_1/attn/query/kernel``); the **first** rule whose pattern matches the whole name
draws it, and a parameter no rule matches keeps the value the model's own initializers
gave it. A pattern is a glob (``fnmatch``: ``*`` also crosses ``/``, so ``*/kernel`` is
every kernel below the top level) or, prefixed with ``re:``, a regular expression matched
against the whole name (``re:Dense_[01]/kernel``).

A single initializer given alone is the rule set ``{every kernel: init}``
(:data:`EVERY_KERNEL`), which is what comparing "He vs Glorot" means: every ``Dense``
and ``Conv`` kernel drawn by it, biases and norms as the model makes them.

Each matched parameter gets its own key, ``fold_in(key, crc32(name))``: the draw of a
parameter depends on the run's key and its name only, so two arms that differ in one
rule draw every other parameter identically (common random numbers), and the same
run can be re-created alone.

Example::

    rules = compile_rules({"*/bias": "zeros", "head/kernel": "zeros", "*/kernel": "he_normal"})
    params = apply(key, model.init(key, x)["params"], rules)
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence

import jax

from initjax import registry, schemes
from initjax.paths import leaf_key, path_name

EVERY_KERNEL = "re:(.*/)?kernel"
Rule = tuple[str, Callable]


def matches(pattern: str, name: str) -> bool:
    """Whether ``pattern`` (a glob, or ``re:`` + a regular expression) matches the whole ``name``."""
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return fnmatch.fnmatchcase(name, pattern)


def check_pattern(pattern: str) -> None:
    """Raises ValueError naming a pattern that is empty or not a valid regular expression."""
    if not isinstance(pattern, str) or not pattern or pattern == "re:":
        raise ValueError(f"a rule's pattern must be a non-empty string (a glob, or re: + a regex), got {pattern!r}")
    if pattern.startswith("re:"):
        try:
            re.compile(pattern[3:])
        except re.error as error:
            raise ValueError(f"rule pattern {pattern!r} is not a valid regular expression: {error}") from None


def compile_rules(rules) -> tuple[Rule, ...]:
    """Rules as ``((pattern, init), ...)`` from a mapping or pairs of pattern -> spec or initializer.

    A single initializer (or spec string) alone becomes ``((EVERY_KERNEL, init),)``.

    Raises:
      ValueError: a bad pattern, an unknown initializer (with close names), or no rule.
    """
    if isinstance(rules, str) or callable(rules):
        rules = [(EVERY_KERNEL, rules)]
    pairs = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
    if not pairs:
        raise ValueError("a rule set needs at least one rule (pattern -> initializer)")
    compiled = []
    for pair in pairs:
        if not (isinstance(pair, Sequence) and len(pair) == 2):
            raise ValueError(f"a rule is a (pattern, initializer) pair, got {pair!r}")
        pattern, init = pair
        check_pattern(pattern)
        init = registry.get(init) if isinstance(init, str) else init
        if schemes.is_scheme(init) or not callable(init):
            raise ValueError(f"rule {pattern!r} needs a per-tensor initializer init(key, shape, dtype), got "
                             f"{getattr(init, 'name', init)!r}: a whole-network scheme is an arm of its own")
        compiled.append((pattern, init))
    return tuple(compiled)


def assign(names: Sequence[str], rules: Sequence[Rule]) -> dict[str, int]:
    """``name -> index of the first matching rule`` for the names some rule matches."""
    chosen = {}
    for name in names:
        for i, (pattern, _) in enumerate(rules):
            if matches(pattern, name):
                chosen[name] = i
                break
    return chosen


def unmatched_rules(names: Sequence[str], rules: Sequence[Rule]) -> list[str]:
    """Patterns that draw no parameter (they match none, or earlier rules take all they match): likely typos."""
    used = set(assign(names, rules).values())
    return [pattern for i, (pattern, _) in enumerate(rules) if i not in used]


def apply(key, params, rules: Sequence[Rule]):
    """``params`` with every parameter some rule matches redrawn by that rule's initializer.

    Args:
      key: the run's key; each drawn parameter uses :func:`leaf_key` of it.
      params: a params tree (leaves are arrays, e.g. a Flax ``params`` dict).
      rules: from :func:`compile_rules`.

    Returns:
      A tree of the same structure, shapes and dtypes.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    names = [path_name(path) for path, _ in leaves]
    chosen = assign(names, rules)
    out = []
    for name, (_, leaf) in zip(names, leaves):
        if name in chosen:
            leaf = rules[chosen[name]][1](leaf_key(key, name), leaf.shape, leaf.dtype)
        out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out)
