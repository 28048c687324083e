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


class OptionError(SynapseBmzError, ValueError):
    """A command-line option or API argument has an unusable value.

    Parameters
    ----------
    option : str
        The option as the user wrote it (``--tile``) or the argument name.
    problem : str
        What is wrong and what would be accepted.
    """

    def __init__(self, option: str, problem: str):
        self.option = option
        self.problem = problem
        super().__init__(f"{option}: {problem}")


class BlockFailure(SynapseBmzError):
    """Blocks failed repeatedly; finished blocks are kept for ``--resume``.

    Parameters
    ----------
    failures : list of (str, str)
        ``(block description with coordinates, last error)`` per failed block group.
    """

    def __init__(self, stage: str, failures):
        self.stage = stage
        self.failures = list(failures)
        first = self.failures[0]
        more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        super().__init__(f"{stage}: {len(self.failures)} block group(s) failed after retries; "
                         f"{first[0]}: {first[1]}{more}")


class Cancelled(SynapseBmzError):
    """A run was stopped (cancel request, SIGTERM or SIGINT) before it finished."""
