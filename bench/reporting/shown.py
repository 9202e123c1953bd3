"""Which initializers a figure draws when there are too many to read: up to :data:`MAX_SHOWN` all of them; past
that (a grid of initializers x learning rates gives 48 arms) each initializer at its best grid point, then the best
:data:`MAX_SHOWN` of those. The figure's title says which were left out; the tables keep every arm."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

MAX_SHOWN = 12  # lines and boxes a reader can tell apart (tab10 colours, then the same dashed)


def initializers_of(results: pd.DataFrame) -> dict[str, str]:
    """Arm -> the initializer it draws with (the arm itself where the results have no ``initializer`` column)."""
    if "initializer" not in results.columns:
        return {arm: arm for arm in results["arm"].unique()}
    pairs = results.drop_duplicates("arm")
    return dict(zip(pairs["arm"], pairs["initializer"].astype(str)))


def shown(order: Sequence[str], initializer_of: Mapping[str, str]) -> tuple[list[str], str]:
    """The arms to draw, best first, and a note for the title ('' when every arm is drawn).

    Args:
      order: every arm, best first.
      initializer_of: arm -> its initializer (:func:`initializers_of`).
    """
    order = list(order)
    if len(order) <= MAX_SHOWN:
        return order, ""
    notes, picked = [], order
    best_of = {}
    for arm in order:  # best first: the first arm of each initializer is its best grid point
        best_of.setdefault(initializer_of.get(arm, arm), arm)
    if len(best_of) < len(order):
        picked = list(best_of.values())
        notes.append(f"each initializer at its best grid point, {len(picked)} of {len(order)} arms")
    if len(picked) > MAX_SHOWN:
        picked = picked[:MAX_SHOWN]
        notes.append(f"the best {MAX_SHOWN}" + ("" if notes else f" of {len(order)} arms"))
    return picked, "; ".join(notes)
