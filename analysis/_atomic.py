"""Atomic outputs: write to a hidden temporary name beside the target, rename when complete.

The one implementation of atomic writing in the code base. It lives in
``analysis``, the lowest layer that writes files (tables, HTML reports,
IMOD models): ``postprocessing`` only turns arrays into arrays, and
``analysis`` may not import ``synapse_bmz``. ``synapse_bmz.io.atomic``
re-exports it with ``OutputError`` in place of :class:`AtomicWriteError`;
everything in ``synapse_bmz`` (readers' writers, run folders, training
checkpoints, simulations, packages) goes through that.

Standard library only.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["AtomicWriteError", "atomic_path", "check_writable_dir", "remove_path", "write_atomic"]


class AtomicWriteError(OSError):
    """The output location cannot be written (the message names it first)."""


def check_writable_dir(path: str | Path) -> Path:
    """Return the directory that will hold `path`.

    Raises
    ------
    AtomicWriteError
        If that directory does not exist or is not writable.
    """
    path = Path(path)
    parent = path.absolute().parent
    if not parent.is_dir():
        raise AtomicWriteError(f"{path}: cannot write: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise AtomicWriteError(f"{path}: cannot write: directory {parent} is not writable")
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
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` on success.

    The temporary name is ``.NAME.tmp-<random>`` in the same directory, so
    the final ``os.replace`` is a rename on one file system. The body may
    write a file or a directory tree (e.g. a zarr store, a model package) at
    the yielded path.

    On normal exit the temporary path replaces `path`. An existing file is
    replaced atomically; an existing directory tree (or a file where a tree
    is written, or vice versa) is first renamed aside to a hidden name,
    the new output renamed into place, and the old one then deleted, so
    `path` is missing only between two renames. If the body raises, the
    temporary path is removed and the exception propagates unchanged; `path`
    is left untouched.

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
    AtomicWriteError
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
        raise AtomicWriteError(f"{path}: nothing was written")
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
        raise AtomicWriteError(f"{path}: cannot write: {error}") from error


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` inside :func:`atomic_path` and return `path`.

    For writers that take a file name, e.g.
    ``write_atomic(out / "t.csv", lambda p: table.to_csv(p, index=False))``.

    Raises
    ------
    AtomicWriteError
        As :func:`atomic_path`; whatever ``write`` raises propagates.
    """
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)
