"""The argument types the commands share: each turns a command-line string into a value or a one-line error."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.errors import UserError
from bench.reporting import FORMATS  # noqa: F401 (the report formats a --format takes)


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def floating(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def widths(text: str) -> list[int]:
    """``300,100`` -> ``[300, 100]``."""
    try:
        return [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def names(text: str) -> list[str]:
    """``synthetic, digits`` -> ``["synthetic", "digits"]``."""
    return [name.strip() for name in text.split(",") if name.strip()]


def specs(text: str) -> list[str]:
    """Initializer specs split at the top-level commas: ``normal(stddev=0.1),he_normal``."""
    from initjax.spec import split_specs

    try:
        return split_specs(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def existing_folder(folder: str) -> str:
    """``folder`` if it is a folder (so that taking its lock creates nothing), else a one-line UserError."""
    if not Path(folder).is_dir():
        raise UserError(f"{folder} is not a folder of results; give the --out of a finished run")
    return folder


def add_assignments(parser: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable): any field of an experiment, by its path (``experiment_file.set_path``)."""
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE", help=help)
