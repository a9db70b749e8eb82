"""Errors about the user's data that stop a run with one line per problem and no traceback.

MONAI's config evaluation (:meth:`monai.bundle.ConfigExpression.evaluate`) wraps every ``Exception`` raised
inside a ``$`` expression into ``RuntimeError("Failed to evaluate ...")``, so an error raised by a data helper
called from a bundle config reaches the user as a 70-330 line chained traceback with the useful line buried
in it. It lets ``BaseException`` through, so :class:`DataError` subclasses :class:`SystemExit`: Python prints
its message to stderr and exits with status 1, without a traceback, whether it is raised under
``python -m monai.bundle run``, a tool or ``ConfigWorkflow``.

With debugging on (``debug=True`` where a function offers it, or the environment variable
``UNITED_SSL_DEBUG=1``) the same message is raised as :class:`DataCheckFailed`, an ordinary exception whose
traceback (chained to the reader's own exception, if any) is shown.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["DEBUG_ENV", "DataCheckFailed", "DataError", "debug_requested", "raise_data_error"]

#: Environment variable that turns on tracebacks for data errors (``1``, ``true``, ``yes`` or ``on``).
DEBUG_ENV = "UNITED_SSL_DEBUG"


class DataError(SystemExit):
    """A problem with the input data: exits with status 1 and prints only :attr:`message`.

    Args:
        message: the text printed to stderr (one line per problem).
        problems: the problem lines, for callers that inspect them.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)  # a string code: Python prints it and exits with status 1
        self.message = message
        self.problems = list(problems)

    def __str__(self) -> str:
        return self.message


class DataCheckFailed(ValueError):
    """The debugging form of :class:`DataError`: an ordinary exception with a traceback.

    Args:
        message: the same text :class:`DataError` would print.
        problems: the problem lines.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems)


def debug_requested(debug: bool | None = None) -> bool:
    """Tells whether data errors should carry tracebacks.

    Args:
        debug: an explicit choice; ``None`` reads :data:`DEBUG_ENV`.
    """
    if debug is not None:
        return bool(debug)
    return os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def raise_data_error(
    message: str, problems: Sequence[str] = (), debug: bool | None = None, cause: BaseException | None = None
) -> None:
    """Raises :class:`DataError`, or :class:`DataCheckFailed` chained to ``cause`` when debugging.

    Args:
        message: the full message (one line per problem).
        problems: the problem lines.
        debug: ``True`` for a traceback; ``None`` reads :data:`DEBUG_ENV`.
        cause: the exception behind the problem (shown in the debugging traceback only).

    Raises:
        DataError: without debugging.
        DataCheckFailed: with debugging.
    """
    if debug_requested(debug):
        raise DataCheckFailed(message, problems) from cause
    raise DataError(message, problems) from None
