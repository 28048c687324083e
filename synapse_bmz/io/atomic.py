"""Atomic outputs: write to a hidden temporary name, rename when complete.

The implementation is `analysis._atomic` (the lowest layer that writes
files); this module gives it ``synapse_bmz``'s error: every failure of the
output location is an :class:`~synapse_bmz.errors.OutputError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from analysis import _atomic
from analysis._atomic import AtomicWriteError, remove_path
from synapse_bmz.errors import OutputError

__all__ = ["atomic_output", "check_writable_dir", "process_alive", "remove_path", "write_atomic"]


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs: leftovers (temporary names, locks) of a dead
    writer may be removed, a live one's not."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process (or no such pid at all)
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def check_writable_dir(path: str | Path) -> Path:
    """Return the directory that will hold `path`; OutputError if missing or unwritable."""
    try:
        return _atomic.check_writable_dir(path)
    except AtomicWriteError as error:
        raise OutputError(str(error)) from None


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` on success.

    `analysis._atomic.atomic_path` (which see for the parameters and the
    renames: ``.NAME.tmp-<random>`` beside `path`, trees renamed aside then
    deleted, the temporary removed if the body raises) with ``OutputError``
    for a failing output location.

    Raises
    ------
    OutputError
        Where `atomic_path` raises `AtomicWriteError` (missing or unwritable
        directory, nothing written, failed rename), also for a nested
        `analysis` writer's. Other exceptions of the body propagate unchanged.
    """
    try:
        with _atomic.atomic_path(path) as tmp:
            yield tmp
    except AtomicWriteError as error:
        raise OutputError(str(error)) from error


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` inside :func:`atomic_output` and return `path` (OutputError as there)."""
    with atomic_output(path) as tmp:
        write(tmp)
    return Path(path)
