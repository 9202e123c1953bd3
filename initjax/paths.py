"""Parameters by name: the path of a parameter in a params tree, and the key it is drawn with.

Rule sets (``initjax.rules``) match these names, and the whole-network schemes (``initjax.transformer``) find a
parameter's role by it; both draw a parameter with :func:`leaf_key`, so a draw depends on the run's key and the
parameter's name only.
"""

from __future__ import annotations

import zlib

import jax


def path_name(path) -> str:
    """``Dense_0/kernel`` for a ``jax.tree_util`` key path of a params tree."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def leaf_key(key, name: str):
    """The key a parameter named ``name`` is drawn with: ``fold_in(key, crc32(name))``."""
    return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)
