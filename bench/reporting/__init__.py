"""Reports rendered from ``results.csv`` and ``run.json`` only: tables, markdown, LaTeX (``report``) and
figures (``figures``)."""

from collections.abc import Sequence

from bench.errors import UserError

FORMATS = ("md", "tex", "png", "pdf", "csv")  # what a report can be written as (here: the CLI reads it without pandas)


def check_formats(formats: Sequence[str]) -> None:
    """Raises UserError, naming it, if a format is not one of :data:`FORMATS` (or none is given)."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"unknown report format {(unknown or [''])[0]!r}; choose from {', '.join(FORMATS)}")


def image_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """The figures' formats among ``formats``."""
    return tuple(f for f in ("png", "pdf") if f in formats)
