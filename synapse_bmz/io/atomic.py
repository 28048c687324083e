"""Atomic outputs: write to a hidden temporary name, rename when complete."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from synapse_bmz.errors import OutputError


def check_writable_dir(path: str | Path) -> Path:
    """Return the directory that will hold `path`; OutputError if unwritable."""
    path = Path(path)
    parent = path.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"{path}: cannot write: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write: directory {parent} is not writable")
    return parent


def remove_path(path: Path) -> None:
    """Remove a file, link or directory tree if it exists; ignore absence."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` on success.

    The temporary name is ``.NAME.tmp-<random>`` in the same directory, so
    the final ``os.replace`` is a rename on one file system. The body may
    write a file or a directory tree (e.g. a zarr store) at the yielded path.

    On normal exit the temporary path replaces `path`. An existing file is
    replaced atomically; an existing directory tree (or a file where a tree
    is written, or vice versa) is first renamed aside to a hidden name,
    the new output renamed into place, and the old one then deleted, so
    `path` is missing only between two renames. If the body raises, the
    temporary path is removed and the exception propagates; `path` is left
    untouched.

    Parameters
    ----------
    path : str or Path
        Final location of the output.

    Yields
    ------
    Path
        Where to write; it does not exist yet.

    Raises
    ------
    OutputError
        If the directory of `path` does not exist or is not writable (checked
        before the body runs), if the body wrote nothing at the temporary
        path, or if the final rename fails.
    """
    path = Path(path)
    parent = check_writable_dir(path)
    tmp = parent / f".{path.name}.tmp-{secrets.token_hex(4)}"
    try:
        yield tmp
    except BaseException:
        remove_path(tmp)
        raise
    if not os.path.lexists(tmp):
        raise OutputError(f"{path}: nothing was written")
    target = parent / path.name
    try:
        if os.path.lexists(target) and (target.is_dir() or tmp.is_dir()):
            old = parent / f".{path.name}.old-{secrets.token_hex(4)}"
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except OSError:
                os.replace(old, target)
                raise
            remove_path(old)
        else:
            os.replace(tmp, target)
    except OSError as error:
        remove_path(tmp)
        raise OutputError(f"{path}: cannot write: {error}") from error
