"""Which files of a folder are inputs, and how a path names its format.

Rule for :func:`list_inputs` (non-recursive; hidden names starting with
``.`` are skipped, including our own temporary outputs):

- a file, or ``file.h5:key`` / ``store.zarr:key``, is one input;
- a zarr store (``*.zarr`` or a directory with ``.zgroup``, ``.zarray`` or
  ``zarr.json``) is one input;
- a folder holding at least two PNG slices, or at least two TIFFs that are
  each a single 2D image, and no other volume files, is one input: a slice
  stack (z = natural sort order of names). To process 2D TIFFs one by one,
  pass them as files;
- any other folder: its volume files (``.mrc .rec .map .st .ali .tif
  .tiff .h5 .hdf5 .hdf .npy``) and zarr stores, in natural sort order.
"""

from __future__ import annotations

import re
from pathlib import Path

from synapse_bmz.errors import InputError
from synapse_bmz.io.slices import is_slice_tiff, natural_key, slice_files

MRC_SUFFIXES = (".mrc", ".rec", ".map", ".st", ".ali", ".mrcs")
TIFF_SUFFIXES = (".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
NPY_SUFFIXES = (".npy",)
PNG_SUFFIXES = (".png",)
VOLUME_SUFFIXES = MRC_SUFFIXES + TIFF_SUFFIXES + HDF5_SUFFIXES + NPY_SUFFIXES

_KEYED = re.compile(
    r"^(?P<file>.*?\.(?P<ext>h5|hdf5|hdf|zarr))(?:[:](?P<key>.*))?$", re.IGNORECASE
)
_ZARR_SUB = re.compile(r"^(?P<file>.*?\.zarr)/(?P<key>.+)$", re.IGNORECASE)


def is_zarr_store(path: Path) -> bool:
    """True for a directory that is a zarr store (by name or by marker file)."""
    return path.is_dir() and (
        path.suffix.lower() == ".zarr"
        or any((path / m).exists() for m in (".zgroup", ".zarray", "zarr.json"))
    )


def locate(path: str | Path) -> tuple[str, Path, str | None]:
    """Split `path` into (format, file on disk, key inside the file).

    Formats: ``"mrc"``, ``"tiff"``, ``"hdf5"``, ``"zarr"``, ``"npy"``,
    ``"png"`` (one 2D image), ``"slices"`` (a folder), ``"folder"`` (a folder
    of several volumes). The format follows the extension, never the content.

    Raises
    ------
    InputError
        For an unknown extension.
    """
    text = str(path)
    for pattern in (_KEYED, _ZARR_SUB):
        match = pattern.match(text)
        if match:
            ext = (match.groupdict().get("ext") or "zarr").lower()
            key = match.group("key") or None
            return ("zarr" if ext == "zarr" else "hdf5"), Path(match.group("file")), key
    p = Path(text)
    if p.is_dir():
        if is_zarr_store(p):
            return "zarr", p, None
        return ("slices" if folder_is_stack(p) else "folder"), p, None
    suffix = p.suffix.lower()
    for fmt, suffixes in (
        ("mrc", MRC_SUFFIXES),
        ("tiff", TIFF_SUFFIXES),
        ("npy", NPY_SUFFIXES),
        ("png", PNG_SUFFIXES),
    ):
        if suffix in suffixes:
            return fmt, p, None
    raise InputError(
        text,
        f"unknown file type {suffix or '(no extension)'!r}; supported: "
        ".mrc/.rec, .tif/.tiff/.ome.tif, .h5/.hdf5 (file.h5:key), .zarr/.ome.zarr, .npy, "
        ".png, or a folder of PNG/TIFF slices",
    )


def _volume_entries(folder: Path) -> list[Path]:
    out = []
    for child in folder.iterdir():
        if child.name.startswith("."):
            continue
        if is_zarr_store(child) or (child.is_file() and child.suffix.lower() in VOLUME_SUFFIXES):
            out.append(child)
    return sorted(out, key=natural_key)


def folder_is_stack(folder: Path) -> bool:
    """True if `folder` is a PNG/TIFF slice stack (see the module rule)."""
    files = slice_files(folder)
    if len(files) < 2:
        return False
    others = [p for p in _volume_entries(folder) if p.suffix.lower() not in TIFF_SUFFIXES]
    if others:
        return False
    if files[0].suffix.lower() in PNG_SUFFIXES:
        return True
    return all(is_slice_tiff(f) for f in files)


def list_inputs(path: str | Path) -> list[Path]:
    """The inputs that `path` names, in processing order.

    Parameters
    ----------
    path : str or Path
        A file, ``file.h5:key``, a zarr store, a slice-stack folder, or a
        folder of volume files (see the module docstring for the rule).

    Returns
    -------
    list of Path
        Each item can be passed to :func:`synapse_bmz.io.read_volume`.

    Raises
    ------
    InputError
        If `path` does not exist or a folder holds no inputs.
    """
    text = str(path)
    fmt, file, key = locate(text)
    if not file.exists():
        raise InputError(text, "no such file or directory")
    if fmt != "folder":
        return [Path(text)]
    entries = _volume_entries(file)
    if not entries:
        subfolders = sorted(
            (p.name for p in file.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda n: natural_key(Path(n)),
        )
        hint = f"; subfolders are not searched, pass one of {subfolders[:8]}" if subfolders else ""
        raise InputError(
            text,
            "folder holds no volumes (.mrc .rec .tif .tiff .h5 .npy, .zarr stores) "
            f"and is not a stack of 2D PNG/TIFF slices{hint}",
        )
    return entries
