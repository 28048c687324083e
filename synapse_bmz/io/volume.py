"""The :class:`Volume` type and the format-dispatching read/write functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synapse_bmz.errors import InputError, OutputError
from synapse_bmz.io._units import checked_voxel_size, is_valid_size
from synapse_bmz.io.atomic import atomic_output
from synapse_bmz.io.inputs import locate

ArrayLike = Any  # numpy.ndarray / memmap, zarr.Array, h5py.Dataset, SliceStack, SelectView

_FORMAT_NAMES = {
    "mrc": "MRC",
    "tiff": "TIFF",
    "hdf5": "HDF5",
    "zarr": "zarr",
    "npy": "npy",
    "png": "PNG",
    "slices": "slice",
}


@dataclass(frozen=True, eq=False)
class Volume:
    """A lazily readable image volume with its voxel size.

    Attributes
    ----------
    data : (Z, Y, X) or (Y, X) array-like
        Supports numpy basic slicing (``data[10:20, :, 5]``), ``shape``,
        ``dtype`` and ``ndim``; not loaded until indexed. One of
        numpy.memmap (MRC, TIFF, npy), zarr.Array, h5py.Dataset, or a small
        lazy wrapper (slice folders, dropped channel axes). No channel axis.
    voxel_size_nm : tuple of float
        Size of a voxel along each axis of `data`, in nm: ``(z, y, x)`` or
        ``(y, x)``.
    axes : str
        ``"zyx"`` or ``"yx"``.
    path : str
        The input as the user gave it (``file.h5:key`` included).
    """

    data: ArrayLike
    voxel_size_nm: tuple[float, ...]
    axes: str
    path: str

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of `data`, one entry per letter of `axes`."""
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        """Data type of `data`."""
        return np.dtype(self.data.dtype)

    def to_numpy(self) -> np.ndarray:
        """Load the whole volume into memory.

        Returns
        -------
        (Z, Y, X) or (Y, X) numpy.ndarray
            An in-memory array (not a memmap), dtype as stored.
        """
        out = self.data[...]
        if isinstance(out, np.memmap) or not isinstance(out, np.ndarray) or out.base is not None:
            out = np.array(out)
        return out


def _read(fmt: str, file: Path, key: str | None, scale_level: int, shown: str):
    if fmt == "mrc":
        from synapse_bmz.io.mrc import read_mrc

        return read_mrc(file)
    if fmt == "tiff":
        from synapse_bmz.io.tiff import read_tiff

        return read_tiff(file)
    if fmt == "hdf5":
        from synapse_bmz.io.hdf5 import read_hdf5

        return read_hdf5(file, key, shown)
    if fmt == "zarr":
        from synapse_bmz.io.zarr_io import read_zarr

        return read_zarr(file, key, scale_level, shown)
    if fmt == "npy":
        from synapse_bmz.io.npy import read_npy

        return read_npy(file)
    if fmt == "png":
        from synapse_bmz.io.slices import read_slice

        return read_slice(file), None
    if fmt == "slices":
        from synapse_bmz.io.slices import read_slices

        return read_slices(file)
    raise InputError(
        shown,
        "folder holds several volumes; pass one of them (or iterate over "
        "synapse_bmz.io.list_inputs)",
    )


def read_volume(
    path: str | Path,
    voxel_size_nm: Sequence[float] | None = None,
    *,
    scale_level: int = 0,
) -> Volume:
    """Open an image volume lazily, with its voxel size in nm.

    Parameters
    ----------
    path : str or Path
        ``.mrc``/``.rec``, ``.tif``/``.tiff``/``.ome.tif``, ``file.h5:key``,
        ``.zarr``/``.ome.zarr`` (optionally ``store.zarr:path``), ``.npy``,
        a single ``.png``, or a folder of PNG/TIFF slices (stacked as z).
    voxel_size_nm : sequence of float, optional
        ``(z, y, x)`` or ``(y, x)`` in nm. Overrides whatever the file says;
        required when the file has none (slice folders, plain TIFF, npy
        without sidecar, MRC with an unset pixel size).
    scale_level : int, default 0
        Level of an OME-Zarr multiscale pyramid (0 = full resolution).

    Returns
    -------
    Volume
        ``data`` of shape (Z, Y, X) or (Y, X), array order as stored in the
        file (MRC: no axis flip, see :mod:`synapse_bmz.io.mrc`).

    Raises
    ------
    InputError
        Missing file, unknown extension, unreadable/truncated/corrupt file
        (``"PATH: cannot read FORMAT file: reason"``), unsupported
        dimensionality or channels, or no voxel size (the message says to
        pass ``--voxel-size``).

    Examples
    --------
    >>> vol = read_volume("tomogram.rec")                      # doctest: +SKIP
    >>> vol.axes, vol.voxel_size_nm                            # doctest: +SKIP
    ('zyx', (1.554, 1.554, 1.554))
    >>> block = vol.data[10:20]            # reads only 10 sections  # doctest: +SKIP
    """
    shown = str(path)
    fmt, file, key = locate(path)
    if not file.exists():
        raise InputError(shown, "no such file or directory")
    try:
        data, file_voxel = _read(fmt, file, key, scale_level, shown)
    except InputError:
        raise
    except Exception as error:  # libraries raise many types for corrupt files
        reason = str(error) or type(error).__name__
        raise InputError(shown, f"cannot read {_FORMAT_NAMES.get(fmt, fmt)} file: {reason}") from error
    ndim = len(data.shape)
    if ndim not in (2, 3):
        raise InputError(shown, f"data has shape {tuple(data.shape)}; expected 2D or 3D")
    if voxel_size_nm is not None:
        voxel = checked_voxel_size(shown, voxel_size_nm, ndim, source="the caller")
    else:
        voxel = checked_voxel_size(shown, file_voxel, ndim, source="the file")
    return Volume(data=data, voxel_size_nm=voxel, axes="zyx"[-ndim:], path=shown)


def write_volume(
    path: str | Path,
    data: np.ndarray,
    voxel_size_nm: Sequence[float],
    *,
    metadata: dict | None = None,
) -> Path:
    """Write a 2D or 3D array with its voxel size, atomically.

    The format follows the extension:

    - ``.mrc``/``.rec``: voxel size in Angstrom in the header; types as in
      :mod:`synapse_bmz.io.mrc` (labels wider than 16 bit become float32 or
      are refused; prefer ``.zarr``/``.tif`` for labels);
    - ``.tif``/``.tiff``: ImageJ hyperstack, ``unit='nm'``, ``spacing`` and
      X/YResolution; OME-TIFF for types ImageJ lacks (:mod:`.tiff`);
    - ``file.h5:key`` (default key ``data``): attributes ``voxel_size_nm``
      and ``element_size_um``; other datasets of an existing file are kept;
    - ``.zarr``/``.ome.zarr``: OME-Zarr 0.4, one level, unit ``nanometer``,
      `metadata` under ``attrs["synapse_bmz"]``;
    - ``.npy``: plus sidecar ``NAME.npy.json`` with the voxel size.

    Parameters
    ----------
    path : str or Path
        Destination; an existing file or store there is replaced.
    data : (Z, Y, X) or (Y, X) ndarray
    voxel_size_nm : sequence of float
        ``(z, y, x)`` or ``(y, x)`` in nm, one per axis of `data`.
    metadata : dict, optional
        JSON-serialisable provenance (model id, weights sha256, parameters).

    Returns
    -------
    Path
        The file or store written (without ``:key``).

    Raises
    ------
    OutputError
        Unwritable destination, unsupported extension, or data the format
        cannot hold.
    ValueError
        If `data` is not 2D/3D or `voxel_size_nm` does not match it.
    """
    text = str(path)
    data = np.asarray(data)
    if data.ndim not in (2, 3):
        raise ValueError(f"`data` (shape {data.shape}) must be 2D (y, x) or 3D (z, y, x)")
    voxel = tuple(float(v) for v in voxel_size_nm)
    if not is_valid_size(voxel, data.ndim):
        raise ValueError(
            f"`voxel_size_nm` {voxel} must have one positive size per axis of `data` "
            f"(shape {data.shape})"
        )
    try:
        fmt, file, key = locate(text)
    except InputError:
        fmt, file, key = "unknown", Path(text), None
    try:
        if fmt == "mrc":
            from synapse_bmz.io.mrc import write_mrc as writer
        elif fmt == "tiff":
            from synapse_bmz.io.tiff import write_tiff as writer
        elif fmt == "zarr":
            from synapse_bmz.io.zarr_io import write_zarr as writer
        elif fmt == "hdf5":
            from synapse_bmz.io.hdf5 import DEFAULT_KEY, write_hdf5

            def writer(tmp, data, voxel, metadata, final):
                write_hdf5(tmp, key or DEFAULT_KEY, data, voxel, metadata, final)

        elif fmt == "npy":
            from synapse_bmz.io.npy import sidecar_path, write_npy, write_sidecar

            with atomic_output(file) as tmp:
                write_npy(tmp, data)
            with atomic_output(sidecar_path(file)) as tmp:
                write_sidecar(tmp, voxel, data.ndim, metadata)
            return file
        else:
            raise OutputError(
                f"{text}: cannot write this file type; use .mrc/.rec, .tif/.tiff, "
                ".h5/.hdf5 (file.h5:key), .zarr/.ome.zarr or .npy"
            )
        with atomic_output(file) as tmp:
            writer(tmp, data, voxel, metadata, file)
    except OSError as error:
        raise OutputError(f"{text}: cannot write: {error}") from error
    return file
