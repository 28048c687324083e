"""Folders of 2D slice images (PNG or TIFF), stacked along z.

Rule: every non-hidden ``.png`` (or every ``.tif``/``.tiff``) file directly
inside the folder is one section; files are ordered by natural sort of their
names (``s2.png`` before ``s10.png``), which is the z order. All slices must
have the same shape and type. Only one image type may be present. PNGs
with grey + alpha (the shared EPFL data) or grey-valued RGB(A) keep channel 0.
Slices carry no z spacing, so the voxel size must come from the caller;
slices are read one at a time when indexed (:class:`SliceStack`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from synapse_bmz.errors import InputError
from synapse_bmz.io._channels import grey_channel
from synapse_bmz.io._lazy import SliceStack

PNG_SUFFIXES = (".png",)
TIFF_SUFFIXES = (".tif", ".tiff")


def natural_key(path: Path) -> list:
    """Sort key that orders embedded numbers numerically."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def slice_files(folder: Path) -> list[Path]:
    """The slice files of `folder`, in z order; [] if it holds none.

    Raises
    ------
    InputError
        If the folder mixes PNG and TIFF slices.
    """
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    pngs = [p for p in files if p.suffix.lower() in PNG_SUFFIXES]
    tifs = [p for p in files if p.suffix.lower() in TIFF_SUFFIXES]
    if pngs and tifs:
        raise InputError(folder, "folder mixes PNG and TIFF files; keep one slice type")
    return sorted(pngs or tifs, key=natural_key)


def is_slice_tiff(path: Path) -> bool:
    """True if `path` is a TIFF holding a single 2D image (cheap: header only)."""
    try:
        with tifffile.TiffFile(path) as tif:
            if len(tif.series) != 1:
                return False
            shape = [n for n, a in zip(tif.series[0].shape, tif.series[0].axes) if a not in "SC"]
            return len([n for n in shape if n > 1]) <= 2 and len(tif.pages) == 1
    except (OSError, ValueError, tifffile.TiffFileError):
        return False


def _load_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def read_slice(path: Path) -> np.ndarray:
    """Read one slice as (Y, X) after the channel rule."""
    try:
        if path.suffix.lower() in PNG_SUFFIXES:
            plane = _load_png(path)
        else:
            plane = tifffile.imread(path)
    except Exception as error:  # PIL and tifffile raise many types for bad files
        raise InputError(path, f"cannot read slice: {error}") from error
    if plane.ndim == 3:
        if plane.shape[0] in (2, 3, 4) and plane.shape[-1] not in (2, 3, 4):
            plane = np.moveaxis(plane, 0, -1)  # planar TIFF
        plane = plane[..., grey_channel(path, plane.shape[-1], plane)]
    if plane.ndim != 2:
        raise InputError(path, f"slice has shape {plane.shape}; expected a 2D image")
    return plane


def _header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape (Y, X) and dtype after the channel rule, from the header only."""
    try:
        if path.suffix.lower() in PNG_SUFFIXES:
            with Image.open(path) as im:
                mode, (w, h) = im.mode, im.size
            if mode in ("L", "LA", "RGB", "RGBA", "P", "1"):
                return (h, w), np.dtype(np.bool_ if mode == "1" else np.uint8)
            sample = read_slice(path)  # 16-bit or unusual modes: read to be sure
            return sample.shape, sample.dtype
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            return (int(page.imagelength), int(page.imagewidth)), np.dtype(page.dtype)
    except InputError:
        raise
    except Exception as error:
        raise InputError(path, f"cannot read slice: {error}") from error


def read_slices(folder: Path) -> tuple[SliceStack, None]:
    """Open a folder of 2D slices as a lazy (Z, Y, X) stack.

    Returns
    -------
    data : (Z, Y, X) SliceStack
        Reads the needed slice files on indexing.
    voxel_size_nm : None
        Slice files carry no z spacing; the caller must supply it.

    Raises
    ------
    InputError
        No slices, mixed types, or slices whose shape/type differ.
    """
    files = slice_files(folder)
    if not files:
        raise InputError(folder, "folder holds no PNG or TIFF slices")
    shape, dtype = _header(files[0])
    for f in files[1:]:
        s, d = _header(f)
        if s != shape or d != dtype:
            raise InputError(
                folder,
                f"slice {f.name} has shape {s} and type {d}, but {files[0].name} has "
                f"shape {shape} and type {dtype}; all slices must match",
            )
    # check the channel rule on the first slice now, so errors surface at open
    first = read_slice(files[0])
    return SliceStack(files, tuple(first.shape), first.dtype, read_slice), None
