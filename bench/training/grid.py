"""Hyperparameter grids: values of the learning rate, weight decay, momentum and init scale crossed with
every initializer, trained as arms of the same compiled program.

A grid is plain data: for each factor the values it takes (empty: the recipe's own
value for every arm). Its cells are the product of the factors given; every
initializer is crossed with every cell, and each (initializer, cell) is an *arm*.
The arms share one program: the optimizer's hyperparameters are leaves of each run's
state (``optax.inject_hyperparams``), not constants of the program, and the init scale
multiplies the drawn parameters before training. Factors that change shapes (width,
depth, batch size, the optimizer's kind) are separate tasks, never grid factors.

Values are written as a list (``1e-4,3e-4,1e-3``) or a log- or linear-spaced range
(``logspace(1e-4, 1e-1, 7)``, ``linspace(0.5, 2, 4)``)::

    [grid]
    lr = "logspace(1e-4, 1e-1, 7)"
    init_scale = [0.5, 1.0, 2.0]
    init_scale_on = "*/kernel"    # which parameters the scale multiplies (default: every kernel)

References: Sivaprasad et al. 2020, "Optimizer benchmarking needs to account for
hyperparameter tuning" (arXiv:1910.11758); Wortsman et al. 2023, "Small-scale proxies
for large-scale Transformer training instabilities" (learning-rate sensitivity,
arXiv:2309.14322).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Sequence

import numpy as np

from bench.errors import UserError, option
from bench.schema import FACTORS, LABELS  # noqa: F401 (the factors' columns: grid.FACTORS, grid.LABELS)
from initjax import rules

OPTIMIZER_FACTORS = ("lr", "weight_decay", "momentum")  # injected into the optimizer's state
MAX_VALUES = 1000
MAX_CELLS = 10_000  # combinations of a grid's values
_RANGE = re.compile(r"^\s*(logspace|linspace)\s*\(\s*([^,]+?)\s*,\s*([^,]+?)\s*,\s*(\d+)\s*\)\s*$")


def parse_values(value, factor: str = "value") -> tuple[float, ...]:
    """Values of a factor from a list of numbers, ``"a,b,c"``, ``"logspace(lo, hi, n)"`` or ``"linspace(lo, hi, n)"``.

    ``logspace(lo, hi, n)`` gives ``n`` values from ``lo`` to ``hi`` evenly spaced in log
    (both ends included: ``logspace(1e-4, 1e-1, 4)`` is ``1e-4, 1e-3, 1e-2, 1e-1``),
    rounded to 6 significant digits so they print as written.

    Raises:
      UserError: not numbers, an empty list, a bad range, or more than :data:`MAX_VALUES` values.
    """
    what = option(f"grid.{factor}") if factor != "value" else "a grid value"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        values = [float(value)]
    elif isinstance(value, str):
        match = _RANGE.match(value)
        try:
            if match:
                kind, low, high, n = match.group(1), float(match.group(2)), float(match.group(3)), int(match.group(4))
                if n > MAX_VALUES:  # before the values are made: logspace(1e-4, 1e-1, 100000000) ran for minutes
                    raise UserError(f"{what}: {n:,} values; at most {MAX_VALUES} (each is an arm per initializer)")
                if n < 1 or (kind == "logspace" and not (low > 0 and high > 0)):
                    raise ValueError
                spaced = np.geomspace(low, high, n) if kind == "logspace" else np.linspace(low, high, n)
                values = [float(f"{v:.6g}") for v in spaced]
            else:
                values = [float(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise UserError(f"{what}: {value!r} is not a comma-separated list of numbers, logspace(LOW, HIGH, N) "
                            "with LOW, HIGH > 0, or linspace(LOW, HIGH, N)") from None
    elif isinstance(value, Sequence) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        values = [float(v) for v in value]
    else:
        raise UserError(f"{what} must be numbers, a list of numbers or a range string, got {value!r}")
    if not values:
        raise UserError(f"{what}: no value given")
    if len(values) > MAX_VALUES:
        raise UserError(f"{what}: {len(values):,} values; at most {MAX_VALUES} (each is an arm per initializer)")
    return tuple(values)


@dataclasses.dataclass(frozen=True)
class Grid:
    """Hyperparameter values crossed with every initializer (empty factor: the recipe's own value).

    Attributes:
      lr: peak learning rates (each multiplies the recipe's unit schedule), > 0.
      weight_decay: weight decays, >= 0 (the optimizer's own decoupled decay, or an L2 term;
        ``bench.training.recipes``).
      momentum: SGD's/RMSProp's ``momentum``, Adam's/AdamW's/Lion's ``b1``, in ``[0, 1)``.
      init_scale: multipliers of the initial parameters that ``init_scale_on`` matches, >= 0.
      init_scale_on: pattern (``initjax.rules``: a glob or ``re:`` + regex) of the parameters the
        init scale multiplies; default every kernel.
    """

    lr: tuple[float, ...] = ()
    weight_decay: tuple[float, ...] = ()
    momentum: tuple[float, ...] = ()
    init_scale: tuple[float, ...] = ()
    init_scale_on: str = rules.EVERY_KERNEL

    @property
    def factors(self) -> tuple[str, ...]:
        """The factors given values, in :data:`FACTORS` order."""
        return tuple(f for f in FACTORS if getattr(self, f))

    def cells(self) -> list[dict[str, float]]:
        """Every combination of the factors' values, the last factor varying fastest (``[{}]`` for no grid)."""
        factors = self.factors
        return [dict(zip(factors, values)) for values in itertools.product(*(getattr(self, f) for f in factors))]

    def __bool__(self) -> bool:
        return bool(self.factors)

    def validate(self) -> None:
        """Raises UserError on a value no training can use, a value listed twice, or more than :data:`MAX_CELLS`
        cells (counted before any is made)."""
        sizes = [len(getattr(self, f)) for f in self.factors]
        if math.prod(sizes) > MAX_CELLS:
            raise UserError(f"the grid has {math.prod(sizes):,} cells ({' x '.join(map(str, sizes))}); at most "
                            f"{MAX_CELLS:,}, each an arm per initializer")
        bounds = {"lr": (0, 1e6, False), "weight_decay": (0, math.inf, True),
                  "momentum": (0, 1, True), "init_scale": (0, math.inf, True)}
        for factor in self.factors:
            low, high, closed = bounds[factor]
            values = getattr(self, factor)
            for v in values:
                inside = (v >= low if closed else v > low) and v < high and math.isfinite(v)
                if not inside:
                    said = f"{'>=' if closed else '>'} {low}" + (f" and < {high}" if math.isfinite(high) else "")
                    raise UserError(f"{option(f'grid.{factor}')} values must be finite numbers {said}, got {v}")
            if len(set(values)) < len(values):
                raise UserError(f"{option(f'grid.{factor}')} lists a value twice in {list(values)}; list each once")
        try:
            rules.check_pattern(self.init_scale_on)
        except ValueError as error:
            raise UserError(f"{option('grid.init_scale_on')}: {error}") from None

    def record(self) -> dict:
        """The grid as JSON-safe data (experiment records, resume keys): the factors given, and the scale's pattern."""
        out = {f: list(getattr(self, f)) for f in self.factors}
        if self.init_scale and self.init_scale_on != rules.EVERY_KERNEL:
            out["init_scale_on"] = self.init_scale_on
        return out

    @classmethod
    def of(cls, **values) -> Grid:
        """A grid from values in any form :func:`parse_values` reads (None or absent: not a factor)."""
        fields = {f: parse_values(v, f) for f, v in values.items() if f in FACTORS and v is not None}
        unknown = set(values) - set(FACTORS) - {"init_scale_on"}
        if unknown:
            raise UserError(f"unknown grid factor {sorted(unknown)[0]!r}; factors: {', '.join(FACTORS)}, init_scale_on")
        if values.get("init_scale_on") is not None:
            fields["init_scale_on"] = values["init_scale_on"]
        return cls(**fields)


def format_value(value: float) -> str:
    """A factor value as people write it: ``0.001``, ``0.0003``, ``1e-05``, ``2``."""
    return f"{value:g}"


def cell_label(cell: dict[str, float]) -> str:
    """``lr=0.001 wd=0.01``: a cell's values, in factor order."""
    return " ".join(f"{LABELS[f]}={format_value(cell[f])}" for f in FACTORS if f in cell)


def arm_name(initializer: str, cell: dict[str, float]) -> str:
    """The name of an (initializer, cell) arm: the initializer's, followed by the cell's values when there are any."""
    return f"{initializer} {cell_label(cell)}" if cell else initializer


def arms(initializers: Sequence[str], grid: Grid) -> dict[str, dict]:
    """Arm name -> its factor values (``initializer`` and the grid's), initializer-major, in table order."""
    return {arm_name(init, cell): {"initializer": init, **cell} for init in initializers for cell in grid.cells()}


def injected(grid: Grid) -> tuple[str, ...]:
    """The grid's factors the optimizer holds in its state (``TrainConfig.optax(..., injected=...)``)."""
    return tuple(f for f in grid.factors if f in OPTIMIZER_FACTORS)
