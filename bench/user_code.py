"""The callables a user names by ``module:attr`` in an experiment (a dataset's loader, a loss, a model), imported
and checked in one place (``initjax.registry.import_object`` finds them, the experiment file's folder on the path).
"""

from __future__ import annotations

from bench.errors import UserError


def user_callable(spec: str, what: str, contract: str):
    """The callable a ``module:attr`` spec names (``initjax.registry.import_object``).

    Raises:
      UserError: it does not import, or is not callable (``contract`` says what it must be).
    """
    from initjax.registry import import_object

    try:
        fn = import_object(spec, what)
    except ValueError as error:
        raise UserError(str(error)) from None
    if not callable(fn):
        raise UserError(f"{what} {spec!r} is not callable; it must be {contract}")
    return fn
