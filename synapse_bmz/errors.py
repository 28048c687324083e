"""Exceptions that the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations

from pathlib import Path


class SynapseBmzError(Exception):
    """Base class for errors that are the user's input, not our bug.

    The CLI prints ``str(error)`` on one line and exits with status 2.
    """


class InputError(SynapseBmzError, ValueError):
    """An input file is unreadable, malformed, or unsuitable.

    Parameters
    ----------
    path : str or Path
        The offending file; it leads the message.
    problem : str
        What is wrong, in words a user can act on.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelError(SynapseBmzError):
    """A model package cannot be found, loaded or validated."""


class OutputError(SynapseBmzError):
    """An output location cannot be written."""
