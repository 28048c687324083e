"""Errors as one-line napari notifications, worded as ``synapse-bmz`` prints them."""

from __future__ import annotations

import logging

from ..errors import SynapseBmzError

logger = logging.getLogger(__name__)


def error_message(error: BaseException) -> str:
    """The one line the CLI prints for ``error`` (``synapse-bmz: error: ...``).

    `SynapseBmzError` s are the user's input: the CLI prints their message on
    one line (whitespace collapsed, see `synapse_bmz.cli.main`). ``ValueError``
    and ``KeyError`` from `postprocessing`/`analysis` are also about the
    input there (a parameter, a rule file), so they are worded the same way.
    Anything else is our bug: named as an internal error (the traceback goes
    to the log, not to the user's screen).
    """
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    else:
        text = str(error) or type(error).__name__
    text = " ".join(text.split())
    if isinstance(error, (SynapseBmzError, ValueError, KeyError)):
        return f"synapse-bmz: error: {text}"
    return f"synapse-bmz: internal error: {type(error).__name__}: {text}"


def notify_error(error: BaseException) -> str:
    """Show ``error`` as a napari error notification; return the message shown."""
    from napari.utils.notifications import show_error

    message = error_message(error)
    if not isinstance(error, (SynapseBmzError, ValueError, KeyError)):
        logger.error(message, exc_info=(type(error), error, error.__traceback__))
    show_error(message)
    return message
